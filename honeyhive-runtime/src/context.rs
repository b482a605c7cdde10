//! The current span of each thread, span ids, and interop with OpenTelemetry's `Context`.
//!
//! The hot path keeps one small `Copy` value per thread ([`Current`]) instead of an OTel
//! `Context`: entering a span is a thread-local read and write, not an `Arc` clone.

use std::cell::Cell;

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
}

/// The span that is current on a thread: what a child needs to know about its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Current {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) state: State,
}

impl Current {
    pub(crate) const IDLE: Current = Current {
        trace_id: 0,
        span_id: 0,
        state: State::Idle,
    };
}

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(Current::IDLE) };
    // wyrand state; 0 means "not seeded yet" (seeding reads the OS once per thread).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

#[inline]
pub(crate) fn current() -> Current {
    CURRENT.with(Cell::get)
}

/// Makes `next` current and returns what was current before.
#[inline]
pub(crate) fn replace(next: Current) -> Current {
    CURRENT.with(|c| c.replace(next))
}

#[inline]
pub(crate) fn set(next: Current) {
    CURRENT.with(|c| c.set(next));
}

/// A fast, non-cryptographic 64-bit random number (wyrand), per thread.
///
/// Span ids only need to be unique with high probability, so a counter-based generator seeded
/// from the OS is enough and costs about a nanosecond.
#[inline]
pub(crate) fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = rand::random::<u64>() | 1;
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        #[allow(clippy::cast_possible_truncation)] // folding 128 bits into 64 is the point
        let folded = (t as u64) ^ ((t >> 64) as u64);
        folded
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

/// The parent a root span takes from an ambient OpenTelemetry `Context`, if one is set.
pub(crate) struct AmbientParent {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) is_remote: bool,
    pub(crate) sampled: bool,
}

/// Reads the span of the current OpenTelemetry `Context` (set by the OTel SDK, by
/// `tracing-opentelemetry`, or by [`crate::propagation`]-style extraction), so that our spans
/// join a trace that started outside this crate.
pub(crate) fn ambient_parent() -> Option<AmbientParent> {
    Context::map_current(|cx| {
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
        })
    })
}

/// An OpenTelemetry [`Context`] whose active span is the current `#[trace]` span.
///
/// Use it to hand our trace to code that speaks OpenTelemetry: an OTel propagator, a library
/// instrumented with the OTel SDK, or `tracing-opentelemetry`. Outside any traced scope it
/// returns [`Context::current()`] unchanged. An unsampled scope yields a context whose span is
/// marked not sampled, so downstream samplers keep the decision.
pub fn otel_context() -> Context {
    let cur = current();
    let flags = match cur.state {
        State::Idle => return Context::current(),
        State::Sampled => TraceFlags::SAMPLED,
        State::Unsampled => TraceFlags::default(),
    };
    if cur.trace_id == 0 || cur.span_id == 0 {
        return Context::current();
    }
    let sc = SpanContext::new(
        TraceId::from(cur.trace_id),
        SpanId::from(cur.span_id),
        flags,
        false,
        TraceState::NONE,
    );
    Context::current().with_remote_span_context(sc)
}

/// The trace id and span id of the current span, as OpenTelemetry ids, when a recorded span is
/// current.
pub fn current_span_ids() -> Option<(TraceId, SpanId)> {
    let cur = current();
    (cur.state == State::Sampled).then(|| (TraceId::from(cur.trace_id), SpanId::from(cur.span_id)))
}
