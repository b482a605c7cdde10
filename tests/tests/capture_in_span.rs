//! What recording a span runs (an argument's or the output's `Debug`, an evaluator) runs
//! inside that span, whatever the fn's shape: a traced call made there is the span's child
//! and an `enrich_span` there lands on it, as in a sync fn. A detached span (async fns, fns
//! returning futures) used to record outside its scope: such calls became roots of their own
//! traces.

use std::fmt;
use std::future::Future;

use honeyhive_runtime::evaluate::EvalInput;
use honeyhive_runtime::testing::{Recorder, Spans};
use honeyhive_runtime::{enrich_span, trace, with_request_id};

/// A value whose `Debug` makes a traced call and enriches the current span.
struct Probe(&'static str);

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        looked_up(self.0);
        enrich_span().metadata("seen_by_debug", self.0);
        write!(f, "Probe({})", self.0)
    }
}

#[trace]
fn looked_up(shape: &str) -> usize {
    shape.len()
}

#[trace]
fn sync_shape(probe: Probe) -> Probe {
    probe
}

#[trace]
async fn async_shape(probe: Probe) -> Probe {
    probe
}

// An attribute below `#[trace]`: the async fn keeps its `async` (the runtime's `Scoped`).
#[trace]
#[with_request_id]
async fn scoped_shape(probe: Probe) -> Probe {
    probe
}

#[trace]
fn future_shape(probe: Probe) -> impl Future<Output = Probe> {
    async move { probe }
}

// A token stream: its span outlives the call; the argument is recorded at the call.
#[trace]
fn stream_shape(probe: Probe) -> impl Iterator<Item = u32> {
    [1, u32::from(probe.0.is_empty()) + 2].into_iter()
}

#[trace]
fn judge_call(n: u32) -> bool {
    n > 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // evaluators take the output by reference
fn judge(_: &EvalInput, out: &u32) -> bool {
    judge_call(*out)
}

#[trace(evaluate(judge))]
fn judged_sync(n: u32) -> u32 {
    n
}

#[trace(evaluate(judge))]
async fn judged_async(n: u32) -> u32 {
    n
}

/// The `looked_up` calls the `Debug` of `shape`'s argument and output made: both children of
/// `shape`'s span, which carries what the `Debug` enriched.
fn assert_recorded_inside(spans: &Spans, shape: &'static str) {
    let span = spans.get(shape);
    let calls: Vec<_> = spans
        .all("looked_up")
        .filter(|s| s.str("honeyhive_inputs.shape") == Some(shape))
        .collect();
    assert_eq!(
        calls.len(),
        2,
        "{shape}: one call for the argument, one for the output"
    );
    for call in calls {
        let parent = spans.parent_of(call).map(|p| p.name.to_string());
        assert_eq!(parent.as_deref(), Some(shape), "{shape}");
        assert_eq!(call.trace_id(), span.trace_id(), "{shape}");
    }
    assert_eq!(span.str("honeyhive_metadata.seen_by_debug"), Some(shape));
    assert_eq!(
        span.str("honeyhive_inputs.probe"),
        Some(&*format!("Probe({shape})"))
    );
}

#[test]
fn recording_runs_inside_the_span_in_every_fn_shape() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _ = sync_shape(Probe("sync_shape"));
    let _ = rt.block_on(async_shape(Probe("async_shape")));
    let _ = rt.block_on(scoped_shape(Probe("scoped_shape")));
    let _ = rt.block_on(future_shape(Probe("future_shape")));
    let spans = rec.spans();
    for shape in ["sync_shape", "async_shape", "scoped_shape", "future_shape"] {
        assert_recorded_inside(&spans, shape);
    }
}

#[test]
fn a_streams_arguments_are_recorded_inside_its_span() {
    let rec = Recorder::start();
    assert_eq!(stream_shape(Probe("stream_shape")).sum::<u32>(), 3);
    let spans = rec.spans();
    let span = spans.get("stream_shape");
    let call = spans
        .all("looked_up")
        .find(|s| s.str("honeyhive_inputs.shape") == Some("stream_shape"))
        .expect("the argument's Debug made its call");
    let parent = spans.parent_of(call).map(|p| p.name.to_string());
    assert_eq!(parent.as_deref(), Some("stream_shape"));
    assert_eq!(
        span.str("honeyhive_metadata.seen_by_debug"),
        Some("stream_shape")
    );
}

#[test]
fn an_evaluators_traced_calls_are_children_of_the_span_it_scores() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(judged_sync(1), 1);
    assert_eq!(rt.block_on(judged_async(2)), 2);
    let spans = rec.spans();
    for (judged, n) in [("judged_sync", 1), ("judged_async", 2)] {
        let call = spans
            .all("judge_call")
            .find(|s| s.i64("honeyhive_inputs.n") == Some(n))
            .unwrap_or_else(|| panic!("no judge_call for {judged}"));
        let parent = spans.parent_of(call).map(|p| p.name.to_string());
        assert_eq!(parent.as_deref(), Some(judged));
    }
}
