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
//! # Consistent across services
//!
//! Every decision above is the OpenTelemetry specification's consistent probability sampling
//! ("`TraceState`: Probability Sampling"): a rate becomes a rejection threshold `T` (to 4
//! significant hex digits, more for small rates), and a trace is kept iff its randomness `R`,
//! the low 56 bits of its trace id (or the caller's `ot=rv:`), is at least `T`. Every service
//! and every nested `sample_rate` compares the same `R`, so a trace kept at some rate is kept
//! at every higher one: a service at 10% keeps a subset of what a service at 50% keeps, a
//! nested `sample_rate` a subset of its parent's, and the stricter threshold holds below it.
//!
//! Kept traces send their threshold on as `ot=th:<T>` in `tracestate` (when below
//! probability 1), with the W3C level 2 random flag on our trace ids. A parent-based sampler
//! keeps the caller's threshold (a declared rate may only raise it); a caller that sent none
//! kept the trace with an unknown probability, so no `honeyhive.sample_rate` is claimed for
//! it. The recorded rate is the threshold's probability: 0.2 is kept, and reported, as
//! 0.19999695 (`th:cccd`). A span with a nested `sample_rate` carries the rate too.
//!
//! ```
//! use std::collections::HashMap;
//! use honeyhive_runtime::{propagation, trace};
//!
//! #[trace(sample_rate = 0.1)]
//! fn call_backend() -> HashMap<String, String> {
//!     let mut headers = HashMap::new();
//!     propagation::inject(&mut headers);
//!     headers
//! }
//!
//! let _recorder = honeyhive_runtime::testing::Recorder::start();
//! // The caller kept this trace at 50% (`th:8`); its randomness (the trace id's last 14 hex
//! // digits, f0000000000000) passes 10% too.
//! let caller = HashMap::from([
//!     ("traceparent".to_owned(), "00-4bf92f3577b34da6a3f0000000000000-00f067aa0ba902b7-03".to_owned()),
//!     ("tracestate".to_owned(), "ot=th:8".to_owned()),
//! ]);
//! let headers = propagation::extract(&caller).run(call_backend);
//! assert_eq!(headers["tracestate"], "ot=th:e666"); // raised to 10%: a subset of the caller's
//! ```
//!
//! Rules, users and the adaptive rate are consulted at roots only; a span inside a trace costs
//! no more than before.
//!
//! # Rates
//!
//! A rate given to sampling ([`Sampler::Ratio`], [`Rule::new`], [`Adaptive::min_rate`] and
//! [`initial_rate`](Adaptive::initial_rate), [`TailSampling::new`]) is clamped to `[0, 1]`
//! where it is taken, and a rate that is not a number is 1: it keeps everything, as an
//! `OTEL_TRACES_SAMPLER_ARG` that is not a probability does (with a warning in
//! [`Settings::warnings`](crate::Settings::warnings)). A bad value never turns tracing off.
//! [`Adaptive::new`] takes a target that is not a number as no limit.
//!
//! # Tail sampling
//!
//! [`TailSampling`] decides on the export thread, once a trace's root has ended: keep every
//! trace with an error or a slow root, keep the rest at a probability. See its docs.
//!
//! # Determinism
//!
//! Decisions are made from trace ids; [`seed_thread_rng`] makes the trace ids of the roots a
//! thread starts, and so their decisions, repeatable, the tail sampler's too; the adaptive
//! sampler takes a [`Clock`] ([`ManualClock`] in tests).

mod adaptive;
pub(crate) mod consistent;
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
    /// Record this fraction of root spans, in `[0, 1]` (see [Rates](crate::sampling#rates)).
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
    /// A fraction of roots, in `[0, 1]` (see [Rates](crate::sampling#rates)).
    Ratio(f64),
}

/// The probability a rate given to sampling is taken as (see [Rates](crate::sampling#rates)):
/// clamped to `[0, 1]`, and 1 for a rate that is not a number.
pub(crate) fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        1.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

impl Sampler {
    fn root_rate(self) -> f64 {
        match self {
            Sampler::AlwaysOn | Sampler::ParentBased(RootSampler::AlwaysOn) => 1.0,
            Sampler::AlwaysOff | Sampler::ParentBased(RootSampler::AlwaysOff) => 0.0,
            Sampler::Ratio(r) | Sampler::ParentBased(RootSampler::Ratio(r)) => clamp_rate(r),
        }
    }

    /// Reads `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` values.
    ///
    /// Names are compared case-insensitively, as the OpenTelemetry specification says of enum
    /// values. For the ratio samplers, an argument that is missing, empty or not a
    /// probability in `[0, 1]` (`abc`, `0,1`, `5`, `-1`, `NaN`) gives 1.0, the
    /// specification's default; [`Builder::resolve`](crate::Builder::resolve) reports it in
    /// [`Settings::warnings`](crate::Settings::warnings).
    ///
    /// Unknown names give `None` (the caller keeps its default and reports it).
    pub fn from_otel_env(name: &str, arg: Option<&str>) -> Option<Sampler> {
        Sampler::from_otel_env_reporting(name, arg, &mut Vec::new())
    }

    /// [`Sampler::from_otel_env`], pushing a warning for an argument it does not use as given.
    pub(crate) fn from_otel_env_reporting(
        name: &str,
        arg: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> Option<Sampler> {
        let name = name.trim().to_ascii_lowercase();
        let mut ratio = || otel_ratio(&name, arg, warnings);
        Some(match name.as_str() {
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

/// The ratio `OTEL_TRACES_SAMPLER_ARG` gives sampler `name`: 1.0, with a warning, when it is
/// missing or not a probability.
fn otel_ratio(name: &str, arg: Option<&str>, warnings: &mut Vec<String>) -> f64 {
    let Some(raw) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        warnings.push(format!(
            "OTEL_TRACES_SAMPLER={name} without OTEL_TRACES_SAMPLER_ARG; using ratio 1.0 \
             (every trace)"
        ));
        return 1.0;
    };
    match raw.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
        _ => {
            warnings.push(format!(
                "OTEL_TRACES_SAMPLER_ARG={raw:?} is not a probability in [0, 1]; using ratio \
                 1.0 (every trace)"
            ));
            1.0
        }
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

/// A sampling decision, and what the span records if it is kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Decision {
    pub(crate) keep: bool,
    /// The probability the trace is kept with from this span on (`honeyhive.sample_rate`),
    /// when known: the probability of the threshold tested, also when the test failed (what
    /// a decision [`Pinned::Follow`]ing this one records).
    pub(crate) rate: Option<f64>,
    /// The trace's threshold from this span on, when known and passed (`ot=th:` downstream).
    pub(crate) threshold: Option<u64>,
}

/// A decision made in advance for the next span that rolls (`span::pin_next_roll`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pinned {
    /// The decision of an earlier span this one repeats (`#[retry]`: every attempt follows
    /// the first), kept or dropped with it: a kept span stands for as many as that one did, so
    /// it records the rate it is decided at, though not the threshold when its own randomness
    /// fails it.
    Follow(bool),
    /// Recorded whatever the sampler says (feedback someone asked for).
    Always,
}

impl Decision {
    const DROP: Decision = Decision {
        keep: false,
        rate: None,
        threshold: None,
    };

    /// The decision of a test of threshold `threshold` (the trace's from this span on, `None`
    /// when its probability is unknown), which the trace's randomness passes or not.
    fn tested(pass: bool, threshold: Option<u64>) -> Decision {
        Decision {
            keep: pass,
            rate: threshold.map(consistent::probability),
            threshold: threshold.filter(|_| pass),
        }
    }

    /// This decision overridden by one made in advance.
    pub(crate) fn pinned(self, pinned: Option<Pinned>) -> Decision {
        match pinned {
            Some(Pinned::Follow(keep)) => Decision {
                keep,
                // A rate of 0 decided nothing this span could stand for.
                rate: self.rate.filter(|&r| r > 0.0),
                threshold: self.threshold.filter(|_| keep),
            },
            // Kept against its randomness, with a probability nothing tells.
            Some(Pinned::Always) if !self.keep => Decision {
                keep: true,
                ..Decision::DROP
            },
            None | Some(Pinned::Always) => self,
        }
    }
}

/// A root's parent in another service or in the OpenTelemetry SDK.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Upstream {
    pub(crate) sampled: bool,
    /// The threshold it sent (`ot=th:`), if valid.
    pub(crate) threshold: Option<u64>,
}

/// Decides whether a root span is recorded: the one decision every root takes, whether it
/// starts trace `trace_id` or joins it from another service (an extracted `traceparent`) or
/// from the OpenTelemetry SDK (`upstream`), overridden by `pinned` if it was made in advance.
/// Counts the root in [`sampling_stats`] as it is recorded, or not.
pub(crate) fn decide_root(
    meta: &'static Meta,
    trace_id: u128,
    upstream: Option<Upstream>,
    pinned: Option<Pinned>,
) -> Decision {
    with_installed(|installed| {
        let state = &meta.root;
        state.register(meta, installed);
        let (decision, adaptive) = installed.decide(meta, trace_id, upstream);
        let decision = decision.pinned(pinned);
        state.seen.fetch_add(1, Ordering::Relaxed);
        if decision.keep {
            state.sampled.fetch_add(1, Ordering::Relaxed);
            if adaptive {
                state.window.kept();
            }
        }
        decision
    })
}

/// Decides whether a span declaring `sample_rate = rate` inside recorded trace `trace_id` is
/// recorded, with its subtree: by the same randomness as the trace's other decisions, so it
/// keeps a subset of what its parent was kept with (`scope`, the parent's threshold). The
/// stricter threshold holds from there on.
pub(crate) fn decide_nested(rate: f64, trace_id: u128, scope: Option<u64>) -> Decision {
    let t = consistent::threshold(rate);
    Decision::tested(passes(t, trace_id), scope.map(|s| s.max(t)))
}

/// Whether trace `trace_id` is kept at threshold `t`: `R >= T`.
fn passes(t: u64, trace_id: u128) -> bool {
    consistent::passes(t, randomness(trace_id))
}

/// The trace's randomness `R`: the caller's explicit `rv` if it sent one, else the least
/// significant 56 bits of the trace id (random, W3C level 2; presumed so for a caller's).
fn randomness(trace_id: u128) -> u64 {
    explicit_randomness(trace_id).unwrap_or_else(|| consistent::trace_id_randomness(trace_id))
}

/// The randomness the caller of the current scope sent for trace `trace_id` (`ot=rv:`), if
/// any: a local root records it, for the tail sampler to decide by.
pub(crate) fn explicit_randomness(trace_id: u128) -> Option<u64> {
    crate::correlation::caller_trace()
        .filter(|caller| caller.trace_id == trace_id)
        .and_then(|caller| caller.rv)
}

impl Installed {
    /// The decision for a root, and whether the adaptive sampler chose its rate.
    fn decide(
        &self,
        meta: &'static Meta,
        trace_id: u128,
        upstream: Option<Upstream>,
    ) -> (Decision, bool) {
        if let Some(upstream) = upstream
            && self.parent_based
        {
            // A trace started elsewhere keeps its decision and threshold; a declared rate may
            // thin it (a subset: the stricter threshold holds).
            if !upstream.sampled {
                return (Decision::DROP, false);
            }
            // A threshold the sampled flag contradicts is not trusted (the specification
            // erases it).
            let known = upstream.threshold.filter(|&t| passes(t, trace_id));
            let decision = match meta.sample_rate {
                Some(rate) => decide_nested(rate, trace_id, known),
                None => Decision::tested(true, known),
            };
            return (decision, false);
        }
        let (rate, adaptive) = self.local_rate(meta);
        let t = consistent::threshold(rate);
        (Decision::tested(passes(t, trace_id), Some(t)), adaptive)
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
    /// The generator of this thread's trace ids once [`seed_thread_rng`] seeded it.
    static SEEDED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes sampling decisions on the current thread repeat from run to run (in tests): the
/// trace ids of the roots it starts, which decisions are made from, are drawn from a
/// generator seeded with `seed`. Span ids come from a separate generator, so seeding changes
/// no span id.
///
/// Decisions are made where spans open: for async code, on the thread that polls the future
/// (use a current-thread runtime in tests). A trace that arrives from another service is
/// decided from its own trace id. The tail sampler's keep at its rate follows from the trace id
/// too.
pub fn seed_thread_rng(seed: u64) {
    SEEDED.with(|state| state.set(Some(seed)));
}

/// A new, random, non-zero trace id: from the seeded generator of this thread, if any.
pub(crate) fn new_trace_id() -> u128 {
    SEEDED
        .try_with(|state| {
            let mut rng = Wyrand::new(state.get()?);
            let id = loop {
                let id = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                if id != 0 {
                    break id;
                }
            };
            state.set(Some(rng.0));
            Some(id)
        })
        .ok()
        .flatten()
        .unwrap_or_else(crate::rng::new_trace_id)
}
