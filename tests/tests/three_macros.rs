//! `#[with_request_id]`, `#[trace]` and `#[retry]` stacked in every order, sync and async.
//!
//! Whatever the order: one request id per call (generated once, even across retries), on every
//! span of the call; `#[trace]` above `#[retry]` is one span with a `retry` event per failed
//! attempt, `#[trace]` below `#[retry]` is one span per attempt with `retry.attempt`.

use std::sync::atomic::{AtomicU32, Ordering};

use honeyhive_runtime::retry::TestClock;
use honeyhive_runtime::testing::{FinishedSpan, Recorder, Spans};
use honeyhive_runtime::{retry, trace, with_request_id};

#[trace(event_type = "tool")]
fn inner_step(n: u32) -> u32 {
    n
}

/// Fails on the first call, succeeds on the second.
fn flaky(calls: &AtomicU32) -> Result<u32, String> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    inner_step(n);
    if n < 2 {
        Err(format!("attempt {n} failed"))
    } else {
        Ok(n)
    }
}

macro_rules! orders {
    ($($name:ident: [$($attr:meta),*];)*) => {$(
        $(#[$attr])*
        fn $name(calls: &AtomicU32) -> Result<u32, String> {
            flaky(calls)
        }
    )*};
}

macro_rules! async_orders {
    ($($name:ident: [$($attr:meta),*];)*) => {$(
        $(#[$attr])*
        async fn $name(calls: &AtomicU32) -> Result<u32, String> {
            tokio::task::yield_now().await;
            flaky(calls)
        }
    )*};
}

orders! {
    rid_trace_retry: [with_request_id, trace, retry(backoff = constant(10ms), jitter = none)];
    rid_retry_trace: [with_request_id, retry(backoff = constant(10ms), jitter = none), trace];
    trace_rid_retry: [trace, with_request_id, retry(backoff = constant(10ms), jitter = none)];
    trace_retry_rid: [trace, retry(backoff = constant(10ms), jitter = none), with_request_id];
    retry_rid_trace: [retry(backoff = constant(10ms), jitter = none), with_request_id, trace];
    retry_trace_rid: [retry(backoff = constant(10ms), jitter = none), trace, with_request_id];
}

async_orders! {
    a_rid_trace_retry: [with_request_id, trace, retry(backoff = constant(10ms), jitter = none)];
    a_rid_retry_trace: [with_request_id, retry(backoff = constant(10ms), jitter = none), trace];
    a_trace_rid_retry: [trace, with_request_id, retry(backoff = constant(10ms), jitter = none)];
    a_trace_retry_rid: [trace, retry(backoff = constant(10ms), jitter = none), with_request_id];
    a_retry_rid_trace: [retry(backoff = constant(10ms), jitter = none), with_request_id, trace];
    a_retry_trace_rid: [retry(backoff = constant(10ms), jitter = none), trace, with_request_id];
}

/// Whether `#[trace]` is written above `#[retry]` in this function's name.
fn trace_above_retry(name: &str) -> bool {
    name.find("trace") < name.find("retry")
}

fn check(spans: &Spans, name: &str) {
    let own: Vec<&FinishedSpan> = spans.all(name).collect();
    let steps: Vec<&FinishedSpan> = spans.all("inner_step").collect();
    assert_eq!(steps.len(), 2, "{name}: the body ran twice");
    let id = own[0]
        .str("honeyhive.request_id")
        .unwrap_or_else(|| panic!("{name}: no request id"));
    assert_eq!(
        own[0].str("honeyhive.request_id.source"),
        Some("generated"),
        "{name}"
    );
    for span in own.iter().chain(&steps) {
        assert_eq!(
            span.str("honeyhive.request_id"),
            Some(id),
            "{name}: {} has another id",
            span.name
        );
    }
    if trace_above_retry(name) {
        assert_eq!(own.len(), 1, "{name}: one span");
        let span = own[0];
        assert_eq!(span.events_named("retry").count(), 1, "{name}");
        assert_eq!(span.i64("retry.attempts"), Some(2), "{name}");
        assert_eq!(span.str("retry.outcome"), Some("success"), "{name}");
        assert!(!span.is_error(), "{name}");
        for step in &steps {
            assert_eq!(step.parent_span_id, span.span_id(), "{name}");
        }
    } else {
        assert_eq!(own.len(), 2, "{name}: a span per attempt");
        let attempts: Vec<_> = own.iter().map(|s| s.i64("retry.attempt")).collect();
        assert_eq!(attempts, [Some(1), Some(2)], "{name}");
        assert!(own[0].is_error() && !own[1].is_error(), "{name}");
        for (attempt, step) in own.iter().zip(&steps) {
            assert_eq!(step.parent_span_id, attempt.span_id(), "{name}");
        }
    }
}

#[test]
fn sync_every_order() {
    type Traced = fn(&AtomicU32) -> Result<u32, String>;
    let cases: [(&str, Traced); 6] = [
        ("rid_trace_retry", rid_trace_retry),
        ("rid_retry_trace", rid_retry_trace),
        ("trace_rid_retry", trace_rid_retry),
        ("trace_retry_rid", trace_retry_rid),
        ("retry_rid_trace", retry_rid_trace),
        ("retry_trace_rid", retry_trace_rid),
    ];
    for (name, f) in cases {
        let rec = Recorder::start();
        let _clock = TestClock::install();
        assert_eq!(f(&AtomicU32::new(0)), Ok(2), "{name}");
        check(&rec.spans(), name);
    }
}

#[test]
fn async_every_order() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    macro_rules! run {
        ($($f:ident),*) => {$({
            let rec = Recorder::start();
            let calls = AtomicU32::new(0);
            assert_eq!(rt.block_on($f(&calls)), Ok(2), stringify!($f));
            check(&rec.spans(), stringify!($f));
        })*};
    }
    run!(
        a_rid_trace_retry,
        a_rid_retry_trace,
        a_trace_rid_retry,
        a_trace_retry_rid,
        a_retry_rid_trace,
        a_retry_trace_rid
    );
}
