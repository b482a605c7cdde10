//! Sampling: which traces are recorded, decided once per trace so no trace is broken into
//! orphans.
//!
//! # Head sampling
//!
//! A decision is made where a span declares `#[trace(sample_rate = p)]`, or at the root by the
//! global policy, and is inherited by the whole subtree: a span is never recorded under an
//! unsampled parent. At a root, the policy the [`Builder`](crate::Builder) installed is asked,
//! first answer wins:
//!
//! 1. A parent from another process (entered with
//!    [`propagation::extract`](crate::propagation::extract)`(..).run` or `.instrument`) or from
//!    the OpenTelemetry SDK (an ambient OpenTelemetry `Context`): with a [`Sampler::ParentBased`]
//!    sampler (the default) its sampled flag is kept; a declared `sample_rate` may still thin a
//!    sampled trace. Other samplers go on down this list, whatever the flag says.
//! 2. [`Builder::always_sample_users`](crate::Builder::always_sample_users) /
//!    [`always_sample_sessions`](crate::Builder::always_sample_sessions): the current user or
//!    session (see [`Scope`](crate::Scope)) is one of them: kept.
//! 3. The first [`Rule`] matching the root's name and event type.
//! 4. `sample_rate = p` declared on the root function.
//! 5. [`Adaptive`], when set: a rate per root operation aiming at a number of traces per
//!    second.
//! 6. The [`Sampler`]'s ratio.
//!
//! Each recorded root carries the probability it was kept with as `honeyhive.sample_rate`, so
//! counts can be extrapolated (a kept root stands for `1 / rate` roots). [`sampling_stats`]
//! counts roots seen and sampled per operation.
//!
//! Rules, users and the adaptive rate are consulted at roots only; a span inside a trace costs
//! no more than before.
//!
//! # Tail sampling
//!
//! [`TailSampling`] decides on the export thread, once a trace's root has ended: keep every
//! trace with an error or a slow root, keep the rest at a probability. See its docs.
//!
//! # Determinism
//!
//! Decisions on a thread draw from that thread's generator; [`seed_thread_rng`] makes them
//! repeatable. The tail sampler has its own ([`TailSampling::seed`]), and the adaptive sampler
//! takes a [`Clock`] ([`ManualClock`] in tests).

mod adaptive;
mod rules;
pub(crate) mod tail;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};

pub use self::adaptive::{Adaptive, Clock, ManualClock, MonotonicClock};
pub use self::rules::Rule;
pub use self::tail::{TailSampling, TailStats, tail_stats};
use crate::record::Meta;
pub use crate::record::RootState;

/// The base sampler (from the builder or `OTEL_TRACES_SAMPLER`).
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

/// What the builder says about root decisions beyond the [`Sampler`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    pub(crate) rules: Vec<Rule>,
    /// Sorted, without duplicates.
    pub(crate) users: Vec<Arc<str>>,
    /// Sorted, without duplicates.
    pub(crate) sessions: Vec<Arc<str>>,
    pub(crate) adaptive: Option<Adaptive>,
}

impl Policy {
    pub(crate) fn add_users(&mut self, ids: impl IntoIterator<Item = Arc<str>>) {
        add_sorted(&mut self.users, ids);
    }

    pub(crate) fn add_sessions(&mut self, ids: impl IntoIterator<Item = Arc<str>>) {
        add_sorted(&mut self.sessions, ids);
    }

    /// Whether the current user or session is one to always trace.
    fn forces_current(&self) -> bool {
        if self.users.is_empty() && self.sessions.is_empty() {
            return false;
        }
        let (user, session) = current_user_and_session();
        let listed = |ids: &[Arc<str>], id: Option<Arc<str>>| {
            id.is_some_and(|id| ids.binary_search(&id).is_ok())
        };
        listed(&self.users, user) || listed(&self.sessions, session)
    }
}

fn add_sorted(set: &mut Vec<Arc<str>>, ids: impl IntoIterator<Item = Arc<str>>) {
    set.extend(ids);
    set.sort_unstable();
    set.dedup();
}

/// The user and session of the current scope (see [`Scope`](crate::Scope)).
fn current_user_and_session() -> (Option<Arc<str>>, Option<Arc<str>>) {
    crate::correlation::current()
        .map_or((None, None), |c| (c.user_id.clone(), c.session_id.clone()))
}

/// An installed policy: what every root on every thread consults.
#[derive(Debug)]
struct Installed {
    generation: u64,
    parent_based: bool,
    base_rate: f64,
    policy: Policy,
}

static INSTALLED: RwLock<Option<Arc<Installed>>> = RwLock::new(None);
/// Bumped by every install, so threads refresh their cached policy and operations reset
/// their counters.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static DEFAULT: LazyLock<Arc<Installed>> = LazyLock::new(|| {
    Arc::new(Installed {
        generation: 0,
        parent_based: true,
        base_rate: 1.0,
        policy: Policy::default(),
    })
});

thread_local! {
    static CACHED: RefCell<Option<Arc<Installed>>> = const { RefCell::new(None) };
}

pub(crate) fn install(sampler: Sampler, policy: Policy) {
    let mut installed = INSTALLED.write().unwrap_or_else(PoisonError::into_inner);
    let generation = GENERATION.load(Ordering::Acquire) + 1;
    *installed = Some(Arc::new(Installed {
        generation,
        parent_based: matches!(sampler, Sampler::ParentBased(_)),
        base_rate: sampler.root_rate(),
        policy,
    }));
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    registry.generation = generation;
    registry.ops.clear();
    GENERATION.store(generation, Ordering::Release);
}

fn installed_now() -> Arc<Installed> {
    INSTALLED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| Arc::clone(&DEFAULT))
}

/// Runs `f` with the installed policy, read through a per-thread cache that is refreshed only
/// when an install bumped the generation: one atomic load per root otherwise.
fn with_installed<R>(f: impl FnOnce(&Installed) -> R) -> R {
    let generation = GENERATION.load(Ordering::Acquire);
    let mut f = Some(f);
    let cached = CACHED
        .try_with(|cell| {
            // Re-entered (a user `Clock` that is itself traced): fall back below.
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.as_ref().is_none_or(|i| i.generation != generation) {
                *slot = Some(installed_now());
            }
            let f = f.take()?;
            slot.as_deref().map(f)
        })
        .ok()
        .flatten();
    match (cached, f) {
        (Some(out), _) => out,
        (None, Some(f)) => f(&installed_now()),
        (None, None) => unreachable!("the cached policy is always set before `f` is taken"),
    }
}

/// A root's decision, and the probability it was kept with when that is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RootDecision {
    pub(crate) keep: bool,
    pub(crate) rate: Option<f64>,
}

/// Decides whether a root span is recorded: the one decision every root takes, whether it
/// starts a trace or joins one from another service (an extracted `traceparent`) or from the
/// OpenTelemetry SDK. `ambient_sampled` is that parent's sampled flag, if there is one. Counts
/// the root in [`sampling_stats`].
pub(crate) fn decide_root(meta: &'static Meta, ambient_sampled: Option<bool>) -> RootDecision {
    with_installed(|installed| {
        let state = &meta.root;
        state.register(meta, installed);
        let decision = installed.decide(meta, ambient_sampled);
        state.seen.fetch_add(1, Ordering::Relaxed);
        if decision.keep {
            state.sampled.fetch_add(1, Ordering::Relaxed);
        }
        decision
    })
}

impl Installed {
    fn decide(&self, meta: &'static Meta, ambient_sampled: Option<bool>) -> RootDecision {
        if let Some(sampled) = ambient_sampled
            && self.parent_based
        {
            // A trace started elsewhere keeps its decision; a declared rate may thin it.
            return match meta.sample_rate {
                Some(rate) => RootDecision {
                    keep: sampled && roll(rate),
                    rate: Some(rate),
                },
                None => RootDecision {
                    keep: sampled,
                    rate: None,
                },
            };
        }
        let (rate, adaptive) = self.local_rate(meta);
        let keep = roll(rate);
        if keep && adaptive {
            meta.root.window.kept();
        }
        RootDecision {
            keep,
            rate: Some(rate),
        }
    }

    /// The rate for a root, and whether the adaptive sampler chose it.
    fn local_rate(&self, meta: &'static Meta) -> (f64, bool) {
        if self.policy.forces_current() {
            return (1.0, false);
        }
        if let Some(rule) = self.policy.rules.iter().find(|r| r.matches(meta)) {
            return (rule.rate(), false);
        }
        if let Some(rate) = meta.sample_rate {
            return (rate, false);
        }
        if let Some(adaptive) = &self.policy.adaptive {
            return (meta.root.window.rate(adaptive), true);
        }
        (self.base_rate, false)
    }
}

impl RootState {
    #[inline]
    fn register(&self, meta: &'static Meta, installed: &Installed) {
        if self.generation.load(Ordering::Acquire) != installed.generation {
            self.register_cold(meta, installed);
        }
    }

    /// First root of this operation since the last install: reset and list it for
    /// [`sampling_stats`].
    #[cold]
    fn register_cold(&self, meta: &'static Meta, installed: &Installed) {
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) == installed.generation
            || registry.generation != installed.generation
        {
            // Registered meanwhile, or a newer install is under way.
            return;
        }
        self.seen.store(0, Ordering::Relaxed);
        self.sampled.store(0, Ordering::Relaxed);
        self.window.reset(
            installed
                .policy
                .adaptive
                .as_ref()
                .map_or(1.0, Adaptive::initial),
        );
        registry.ops.push(meta);
        self.generation
            .store(installed.generation, Ordering::Release);
    }
}

struct Registry {
    generation: u64,
    ops: Vec<&'static Meta>,
}

/// Every operation that has been a root since the last install.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    generation: 0,
    ops: Vec::new(),
});

/// Roots seen and sampled for one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationStats {
    /// Root spans of this operation (the traces it started or joined).
    pub seen: u64,
    /// Of those, the ones recorded.
    pub sampled: u64,
}

/// Roots seen and sampled per operation (span name) since tracing was installed.
///
/// Only roots are counted: a span inside a trace follows its root's decision. Functions that
/// share a name are merged. A tail sampler's decisions come on top: see [`tail_stats`].
///
/// ```
/// use honeyhive_runtime::{sampling, trace};
///
/// #[trace]
/// fn handle() {}
///
/// let recorder = honeyhive_runtime::testing::Recorder::start();
/// handle();
/// let stats = sampling::sampling_stats();
/// assert_eq!(stats["handle"].seen, 1);
/// assert_eq!(stats["handle"].sampled, 1);
/// ```
pub fn sampling_stats() -> BTreeMap<&'static str, OperationStats> {
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = BTreeMap::<&'static str, OperationStats>::new();
    for meta in &registry.ops {
        let entry = out.entry(meta.name).or_default();
        entry.seen += meta.root.seen.load(Ordering::Relaxed);
        entry.sampled += meta.root.sampled.load(Ordering::Relaxed);
    }
    out
}

pub(crate) use crate::rng::Wyrand;

thread_local! {
    /// This thread's decision generator; `None` until first used or seeded.
    static RNG: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Seeds the generator that sampling decisions on the current thread draw from, so that they
/// repeat from run to run (in tests). Span ids come from a separate generator, so seeding
/// changes no id and ids never shift decisions.
///
/// Decisions are made where spans open: for async code, on the thread that polls the future
/// (use a current-thread runtime in tests). The tail sampler runs on the export thread and
/// has its own seed, [`TailSampling::seed`].
pub fn seed_thread_rng(seed: u64) {
    RNG.with(|state| state.set(Some(seed)));
}

/// True with probability `rate`, from this thread's generator.
#[inline]
pub(crate) fn roll(rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    RNG.try_with(|state| {
        let mut rng = Wyrand::new(state.get().unwrap_or_else(rand::random::<u64>));
        let keep = rng.roll(rate);
        state.set(Some(rng.0));
        keep
    })
    // Thread-local storage is gone only while the thread exits.
    .unwrap_or(false)
}
