//! Unit fns whose body diverges compile under `#[trace]`, sync and async, and the span still
//! ends when the body panics.

use std::panic::{AssertUnwindSafe, catch_unwind};

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[trace]
fn not_yet() {
    todo!()
}

#[trace]
fn explicit_unit() -> () {
    unimplemented!("later")
}

#[trace]
fn fails(reason: &str) {
    panic!("{reason}")
}

#[trace]
fn forever() {
    loop {}
}

#[trace]
fn quit(code: i32) {
    std::process::exit(code)
}

#[trace]
fn never_returns() -> ! {
    panic!("never")
}

#[trace]
fn maybe(stop: bool) {
    if stop {
        return;
    }
    unreachable!()
}

#[trace]
async fn not_yet_async() {
    todo!()
}

#[trace]
async fn fails_async(reason: &str) {
    panic!("{reason}")
}

#[trace]
async fn forever_async() {
    loop {}
}

#[trace]
async fn quit_async(code: i32) {
    std::process::exit(code)
}

struct Service;

impl Service {
    #[trace]
    fn stub(&self) {
        todo!()
    }

    #[trace]
    async fn stub_async(&self) {
        unimplemented!()
    }
}

fn main() {
    let rec = Recorder::start();
    assert!(catch_unwind(not_yet).is_err());
    assert!(catch_unwind(|| fails("no")).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| Service.stub())).is_err());
    maybe(true);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| rt.block_on(fails_async("no")))).is_err());
    let spans = rec.spans();
    assert!(spans.get("not_yet").is_error());
    assert_eq!(spans.get("fails_async").error_message(), Some("no"));
    assert!(!spans.get("maybe").is_error());
    // Only referenced: they would not return.
    let _ = (explicit_unit, forever, quit, never_returns, not_yet_async, forever_async, quit_async);
    let _ = Service.stub_async();
}
