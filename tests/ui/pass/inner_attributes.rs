//! Inner attributes at the top of a traced body (`#![allow(..)]`) keep their meaning: they
//! apply to the function, sync and async, under `#[retry]` and in methods. The crate denies
//! unused variables, so each body compiles only if its `#![allow(unused_variables)]` still
//! covers it.

#![deny(unused_variables)]

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{retry, trace};

#[trace]
fn sync_body(n: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = n;
    n + 1
}

#[trace]
async fn async_body(n: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = n;
    n + 2
}

#[trace]
#[retry(max_attempts = 2, backoff = constant(1ms))]
fn retried(n: u32) -> Result<u32, String> {
    #![allow(unused_variables, clippy::unnecessary_wraps)]
    let unused = n;
    Ok(n + 3)
}

#[trace(skip_all, skip_output)]
fn skipped(n: u32) {
    #![allow(unused_variables)]
    let unused = n;
}

struct Service;

impl Service {
    #[trace]
    fn method(&self, n: u32) -> u32 {
        #![allow(unused_variables)]
        let unused = n;
        n + 4
    }
}

fn main() {
    let rec = Recorder::start();
    assert_eq!(sync_body(1), 2);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(async_body(1)), 3);
    assert_eq!(retried(1), Ok(4));
    skipped(1);
    assert_eq!(Service.method(1), 5);
    let spans = rec.spans();
    for name in ["sync_body", "async_body", "retried", "skipped", "method"] {
        assert!(!spans.get(name).is_error(), "{name}");
    }
    assert_eq!(spans.get("sync_body").i64("honeyhive_outputs.result"), Some(2));
}
