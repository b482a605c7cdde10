//! Tail sampling on the export thread: traces with errors or slow roots are kept, the rest at
//! a rate; held traces are bounded (span and trace limits, root timeout, flush), and a trace
//! is never cut into orphans. Asserted on exported spans.

// Counts here are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread::ThreadId;
use std::time::Duration;

use honeyhive_runtime::Builder;
use honeyhive_runtime::sampling::{self, Clock, Sampler, TailSampling, TailStats};
use honeyhive_runtime::testing::{FinishedSpan, Recorder, Spans};
use honeyhive_runtime::trace;
use opentelemetry::TraceId;

#[trace]
fn step(fail: bool) -> Result<u32, String> {
    if fail {
        Err("upstream timed out".to_owned())
    } else {
        Ok(1)
    }
}

/// A trace of `steps + 1` spans; step `fail_at` fails (the root still succeeds).
#[trace(event_type = "chain")]
fn request(steps: usize, fail_at: Option<usize>) -> u32 {
    (0..steps)
        .map(|i| step(Some(i) == fail_at).unwrap_or(0))
        .sum()
}

/// Pending once, then ready.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// A root that ends one step, then waits: polled once, its first step reaches the export
/// thread while the root is still open.
#[trace(event_type = "chain")]
async fn long_request() -> u32 {
    let a = step(false).unwrap_or(0);
    YieldOnce::default().await;
    a + step(false).unwrap_or(0)
}

fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut TaskContext::from_waker(Waker::noop()))
}

fn finish<F: Future>(mut future: Pin<Box<F>>) -> F::Output {
    loop {
        if let Poll::Ready(out) = poll_once(future.as_mut()) {
            return out;
        }
    }
}

/// A tail-sampling clock the test answers: while held, each reading on another thread waits
/// until the test says what time it is. The export thread reads the clock once at the start
/// of each step (a batch, a timer tick, a flush), so when it asks again, the step before is
/// done: the test sees what it did without polling and without sleeping.
#[derive(Clone, Debug, Default)]
struct SteppedClock(Arc<Stepped>);

#[derive(Debug, Default)]
struct Stepped {
    state: Mutex<StepState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct StepState {
    now: Duration,
    /// The thread that holds the clock; its own readings never wait.
    held_by: Option<ThreadId>,
    /// A reading is waiting for an answer.
    asked: bool,
}

impl Clock for SteppedClock {
    fn now(&self) -> Duration {
        let mut state = self.0.state.lock().unwrap();
        if state
            .held_by
            .is_none_or(|t| t == std::thread::current().id())
        {
            return state.now;
        }
        state.asked = true;
        self.0.changed.notify_all();
        while state.asked && state.held_by.is_some() {
            state = self.0.changed.wait(state).unwrap();
        }
        state.now
    }
}

impl SteppedClock {
    /// From now on, other threads' readings wait for [`SteppedClock::answer`].
    fn hold(&self) {
        self.0.state.lock().unwrap().held_by = Some(std::thread::current().id());
    }

    /// Waits for the next reading; the watchdog turns a hang into a failure.
    fn next_reading(&self) {
        let state = self.0.state.lock().unwrap();
        let (state, timeout) = self
            .0
            .changed
            .wait_timeout_while(state, Duration::from_mins(1), |s| !s.asked)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "the export thread never read the clock: {state:?}"
        );
    }

    /// Answers the waiting reading with `now`; `release` lets every later reading through.
    fn answer(&self, now: Duration, release: bool) {
        let mut state = self.0.state.lock().unwrap();
        state.now = now;
        state.asked = false;
        if release {
            state.held_by = None;
        }
        self.0.changed.notify_all();
    }
}

/// Every exported span's parent was exported too, or it is a root.
fn assert_no_orphans(spans: &Spans) {
    let ids: HashSet<_> = spans.iter().map(|s| (s.trace_id(), s.span_id())).collect();
    for span in spans.iter() {
        assert!(
            span.is_root() || ids.contains(&(span.trace_id(), span.parent_span_id)),
            "orphan {}",
            span.name
        );
    }
}

fn traces(spans: &Spans) -> usize {
    spans
        .iter()
        .map(FinishedSpan::trace_id)
        .collect::<HashSet<_>>()
        .len()
}

#[test]
fn traces_with_errors_are_kept_whole_and_the_rest_dropped() {
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(0.0)));
    request(3, Some(1));
    request(3, None);
    let spans = rec.spans();
    assert_eq!(spans.names(), ["step", "step", "step", "request"]);
    assert_eq!(traces(&spans), 1);
    assert_no_orphans(&spans);
    assert_eq!(spans.all("step").filter(|s| s.is_error()).count(), 1);
    // Kept with certainty because of the error: the head rate (1) times 1.
    assert_eq!(spans.get("request").f64("honeyhive.sample_rate"), Some(1.0));
    let stats = sampling::tail_stats();
    assert_eq!(stats.traces_kept, 1);
    assert_eq!(stats.kept_for_error, 1);
    assert_eq!(stats.traces_dropped, 1);
    assert_eq!(stats.spans_dropped, 4);
    assert_eq!(stats.in_flight, 0);
}

#[test]
fn keep_errors_can_be_turned_off() {
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(0.0).keep_errors(false)));
    request(3, Some(1));
    assert!(rec.spans().is_empty());
    assert_eq!(sampling::tail_stats().traces_dropped, 1);
}

#[test]
fn traces_with_slow_roots_are_kept() {
    // Every root lasts at least zero: kept for latency.
    let rec = Recorder::with(|b| {
        b.tail_sampling(TailSampling::new(0.0).keep_slower_than(Duration::ZERO))
    });
    request(2, None);
    let spans = rec.spans();
    assert_eq!(spans.len(), 3);
    assert_eq!(spans.get("request").f64("honeyhive.sample_rate"), Some(1.0));
    let stats = sampling::tail_stats();
    assert_eq!((stats.traces_kept, stats.kept_for_latency), (1, 1));
    drop(rec);
    // No root of this test lasts an hour: dropped.
    let rec = Recorder::with(|b| {
        b.tail_sampling(TailSampling::new(0.0).keep_slower_than(Duration::from_hours(1)))
    });
    request(2, None);
    assert!(rec.spans().is_empty());
    assert_eq!(sampling::tail_stats().traces_dropped, 1);
}

/// The low 56 bits of a trace id: the trace's randomness `R` (OpenTelemetry probability
/// sampling), which head and tail decisions compare with their thresholds.
fn randomness(span: &FinishedSpan) -> u64 {
    u64::from_be_bytes(span.trace_id().to_bytes()[8..].try_into().unwrap()) & ((1 << 56) - 1)
}

/// The trace ids of the `request` roots 2,000 seeded requests leave under `configure`, and
/// the tail sampler's counts.
fn kept_traces(configure: impl FnOnce(Builder) -> Builder) -> (Spans, HashSet<TraceId>, TailStats) {
    // Room for every span even if the export thread falls behind.
    let rec = Recorder::with(|b| configure(b.queue_capacity(1 << 20)));
    sampling::seed_thread_rng(4);
    for _ in 0..2000 {
        request(1, None);
    }
    let spans = rec.spans();
    let ids = spans.all("request").map(FinishedSpan::trace_id).collect();
    (spans, ids, sampling::tail_stats())
}

#[test]
fn the_rest_is_kept_consistently_with_the_heads_randomness() {
    // Head: half the traces (threshold 0x8...); tail: a quarter (0xc...). Both compare the
    // trace's R, so the tail keeps exactly the head-kept traces with R >= 0xc..., a quarter of
    // all, not an independent half of the half (an eighth).
    let (head_only, head_ids, _) = kept_traces(|b| b.sampler(Sampler::Ratio(0.5)));
    let quarter = 0xc0_0000_0000_0000;
    let expected: HashSet<TraceId> = head_only
        .all("request")
        .filter(|root| randomness(root) >= quarter)
        .map(FinishedSpan::trace_id)
        .collect();
    let (spans, kept, tail) = kept_traces(|b| {
        b.sampler(Sampler::Ratio(0.5))
            .tail_sampling(TailSampling::new(0.25))
    });
    assert_eq!(kept, expected);
    assert!(expected.len() < head_ids.len());
    assert_eq!(tail.traces_kept, kept.len() as u64);
    assert_eq!(
        tail.traces_kept + tail.traces_dropped,
        head_ids.len() as u64
    );
    assert_eq!(
        spans.all("step").count(),
        kept.len(),
        "traces are kept whole"
    );
    assert_no_orphans(&spans);
    // The adjusted count is written as head sampling writes it: the stricter threshold.
    for span in spans.iter() {
        assert_eq!(span.span_context.trace_state().header(), "ot=th:c");
    }
    for root in spans.all("request") {
        assert_eq!(root.f64("honeyhive.sample_rate"), Some(0.25));
    }
}

#[test]
fn a_tail_rate_above_the_heads_keeps_every_head_kept_trace() {
    // Every trace R >= 0x8... passes 0x4... too: the head's threshold stands.
    let (_, head_ids, _) = kept_traces(|b| b.sampler(Sampler::Ratio(0.5)));
    let (spans, kept, _) = kept_traces(|b| {
        b.sampler(Sampler::Ratio(0.5))
            .tail_sampling(TailSampling::new(0.75))
    });
    assert_eq!(kept, head_ids);
    for root in spans.all("request") {
        assert_eq!(root.f64("honeyhive.sample_rate"), Some(0.5));
        assert_eq!(root.span_context.trace_state().header(), "ot=th:8");
    }
}

/// A trace a caller kept with probability 1 (`th:0`) and sent its randomness with
/// explicitly (`rv`), unlike its trace id's low 56 bits.
fn from_caller_with_rv(trace_id: &str, rv: &str) -> honeyhive_runtime::propagation::Remote {
    honeyhive_runtime::propagation::extract(&std::collections::HashMap::from([
        (
            "traceparent".to_owned(),
            format!("00-{trace_id}-b7ad6b7169203331-03"),
        ),
        ("tracestate".to_owned(), format!("ot=th:0;rv:{rv}")),
    ]))
}

#[trace(sample_rate = 0.5)]
fn half_step() -> u32 {
    2
}

#[trace(event_type = "chain")]
fn request_with_half_step() -> u32 {
    half_step()
}

#[test]
fn the_tail_rate_compares_the_callers_rv_as_head_decisions_do() {
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(0.5)));
    // rv passes every threshold; the trace id's bits (zero) pass none below 1.
    from_caller_with_rv("4bf92f3577b34da6a300000000000000", "ffffffffffffff")
        .run(|| request(1, None));
    // rv (zero) fails 0.5; the trace id's bits pass it.
    from_caller_with_rv("4bf92f3577b34da6a3ffffffffffffff", "00000000000000")
        .run(|| request(1, None));
    let spans = rec.spans();
    let kept: Vec<String> = spans
        .all("request")
        .map(|r| r.trace_id().to_string())
        .collect();
    assert_eq!(kept, ["4bf92f3577b34da6a300000000000000"]);
    assert_eq!(spans.all("step").count(), 1, "kept whole");
    for span in spans.iter() {
        assert_eq!(span.span_context.trace_state().header(), "ot=th:8");
    }
    assert_eq!(spans.get("request").f64("honeyhive.sample_rate"), Some(0.5));
    let tail = sampling::tail_stats();
    assert_eq!((tail.traces_kept, tail.traces_dropped), (1, 1));

    // A head decision inside the trace compares the same rv: the nested 0.5 keeps the first
    // trace's span and drops the second's, and the tail agrees on both.
    drop(rec);
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(0.5)));
    from_caller_with_rv("4bf92f3577b34da6a300000000000000", "ffffffffffffff")
        .run(request_with_half_step);
    from_caller_with_rv("4bf92f3577b34da6a3ffffffffffffff", "00000000000000")
        .run(request_with_half_step);
    let spans = rec.spans();
    assert_eq!(spans.names(), ["half_step", "request_with_half_step"]);
    for span in spans.iter() {
        assert_eq!(
            span.span_context.trace_state().header(),
            "ot=th:8",
            "{}",
            span.name
        );
    }
}

#[test]
fn a_trace_over_the_span_limit_is_decided_early_and_stays_whole() {
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(1.0).max_spans_per_trace(3)));
    request(10, None);
    let spans = rec.spans();
    assert_eq!(spans.len(), 11, "the spans after the decision follow it");
    assert_no_orphans(&spans);
    assert_eq!(sampling::tail_stats().over_span_limit, 1);
    drop(rec);

    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(0.0).max_spans_per_trace(3)));
    request(10, None);
    assert!(
        rec.spans().is_empty(),
        "the root follows the early drop too"
    );
    let stats = sampling::tail_stats();
    assert_eq!(stats.over_span_limit, 1);
    assert_eq!(stats.spans_dropped, 11);
}

#[test]
fn too_many_traces_in_flight_decides_the_oldest_early() {
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(1.0).max_traces_in_flight(2)));
    let mut open: Vec<_> = (0..4).map(|_| Box::pin(long_request())).collect();
    for future in &mut open {
        // Its first step is handed over; the root stays open.
        assert!(poll_once(future.as_mut()).is_pending());
    }
    for future in open {
        assert_eq!(finish(future), 2);
    }
    let spans = rec.spans();
    assert_eq!(spans.len(), 12);
    assert_eq!(traces(&spans), 4);
    assert_no_orphans(&spans);
    let stats = sampling::tail_stats();
    assert_eq!(stats.over_trace_limit, 2, "{stats:?}");
    assert_eq!(stats.traces_kept, 4);
    assert_eq!(stats.decided_at_flush, 0);
}

#[test]
fn a_trace_whose_root_does_not_end_is_decided_after_the_timeout() {
    let clock = SteppedClock::default();
    let rec = Recorder::with(|b| {
        b.tail_sampling(
            TailSampling::new(1.0)
                .root_timeout(Duration::from_secs(10))
                .clock(clock.clone()),
        )
        // Timer ticks come often, so the export thread asks the time often; what it does
        // with the answer does not depend on when it asks.
        .scheduled_delay(Duration::from_millis(10))
    });
    clock.hold();
    let mut stuck = Box::pin(long_request());
    assert!(poll_once(stuck.as_mut()).is_pending());
    // The export thread stamps a trace with the time it read when it takes its first span.
    // Every reading is answered with 0 until a reading comes after that step (the trace is
    // held); that one, and all later ones, see 11 s.
    loop {
        clock.next_reading();
        if sampling::tail_stats().in_flight == 1 {
            clock.answer(Duration::from_secs(11), true);
            break;
        }
        clock.answer(Duration::ZERO, false);
    }
    // The next trace to arrive lets the export thread see the time.
    request(1, None);
    let spans = rec.spans();
    // The new trace is decided at its root; the held one once the export thread sees the
    // time (on its timer tick or with the new batch, whichever comes first).
    let mut names = spans.names();
    names.sort_unstable();
    assert_eq!(names, ["request", "step", "step"]);
    let stats = sampling::tail_stats();
    assert_eq!(stats.timed_out, 1);
    assert_eq!(stats.decided_at_flush, 0);
    assert_eq!(stats.traces_kept, 2);
    // When the root ends at last, it follows the decision already made.
    assert_eq!(finish(stuck), 2);
    let spans = rec.spans();
    assert_eq!(spans.len(), 5);
    assert_eq!(traces(&spans), 2);
    assert_no_orphans(&spans);
    assert_eq!(sampling::tail_stats().traces_kept, 2);
}

#[test]
fn a_flush_decides_traces_still_held() {
    let rec = Recorder::with(|b| b.tail_sampling(TailSampling::new(1.0)));
    let mut open = Box::pin(long_request());
    assert!(poll_once(open.as_mut()).is_pending());
    assert_eq!(rec.spans().names(), ["step"]);
    let stats: TailStats = sampling::tail_stats();
    assert_eq!((stats.decided_at_flush, stats.traces_kept), (1, 1));
    assert_eq!(stats.in_flight, 0);
    assert_eq!(finish(open), 2);
    let spans = rec.spans();
    assert_eq!(spans.names(), ["step", "step", "long_request"]);
    assert_no_orphans(&spans);
}
