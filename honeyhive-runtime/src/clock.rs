//! Monotonic timestamps for spans, converted to wall-clock time only on the export thread.
//!
//! Spans read the CPU's time-stamp counter through `quanta` where it is invariant (one `rdtsc`
//! and a multiply, about half the cost of `clock_gettime`; every recorded span reads the clock
//! twice), and the monotonic clock elsewhere. The counter is calibrated once, when a pipeline
//! is installed. Its calibrated rate is off by about a part per million, so a timestamp is
//! mapped to wall-clock time from a pair of readings retaken every second of span time rather
//! than from the start of the process: the error stays near a microsecond however long the
//! process runs.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

struct Origin {
    clock: quanta::Clock,
    raw: u64,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| {
        let clock = quanta::Clock::new();
        Origin {
            raw: clock.raw(),
            clock,
        }
    })
}

/// Calibrates the clock now (about a millisecond), so that no span waits for it.
pub(crate) fn init() {
    origin();
}

/// Nanoseconds since the process's origin, from the monotonic counter.
#[inline]
pub(crate) fn now() -> u64 {
    let origin = origin();
    origin.clock.delta_as_nanos(origin.raw, origin.clock.raw())
}

/// How far from its readings a wall-clock mapping is used before it is retaken.
const REMAP_AFTER_NS: u64 = 1_000_000_000;

thread_local! {
    /// A timestamp from [`now`] and the wall-clock time read with it, in nanoseconds since the
    /// Unix epoch, on the converting thread.
    static WALL: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Nanoseconds since the Unix epoch of a timestamp from [`now`]: integer arithmetic on the
/// thread's mapping, so the export thread pays two of these per span for an add each.
pub(crate) fn to_unix_nanos(ns: u64) -> u64 {
    let (at, wall) = WALL.with(|mapping| match mapping.get() {
        Some((at, wall)) if ns <= at.saturating_add(REMAP_AFTER_NS) => (at, wall),
        _ => {
            let fresh = (now(), unix_nanos(SystemTime::now()));
            mapping.set(Some(fresh));
            fresh
        }
    });
    if ns >= at {
        wall.saturating_add(ns - at)
    } else {
        wall.saturating_sub(at - ns)
    }
}

/// The wall-clock time of a timestamp from [`now`].
pub(crate) fn to_system_time(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(to_unix_nanos(ns))
}

/// Nanoseconds since the Unix epoch of a wall-clock time (0 before it).
pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `at` plus `d`, or as far as an `Instant` goes: durations from configuration and from
/// servers (`retry-after`, timeouts, cool-downs) may be as large as `Duration::MAX`, and
/// `Instant + Duration` panics on overflow.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(Duration::from_secs(1 << 32)))
        .unwrap_or(at)
}

/// [`later`] for a wall-clock time (`SystemTime + Duration` panics on overflow too).
pub(crate) fn later_system(at: SystemTime, d: Duration) -> SystemTime {
    at.checked_add(d)
        .or_else(|| at.checked_add(Duration::from_secs(1 << 32)))
        .unwrap_or(at)
}

/// [`later`] than now.
pub(crate) fn after(d: Duration) -> Instant {
    later(Instant::now(), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_map_to_wall_clock_time_on_one_mapping() {
        let before = unix_nanos(SystemTime::now());
        let t = now();
        let wall = to_unix_nanos(t);
        let after = unix_nanos(SystemTime::now());
        // The mapping's error is about a microsecond; a generous bound keeps this deterministic.
        assert!(
            wall + 50_000_000 >= before && wall <= after + 50_000_000,
            "{before} <= {wall} <= {after}"
        );
        // Later timestamps are offsets on the same mapping (taken after `t`), to the nanosecond.
        assert_eq!(to_unix_nanos(t + 5_000_000), wall + 5_000_000);
        assert_eq!(to_unix_nanos(t + 1_000), wall + 1_000);
        assert_eq!(
            unix_nanos(to_system_time(t + 7)),
            wall + 7,
            "the SystemTime form agrees"
        );
    }
}
