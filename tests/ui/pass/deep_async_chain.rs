//! A chain of 50 awaited traced async fns compiles and runs, spawned on a multi-threaded
//! runtime (so the outermost future must be `Send`). A chain of awaited async fns meets rustc's
//! recursion limit (128) even untraced (about 42 deep when the future must be `Send`); a
//! traced chain meets it at about 32, and a crate with deeper chains raises the limit.
#![recursion_limit = "512"]

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[trace]
async fn f0(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n + 1
}

#[trace]
async fn f1(n: u32) -> u32 {
    f0(n).await + 1
}

#[trace]
async fn f2(n: u32) -> u32 {
    f1(n).await + 1
}

#[trace]
async fn f3(n: u32) -> u32 {
    f2(n).await + 1
}

#[trace]
async fn f4(n: u32) -> u32 {
    f3(n).await + 1
}

#[trace]
async fn f5(n: u32) -> u32 {
    f4(n).await + 1
}

#[trace]
async fn f6(n: u32) -> u32 {
    f5(n).await + 1
}

#[trace]
async fn f7(n: u32) -> u32 {
    f6(n).await + 1
}

#[trace]
async fn f8(n: u32) -> u32 {
    f7(n).await + 1
}

#[trace]
async fn f9(n: u32) -> u32 {
    f8(n).await + 1
}

#[trace]
async fn f10(n: u32) -> u32 {
    f9(n).await + 1
}

#[trace]
async fn f11(n: u32) -> u32 {
    f10(n).await + 1
}

#[trace]
async fn f12(n: u32) -> u32 {
    f11(n).await + 1
}

#[trace]
async fn f13(n: u32) -> u32 {
    f12(n).await + 1
}

#[trace]
async fn f14(n: u32) -> u32 {
    f13(n).await + 1
}

#[trace]
async fn f15(n: u32) -> u32 {
    f14(n).await + 1
}

#[trace]
async fn f16(n: u32) -> u32 {
    f15(n).await + 1
}

#[trace]
async fn f17(n: u32) -> u32 {
    f16(n).await + 1
}

#[trace]
async fn f18(n: u32) -> u32 {
    f17(n).await + 1
}

#[trace]
async fn f19(n: u32) -> u32 {
    f18(n).await + 1
}

#[trace]
async fn f20(n: u32) -> u32 {
    f19(n).await + 1
}

#[trace]
async fn f21(n: u32) -> u32 {
    f20(n).await + 1
}

#[trace]
async fn f22(n: u32) -> u32 {
    f21(n).await + 1
}

#[trace]
async fn f23(n: u32) -> u32 {
    f22(n).await + 1
}

#[trace]
async fn f24(n: u32) -> u32 {
    f23(n).await + 1
}

#[trace]
async fn f25(n: u32) -> u32 {
    f24(n).await + 1
}

#[trace]
async fn f26(n: u32) -> u32 {
    f25(n).await + 1
}

#[trace]
async fn f27(n: u32) -> u32 {
    f26(n).await + 1
}

#[trace]
async fn f28(n: u32) -> u32 {
    f27(n).await + 1
}

#[trace]
async fn f29(n: u32) -> u32 {
    f28(n).await + 1
}

#[trace]
async fn f30(n: u32) -> u32 {
    f29(n).await + 1
}

#[trace]
async fn f31(n: u32) -> u32 {
    f30(n).await + 1
}

#[trace]
async fn f32(n: u32) -> u32 {
    f31(n).await + 1
}

#[trace]
async fn f33(n: u32) -> u32 {
    f32(n).await + 1
}

#[trace]
async fn f34(n: u32) -> u32 {
    f33(n).await + 1
}

#[trace]
async fn f35(n: u32) -> u32 {
    f34(n).await + 1
}

#[trace]
async fn f36(n: u32) -> u32 {
    f35(n).await + 1
}

#[trace]
async fn f37(n: u32) -> u32 {
    f36(n).await + 1
}

#[trace]
async fn f38(n: u32) -> u32 {
    f37(n).await + 1
}

#[trace]
async fn f39(n: u32) -> u32 {
    f38(n).await + 1
}

#[trace]
async fn f40(n: u32) -> u32 {
    f39(n).await + 1
}

#[trace]
async fn f41(n: u32) -> u32 {
    f40(n).await + 1
}

#[trace]
async fn f42(n: u32) -> u32 {
    f41(n).await + 1
}

#[trace]
async fn f43(n: u32) -> u32 {
    f42(n).await + 1
}

#[trace]
async fn f44(n: u32) -> u32 {
    f43(n).await + 1
}

#[trace]
async fn f45(n: u32) -> u32 {
    f44(n).await + 1
}

#[trace]
async fn f46(n: u32) -> u32 {
    f45(n).await + 1
}

#[trace]
async fn f47(n: u32) -> u32 {
    f46(n).await + 1
}

#[trace]
async fn f48(n: u32) -> u32 {
    f47(n).await + 1
}

#[trace]
async fn f49(n: u32) -> u32 {
    f48(n).await + 1
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let recorder = Recorder::start();
    assert_eq!(tokio::spawn(f49(0)).await.unwrap(), 50);
    let spans = recorder.spans();
    assert_eq!(spans.len(), 50);
    // Each span is the child of the one that awaited it.
    let mut span = spans.get("f49");
    assert!(span.is_root());
    for i in (0..49).rev() {
        let children = spans.children_of(span);
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].name, format!("f{i}"));
        span = children[0];
    }
}
