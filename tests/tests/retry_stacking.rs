//! `#[retry]` stacked with `#[trace]` in both orders, with sampling, and with attributes of
//! other crates, asserted on real finished spans.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use honeyhive_runtime::retry::{self as retries, TestClock};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{retry, trace};

/// Fails until the `succeed_on`th call.
fn attempt(calls: &AtomicU32, succeed_on: u32) -> Result<u32, String> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n < succeed_on {
        Err(format!("attempt {n} failed"))
    } else {
        Ok(n)
    }
}

#[trace(event_type = "model")]
#[retry(backoff = constant(10ms), jitter = none)]
fn trace_then_retry(calls: &AtomicU32) -> Result<u32, String> {
    attempt(calls, 3)
}

#[retry(backoff = constant(10ms), jitter = none)]
#[trace(event_type = "model")]
fn retry_then_trace(calls: &AtomicU32) -> Result<u32, String> {
    assert_eq!(
        retries::current_attempt(),
        Some(calls.load(Ordering::SeqCst) + 1)
    );
    attempt(calls, 3)
}

#[trace(event_type = "chain")]
fn parent(first_order: bool) -> Result<u32, String> {
    let calls = AtomicU32::new(0);
    if first_order {
        trace_then_retry(&calls)
    } else {
        retry_then_trace(&calls)
    }
}

#[test]
fn trace_outside_retry_is_one_span_with_an_event_per_failed_attempt() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    assert_eq!(parent(true), Ok(3));
    let spans = rec.spans();
    assert_eq!(spans.names(), ["trace_then_retry", "parent"]);
    let span = spans.get("trace_then_retry");
    assert_eq!(span.events_named("retry").count(), 2);
    assert_eq!(span.i64("retry.attempts"), Some(3));
    assert_eq!(span.str("retry.outcome"), Some("success"));
    assert_eq!(span.i64("retry.attempt"), None);
    assert!(!span.is_error());
    assert_eq!(spans.get("parent").str("retry.outcome"), None);
}

#[test]
fn retry_outside_trace_is_one_span_per_attempt_each_with_its_own_record() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    assert_eq!(parent(false), Ok(3));
    let spans = rec.spans();
    let root = spans.get("parent");
    let attempts = spans.children_of(root);
    assert_eq!(attempts.len(), 3);
    for (i, span) in attempts.iter().enumerate() {
        assert_eq!(span.name, "retry_then_trace");
        assert_eq!(
            span.i64("retry.attempt"),
            Some(i64::try_from(i).unwrap() + 1)
        );
        // A failed attempt is a failed span with its `retry` event.
        let failed = i < 2;
        assert_eq!(span.is_error(), failed);
        assert_eq!(span.events_named("retry").count(), usize::from(failed));
    }
    // The last attempt's span has the call's outcome; the caller's span has nothing of it.
    let last = attempts[2];
    assert_eq!(last.i64("honeyhive_outputs.result"), Some(3));
    assert_eq!(last.str("retry.outcome"), Some("success"));
    assert_eq!(last.i64("retry.attempts"), Some(3));
    assert_eq!(last.i64("retry.total_delay_ms"), Some(20));
    assert_eq!(attempts[0].str("retry.outcome"), None);
    assert_eq!(root.events_named("retry").count(), 0);
    assert_eq!(root.str("retry.outcome"), None);
}

#[trace]
#[retry(backoff = constant(1s), jitter = none)]
async fn trace_then_retry_async(calls: &AtomicU32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    attempt(calls, 2)
}

#[retry(backoff = constant(1s), jitter = none, clone(prompt))]
#[trace(event_type = "model")]
async fn retry_then_trace_async(
    prompt: String,
    history: &mut Vec<String>,
) -> Result<usize, String> {
    history.push(prompt);
    tokio::task::yield_now().await;
    if history.len() < 3 {
        return Err(format!("{} turns", history.len()));
    }
    Ok(history.len())
}

#[trace(event_type = "chain")]
async fn conversation() -> Result<usize, String> {
    let calls = AtomicU32::new(0);
    trace_then_retry_async(&calls).await?;
    let mut history = Vec::new();
    retry_then_trace_async("hi".to_owned(), &mut history).await
}

#[tokio::test(start_paused = true)]
async fn both_orders_work_on_async_functions() {
    let rec = Recorder::start();
    assert_eq!(conversation().await, Ok(3));
    let spans = rec.spans();
    let once = spans.get("trace_then_retry_async");
    assert_eq!(once.events_named("retry").count(), 1);
    assert_eq!(once.str("retry.outcome"), Some("success"));

    let attempts: Vec<_> = spans.all("retry_then_trace_async").collect();
    assert_eq!(attempts.len(), 3);
    // Each attempt's span records the arguments as that attempt saw them.
    let history: Vec<_> = attempts
        .iter()
        .map(|s| s.str("honeyhive_inputs.history").unwrap())
        .collect();
    assert_eq!(history, ["[]", "[\"hi\"]", "[\"hi\", \"hi\"]"]);
    let numbers: Vec<_> = attempts
        .iter()
        .map(|s| s.i64("retry.attempt").unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    let last_event = attempts[1].events_named("retry").last().unwrap();
    assert_eq!(
        FinishedSpan::event_attr(last_event, "exception.message").map(ToString::to_string),
        Some("2 turns".to_owned())
    );
    assert_eq!(attempts[2].str("retry.outcome"), Some("success"));
    let root = spans.get("conversation");
    for span in spans.iter().filter(|s| s.name != "conversation") {
        assert_eq!(span.parent_span_id, root.span_id());
    }
}

#[retry(max_attempts = 3, backoff = constant(0ms))]
#[trace(sample_rate = 0.5)]
fn sampled_call(call: u64, calls: &AtomicU32) -> Result<(), String> {
    let _ = call;
    attempt(calls, 3).map(drop)
}

/// Attempt spans recorded per call, by the `call` input each recorded.
fn recorded_attempts_per_call(spans: &[FinishedSpan]) -> BTreeMap<i64, usize> {
    let mut per_call = BTreeMap::new();
    for span in spans.iter().filter(|s| s.name == "sampled_call") {
        *per_call
            .entry(span.i64("honeyhive_inputs.call").unwrap())
            .or_default() += 1;
    }
    per_call
}

#[test]
fn a_sample_rate_decision_is_made_once_per_call_not_per_attempt() {
    let rec = Recorder::start();
    let calls = 200u64;
    for call in 0..calls {
        assert!(sampled_call(call, &AtomicU32::new(0)).is_ok());
    }
    let spans = rec.spans();
    let per_call = recorded_attempts_per_call(&spans);
    // Every recorded call has all three attempts; the others have none.
    assert!(per_call.values().all(|n| *n == 3), "{per_call:?}");
    let recorded = u64::try_from(per_call.len()).unwrap();
    assert!(
        recorded > 0 && recorded < calls,
        "{recorded} of {calls} calls recorded at rate 0.5"
    );
}

#[trace]
fn sampled_parent(call: u64) -> Result<(), String> {
    sampled_call(call, &AtomicU32::new(0))
}

#[test]
fn under_a_parent_the_decision_is_also_made_once_per_call() {
    let rec = Recorder::start();
    for call in 0..200 {
        assert!(sampled_parent(call).is_ok());
    }
    let spans = rec.spans();
    let per_call = recorded_attempts_per_call(&spans);
    assert!(per_call.values().all(|n| *n == 3), "{per_call:?}");
    assert!(!per_call.is_empty() && per_call.len() < 200);
    assert_eq!(spans.all("sampled_parent").count(), 200);
}

/// Counts the `tracing` spans opened while it is the default subscriber.
struct CountingSubscriber(Arc<AtomicU64>);

impl tracing::Subscriber for CountingSubscriber {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[retry(backoff = constant(0ms))]
#[tracing::instrument(skip(calls))]
#[allow(clippy::unnecessary_wraps)] // kept on the function: this one always fails at first
fn instrumented_outside(calls: &AtomicU32) -> Result<u32, String> {
    attempt(calls, 3)
}

#[tracing::instrument(skip(calls))]
#[retry(backoff = constant(0ms))]
fn instrumented_inside(calls: &AtomicU32) -> Result<u32, String> {
    attempt(calls, 3)
}

#[test]
fn attributes_of_other_crates_are_kept_and_expand_in_rust_order() {
    let opened = Arc::new(AtomicU64::new(0));
    let subscriber = CountingSubscriber(Arc::clone(&opened));
    tracing::subscriber::with_default(subscriber, || {
        let _clock = TestClock::install();
        assert_eq!(instrumented_outside(&AtomicU32::new(0)), Ok(3));
        // `#[retry]` expanded first: `instrument` wraps the whole loop.
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        assert_eq!(instrumented_inside(&AtomicU32::new(0)), Ok(3));
        // `instrument` expanded first: its span is inside each attempt.
        assert_eq!(opened.load(Ordering::SeqCst), 4);
    });
}

/// An owned argument the body only borrows, without `clone(..)`: every attempt shares it.
#[retry(backoff = constant(0ms), jitter = none)]
#[trace(event_type = "model")]
fn shared_per_attempt_span(prompt: String, calls: &AtomicU32) -> Result<usize, String> {
    attempt(calls, 3)?;
    Ok(prompt.len())
}

#[trace(event_type = "model")]
#[retry(backoff = constant(0ms), jitter = none)]
fn shared_one_span(prompt: String, calls: &AtomicU32) -> Result<usize, String> {
    attempt(calls, 2)?;
    Ok(prompt.len())
}

#[test]
fn an_owned_argument_the_body_borrows_is_shared_by_the_attempts_and_recorded_on_each() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    let prompt = "why is the sky blue".to_owned();
    assert_eq!(
        shared_per_attempt_span(prompt.clone(), &AtomicU32::new(0)),
        Ok(prompt.len())
    );
    assert_eq!(
        shared_one_span(prompt.clone(), &AtomicU32::new(0)),
        Ok(prompt.len())
    );
    let spans = rec.spans();
    let attempts: Vec<&FinishedSpan> = spans
        .iter()
        .filter(|s| s.name == "shared_per_attempt_span")
        .collect();
    assert_eq!(attempts.len(), 3);
    for span in attempts {
        assert_eq!(span.str("honeyhive_inputs.prompt"), Some(prompt.as_str()));
    }
    let one = spans.get("shared_one_span");
    assert_eq!(one.str("honeyhive_inputs.prompt"), Some(prompt.as_str()));
    assert_eq!(one.i64("retry.attempts"), Some(2));
}
