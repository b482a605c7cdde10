//! Monotonic timestamps for spans, converted to wall-clock time only on the export thread.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

struct Anchor {
    instant: Instant,
    system: SystemTime,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| Anchor {
        instant: Instant::now(),
        system: SystemTime::now(),
    })
}

/// Nanoseconds since the process's anchor, from the monotonic clock.
#[inline]
pub(crate) fn now() -> u64 {
    let elapsed = anchor().instant.elapsed();
    // u64 nanoseconds last 584 years; saturate rather than wrap.
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// The wall-clock time of a timestamp from [`now`].
pub(crate) fn to_system_time(ns: u64) -> SystemTime {
    anchor().system + Duration::from_nanos(ns)
}
