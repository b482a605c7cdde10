//! In-process tail sampling, on the export thread: a trace's spans wait until its root ends,
//! then the whole trace is kept or dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::trace::Status;

use crate::sampling::{Clock, MonotonicClock, Wyrand};
use crate::span::SpanRecord;

/// Tail sampling: keep every trace with an error or a slow root, and a fraction of the rest.
///
/// Given to [`Builder::tail_sampling`](crate::Builder::tail_sampling). It runs on the export
/// thread, after head sampling: only traces recorded by the head decision reach it (with tail
/// sampling you usually keep the head sampler at its default, every trace).
///
/// The spans of a trace are held until its root ends (a root here is the first span of the
/// trace in this process). Then the trace is kept if a span has status ERROR
/// ([`keep_errors`](TailSampling::keep_errors), on by default) or the root lasted at least
/// [`keep_slower_than`](TailSampling::keep_slower_than), and otherwise kept with probability
/// `keep_rate`.
///
/// Memory is bounded. A trace that reaches [`max_spans_per_trace`] or would exceed
/// [`max_traces_in_flight`] (the oldest trace gives way), or whose root has not ended after
/// [`root_timeout`], is decided early, on what is known: an error keeps it, else `keep_rate`.
/// Spans of that trace that end later follow the same decision, so a trace is never cut into
/// orphans. Flushing or shutting down decides every trace still held. Each case is counted in
/// [`tail_stats`].
///
/// A kept root's `honeyhive.sample_rate` is multiplied by the probability the tail sampler kept
/// it with: 1 for a trace kept for an error or latency, `keep_rate` otherwise. That is the
/// probability a trace like it had of being exported, so dividing counts by it stays unbiased.
///
/// [`max_spans_per_trace`]: TailSampling::max_spans_per_trace
/// [`max_traces_in_flight`]: TailSampling::max_traces_in_flight
/// [`root_timeout`]: TailSampling::root_timeout
///
/// ```
/// use std::time::Duration;
/// use honeyhive_runtime::sampling::TailSampling;
///
/// let _guard = honeyhive_runtime::Builder::new()
///     .tail_sampling(TailSampling::new(0.02).keep_slower_than(Duration::from_secs(2)))
///     .install();
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TailSampling {
    keep_rate: f64,
    keep_errors: bool,
    slow_threshold: Option<Duration>,
    max_spans_per_trace: usize,
    max_traces: usize,
    root_timeout: Duration,
    seed: Option<u64>,
    clock: Arc<dyn Clock>,
}

impl TailSampling {
    /// Keeps traces with errors, and `keep_rate` of the others. Defaults: no latency rule,
    /// 1,000 spans per trace, 10,000 traces in flight, 30 s root timeout.
    pub fn new(keep_rate: f64) -> TailSampling {
        TailSampling {
            keep_rate: if keep_rate.is_nan() {
                0.0
            } else {
                keep_rate.clamp(0.0, 1.0)
            },
            keep_errors: true,
            slow_threshold: None,
            max_spans_per_trace: 1_000,
            max_traces: 10_000,
            root_timeout: Duration::from_secs(30),
            seed: None,
            clock: Arc::new(MonotonicClock),
        }
    }

    /// Whether a trace with an ERROR span is always kept (default true).
    pub fn keep_errors(mut self, keep: bool) -> TailSampling {
        self.keep_errors = keep;
        self
    }

    /// Always keeps a trace whose root lasted at least `threshold`.
    pub fn keep_slower_than(mut self, threshold: Duration) -> TailSampling {
        self.slow_threshold = Some(threshold);
        self
    }

    /// The most spans held for one trace (at least 1).
    pub fn max_spans_per_trace(mut self, spans: usize) -> TailSampling {
        self.max_spans_per_trace = spans.max(1);
        self
    }

    /// The most traces held at once (at least 1).
    pub fn max_traces_in_flight(mut self, traces: usize) -> TailSampling {
        self.max_traces = traces.max(1);
        self
    }

    /// How long a trace is held waiting for its root; also how long a decision is remembered
    /// for spans that end after their root.
    pub fn root_timeout(mut self, timeout: Duration) -> TailSampling {
        self.root_timeout = timeout;
        self
    }

    /// Seeds the generator of the `keep_rate` draws, so decisions repeat (in tests).
    pub fn seed(mut self, seed: u64) -> TailSampling {
        self.seed = Some(seed);
        self
    }

    /// The clock the root timeout is measured with (default the monotonic clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> TailSampling {
        self.clock = Arc::new(clock);
        self
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the tail sampler did since tracing was installed; see [`tail_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailStats {
    /// Traces exported.
    pub traces_kept: u64,
    /// Of those, kept because a span had an error.
    pub kept_for_error: u64,
    /// Of those, kept because the root was slow.
    pub kept_for_latency: u64,
    /// Traces dropped.
    pub traces_dropped: u64,
    /// Spans dropped with their traces.
    pub spans_dropped: u64,
    /// Traces decided before their root ended because they reached the span limit.
    pub over_span_limit: u64,
    /// Traces decided before their root ended because too many traces were held.
    pub over_trace_limit: u64,
    /// Traces decided because their root did not end within the timeout.
    pub timed_out: u64,
    /// Traces decided at a flush or shutdown, before their root ended.
    pub decided_at_flush: u64,
    /// Traces held now.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
struct Counters {
    traces_kept: AtomicU64,
    kept_for_error: AtomicU64,
    kept_for_latency: AtomicU64,
    traces_dropped: AtomicU64,
    spans_dropped: AtomicU64,
    over_span_limit: AtomicU64,
    over_trace_limit: AtomicU64,
    timed_out: AtomicU64,
    decided_at_flush: AtomicU64,
    in_flight: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The counters of the installed pipeline's tail sampler, if it has one.
static STATS: RwLock<Option<Arc<Counters>>> = RwLock::new(None);

/// What the tail sampler of the installed pipeline did: traces kept and why, dropped, and
/// decided early because of a limit, a timeout or a flush. All zero without tail sampling.
pub fn tail_stats() -> TailStats {
    let stats = STATS.read().unwrap_or_else(PoisonError::into_inner);
    let Some(c) = stats.as_deref() else {
        return TailStats::default();
    };
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    TailStats {
        traces_kept: get(&c.traces_kept),
        kept_for_error: get(&c.kept_for_error),
        kept_for_latency: get(&c.kept_for_latency),
        traces_dropped: get(&c.traces_dropped),
        spans_dropped: get(&c.spans_dropped),
        over_span_limit: get(&c.over_span_limit),
        over_trace_limit: get(&c.over_trace_limit),
        timed_out: get(&c.timed_out),
        decided_at_flush: get(&c.decided_at_flush),
        in_flight: get(&c.in_flight),
    }
}

/// Whether a span is the first of its trace in this process: a root here, or the child of a
/// span from another process (an extracted `traceparent`).
fn is_local_root(record: &SpanRecord) -> bool {
    record.local_root || record.parent_remote
}

/// Why a trace was decided before its root ended.
#[derive(Clone, Copy, Debug)]
enum Early {
    SpanLimit,
    TraceLimit,
    Timeout,
    Flush,
}

/// A trace waiting for its root.
struct Held {
    spans: Vec<SpanRecord>,
    error: bool,
    since: u64,
    seq: u64,
}

/// A decision, remembered for spans that end after it.
#[derive(Clone, Copy, Debug)]
struct Verdict {
    keep: bool,
    /// The probability the trace was kept with.
    factor: f64,
    since: u64,
    seq: u64,
}

/// The tail sampler of one pipeline; lives on the export thread.
pub(crate) struct TailSampler {
    config: TailSampling,
    held: HashMap<u128, Held>,
    /// Held traces, oldest first, as `(trace id, seq)`; entries of traces decided meanwhile
    /// are skipped (and compacted away).
    held_order: VecDeque<(u128, u64)>,
    decided: HashMap<u128, Verdict>,
    decided_order: VecDeque<(u128, u64)>,
    seq: u64,
    rng: Wyrand,
    counters: Arc<Counters>,
}

impl TailSampler {
    /// The sampler for a pipeline that starts now (or none), and resets [`tail_stats`].
    pub(crate) fn start(config: Option<TailSampling>) -> Option<TailSampler> {
        let mut stats = STATS.write().unwrap_or_else(PoisonError::into_inner);
        let Some(config) = config else {
            *stats = None;
            return None;
        };
        let counters = Arc::new(Counters::default());
        *stats = Some(Arc::clone(&counters));
        Some(TailSampler {
            rng: config.seed.map_or_else(Wyrand::from_os, Wyrand::new),
            config,
            held: HashMap::new(),
            held_order: VecDeque::new(),
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            seq: 0,
            counters,
        })
    }

    /// Takes ended spans; returns the spans of traces decided and kept meanwhile.
    pub(crate) fn filter(&mut self, batch: Vec<SpanRecord>) -> Vec<SpanRecord> {
        let now = self.config.now_ns();
        let mut out = Vec::new();
        for record in batch {
            self.accept(record, now, &mut out);
        }
        self.expire(now, &mut out);
        self.compact();
        self.gauge();
        out
    }

    /// Decides traces whose root has not ended within the timeout.
    pub(crate) fn expire_now(&mut self) -> Vec<SpanRecord> {
        let mut out = Vec::new();
        self.expire(self.config.now_ns(), &mut out);
        self.gauge();
        out
    }

    /// Decides every trace still held (at flush and shutdown).
    pub(crate) fn decide_all(&mut self) -> Vec<SpanRecord> {
        let now = self.config.now_ns();
        let mut out = Vec::new();
        while let Some((id, seq)) = self.held_order.pop_front() {
            if self.held.get(&id).is_some_and(|h| h.seq == seq) {
                self.decide_early(id, Early::Flush, now, &mut out);
            }
        }
        self.gauge();
        out
    }

    fn accept(&mut self, record: SpanRecord, now: u64, out: &mut Vec<SpanRecord>) {
        let id = record.trace_id;
        if let Some(verdict) = self.decided.get(&id).copied() {
            self.release(record, verdict, out);
            return;
        }
        let error = matches!(record.status, Status::Error { .. });
        if is_local_root(&record) {
            let (mut spans, held_error) = match self.held.remove(&id) {
                Some(held) => (held.spans, held.error),
                None => (Vec::new(), false),
            };
            let duration = Duration::from_nanos(record.end.saturating_sub(record.start));
            let slow = self.config.slow_threshold.is_some_and(|t| duration >= t);
            spans.push(record);
            let verdict = self.verdict(error || held_error, slow, now);
            self.release_all(spans, verdict, out);
            return;
        }
        let full = if let Some(held) = self.held.get_mut(&id) {
            held.error |= error;
            held.spans.push(record);
            held.spans.len() >= self.config.max_spans_per_trace
        } else {
            if self.held.len() >= self.config.max_traces {
                self.evict_oldest(now, out);
            }
            self.seq += 1;
            self.held_order.push_back((id, self.seq));
            self.held.insert(
                id,
                Held {
                    spans: vec![record],
                    error,
                    since: now,
                    seq: self.seq,
                },
            );
            self.config.max_spans_per_trace <= 1
        };
        if full {
            self.decide_early(id, Early::SpanLimit, now, out);
        }
    }

    /// Keeps or drops a whole trace, counts it, and remembers the decision.
    fn verdict(&mut self, error: bool, slow: bool, now: u64) -> Verdict {
        let c = Arc::clone(&self.counters);
        let (keep, factor) = if error && self.config.keep_errors {
            bump(&c.kept_for_error);
            (true, 1.0)
        } else if slow {
            bump(&c.kept_for_latency);
            (true, 1.0)
        } else {
            let rate = self.config.keep_rate;
            (self.rng.roll(rate), rate)
        };
        bump(if keep {
            &c.traces_kept
        } else {
            &c.traces_dropped
        });
        self.seq += 1;
        Verdict {
            keep,
            factor,
            since: now,
            seq: self.seq,
        }
    }

    fn remember(&mut self, id: u128, verdict: Verdict) {
        if self.decided.len() >= self.config.max_traces {
            // Forget the oldest decision: a span of that trace ending this late is then held
            // and decided on its own.
            while let Some((old, seq)) = self.decided_order.pop_front() {
                if self.decided.get(&old).is_some_and(|v| v.seq == seq) {
                    self.decided.remove(&old);
                    break;
                }
            }
        }
        self.decided.insert(id, verdict);
        self.decided_order.push_back((id, verdict.seq));
    }

    fn release_all(&mut self, spans: Vec<SpanRecord>, verdict: Verdict, out: &mut Vec<SpanRecord>) {
        let id = spans.first().map(|s| s.trace_id);
        for span in spans {
            self.release(span, verdict, out);
        }
        if let Some(id) = id {
            self.remember(id, verdict);
        }
    }

    fn release(&self, mut record: SpanRecord, verdict: Verdict, out: &mut Vec<SpanRecord>) {
        if !verdict.keep {
            bump(&self.counters.spans_dropped);
            return;
        }
        if is_local_root(&record) {
            record.root_sample_rate = record.root_sample_rate.map(|r| r * verdict.factor);
        }
        out.push(record);
    }

    fn decide_early(&mut self, id: u128, why: Early, now: u64, out: &mut Vec<SpanRecord>) {
        let Some(held) = self.held.remove(&id) else {
            return;
        };
        bump(match why {
            Early::SpanLimit => &self.counters.over_span_limit,
            Early::TraceLimit => &self.counters.over_trace_limit,
            Early::Timeout => &self.counters.timed_out,
            Early::Flush => &self.counters.decided_at_flush,
        });
        let verdict = self.verdict(held.error, false, now);
        self.release_all(held.spans, verdict, out);
    }

    fn evict_oldest(&mut self, now: u64, out: &mut Vec<SpanRecord>) {
        while let Some((id, seq)) = self.held_order.pop_front() {
            if self.held.get(&id).is_some_and(|h| h.seq == seq) {
                self.decide_early(id, Early::TraceLimit, now, out);
                return;
            }
        }
    }

    fn expire(&mut self, now: u64, out: &mut Vec<SpanRecord>) {
        let timeout = u64::try_from(self.config.root_timeout.as_nanos()).unwrap_or(u64::MAX);
        let old = |since: u64| now.saturating_sub(since) >= timeout;
        while let Some(&(id, seq)) = self.held_order.front() {
            match self.held.get(&id) {
                Some(held) if held.seq == seq => {
                    if !old(held.since) {
                        break;
                    }
                    self.held_order.pop_front();
                    self.decide_early(id, Early::Timeout, now, out);
                }
                _ => {
                    self.held_order.pop_front();
                }
            }
        }
        while let Some(&(id, seq)) = self.decided_order.front() {
            match self.decided.get(&id) {
                Some(v) if v.seq == seq => {
                    if !old(v.since) {
                        break;
                    }
                    self.decided.remove(&id);
                    self.decided_order.pop_front();
                }
                _ => {
                    self.decided_order.pop_front();
                }
            }
        }
    }

    /// Drops order entries of traces decided meanwhile, once they outnumber live ones, so the
    /// queues stay proportional to what is held.
    fn compact(&mut self) {
        if self.held_order.len() > 2 * self.held.len() + 64 {
            let held = &self.held;
            self.held_order
                .retain(|(id, seq)| held.get(id).is_some_and(|h| h.seq == *seq));
        }
        if self.decided_order.len() > 2 * self.decided.len() + 64 {
            let decided = &self.decided;
            self.decided_order
                .retain(|(id, seq)| decided.get(id).is_some_and(|v| v.seq == *seq));
        }
    }

    fn gauge(&self) {
        self.counters
            .in_flight
            .store(self.held.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::RootState;
    use crate::span::{EventType, Meta};

    static META: Meta = Meta {
        name: "op",
        event_type: EventType::Tool,
        sample_rate: None,
        attr_capacity: 0,
        root: RootState::new(),
    };

    const MS: u64 = 1_000_000;

    fn span(trace_id: u128, span_id: u64, root: bool, start: u64, end: u64) -> SpanRecord {
        SpanRecord {
            trace_id,
            span_id,
            parent_id: u64::from(!root),
            parent_remote: false,
            meta: &META,
            start,
            end,
            attrs: Vec::new(),
            events: Vec::new(),
            status: Status::Unset,
            root_sample_rate: root.then_some(0.5),
            local_root: root,
        }
    }

    fn sampler(config: TailSampling) -> TailSampler {
        TailSampler::start(Some(config.seed(1))).unwrap()
    }

    #[test]
    fn a_root_at_the_latency_threshold_is_kept_and_one_below_it_is_not() {
        let mut tail = sampler(TailSampling::new(0.0).keep_slower_than(Duration::from_millis(5)));
        let kept = tail.filter(vec![
            span(1, 10, false, 0, MS),
            span(1, 11, true, 0, 5 * MS),
        ]);
        assert_eq!(kept.len(), 2);
        // Kept for latency: certain, so the head rate is unchanged.
        assert_eq!(kept[1].root_sample_rate, Some(0.5));
        let kept = tail.filter(vec![span(2, 20, true, 0, 5 * MS - 1)]);
        assert!(kept.is_empty());
    }

    #[test]
    fn a_trace_kept_at_the_rate_carries_the_product_of_both_rates() {
        let mut tail = sampler(TailSampling::new(1.0));
        let kept = tail.filter(vec![span(1, 10, true, 0, MS)]);
        assert_eq!(kept[0].root_sample_rate, Some(0.5));
        let mut tail = sampler(TailSampling::new(0.999_999));
        let kept = tail.filter(vec![span(1, 10, true, 0, MS)]);
        assert_eq!(kept[0].root_sample_rate, Some(0.5 * 0.999_999));
    }

    #[test]
    fn spans_ending_after_their_root_follow_its_decision() {
        let mut tail = sampler(TailSampling::new(0.0));
        let mut error = span(1, 12, false, 0, MS);
        error.status = Status::error("late failure");
        assert!(tail.filter(vec![span(1, 11, true, 0, MS)]).is_empty());
        // The trace was dropped at its root; a late error does not resurrect half of it.
        assert!(tail.filter(vec![error]).is_empty());
        assert_eq!(tail.held.len(), 0);
    }

    #[test]
    fn order_queues_stay_proportional_to_what_is_held() {
        let mut tail = sampler(TailSampling::new(1.0).max_traces_in_flight(100_000));
        for id in 0..10_000u128 {
            // Each trace: a child (held), then its root (decides and releases it).
            tail.filter(vec![span(id, 1, false, 0, 1)]);
            tail.filter(vec![span(id, 2, true, 0, 1)]);
        }
        assert!(tail.held.is_empty());
        assert!(tail.held_order.len() <= 64, "{}", tail.held_order.len());
    }
}
