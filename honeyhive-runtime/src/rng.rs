//! The one random generator: wyrand, a fast, small, non-cryptographic generator. Span ids,
//! sampling decisions, retry jitter and the tail sampler all draw from it, each from a state of
//! its own (span ids and decisions keep separate per-thread states, so that seeding decisions
//! in a test changes no id and drawing an id never shifts a decision).

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

    /// True with probability `rate`.
    #[inline]
    pub(crate) fn roll(&mut self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 || rate.is_nan() {
            return false;
        }
        // 53 random bits give a uniform float in [0, 1).
        #[allow(clippy::cast_precision_loss)] // exact: the value has 53 significant bits
        let unit = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        unit < rate
    }
}
