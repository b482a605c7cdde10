//! Two fn shapes that tracing used to break. Arguments under `#[cfg(..)]`: one configured out
//! (`cfg(any())` is never true) is not named by the expansion, one configured in
//! (`cfg(all())`) is recorded like any other. And bodies that are one expression on one line
//! (`{ x }`, the shape rustc's `unused_braces` lint looks at): the expansions put their
//! statements in the body's own braces rather than the body in a block of theirs, so the
//! lint, denied here, has nothing to report.

#![deny(unused_braces)]

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{retry, trace, with_request_id};

#[trace]
fn sync_cfg(#[cfg(any())] gone: u32, #[cfg(all())] kept: u32, n: u32) -> u32 {
    kept + n
}

#[trace]
async fn async_cfg(#[cfg(any())] gone: u32, #[cfg(all())] kept: u32, n: u32) -> u32 {
    kept + n
}

#[retry(max_attempts = 2, backoff = constant(1ms))]
fn retried_cfg(#[cfg(any())] gone: u32, #[cfg(all())] kept: u32) -> Result<u32, String> {
    Ok(kept)
}

#[trace]
#[retry(max_attempts = 2, backoff = constant(1ms))]
fn traced_retried_cfg(#[cfg(any())] gone: u32, n: u32) -> Result<u32, String> {
    Ok(n)
}

#[trace]
async fn one_expression(n: u32) -> u32 { n }

#[trace]
#[with_request_id]
async fn one_expression_in_scope(n: u32) -> u32 { n }

#[with_request_id]
async fn one_expression_request(n: u32) -> u32 { n }

#[retry(max_attempts = 2, backoff = constant(1ms))]
fn one_expression_retried(n: u32) -> Result<u32, String> { Ok(n) }

#[retry(max_attempts = 2, backoff = constant(1ms))]
async fn one_expression_retried_async(n: u32) -> Result<u32, String> { Ok(n) }

fn main() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(sync_cfg(1, 2), 3);
    assert_eq!(rt.block_on(async_cfg(1, 2)), 3);
    assert_eq!(retried_cfg(4), Ok(4));
    assert_eq!(traced_retried_cfg(5), Ok(5));
    assert_eq!(rt.block_on(one_expression(6)), 6);
    assert_eq!(rt.block_on(one_expression_in_scope(7)), 7);
    assert_eq!(rt.block_on(one_expression_request(8)), 8);
    assert_eq!(one_expression_retried(9), Ok(9));
    assert_eq!(rt.block_on(one_expression_retried_async(10)), Ok(10));
    let spans = rec.spans();
    for name in ["sync_cfg", "async_cfg"] {
        let span = spans.get(name);
        assert_eq!(span.i64("honeyhive_inputs.kept"), Some(1), "{name}");
        assert_eq!(span.i64("honeyhive_inputs.n"), Some(2), "{name}");
        assert!(span.attr("honeyhive_inputs.gone").is_none(), "{name}");
    }
    assert_eq!(spans.get("traced_retried_cfg").i64("honeyhive_inputs.n"), Some(5));
}
