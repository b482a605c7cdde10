//! Adaptive sampling: a rate per root operation that aims at a number of traces per second.
//!
//! The design is Jaeger's adaptive sampling: every operation has its own probability,
//! recomputed at the end of each window from the traffic seen, never below a floor, and raised
//! by at most half per window so that a lull does not open the gates. Jaeger's collectors see
//! only sampled spans, so they nudge the probability by `target / sampled rate` and need a
//! tolerance band against noise; in process every root is counted, so the new probability is
//! `target / arrival rate` directly, with the arrival rate smoothed over recent windows.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::clamp_rate;
use crate::record::Window;

/// A source of monotonic time for samplers, injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time since an arbitrary fixed origin; never decreases.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(crate::clock::now())
    }
}

/// A clock that moves only when told to: for deterministic tests of time-based sampling.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use honeyhive_runtime::sampling::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now(), Duration::from_millis(1500));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(nanos(by), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How much the probability may rise per window, as a fraction of itself (Jaeger's
/// `percentage increase cap`).
const INCREASE_CAP: f64 = 0.5;
/// Weight of the newest window in the smoothed arrival rate.
const SMOOTHING: f64 = 0.5;

/// Adaptive sampling: aims at `target` traces per second for each root operation.
///
/// Applies to roots that no always-sampled user or session, [`Rule`](super::Rule) or declared
/// `sample_rate` covers. Every window (default 10 s), each operation's probability becomes the
/// target divided by its arrival rate, smoothed over recent windows, capped at 1 and at 1.5
/// times the previous probability, and floored at [`Adaptive::min_rate`]. An operation
/// arriving slower than the target keeps every trace. A window also closes early once twice
/// its budget of traces has been kept, so a sudden burst is corrected within a fraction of a
/// window. Roots carry the probability they were kept with (`honeyhive.sample_rate`).
///
/// ```
/// use std::time::Duration;
/// use honeyhive_runtime::sampling::Adaptive;
///
/// let _guard = honeyhive_runtime::Builder::new()
///     .adaptive_sampling(Adaptive::new(5.0).window(Duration::from_secs(30)))
///     .install();
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Adaptive {
    target: f64,
    window: Duration,
    min_rate: f64,
    initial_rate: f64,
    clock: Arc<dyn Clock>,
}

impl Adaptive {
    /// Aims at `traces_per_second` kept traces per root operation (at least 0; a target that
    /// is not a number is no limit: every trace is kept).
    pub fn new(traces_per_second: f64) -> Adaptive {
        Adaptive {
            target: if traces_per_second.is_nan() {
                f64::INFINITY
            } else {
                traces_per_second.max(0.0)
            },
            window: Duration::from_secs(10),
            min_rate: 1e-5,
            initial_rate: 1.0,
            clock: Arc::new(MonotonicClock),
        }
    }

    /// How often probabilities are recomputed (default 10 s).
    pub fn window(mut self, window: Duration) -> Adaptive {
        self.window = window.max(Duration::from_millis(1));
        self
    }

    /// The lowest probability an operation gets, so rare paths of busy operations still show
    /// (default 0.00001; clamped to `[0, 1]`, not a number is 1, see
    /// [Rates](crate::sampling#rates)).
    pub fn min_rate(mut self, rate: f64) -> Adaptive {
        self.min_rate = clamp_rate(rate);
        self
    }

    /// The probability before the first window closes (default 1; clamped to `[0, 1]`, not a
    /// number is 1).
    pub fn initial_rate(mut self, rate: f64) -> Adaptive {
        self.initial_rate = clamp_rate(rate);
        self
    }

    /// The clock windows are measured with (default the monotonic clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Adaptive {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn initial(&self) -> f64 {
        self.initial_rate
    }

    fn now_ns(&self) -> u64 {
        nanos(self.clock.now())
    }
}

impl Window {
    pub(crate) fn reset(&self, initial_rate: f64) {
        self.start.store(0, Ordering::Relaxed);
        self.seen.store(0, Ordering::Relaxed);
        self.kept.store(0, Ordering::Relaxed);
        self.rate.store(initial_rate.to_bits(), Ordering::Relaxed);
        self.arrivals.store(f64::NAN.to_bits(), Ordering::Relaxed);
    }

    /// Counts a root and returns the probability to keep it with, closing the window first
    /// when it is over.
    pub(crate) fn rate(&self, config: &Adaptive) -> f64 {
        let now = config.now_ns();
        let start = self.start.load(Ordering::Acquire);
        if start == 0 {
            if self
                .start
                .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.seen.store(1, Ordering::Relaxed);
            } else {
                self.seen.fetch_add(1, Ordering::Relaxed);
            }
            return f64::from_bits(self.rate.load(Ordering::Relaxed));
        }
        let elapsed = now.saturating_sub(start - 1);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let burst = self.kept.load(Ordering::Relaxed) as f64
            >= 2.0 * (config.target * config.window.as_secs_f64()).max(1.0);
        if (elapsed >= nanos(config.window) || burst)
            && self
                .start
                .compare_exchange(start, now + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This root opens the next window.
            let seen = self.seen.swap(1, Ordering::Relaxed);
            self.kept.store(0, Ordering::Relaxed);
            self.recompute(seen, elapsed, config);
        } else {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Counts a root kept at the adaptive rate.
    pub(crate) fn kept(&self) {
        self.kept.fetch_add(1, Ordering::Relaxed);
    }

    #[allow(clippy::cast_precision_loss)] // counts and nanoseconds far below 2^52
    fn recompute(&self, seen: u64, elapsed_ns: u64, config: &Adaptive) {
        let observed = seen as f64 / (elapsed_ns.max(1_000) as f64 / 1e9);
        let previous = f64::from_bits(self.arrivals.load(Ordering::Relaxed));
        let arrivals = if previous.is_nan() {
            observed
        } else {
            SMOOTHING * observed + (1.0 - SMOOTHING) * previous
        };
        self.arrivals.store(arrivals.to_bits(), Ordering::Relaxed);
        let old = f64::from_bits(self.rate.load(Ordering::Relaxed));
        let wanted = if arrivals <= config.target {
            1.0
        } else {
            config.target / arrivals
        };
        let rate = wanted
            .min(old * (1.0 + INCREASE_CAP))
            .clamp(config.min_rate, 1.0);
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(clock: &ManualClock) -> Adaptive {
        Adaptive::new(10.0)
            .window(Duration::from_secs(1))
            .clock(clock.clone())
    }

    #[test]
    fn a_window_sets_the_rate_to_target_over_arrivals() {
        let clock = ManualClock::new();
        let cfg = config(&clock);
        let w = Window::new();
        // 100 roots per second for one window, none kept: no burst.
        for _ in 0..100 {
            assert!((w.rate(&cfg) - 1.0).abs() < f64::EPSILON);
            clock.advance(Duration::from_millis(10));
        }
        let rate = w.rate(&cfg);
        assert!((rate - 0.1).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn the_rate_rises_by_at_most_half_per_window() {
        let clock = ManualClock::new();
        let cfg = config(&clock).initial_rate(0.01);
        let w = Window::new();
        w.reset(0.01);
        // One root per second: far below target, so the rate climbs 0.01, 0.015, 0.0225, ...
        let mut rates = Vec::new();
        for _ in 0..4 {
            rates.push(w.rate(&cfg));
            clock.advance(Duration::from_secs(1));
        }
        for pair in rates.windows(2) {
            assert!((pair[1] / pair[0] - 1.5).abs() < 1e-9, "{rates:?}");
        }
    }

    #[test]
    fn a_burst_closes_the_window_early() {
        let clock = ManualClock::new();
        let cfg = config(&clock);
        let w = Window::new();
        // 20 roots kept within 0.2 s at 100/s: twice the window's budget of 10.
        for _ in 0..20 {
            w.rate(&cfg);
            w.kept();
            clock.advance(Duration::from_millis(10));
        }
        let rate = w.rate(&cfg);
        assert!((rate - 0.1).abs() < 1e-9, "{rate}");
    }
}
