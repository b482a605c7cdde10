//! Export that survives a backend that is down, hung or slow.
//!
//! The application never waits for a backend: spans go through a bounded queue to the export
//! thread (see the parent module), and a full queue drops and counts them. What is left is to
//! keep a failing backend from wasting the export thread's time and the machine's CPU, which is
//! this module's circuit breaker: after a few exports in a row fail, the exporter is not called
//! for a cool-down, spans meant for it are dropped (and counted) without even being converted,
//! then one batch probes the backend.
//!
//! Retries are left to the exporter, which sees status codes and `Retry-After`.
//! opentelemetry-otlp retries what the OTLP specification calls retryable (HTTP 429, 502, 503,
//! 504 and network errors; the matching gRPC codes) with exponential backoff and jitter (100 ms
//! doubling up to 1.6 s, three retries, a server's `Retry-After` honoured), all within the
//! export timeout. It does not retry other errors, such as HTTP 500: the specification says
//! they must not be. The breaker keeps a backend that keeps failing from costing anything.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SpanData;

use super::DynSpanExporter;

/// When to stop calling an exporter that keeps failing, and when to try it again.
///
/// After `failure_threshold` exports in a row fail, the exporter is left alone for the
/// cool-down and the spans meant for it are dropped and counted
/// ([`ExportStats::circuit_open`](super::ExportStats::circuit_open)). The first batch after
/// the cool-down is a probe: if it goes through, export resumes; if not, the cool-down doubles
/// (up to the maximum) and the wait starts again.
///
/// The default opens after 3 failed exports for 5 s, growing to at most 60 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    max_cool_down: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(3, Duration::from_secs(5)).max_cool_down(Duration::from_mins(1))
    }
}

impl CircuitBreaker {
    /// Opens after `failure_threshold` failed exports in a row, for `cool_down` each time.
    /// A threshold of 0 never opens.
    pub const fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            failure_threshold,
            cool_down,
            max_cool_down: cool_down,
        }
    }

    /// A breaker that never opens: every batch is offered to the exporter.
    pub const fn disabled() -> Self {
        CircuitBreaker::new(0, Duration::ZERO)
    }

    /// Doubles the cool-down after each failed probe, up to `max` (at least the cool-down).
    #[must_use]
    pub const fn max_cool_down(mut self, max: Duration) -> Self {
        self.max_cool_down = max;
        self
    }

    /// Failed exports in a row that open the breaker (0: never).
    pub const fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The first cool-down.
    pub const fn cool_down(&self) -> Duration {
        self.cool_down
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    /// Rejecting until the instant; then the next batch probes.
    Open(Instant),
    /// One probe batch is being exported.
    HalfOpen,
}

/// What a result did to the breaker, for the one log line per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Opened(Duration),
    Closed,
}

/// The breaker's state machine. Time is passed in, so tests drive it without sleeping.
#[derive(Debug)]
pub(crate) struct Breaker {
    policy: CircuitBreaker,
    state: State,
    failures: u32,
    cool_down: Duration,
}

impl Breaker {
    pub(crate) fn new(policy: CircuitBreaker) -> Breaker {
        Breaker {
            policy,
            state: State::Closed,
            failures: 0,
            cool_down: policy.cool_down,
        }
    }

    /// Whether batches are being refused at `now` (open, cool-down not over).
    pub(crate) fn is_open(&self, now: Instant) -> bool {
        matches!(self.state, State::Open(until) if now < until)
    }

    /// Whether a batch may be exported at `now`; the first one after the cool-down is the probe.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed | State::HalfOpen => true,
            State::Open(until) if now >= until => {
                self.state = State::HalfOpen;
                true
            }
            State::Open(_) => false,
        }
    }

    /// Records the result of an export that `allow` let through, finished at `now`.
    pub(crate) fn record(&mut self, ok: bool, now: Instant) -> Option<Change> {
        if ok {
            let was = std::mem::replace(&mut self.state, State::Closed);
            self.failures = 0;
            self.cool_down = self.policy.cool_down;
            return (was == State::HalfOpen).then_some(Change::Closed);
        }
        self.failures = self.failures.saturating_add(1);
        match self.state {
            State::HalfOpen => {
                self.cool_down = (self.cool_down.saturating_mul(2))
                    .min(self.policy.max_cool_down.max(self.policy.cool_down));
                self.state = State::Open(crate::clock::later(now, self.cool_down));
                None
            }
            State::Closed
                if self.policy.failure_threshold > 0
                    && self.failures >= self.policy.failure_threshold =>
            {
                self.state = State::Open(crate::clock::later(now, self.cool_down));
                Some(Change::Opened(self.cool_down))
            }
            State::Closed | State::Open(_) => None,
        }
    }
}

/// How one exporter handled one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Exported,
    Failed,
    /// Not offered: the breaker is open.
    Refused,
}

/// An exporter behind its own circuit breaker.
#[derive(Debug)]
pub(crate) struct Guarded<E> {
    pub(crate) exporter: E,
    breaker: Breaker,
}

impl<E> Guarded<E> {
    pub(crate) fn new(exporter: E, policy: CircuitBreaker) -> Guarded<E> {
        Guarded {
            exporter,
            breaker: Breaker::new(policy),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// Runs `export` unless the breaker is open; `export` says whether the batch went through.
    /// A panicking exporter is caught and counted as a failed export (in `panics`): export
    /// goes on with the next batch.
    pub(crate) fn call(
        &mut self,
        panics: &AtomicU64,
        export: impl FnOnce(&mut E) -> bool,
    ) -> Outcome {
        if !self.breaker.allow(Instant::now()) {
            return Outcome::Refused;
        }
        let ok = self.guard(panics, export).unwrap_or(false);
        match self.breaker.record(ok, Instant::now()) {
            Some(Change::Opened(pause)) => eprintln!(
                "honeyhive: {} exports in a row failed; pausing export for {pause:?} \
                 (spans are dropped and counted meanwhile)",
                self.breaker.failures
            ),
            Some(Change::Closed) => eprintln!("honeyhive: export recovered"),
            None => {}
        }
        if ok {
            Outcome::Exported
        } else {
            Outcome::Failed
        }
    }
}

impl<E> Guarded<E> {
    /// Runs `f` on the exporter outside the breaker (flush, shutdown): a panic is caught and
    /// counted in `panics`, and `None` returned.
    pub(crate) fn guard<R>(
        &mut self,
        panics: &AtomicU64,
        f: impl FnOnce(&mut E) -> R,
    ) -> Option<R> {
        let exporter = &mut self.exporter;
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(exporter)));
        if out.is_err() {
            panics.fetch_add(1, Ordering::Relaxed);
        }
        out.ok()
    }
}

impl Guarded<Box<dyn DynSpanExporter>> {
    /// Exports `batch` unless the breaker is open.
    pub(crate) fn export(&mut self, batch: Vec<SpanData>, panics: &AtomicU64) -> Outcome {
        self.call(panics, |e| e.export_blocking(batch).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn fail_n(b: &mut Breaker, n: u32, now: Instant) -> Vec<Option<Change>> {
        (0..n)
            .map(|_| {
                assert!(b.allow(now));
                b.record(false, now)
            })
            .collect()
    }

    #[test]
    fn opens_after_the_threshold_of_failures_in_a_row() {
        let t0 = Instant::now();
        let mut b = Breaker::new(CircuitBreaker::new(3, 5 * SEC));
        assert_eq!(fail_n(&mut b, 2, t0), [None, None]);
        // A success in between resets the count.
        assert!(b.allow(t0));
        assert_eq!(b.record(true, t0), None);
        assert_eq!(fail_n(&mut b, 2, t0), [None, None]);
        assert!(!b.is_open(t0));
        assert_eq!(fail_n(&mut b, 1, t0), [Some(Change::Opened(5 * SEC))]);
        assert!(b.is_open(t0));
        assert!(!b.allow(t0 + 4 * SEC), "refuses during the cool-down");
    }

    #[test]
    fn probes_once_after_the_cool_down_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = Breaker::new(CircuitBreaker::new(1, 5 * SEC));
        fail_n(&mut b, 1, t0);
        let later = t0 + 5 * SEC;
        assert!(!b.is_open(later), "due for a probe");
        assert!(b.allow(later), "the probe goes through");
        assert_eq!(b.record(true, later), Some(Change::Closed));
        assert!(b.allow(later));
        assert_eq!(b.record(true, later), None, "already closed");
    }

    #[test]
    fn a_failed_probe_doubles_the_cool_down_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut b = Breaker::new(CircuitBreaker::new(1, 5 * SEC).max_cool_down(12 * SEC));
        fail_n(&mut b, 1, t0);
        let mut now = t0;
        for expected in [10, 12, 12] {
            now += b.cool_down;
            assert!(b.allow(now));
            assert_eq!(b.record(false, now), None, "still open, no new log line");
            let reopens = now + Duration::from_secs(expected);
            assert!(b.is_open(now + Duration::from_secs(expected - 1)));
            assert!(!b.is_open(reopens));
        }
        // Recovery resets the cool-down to the first one.
        now += b.cool_down;
        assert!(b.allow(now));
        b.record(true, now);
        fail_n(&mut b, 1, now);
        assert!(!b.is_open(now + 5 * SEC));
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(CircuitBreaker::disabled());
        assert!(fail_n(&mut b, 100, t0).iter().all(Option::is_none));
        assert!(!b.is_open(t0));
    }
}
