//! Sampling decisions.
//!
//! A decision is made once, where a span declares `sample_rate` or at the root by the global
//! sampler, and is inherited by the whole subtree, so a trace is never broken into orphans.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::context;

/// The global root rate as `f64` bits; 1.0 until `init` says otherwise.
static ROOT_RATE: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000);
/// Whether a sampled/unsampled flag from an ambient or remote parent is honoured.
static PARENT_BASED: AtomicBool = AtomicBool::new(true);

/// The global sampler, as configured at init (from the builder or `OTEL_TRACES_SAMPLER`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Record every trace.
    AlwaysOn,
    /// Record no trace (spans cost almost nothing, but are still counted as not sampled).
    AlwaysOff,
    /// Record this fraction of root spans, in `[0, 1]`.
    Ratio(f64),
    /// Honour the parent's decision when a trace arrives from elsewhere; for roots, use the
    /// inner sampler.
    ParentBased(RootSampler),
}

/// The sampler a [`Sampler::ParentBased`] applies to roots.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RootSampler {
    /// Every root.
    AlwaysOn,
    /// No root.
    AlwaysOff,
    /// A fraction of roots.
    Ratio(f64),
}

impl Sampler {
    fn root_rate(self) -> f64 {
        match self {
            Sampler::AlwaysOn | Sampler::ParentBased(RootSampler::AlwaysOn) => 1.0,
            Sampler::AlwaysOff | Sampler::ParentBased(RootSampler::AlwaysOff) => 0.0,
            Sampler::Ratio(r) | Sampler::ParentBased(RootSampler::Ratio(r)) => r.clamp(0.0, 1.0),
        }
    }

    /// Reads `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` values.
    ///
    /// Unknown names give `None` (the caller keeps its default and reports it).
    pub fn from_otel_env(name: &str, arg: Option<&str>) -> Option<Sampler> {
        let ratio = || {
            arg.and_then(|a| a.trim().parse::<f64>().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(1.0)
        };
        Some(match name.trim() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::Ratio(ratio()),
            "parentbased_always_on" => Sampler::ParentBased(RootSampler::AlwaysOn),
            "parentbased_always_off" => Sampler::ParentBased(RootSampler::AlwaysOff),
            "parentbased_traceidratio" => Sampler::ParentBased(RootSampler::Ratio(ratio())),
            _ => return None,
        })
    }
}

pub(crate) fn install(sampler: Sampler) {
    ROOT_RATE.store(sampler.root_rate().to_bits(), Ordering::Relaxed);
    PARENT_BASED.store(
        matches!(sampler, Sampler::ParentBased(_)),
        Ordering::Relaxed,
    );
}

#[inline]
pub(crate) fn root_rate() -> f64 {
    f64::from_bits(ROOT_RATE.load(Ordering::Relaxed))
}

pub(crate) fn parent_based() -> bool {
    PARENT_BASED.load(Ordering::Relaxed)
}

/// True with probability `rate`.
#[inline]
pub(crate) fn roll(rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    // 53 random bits give a uniform float in [0, 1).
    #[allow(clippy::cast_precision_loss)] // exact: the value has 53 significant bits
    let unit = (context::random_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    unit < rate
}
