//! The current span of each thread, span ids, and interop with OpenTelemetry's `Context`.
//!
//! The hot path keeps one small `Copy` value per thread (`Current`) instead of an `OTel`
//! `Context`: entering a span is a thread-local read and write, not an `Arc` clone.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};

/// Whether the current scope is traced, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// No span is current on this thread: the next span is a root.
    Idle,
    /// A recorded span is current; children are recorded.
    Sampled,
    /// An unsampled span is current; its whole subtree is not recorded.
    Unsampled,
    /// A span in another process is current (an extracted `traceparent`) and no local span
    /// yet: the next span is a root, its child, decided like any root (a parent-based sampler
    /// keeps `sampled`, the caller's flag).
    Remote { sampled: bool },
}

/// The span that is current on a thread: what a child needs to know about its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Current {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) state: State,
    /// Whether the span's record is open on this thread, so annotations can reach it (not so
    /// in a carried scope on another thread).
    pub(crate) here: bool,
    /// The trace's sampling threshold in this scope, when known (see `sampling`): what a
    /// recorded scope was kept with, or what a caller sent with a remote parent.
    pub(crate) threshold: ScopeThreshold,
}

// The threshold lives in what was padding: entering a span copies no more than before.
const _: () = assert!(std::mem::size_of::<Current>() == 32);

impl Current {
    pub(crate) const IDLE: Current = Current {
        trace_id: 0,
        span_id: 0,
        state: State::Idle,
        here: false,
        threshold: ScopeThreshold::UNKNOWN,
    };
}

/// A rejection threshold (56 bits, see `sampling`) to 12 hex digits, the most a rate is ever
/// converted with, in six bytes; or unknown. A finer threshold from a caller is rounded down,
/// which changes its probability by less than 2^-48.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScopeThreshold([u8; 6]);

impl ScopeThreshold {
    /// No threshold: not a probability sample, or not known to be one.
    pub(crate) const UNKNOWN: ScopeThreshold = ScopeThreshold([0; 6]);

    /// `threshold` (below 2^56) or unknown.
    pub(crate) fn new(threshold: Option<u64>) -> ScopeThreshold {
        let Some(t) = threshold else {
            return ScopeThreshold::UNKNOWN;
        };
        // Zero means unknown, so values are stored plus one; the largest is clamped.
        let stored = ((t >> 8) + 1).min((1 << 48) - 1);
        let mut bytes = [0; 6];
        bytes.copy_from_slice(&stored.to_be_bytes()[2..]);
        ScopeThreshold(bytes)
    }

    /// The threshold, if known.
    pub(crate) fn get(self) -> Option<u64> {
        let mut bytes = [0; 8];
        bytes[2..].copy_from_slice(&self.0);
        let stored = u64::from_be_bytes(bytes);
        stored.checked_sub(1).map(|t| t << 8)
    }
}

/// `th` value (consistent sampling, see `sampling`): hex, trailing zeros removed, `0` for
/// keep-all. `threshold` is below 2^56.
pub(crate) fn encode_threshold(threshold: u64) -> String {
    if threshold == 0 {
        return "0".to_owned();
    }
    let mut hex = format!("{:014x}", threshold.min((1 << 56) - 1));
    hex.truncate(hex.trim_end_matches('0').len());
    hex
}

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(Current::IDLE) };
    /// Scopes left while a scope entered after them was still current (a `tracing` guard
    /// dropped after the call it was entered in ended, guards dropped out of order), as what
    /// each made current and what it would restore: restoring the first restores the second.
    static ENDED: RefCell<LeftOutOfOrder<Current>> = const { RefCell::new(LeftOutOfOrder::new()) };
    /// Whether [`ENDED`] holds anything: the one thing entering and leaving read of it.
    static ANY_ENDED: Cell<bool> = const { Cell::new(false) };
    /// The [`STRAYS`] count this thread last settled at.
    static STRAYS_SEEN: Cell<u32> = const { Cell::new(0) };
    /// Whether OpenTelemetry's current-context thread-local may be read on this thread
    /// ([`with_otel_context`]): it has no try-access, and reading it while the thread destroys
    /// its thread-locals panics, which there aborts the process.
    static OTEL_STATE: Cell<OtelState> = const { Cell::new(OtelState::Untouched) };
    /// Dropped with this thread's thread-locals, just before OpenTelemetry's context.
    static OTEL_WATCH: OtelWatch = const { OtelWatch };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OtelState {
    /// Not read through [`with_otel_context`] on this thread yet.
    Untouched,
    /// Read, and still there.
    Alive,
    /// Being destroyed or gone: the thread is ending.
    Gone,
}

struct OtelWatch;

impl Drop for OtelWatch {
    fn drop(&mut self) {
        OTEL_STATE.set(OtelState::Gone);
    }
}

/// Runs `f` on OpenTelemetry's current `Context`, unless this thread is destroying its
/// thread-locals and the context may be gone (then `None`: no ambient parent, nothing to
/// join). A traced call in a thread-local destructor thus never reads a destroyed context.
///
/// On the first read on a thread, OpenTelemetry's context is read first and [`OTEL_WATCH`]
/// touched after it: thread-locals are destroyed in the reverse order of their first use, so
/// the watch is dropped, and marks the context gone, before the context itself is. A thread
/// whose first call of ours comes from a destructor, after OpenTelemetry's context was used and
/// destroyed, cannot be seen coming: that first read is made under `catch_unwind` (its panic
/// message goes to the panic hook; the traced call goes on, with no ambient parent).
pub(crate) fn with_otel_context<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    match OTEL_STATE.get() {
        OtelState::Gone => None,
        OtelState::Alive => Some(Context::map_current(f)),
        OtelState::Untouched => {
            // The one read that may find the context already destroyed (a first call from a
            // destructor, after the thread's other code used it): its panic is caught here,
            // before it reaches the destructor, where it would abort.
            let Ok(out) = std::panic::catch_unwind(AssertUnwindSafe(|| Context::map_current(f)))
            else {
                OTEL_STATE.set(OtelState::Gone);
                return None;
            };
            if OTEL_WATCH.try_with(|_| ()).is_ok() {
                OTEL_STATE.set(OtelState::Alive);
            }
            Some(out)
        }
    }
}

#[inline]
pub(crate) fn current() -> Current {
    CURRENT.with(Cell::get)
}

/// Makes `next` current and returns what was current before.
#[inline]
pub(crate) fn replace(next: Current) -> Current {
    if ANY_ENDED.get() {
        // Entered again: what is restored to it from now on is this scope, not the one that
        // ended.
        forget_ended(next);
    }
    CURRENT.with(|c| c.replace(next))
}

/// Restores `next` (what a scope found current when it began) and returns what is current
/// now: what `next` itself restored if its scope has ended meanwhile, so that an ended scope
/// is never made current again.
#[inline]
pub(crate) fn set(next: Current) -> Current {
    let next = if ANY_ENDED.get() {
        resolve_ended(next)
    } else {
        next
    };
    CURRENT.with(|c| c.set(next));
    next
}

/// What to restore when leaving a scope that made `inner` current and found `outer`: `outer`
/// if the scope is still current. If a scope entered inside it still is (exits out of order),
/// that one stays current, and restores `outer` in place of `inner` when it is left.
#[inline]
pub(crate) fn leaving(inner: Current, outer: Current) -> Current {
    let cur = current();
    if cur == inner {
        return outer;
    }
    if cur != outer {
        note_ended(inner, outer);
    }
    cur
}

/// Scopes left out of order on one thread, as what each made current (`inner`) and what it
/// would have restored (`outer`): when a scope entered inside it is left later and would
/// restore `inner`, it restores `outer` in its place. The span context ([`leaving`]) and the
/// correlation (`correlation::leave`) keep one each.
#[derive(Debug)]
pub(crate) struct LeftOutOfOrder<T>(Vec<(T, T)>);

impl<T> LeftOutOfOrder<T> {
    /// Entries kept at most: more are lost with the oldest, left by scopes that never end
    /// here (entered in a poll that ended, or exited elsewhere).
    const KEPT: usize = 32;

    pub(crate) const fn new() -> Self {
        LeftOutOfOrder(Vec::new())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn note(&mut self, inner: T, outer: T) {
        if self.0.len() >= Self::KEPT {
            self.0.remove(0);
        }
        self.0.push((inner, outer));
    }

    /// What to restore in place of `next` (`is`: whether two values are the same scope's).
    pub(crate) fn resolve(&mut self, mut next: T, is: impl Fn(&T, &T) -> bool) -> T {
        // Each step takes an entry, so a chain of scopes left out of order ends.
        while let Some(i) = self.0.iter().rposition(|(inner, _)| is(inner, &next)) {
            next = self.0.remove(i).1;
        }
        next
    }

    /// Forgets the entries of scopes that made `inner` current.
    pub(crate) fn forget(&mut self, inner: &T, is: impl Fn(&T, &T) -> bool) {
        self.0.retain(|(i, _)| !is(i, inner));
    }
}

#[cold]
#[inline(never)]
fn note_ended(inner: Current, outer: Current) {
    let _ = ENDED.try_with(|ended| {
        if let Ok(mut ended) = ended.try_borrow_mut() {
            ended.note(inner, outer);
            ANY_ENDED.set(true);
        }
    });
}

#[cold]
#[inline(never)]
fn resolve_ended(mut next: Current) -> Current {
    let _ = ENDED.try_with(|ended| {
        if let Ok(mut ended) = ended.try_borrow_mut() {
            next = ended.resolve(next, Current::eq);
            ANY_ENDED.set(!ended.is_empty());
        }
    });
    next
}

#[cold]
#[inline(never)]
fn forget_ended(next: Current) {
    let _ = ENDED.try_with(|ended| {
        if let Ok(mut ended) = ended.try_borrow_mut() {
            ended.forget(&next, Current::eq);
            ANY_ENDED.set(!ended.is_empty());
        }
    });
}

/// Scopes exited on another thread than the one they are current on (a `tracing` guard held
/// across an `.await` and dropped on another worker), counted so that each thread checks for
/// its own only when there are new ones: see [`note_stray`].
static STRAYS: AtomicU32 = AtomicU32::new(0);

/// Leaves the strays current on the calling thread; `false` when it could not (it is called
/// again at the thread's next span).
static SETTLE_STRAYS: OnceLock<fn() -> bool> = OnceLock::new();

/// Notes a scope exited on this thread but current on another one, which leaves it with
/// `settle` when it opens its next span (the `tracing` bridge's guards, the only scopes that
/// can be exited on another thread).
#[cfg(feature = "tracing")]
pub(crate) fn note_stray(settle: fn() -> bool) {
    let _ = SETTLE_STRAYS.set(settle);
    STRAYS.fetch_add(1, Ordering::Release);
}

/// Whether a scope was exited elsewhere since this thread last settled its strays: a load and
/// a compare.
#[inline]
pub(crate) fn strays_pending() -> bool {
    STRAYS.load(Ordering::Relaxed) != STRAYS_SEEN.get()
}

/// Runs `settle`, and when it returns `true` notes this thread settled up to now.
pub(crate) fn settle_strays_with(settle: impl FnOnce() -> bool) {
    let seen = STRAYS.load(Ordering::Acquire);
    if settle() {
        STRAYS_SEEN.set(seen);
    }
}

/// Settles this thread's strays with what [`note_stray`] was given.
#[cold]
#[inline(never)]
pub(crate) fn settle_strays() {
    settle_strays_with(|| SETTLE_STRAYS.get().is_none_or(|settle| settle()));
}

/// The parent a root span takes from an ambient OpenTelemetry `Context`, if one is set.
pub(crate) struct AmbientParent {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) is_remote: bool,
    pub(crate) sampled: bool,
    /// The threshold the caller sent (`ot=th:` in `tracestate`), if valid.
    pub(crate) threshold: Option<u64>,
}

/// The parent a root span joins: a caller's span extracted by [`crate::propagation`] and
/// current on this thread, else the span of the ambient OpenTelemetry `Context`.
pub(crate) fn root_parent(cur: Current) -> Option<AmbientParent> {
    match cur.state {
        State::Remote { sampled } => Some(AmbientParent {
            trace_id: cur.trace_id,
            span_id: cur.span_id,
            is_remote: true,
            sampled,
            threshold: cur.threshold.get(),
        }),
        _ => ambient_parent(),
    }
}

/// Reads the span of the current OpenTelemetry `Context` (set by the `OTel` SDK or by
/// `tracing-opentelemetry`), so that our spans join a trace that started outside this crate.
fn ambient_parent() -> Option<AmbientParent> {
    with_otel_context(|cx| {
        if !cx.has_active_span() {
            return None;
        }
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| AmbientParent {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            is_remote: sc.is_remote(),
            sampled: sc.is_sampled(),
            threshold: None,
        })
    })
    .flatten()
}

/// An OpenTelemetry [`Context`] whose active span is the current `#[trace]` span.
///
/// Use it to hand our trace to code that speaks OpenTelemetry: an `OTel` propagator, a library
/// instrumented with the `OTel` SDK, or `tracing-opentelemetry`. Outside any traced scope it
/// returns [`Context::current()`] unchanged. An unsampled scope yields a context whose span is
/// marked not sampled, so downstream samplers keep the decision. Under consistent sampling the
/// span's trace state carries the threshold it was kept with (`ot=th:..`), as the span's own
/// OTLP `trace_state` does, so an OpenTelemetry propagator passes it on.
pub fn otel_context() -> Context {
    let cur = current();
    let (flags, is_remote) = match cur.state {
        State::Idle => return otel_current(),
        State::Sampled => (TraceFlags::SAMPLED, false),
        State::Unsampled => (TraceFlags::default(), false),
        State::Remote { sampled: true } => (TraceFlags::SAMPLED, true),
        State::Remote { sampled: false } => (TraceFlags::default(), true),
    };
    if cur.trace_id == 0 || cur.span_id == 0 {
        return otel_current();
    }
    // What the span's `trace_state` is on export (`export::semantics`), and what a caller
    // sent for a remote parent; 0 (keep all) is not written there either.
    let trace_state = cur
        .threshold
        .get()
        .filter(|&t| t > 0 && flags.is_sampled())
        .and_then(|t| {
            let th = format!("th:{}", encode_threshold(t));
            TraceState::from_key_value([("ot", th)]).ok()
        })
        .unwrap_or_default();
    let sc = SpanContext::new(
        TraceId::from(cur.trace_id),
        SpanId::from(cur.span_id),
        flags,
        is_remote,
        trace_state,
    );
    otel_current().with_remote_span_context(sc)
}

/// OpenTelemetry's current `Context`, or an empty one when the thread is ending
/// ([`with_otel_context`]).
fn otel_current() -> Context {
    with_otel_context(Context::clone).unwrap_or_default()
}

/// The trace id and span id of the current span, as OpenTelemetry ids, when a recorded span is
/// current.
pub fn current_span_ids() -> Option<(TraceId, SpanId)> {
    let cur = current();
    (cur.state == State::Sampled).then(|| (TraceId::from(cur.trace_id), SpanId::from(cur.span_id)))
}
