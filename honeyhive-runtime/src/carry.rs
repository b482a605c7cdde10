//! Carrying a scope (the current span and the correlation) to where it does not follow by
//! itself: other threads, thread pools, spawned tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use crate::context::{self, Current, State};
use crate::correlation::{self, Correlation};

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
            span: context::current(),
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
            span: context::replace(Current {
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
        context::set(self.span);
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
