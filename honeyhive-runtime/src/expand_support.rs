//! Generic helpers that macro-generated code calls, so that each expansion stays small.
//! Not public API.

use std::convert::Infallible;
use std::ops::ControlFlow;

use futures_core::Stream;

use crate::span::Span;
use crate::stream::{StreamLog, TracedStream};

/// `?` for a body that runs inline in a `#[track_caller]` function (the `Try` trait is not
/// stable): `e?` becomes a `match` on `e.hh_branch()` that leaves the body with the residual.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`?` on `{Self}` in a traced `#[track_caller]` function",
    label = "`#[trace]` and `#[retry]` rewrite `?` in a `#[track_caller]` body, for `Result` and `Option` only",
    note = "use `match` here, or move this code into a helper function"
)]
pub trait Branch {
    /// The value `e?` evaluates to.
    type Output;
    /// What leaves the body.
    type Residual;
    /// Continue with the value, or break with the residual.
    fn hh_branch(self) -> ControlFlow<Self::Residual, Self::Output>;
}

impl<T, E> Branch for Result<T, E> {
    type Output = T;
    type Residual = Result<Infallible, E>;
    #[inline]
    fn hh_branch(self) -> ControlFlow<Self::Residual, T> {
        match self {
            Ok(v) => ControlFlow::Continue(v),
            Err(e) => ControlFlow::Break(Err(e)),
        }
    }
}

impl<T> Branch for Option<T> {
    type Output = T;
    type Residual = Option<Infallible>;
    #[inline]
    fn hh_branch(self) -> ControlFlow<Self::Residual, T> {
        match self {
            Some(v) => ControlFlow::Continue(v),
            None => ControlFlow::Break(None),
        }
    }
}

/// The function's return value built from a residual, as `?` does (`Err` through `From`).
#[doc(hidden)]
pub trait FromResidual<R> {
    /// The value that leaves the body.
    fn hh_from_residual(residual: R) -> Self;
}

impl<T, E, F: From<E>> FromResidual<Result<Infallible, E>> for Result<T, F> {
    #[inline]
    fn hh_from_residual(residual: Result<Infallible, E>) -> Self {
        match residual {
            Err(e) => Err(From::from(e)),
            Ok(never) => match never {},
        }
    }
}

impl<T> FromResidual<Option<Infallible>> for Option<T> {
    #[inline]
    fn hh_from_residual(_: Option<Infallible>) -> Self {
        None
    }
}

/// The value a fn declared `-> impl Stream` returned, to be told apart by its type: the
/// span follows a `futures_core::Stream` (what `futures`, `futures-util` and `tokio-stream`
/// re-export) until it ends; a value of another trait named `Stream` is returned unchanged.
#[doc(hidden)]
pub struct MaybeStream<'a, T>(pub &'a T);

/// The returned value is a `futures_core::Stream`.
#[doc(hidden)]
pub struct IsStream;
/// The returned value is something else.
#[doc(hidden)]
pub struct NotStream;

/// Chosen when the value is a stream (autoref specialization: one `&` more than
/// [`NotStreamProbe`]).
#[doc(hidden)]
pub trait StreamProbe {
    /// The kind of the value.
    #[inline]
    fn hh_stream_kind(&self) -> IsStream {
        IsStream
    }
}
impl<T: Stream> StreamProbe for &MaybeStream<'_, T> {}

/// Chosen for any other value.
#[doc(hidden)]
pub trait NotStreamProbe {
    /// The kind of the value.
    #[inline]
    fn hh_stream_kind(&self) -> NotStream {
        NotStream
    }
}
impl<T> NotStreamProbe for MaybeStream<'_, T> {}

impl IsStream {
    /// The stream, owning the span until it ends.
    #[inline]
    pub fn wrap<S: Stream>(
        self,
        span: Span,
        stream: S,
        record_output: bool,
        observe: fn(&S::Item, &mut StreamLog, usize),
    ) -> TracedStream<S> {
        TracedStream::new(span, stream, record_output, observe)
    }
}

impl NotStream {
    /// The value unchanged; the span ends here.
    #[inline]
    pub fn wrap<T>(
        self,
        span: Span,
        value: T,
        _record_output: bool,
        _observe: fn(&(), &mut StreamLog, usize),
    ) -> T {
        drop(span);
        value
    }
}

/// What `metadata(key = value)` needs of a value: `Debug` (its message does not suggest
/// `skip`, which is for arguments).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[trace]` cannot record this metadata value: `{Self}` does not implement `Debug`",
    label = "not `Debug`, so it cannot be recorded",
    note = "record a `Debug` value instead (e.g. a field or `.to_string()`), remove the entry from `metadata(..)`, or implement `Debug` for `{Self}`"
)]
pub trait MetadataValue: std::fmt::Debug {}
impl<T: std::fmt::Debug + ?Sized> MetadataValue for T {}

impl crate::capture::TextKind {
    /// A metadata value: as [`Self::value`].
    #[inline]
    pub fn metadata<T: crate::capture::AsText + ?Sized>(
        self,
        v: &T,
        cap: usize,
    ) -> opentelemetry::Value {
        self.value(v, cap)
    }
}

impl crate::capture::NumberKind {
    /// A metadata value: as [`Self::value`].
    #[inline]
    pub fn metadata<T: crate::capture::AsNumber + ?Sized>(
        self,
        v: &T,
        cap: usize,
    ) -> opentelemetry::Value {
        self.value(v, cap)
    }
}

impl crate::capture::DebugKind {
    /// A metadata value: as [`Self::value`], with its own message when not `Debug`.
    #[inline]
    pub fn metadata<T: MetadataValue + ?Sized>(self, v: &T, cap: usize) -> opentelemetry::Value {
        self.value(v, cap)
    }
}

/// What `#[retry(when = path)]` names.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`when = ..` must name a function `fn(&E) -> bool`, where `E` is the error type `{E}`",
    label = "expected `fn(&{E}) -> bool`",
    note = "`when` is called with each failed attempt's error and returns whether to retry; for a `Decision` (retry, retry after a delay, stop), use `classify = ..`"
)]
pub trait WhenFn<E: ?Sized> {
    /// Whether to retry after `error`.
    fn hh_when(self, error: &E) -> bool;
}
impl<E: ?Sized, F: FnOnce(&E) -> bool> WhenFn<E> for F {
    #[inline]
    fn hh_when(self, error: &E) -> bool {
        self(error)
    }
}

/// `when = path`: retry or stop.
#[doc(hidden)]
#[inline]
pub fn retry_when<E: ?Sized>(when: impl WhenFn<E>, error: &E) -> crate::retry::Decision {
    if when.hh_when(error) {
        crate::retry::Decision::Retry
    } else {
        crate::retry::Decision::Stop
    }
}

/// What `#[retry(classify = path)]` names.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`classify = ..` must name a function `fn(&E) -> Decision`, where `E` is the error type `{E}`",
    label = "expected `fn(&{E}) -> honeyhive_runtime::retry::Decision`",
    note = "`classify` is called with each failed attempt's error; for a plain yes or no, use `when = ..` with `fn(&E) -> bool`"
)]
pub trait ClassifyFn<E: ?Sized> {
    /// What to do after `error`.
    fn hh_classify(self, error: &E) -> crate::retry::Decision;
}
impl<E: ?Sized, F: FnOnce(&E) -> crate::retry::Decision> ClassifyFn<E> for F {
    #[inline]
    fn hh_classify(self, error: &E) -> crate::retry::Decision {
        self(error)
    }
}

/// `classify = path`.
#[doc(hidden)]
#[inline]
pub fn retry_classify<E: ?Sized>(
    classify: impl ClassifyFn<E>,
    error: &E,
) -> crate::retry::Decision {
    classify.hh_classify(error)
}

/// The span of an `async fn` while its body runs: the expansion pins the body's future in the
/// fn's own state and polls it through [`Scoped::poll`], which makes the span current for the
/// poll (as `Instrumented` does). The body is held by the fn's state, not by a wrapper type
/// around it, so each traced level adds one level to the future's type, not two, and deep
/// chains of traced async fns stay within rustc's recursion limit.
///
/// Dropped before the body completed (the call was cancelled), the span ends marked
/// `honeyhive.cancelled`; the body's future, declared after it, is dropped first, so the
/// spans inside end before this one.
#[doc(hidden)]
#[derive(Debug)]
pub struct Scoped {
    span: Span,
    done: bool,
}

impl Scoped {
    /// Holds `span` for the call.
    #[inline]
    pub fn new(span: Span) -> Scoped {
        Scoped { span, done: false }
    }

    /// The span, to record on.
    #[inline]
    pub fn span(&mut self) -> &mut Span {
        &mut self.span
    }

    /// Polls the body with the span current.
    #[inline]
    pub fn poll<F: std::future::Future>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        body: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let poll = self.span.in_scope(|| body.poll(cx));
        if poll.is_ready() {
            self.done = true;
        }
        poll
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        if !self.done
            && let Some(record) = self.span.recording()
        {
            record.attr("honeyhive.cancelled", opentelemetry::Value::Bool(true));
        }
    }
}
