//! How long to wait before each retry: backoff curves, jitter, and the randomness jitter draws.

use std::cell::Cell;
use std::time::Duration;

/// A retry policy, written by `#[retry]` as a `static`.
#[doc(hidden)]
#[derive(Debug)]
pub struct Policy {
    /// Total calls, the first included; at least 1.
    pub max_attempts: u32,
    /// The curve of waits.
    pub backoff: Backoff,
    /// How the waits are randomised.
    pub jitter: Jitter,
    /// A cap on any single wait, including a server's `retry-after`.
    pub max_delay: Option<Duration>,
    /// No wait starts that would end past this much time since the first attempt started.
    pub max_elapsed: Option<Duration>,
}

/// The wait before the `n`th retry, before jitter.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Backoff {
    /// The same wait every time.
    Constant(Duration),
    /// `initial * factor^(n-1)`, at most `max`.
    Exponential {
        /// The first wait.
        initial: Duration,
        /// The growth per retry.
        factor: f64,
        /// The largest wait.
        max: Duration,
    },
    /// `initial` times the `n`th Fibonacci number (1, 1, 2, 3, 5, ...), at most `max`.
    Fibonacci {
        /// The first wait.
        initial: Duration,
        /// The largest wait.
        max: Duration,
    },
}

/// How a wait is randomised, so that clients that failed together do not retry together.
/// See <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// The backoff exactly.
    None,
    /// Uniform in `[0, backoff]`.
    Full,
    /// Uniform in `[backoff / 2, backoff]`.
    Equal,
    /// Uniform in `[initial, 3 * previous wait]`, at most the backoff's maximum.
    Decorrelated,
}

impl Backoff {
    fn bounds(&self) -> (Duration, Duration) {
        match *self {
            Backoff::Constant(d) => (d, d),
            Backoff::Exponential { initial, max, .. } | Backoff::Fibonacci { initial, max } => {
                (initial, max)
            }
        }
    }

    /// The wait before retry number `retry` (1 for the wait after the first attempt).
    fn base(&self, retry: u32) -> Duration {
        match *self {
            Backoff::Constant(d) => d,
            Backoff::Exponential {
                initial,
                factor,
                max,
            } => {
                let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * factor.powi(exponent);
                Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max))
            }
            Backoff::Fibonacci { initial, max } => {
                let (mut a, mut b) = (1u32, 1u32);
                for _ in 1..retry {
                    (a, b) = (b, a.saturating_add(b));
                }
                initial.saturating_mul(a).min(max)
            }
        }
    }
}

impl Policy {
    /// The wait before retry number `retry`, jittered; `previous` is the wait before the last
    /// retry (decorrelated jitter grows from it).
    pub(crate) fn delay(&self, retry: u32, previous: Option<Duration>) -> Duration {
        let base = self.backoff.base(retry);
        let delay = match self.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(random_fraction()),
            Jitter::Equal => base / 2 + (base / 2).mul_f64(random_fraction()),
            Jitter::Decorrelated => {
                let (initial, max) = self.backoff.bounds();
                let high = previous.unwrap_or(initial).saturating_mul(3).max(initial);
                (initial + high.saturating_sub(initial).mul_f64(random_fraction())).min(max)
            }
        };
        self.cap(delay)
    }

    /// `delay` limited by `max_delay`.
    pub(crate) fn cap(&self, delay: Duration) -> Duration {
        self.max_delay.map_or(delay, |max| delay.min(max))
    }
}

thread_local! {
    /// splitmix64 state; 0 means "not seeded yet" (seeded from the span id generator).
    static RNG: Cell<u64> = const { Cell::new(0) };
    /// A fixed draw set by tests, in `[0, 1]`.
    static FIXED: Cell<Option<f64>> = const { Cell::new(None) };
}

/// Reseeds the generator jitter draws from on this thread, so that the delays of the retries
/// that follow on this thread are reproducible. For tests.
pub fn set_thread_rng_seed(seed: u64) {
    // 0 is the "unseeded" marker; any other fixed value keeps the sequence reproducible.
    RNG.set(seed.max(1));
}

/// Makes every jitter draw on this thread return `fraction` (clamped to `[0, 1]`), so that
/// delays are exact: with `Some(0.5)`, full jitter waits half the backoff. `None` goes back to
/// random draws. For tests.
pub fn set_thread_jitter_fraction(fraction: Option<f64>) {
    FIXED.set(fraction.map(|f| f.clamp(0.0, 1.0)));
}

/// A uniform draw in `[0, 1)` (or the fixed value set by a test).
fn random_fraction() -> f64 {
    if let Some(fixed) = FIXED.get() {
        return fixed;
    }
    let mut state = RNG.get();
    if state == 0 {
        state = crate::rng::random_u64() | 1;
    }
    state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    RNG.set(state);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // 53 random bits give a uniform float in [0, 1).
    #[allow(clippy::cast_precision_loss)] // exact: the value has 53 significant bits
    let unit = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(backoff: Backoff, jitter: Jitter) -> Policy {
        Policy {
            max_attempts: 10,
            backoff,
            jitter,
            max_delay: None,
            max_elapsed: None,
        }
    }

    #[test]
    fn exponential_doubles_up_to_its_max() {
        let p = policy(
            Backoff::Exponential {
                initial: 500 * MS,
                factor: 2.0,
                max: 8000 * MS,
            },
            Jitter::None,
        );
        let delays: Vec<_> = (1..=7).map(|n| p.delay(n, None).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(p.delay(u32::MAX, None), 8000 * MS);
    }

    #[test]
    fn fibonacci_grows_by_the_sequence() {
        let p = policy(
            Backoff::Fibonacci {
                initial: 100 * MS,
                max: 1000 * MS,
            },
            Jitter::None,
        );
        let delays: Vec<_> = (1..=7).map(|n| p.delay(n, None).as_millis()).collect();
        assert_eq!(delays, [100, 100, 200, 300, 500, 800, 1000]);
    }

    #[test]
    fn jitter_stays_in_its_range() {
        set_thread_rng_seed(42);
        let exp = Backoff::Exponential {
            initial: 100 * MS,
            factor: 2.0,
            max: 10_000 * MS,
        };
        let full = policy(exp, Jitter::Full);
        let equal = policy(exp, Jitter::Equal);
        let decorrelated = policy(Backoff::Constant(100 * MS), Jitter::Decorrelated);
        for n in 1..=6 {
            let base = 100 * MS * 2u32.pow(n - 1);
            assert!(full.delay(n, None) <= base);
            let e = equal.delay(n, None);
            assert!(e >= base / 2 && e <= base);
        }
        let mut previous = None;
        for n in 1..=6 {
            let d = decorrelated.delay(n, previous);
            // A constant backoff's maximum is its delay: decorrelated jitter cannot exceed it.
            assert_eq!(d, 100 * MS);
            previous = Some(d);
        }
    }

    #[test]
    fn a_seed_makes_draws_reproducible_and_a_fixed_fraction_makes_them_exact() {
        let p = policy(
            Backoff::Exponential {
                initial: 1000 * MS,
                factor: 2.0,
                max: 60_000 * MS,
            },
            Jitter::Full,
        );
        set_thread_rng_seed(7);
        let first: Vec<_> = (1..=4).map(|n| p.delay(n, None)).collect();
        set_thread_rng_seed(7);
        let second: Vec<_> = (1..=4).map(|n| p.delay(n, None)).collect();
        assert_eq!(first, second);

        set_thread_jitter_fraction(Some(0.25));
        assert_eq!(p.delay(3, None), 1000 * MS);
        set_thread_jitter_fraction(None);
    }

    #[test]
    fn decorrelated_draws_between_initial_and_three_times_the_last_wait() {
        let p = policy(
            Backoff::Exponential {
                initial: 100 * MS,
                factor: 2.0,
                max: 1000 * MS,
            },
            Jitter::Decorrelated,
        );
        set_thread_jitter_fraction(Some(1.0));
        assert_eq!(p.delay(1, None), 300 * MS);
        assert_eq!(p.delay(2, Some(300 * MS)), 900 * MS);
        assert_eq!(p.delay(3, Some(900 * MS)), 1000 * MS);
        set_thread_jitter_fraction(Some(0.0));
        assert_eq!(p.delay(4, Some(1000 * MS)), 100 * MS);
        set_thread_jitter_fraction(None);
    }

    #[test]
    fn max_delay_caps_every_wait() {
        let mut p = policy(Backoff::Constant(5000 * MS), Jitter::None);
        p.max_delay = Some(1200 * MS);
        assert_eq!(p.delay(1, None), 1200 * MS);
    }
}
