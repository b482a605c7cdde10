//! The current span of each thread, span ids, and interop with OpenTelemetry's `Context`.
//!
//! The hot path keeps one small `Copy` value per thread (`Current`) instead of an `OTel`
//! `Context`: entering a span is a thread-local read and write, not an `Arc` clone.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};

use crate::correlation::{self, Correlation};

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
}

impl Current {
    pub(crate) const IDLE: Current = Current {
        trace_id: 0,
        span_id: 0,
        state: State::Idle,
        here: false,
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
        let mut rng = match state.get() {
            0 => crate::rng::Wyrand::from_os(),
            s => crate::rng::Wyrand::new(s),
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

/// The parent a root span takes from an ambient OpenTelemetry `Context`, if one is set.
pub(crate) struct AmbientParent {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) is_remote: bool,
    pub(crate) sampled: bool,
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
        }),
        _ => ambient_parent(),
    }
}

/// Reads the span of the current OpenTelemetry `Context` (set by the `OTel` SDK or by
/// `tracing-opentelemetry`), so that our spans join a trace that started outside this crate.
fn ambient_parent() -> Option<AmbientParent> {
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
/// Use it to hand our trace to code that speaks OpenTelemetry: an `OTel` propagator, a library
/// instrumented with the `OTel` SDK, or `tracing-opentelemetry`. Outside any traced scope it
/// returns [`Context::current()`] unchanged. An unsampled scope yields a context whose span is
/// marked not sampled, so downstream samplers keep the decision.
pub fn otel_context() -> Context {
    let cur = current();
    let (flags, is_remote) = match cur.state {
        State::Idle => return Context::current(),
        State::Sampled => (TraceFlags::SAMPLED, false),
        State::Unsampled => (TraceFlags::default(), false),
        State::Remote { sampled: true } => (TraceFlags::SAMPLED, true),
        State::Remote { sampled: false } => (TraceFlags::default(), true),
    };
    if cur.trace_id == 0 || cur.span_id == 0 {
        return Context::current();
    }
    let sc = SpanContext::new(
        TraceId::from(cur.trace_id),
        SpanId::from(cur.span_id),
        flags,
        is_remote,
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

/// The trace context and correlation of a scope, to carry them where they do not follow by
/// themselves: into `tokio::spawn`ed tasks, other threads, thread pools.
///
/// ```
/// use honeyhive_runtime::{Carried, trace};
///
/// #[trace]
/// fn work(n: u32) -> u32 { n * 2 }
///
/// #[trace]
/// fn parent() -> u32 {
///     let carried = Carried::current();
///     std::thread::spawn(move || carried.run(|| work(21))).join().unwrap()
/// }
/// # assert_eq!(parent(), 42);
/// ```
#[derive(Clone, Debug)]
pub struct Carried {
    span: Current,
    correlation: Option<Arc<Correlation>>,
}

impl Carried {
    /// A snapshot of the current scope: span, request id, session, user.
    pub fn current() -> Carried {
        crate::span::note_carried();
        Carried {
            span: current(),
            correlation: correlation::current(),
        }
    }

    /// Whether there is nothing to carry (no span, no correlation).
    pub fn is_empty(&self) -> bool {
        self.span.state == State::Idle && self.correlation.is_none()
    }

    pub(crate) fn from_parts(span: Current, correlation: Option<Arc<Correlation>>) -> Carried {
        Carried { span, correlation }
    }

    fn enter(&self) -> CarriedScope {
        CarriedScope {
            // The carried span's record is not open here: what is annotated in this scope
            // cannot reach it.
            span: replace(Current {
                here: false,
                ..self.span
            }),
            correlation: correlation::replace(self.correlation.clone()),
        }
    }

    /// Runs `f` in this scope: spans it records are children of the carried span and carry
    /// its request id, session and user.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _scope = self.enter();
        f()
    }

    /// Runs `future` in this scope wherever it is polled.
    pub fn instrument<F: Future>(self, future: F) -> WithContext<F> {
        WithContext {
            carried: self,
            future,
        }
    }
}

/// Restores the previous scope, also on panic, and hands ended spans over when the thread
/// leaves traced code.
struct CarriedScope {
    span: Current,
    correlation: Option<Arc<Correlation>>,
}

impl Drop for CarriedScope {
    fn drop(&mut self) {
        set(self.span);
        correlation::replace(self.correlation.take());
        if self.span.state == State::Idle {
            crate::sink::flush_thread();
        }
    }
}

/// Wraps `f` so that it runs in the current scope wherever it is called, e.g. on a thread
/// pool or `std::thread::spawn`.
pub fn bind_current<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let carried = Carried::current();
    move || carried.run(f)
}

/// A future that runs in a carried scope; see [`FutureExt::in_current_context`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WithContext<F> {
    carried: Carried,
    future: F,
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned and never moved; `carried` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let _scope = this.carried.enter();
        future.poll(cx)
    }
}

/// Carries the current scope into a future that will run elsewhere.
pub trait FutureExt: Future + Sized {
    /// Runs this future in the scope current now (span, request id, session, user).
    fn in_current_context(self) -> WithContext<Self> {
        Carried::current().instrument(self)
    }
}

impl<F: Future> FutureExt for F {}

/// `tokio::spawn`, carrying the current span, request id, session and user into the task.
///
/// # Panics
/// Like `tokio::spawn`, when called outside a tokio runtime.
#[cfg(feature = "tokio")]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_context())
}
