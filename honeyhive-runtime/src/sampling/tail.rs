//! In-process tail sampling: its settings and counters. The policy itself runs on the export
//! thread, where the trace assembler hands it each whole trace (`export::tail`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::{Clock, MonotonicClock};

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
/// The `keep_rate` keep is consistent with head sampling (OpenTelemetry's probability
/// sampling): a trace is kept iff its randomness is at least the rate's threshold, the same
/// randomness head decisions compare (the caller's `ot=rv:` when it sent one, else the low 56
/// bits of the trace id), so decisions follow from trace ids (seed them with
/// [`seed_thread_rng`](super::seed_thread_rng)) and a trace kept at the tail is kept by every
/// higher rate, head or tail. (A trace decided before its local root reached the export
/// thread, by a limit or timeout, is decided by its trace id's bits: the caller's `rv` is
/// recorded on that root.)
/// Spans of that trace that end later follow the same decision, so a trace is never cut into
/// orphans. Flushing or shutting down decides every trace still held. Each case is counted in
/// [`tail_stats`].
///
/// A trace kept at `keep_rate` is kept at the stricter of the two thresholds, the head's and
/// the tail's: its spans carry that threshold in their `trace_state` (`ot=th:`), and a kept
/// root's `honeyhive.sample_rate` is its probability, `min(head rate, keep_rate)`. A trace
/// kept for an error or latency keeps its head values. That is the probability a trace like it
/// had of being exported, so dividing counts by it stays unbiased.
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
    pub(crate) keep_rate: f64,
    pub(crate) keep_errors: bool,
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) max_spans_per_trace: usize,
    pub(crate) max_traces: usize,
    pub(crate) root_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
}

impl TailSampling {
    /// Keeps traces with errors, and `keep_rate` of the others (clamped to `[0, 1]`; not a
    /// number is 1, see [Rates](crate::sampling#rates)). Defaults: no latency rule, 1,000 spans
    /// per trace, 10,000 traces in flight, 30 s root timeout.
    pub fn new(keep_rate: f64) -> TailSampling {
        TailSampling {
            keep_rate: super::clamp_rate(keep_rate),
            keep_errors: true,
            slow_threshold: None,
            max_spans_per_trace: 1_000,
            max_traces: 10_000,
            root_timeout: Duration::from_secs(30),
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

    /// The clock the root timeout is measured with (default the monotonic clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> TailSampling {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn now_ns(&self) -> u64 {
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
pub(crate) struct Counters {
    pub(crate) traces_kept: AtomicU64,
    pub(crate) kept_for_error: AtomicU64,
    pub(crate) kept_for_latency: AtomicU64,
    pub(crate) traces_dropped: AtomicU64,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) over_span_limit: AtomicU64,
    pub(crate) over_trace_limit: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) decided_at_flush: AtomicU64,
    pub(crate) in_flight: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The counters of the installed pipeline's tail sampler, if it has one.
pub(crate) static STATS: RwLock<Option<Arc<Counters>>> = RwLock::new(None);

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
