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
use std::time::{Duration, SystemTime};

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
    /// A timestamp from [`now`] and the wall-clock time read with it, on the converting thread.
    static WALL: Cell<Option<(u64, SystemTime)>> = const { Cell::new(None) };
}

/// The wall-clock time of a timestamp from [`now`].
pub(crate) fn to_system_time(ns: u64) -> SystemTime {
    let (at, wall) = WALL.with(|mapping| match mapping.get() {
        Some((at, wall)) if ns <= at.saturating_add(REMAP_AFTER_NS) => (at, wall),
        _ => {
            let fresh = (now(), SystemTime::now());
            mapping.set(Some(fresh));
            fresh
        }
    });
    if ns >= at {
        wall + Duration::from_nanos(ns - at)
    } else {
        wall.checked_sub(Duration::from_nanos(at - ns))
            .unwrap_or(wall)
    }
}

/// Nanoseconds since the Unix epoch of a timestamp from [`now`].
pub(crate) fn to_unix_nanos(ns: u64) -> u64 {
    unix_nanos(to_system_time(ns))
}

/// Nanoseconds since the Unix epoch of a wall-clock time (0 before it).
pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
