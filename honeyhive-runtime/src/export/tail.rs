//! In-process tail sampling, on the export thread: the trace assembler hands each whole trace
//! to this policy, which keeps or drops it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::assembler::{Early, Limits};
use crate::rng::Wyrand;
use crate::sampling::tail::{Counters, STATS, TailSampling, bump};

/// A tail decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    pub(crate) keep: bool,
    /// The probability the trace was kept with.
    pub(crate) factor: f64,
}

/// The tail sampling policy of one pipeline, applied by the trace assembler to whole traces
/// (and to traces sent early, on what is known of them).
pub(crate) struct Policy {
    config: TailSampling,
    rng: Wyrand,
    counters: Arc<Counters>,
}

impl Policy {
    /// The policy for a pipeline that starts now (or none), and resets [`tail_stats`].
    pub(crate) fn start(config: Option<TailSampling>) -> Option<Policy> {
        let mut stats = STATS.write().unwrap_or_else(PoisonError::into_inner);
        let Some(config) = config else {
            *stats = None;
            return None;
        };
        let counters = Arc::new(Counters::default());
        *stats = Some(Arc::clone(&counters));
        Some(Policy {
            rng: config.seed.map_or_else(Wyrand::from_os, Wyrand::new),
            config,
            counters,
        })
    }

    /// What the assembler may hold under this policy.
    pub(crate) fn limits(&self, mut limits: Limits) -> Limits {
        limits.max_trace_spans = self.config.max_spans_per_trace;
        limits.max_traces = self.config.max_traces;
        limits.root_timeout = self.config.root_timeout;
        limits
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.config.now_ns()
    }

    /// Keeps or drops a trace of `spans` spans, counting it. `root_ns` is how long its root
    /// lasted, `None` when it is decided before its root ended.
    pub(crate) fn verdict(&mut self, error: bool, root_ns: Option<u64>, spans: usize) -> Verdict {
        let c = &self.counters;
        let slow = match (self.config.slow_threshold, root_ns) {
            (Some(t), Some(ns)) => Duration::from_nanos(ns) >= t,
            _ => false,
        };
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
        if keep {
            bump(&c.traces_kept);
        } else {
            bump(&c.traces_dropped);
            c.spans_dropped.fetch_add(spans as u64, Ordering::Relaxed);
        }
        Verdict { keep, factor }
    }

    pub(crate) fn count_early(&self, why: Early) {
        let c = &self.counters;
        bump(match why {
            Early::SpanLimit => &c.over_span_limit,
            Early::TraceLimit => &c.over_trace_limit,
            Early::Timeout => &c.timed_out,
            Early::Flush => &c.decided_at_flush,
        });
    }

    /// Publishes how many traces are held.
    pub(crate) fn gauge(&self, held_traces: usize) {
        self.counters
            .in_flight
            .store(held_traces as u64, Ordering::Relaxed);
    }

    /// Counts spans that end after their trace was dropped.
    pub(crate) fn count_late_dropped(&self, spans: usize) {
        self.counters
            .spans_dropped
            .fetch_add(spans as u64, Ordering::Relaxed);
    }
}
