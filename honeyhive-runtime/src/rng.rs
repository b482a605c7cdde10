//! The one random generator: wyrand, a fast, small, non-cryptographic generator. Span ids,
//! sampling decisions, retry jitter and the tail sampler all draw from it, each from a state of
//! its own (span ids and decisions keep separate per-thread states, so that seeding decisions
//! in a test changes no id and drawing an id never shifts a decision).

use std::cell::Cell;

thread_local! {
    // The ids' wyrand state; 0 means "not seeded yet" (seeding reads the OS once per thread).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A fast, non-cryptographic 64-bit random number (wyrand), per thread.
///
/// Span ids only need to be unique with high probability, so a counter-based generator seeded
/// from the OS is enough and costs about a nanosecond.
#[inline]
pub(crate) fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut rng = match state.get() {
            0 => Wyrand::from_os(),
            s => Wyrand::new(s),
        };
        let n = rng.next_u64();
        // 0 means "not seeded yet"; a state of 0 is skipped.
        state.set(rng.0 | u64::from(rng.0 == 0));
        n
    })
}

/// A non-zero span id.
#[inline]
pub(crate) fn new_span_id() -> u64 {
    loop {
        let id = random_u64();
        if id != 0 {
            return id;
        }
    }
}

/// A non-zero trace id.
#[inline]
pub(crate) fn new_trace_id() -> u128 {
    loop {
        let id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        if id != 0 {
            return id;
        }
    }
}

/// A wyrand state.
#[derive(Clone, Debug)]
pub(crate) struct Wyrand(pub(crate) u64);

impl Wyrand {
    pub(crate) fn new(seed: u64) -> Wyrand {
        Wyrand(seed)
    }

    /// Seeded from the operating system.
    pub(crate) fn from_os() -> Wyrand {
        Wyrand(rand::random::<u64>())
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        #[allow(clippy::cast_possible_truncation)] // folding 128 bits into 64 is the point
        let folded = (t as u64) ^ ((t >> 64) as u64);
        folded
    }
}
