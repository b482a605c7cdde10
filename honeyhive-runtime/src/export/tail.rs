//! In-process tail sampling, on the export thread: the trace assembler hands each whole trace
//! to this policy, which keeps or drops it.
//!
//! The probabilistic keep is consistent with head sampling: a trace is kept iff its randomness
//! `R` (the caller's `ot=rv:`, which its local root records, else the low 56 bits of its trace
//! id) is at least the tail rate's threshold, so a kept span's threshold becomes the stricter of
//! the two and is sent as `ot=th:` like a head decision.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::assembler::{Early, Limits};
use crate::record::SpanRecord;
use crate::sampling::consistent;
use crate::sampling::tail::{Counters, STATS, TailSampling, bump};

/// A tail decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    pub(crate) keep: bool,
    /// The probability the trace was kept with, for spans whose threshold is not known.
    pub(crate) factor: f64,
    /// The rejection threshold the trace passed when kept at the tail rate (not for an error
    /// or a slow root): the stricter of it and a span's own threshold is the span's.
    pub(crate) threshold: Option<u64>,
}

impl Verdict {
    /// Kept as it is: no tail sampling, or kept for an error or latency.
    pub(crate) const KEEP: Verdict = Verdict {
        keep: true,
        factor: 1.0,
        threshold: None,
    };
    /// Dropped.
    pub(crate) const DROP: Verdict = Verdict {
        keep: false,
        factor: 1.0,
        threshold: None,
    };

    /// Writes the tail's threshold into the spans of a kept trace: a span kept at threshold
    /// `T` by its head decision is now kept at `max(T, tail)`, with the probability of that
    /// (both compare the same `R`, so the probabilities do not multiply).
    pub(crate) fn apply(&self, spans: &mut [Box<SpanRecord>]) {
        let Some(tail) = self.threshold else {
            return;
        };
        for record in spans {
            if let Some(head) = record.threshold {
                let t = head.max(tail);
                record.threshold = Some(t);
                if record.root_sample_rate.is_some() {
                    record.root_sample_rate = Some(consistent::probability(t));
                }
            }
        }
    }
}

/// The tail sampling policy of one pipeline, applied by the trace assembler to whole traces
/// (and to traces sent early, on what is known of them).
pub(crate) struct Policy {
    config: TailSampling,
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
        Some(Policy { config, counters })
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

    /// Keeps or drops trace `trace_id`, of which `spans` are held, counting it. `root_ns` is how
    /// long its root lasted, `None` when it is decided before its root ended.
    pub(crate) fn verdict(
        &self,
        trace_id: u128,
        error: bool,
        root_ns: Option<u64>,
        spans: &[Box<SpanRecord>],
    ) -> Verdict {
        let c = &self.counters;
        let slow = match (self.config.slow_threshold, root_ns) {
            (Some(t), Some(ns)) => Duration::from_nanos(ns) >= t,
            _ => false,
        };
        let verdict = if error && self.config.keep_errors {
            bump(&c.kept_for_error);
            Verdict::KEEP
        } else if slow {
            bump(&c.kept_for_latency);
            Verdict::KEEP
        } else {
            // The same test as a head decision (`R >= T`), on the same `R`: the caller's explicit
            // `ot=rv:`, recorded on the local root that joined its trace. Decided before that
            // root arrived, the trace id's bits stand for it.
            let t = consistent::threshold(self.config.keep_rate);
            let r = spans.iter().find_map(|s| s.randomness).map_or_else(
                || consistent::trace_id_randomness(trace_id),
                |r| r.get() - 1,
            );
            Verdict {
                keep: consistent::passes(t, r),
                factor: consistent::probability(t),
                threshold: Some(t),
            }
        };
        if verdict.keep {
            bump(&c.traces_kept);
        } else {
            bump(&c.traces_dropped);
            c.spans_dropped
                .fetch_add(spans.len() as u64, Ordering::Relaxed);
        }
        verdict
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
