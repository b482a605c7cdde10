//! Generic helpers that macro-generated code calls, so that each expansion stays small.
//! Not public API.

use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::fmt::{Debug, Display};

use futures_core::Stream;

use crate::capture::{
    AsNumber, AsText, DebugKind, ErrDebug, ErrDisplay, ErrOpaque, NumberKind, Recordable, SkipKind,
    TextKind,
};
use crate::record::Meta;
use crate::span::{Span, SpanRecord};
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

/// Evaluates the expression of a `metadata(key = expr)`, which runs only when the span is
/// recorded: a panic in it is caught and recorded under the key as `<panicked while
/// evaluating: message>` (`None`), so the call goes on as it does when the span is not
/// sampled and the expression never runs.
#[doc(hidden)]
#[inline]
pub fn eval_metadata<T>(
    record: &mut SpanRecord,
    key: &'static str,
    expr: impl FnOnce() -> T,
) -> Option<T> {
    match crate::capture::guarded(expr) {
        Ok(value) => Some(value),
        Err(message) => {
            let marker =
                crate::capture::panicked_marker_while("evaluating", &message, record.cap());
            record.attr(key, opentelemetry::Value::String(marker));
            None
        }
    }
}

// Inputs and metadata: one call per value, which reads the cap and records under the key.
impl TextKind {
    /// Records an argument.
    #[inline]
    pub fn record<T: AsText + ?Sized>(self, record: &mut SpanRecord, key: &'static str, v: &T) {
        record.attr(key, self.value(v, record.cap()));
    }

    /// Records a metadata value.
    #[inline]
    pub fn metadata<T: AsText + ?Sized>(self, record: &mut SpanRecord, key: &'static str, v: &T) {
        self.record(record, key, v);
    }
}

impl NumberKind {
    /// Records an argument.
    #[inline]
    pub fn record<T: AsNumber + ?Sized>(self, record: &mut SpanRecord, key: &'static str, v: &T) {
        record.attr(key, self.value(v, record.cap()));
    }

    /// Records a metadata value.
    #[inline]
    pub fn metadata<T: AsNumber + ?Sized>(self, record: &mut SpanRecord, key: &'static str, v: &T) {
        self.record(record, key, v);
    }
}

impl DebugKind {
    /// Records an argument (its message, when not `Debug`, says to skip it).
    #[inline]
    pub fn record<T: Recordable + ?Sized>(self, record: &mut SpanRecord, key: &'static str, v: &T) {
        record.attr(key, self.value(v, record.cap()));
    }

    /// Records a metadata value, with its own message when not `Debug`.
    #[inline]
    pub fn metadata<T: MetadataValue + ?Sized>(
        self,
        record: &mut SpanRecord,
        key: &'static str,
        v: &T,
    ) {
        record.attr(key, self.value(v, record.cap()));
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

/// The span of an `async fn` that stays one (another attribute below `#[trace]`; see
/// [`TracedCall`] for the others) while its body runs: the expansion pins the body's future in the
/// fn's own state and awaits [`Scoped::run`], which makes the span current for each poll (as
/// `Instrumented` does). The body is held by the fn's state, not by a wrapper type around it,
/// so each traced level adds one level to the future's type, not two, and deep chains of
/// traced async fns reach rustc's recursion limit later.
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

    /// The body, polled with the span current. A named future rather than a `poll_fn`
    /// closure: each traced fn instantiates this one `poll`, and nothing else, per body.
    #[inline]
    pub fn run<'a, F: Future>(&'a mut self, body: Pin<&'a mut F>) -> ScopedRun<'a, F> {
        ScopedRun { scoped: self, body }
    }
}

/// The future [`Scoped::run`] returns.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ScopedRun<'a, F> {
    scoped: &'a mut Scoped,
    body: Pin<&'a mut F>,
}

impl<F: Future> Future for ScopedRun<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Both fields are references: the struct is `Unpin`.
        let this = &mut *self;
        let scope = this.scoped.span.poll_scope();
        let poll = this.body.as_mut().poll(cx);
        drop(scope);
        if poll.is_ready() {
            this.scoped.done = true;
        }
        poll
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        if !self.done {
            mark_cancelled(&mut self.span);
        }
    }
}

/// The future a traced `async fn` returns: `#[trace]` writes the fn as a plain fn returning
/// this, around a closure that records the arguments and returns the body's `async move`
/// block. One coroutine per traced fn (the body's), a closure and this generic type, instead
/// of the fn's own coroutine around the body's: the second coroutine alone cost more compile
/// time than the rest of the expansion.
///
/// As for an `async fn`, nothing happens at the call: the first poll opens the span (so its
/// parent is what is current there: `propagation::extract(..).instrument(traced(..))` and
/// `Carried::instrument` work as for any future) and runs the closure, and a future dropped
/// unpolled records nothing. The span is current during each poll; when the body is done,
/// `done` records the output on the span and gives the value back, and the span ends then, not
/// when the future is dropped. Dropped before it is done (the call was cancelled), the span
/// ends marked `honeyhive.cancelled`; the body, declared first, is dropped first, so the spans
/// inside end before this one.
#[doc(hidden)]
#[must_use = "futures do nothing unless polled"]
pub struct TracedCall<C, F, D> {
    body: Body<C, F>,
    span: Span,
    meta: &'static Meta,
    done: Option<D>,
}

enum Body<C, F> {
    /// Not polled yet: what makes the body, and records the arguments.
    Start(C),
    Run(F),
    Done,
}

// SAFETY: the fields other than `body` (the span, the `&'static` metadata, `done`) are
// `Send` when `D` is (`Span` is `Send`: asserted below). Written out rather than derived so
// that proving a traced future `Send` takes one step per traced fn, not three (through
// `Body` and its variants): a chain of awaited traced fns meets rustc's recursion limit as
// late as an untraced one would.
unsafe impl<C: Send, F: Send, D: Send> Send for TracedCall<C, F, D> {}

const _: () = {
    const fn send<T: Send>() {}
    send::<Span>();
};

impl<C, F, D> std::fmt::Debug for TracedCall<C, F, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedCall")
            .field("name", &self.meta.name)
            .finish_non_exhaustive()
    }
}

impl<C, F, D, R> TracedCall<C, F, D>
where
    C: FnOnce(&mut Span) -> F,
    F: Future,
    D: FnOnce(&mut Span, F::Output) -> R,
{
    /// The call of the fn `meta` describes: `start` records the arguments on the span and
    /// returns the body; `done` gets its output.
    #[inline]
    pub fn new(meta: &'static Meta, start: C, done: D) -> Self {
        TracedCall {
            body: Body::Start(start),
            span: Span::ended(),
            meta,
            done: Some(done),
        }
    }
}

/// The future a traced sync fn returning a future gives back (`fn f() -> impl Future`): the
/// body ran at the call, in the span; this polls the future it returned with the span current
/// and, when it is done, gives its output to `done` (which records it) and ends the span. A
/// named type rather than an `async` block around the future, so that it is `Unpin`, `Send`
/// and `Sync` exactly when the user's future is, as the untraced fn's opaque type would be,
/// and costs no coroutine. Dropped before it is done, the span ends marked
/// `honeyhive.cancelled`, after the future (declared first).
#[doc(hidden)]
#[must_use = "futures do nothing unless polled"]
pub struct TracedFuture<F, D> {
    future: F,
    span: Span,
    done: Option<D>,
}

impl<F, D, R> TracedFuture<F, D>
where
    F: Future,
    D: FnOnce(&mut Span, F::Output) -> R,
{
    /// `future`, made in `span`, which stays open while it runs.
    #[inline]
    pub fn new(span: Span, future: F, done: D) -> Self {
        TracedFuture {
            future,
            span,
            done: Some(done),
        }
    }
}

impl<F, D> std::fmt::Debug for TracedFuture<F, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedFuture").finish_non_exhaustive()
    }
}

impl<F, D, R> Future for TracedFuture<F, D>
where
    F: Future,
    D: FnOnce(&mut Span, F::Output) -> R,
{
    type Output = R;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        // SAFETY: `future` is structurally pinned: never moved out of `self` (the Drop impl
        // does not move it). `span` and `done` are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let scope = this.span.poll_scope();
        let poll = future.poll(cx);
        drop(scope);
        let Poll::Ready(out) = poll else {
            return Poll::Pending;
        };
        let Some(done) = this.done.take() else {
            panic!("a traced fn's future was polled after it completed");
        };
        Poll::Ready(complete(&mut this.span, done, out))
    }
}

impl<F, D> Drop for TracedFuture<F, D> {
    fn drop(&mut self) {
        if self.done.is_some() {
            mark_cancelled(&mut self.span);
        }
    }
}

/// Gives a traced call's output to `done` with the span current (the output's `Debug` and the
/// evaluators run inside it), then ends the span: the call is over, even if its future is
/// kept.
fn complete<O, R>(span: &mut Span, done: impl FnOnce(&mut Span, O) -> R, out: O) -> R {
    let value = span.with_current(|span| done(span, out));
    drop(std::mem::replace(span, Span::ended()));
    value
}

/// Marks the span of a call dropped before it was done.
fn mark_cancelled(span: &mut Span) {
    if let Some(record) = span.recording() {
        record.attr("honeyhive.cancelled", opentelemetry::Value::Bool(true));
    }
}

/// What a fn declared `-> impl Iterator` returns: `#[trace]` reads the bare name as std's
/// trait (it cannot see a `use` of another), and says so when the value is not one.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[trace]` reads `impl Iterator` as `std::iter::Iterator`, which `{Self}` does not implement",
    label = "not a `std::iter::Iterator`",
    note = "if this `Iterator` is a trait of yours, write it by its path (`crate::path::Iterator`): `#[trace]` then records the call and returns the value as it is"
)]
pub trait StdIterator: Iterator {}
impl<I: Iterator> StdIterator for I {}

/// What a sync fn declared `-> impl Future` returns: `#[trace]` reads the bare name as std's
/// trait, and says so when the value is not one.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[trace]` reads `impl Future` as `std::future::Future`, which `{Self}` does not implement",
    label = "not a `std::future::Future`",
    note = "if this `Future` is a trait of yours, write it by its path (`crate::path::Future`): `#[trace]` then records the call and returns the value as it is"
)]
pub trait StdFuture: Future {}
impl<F: Future> StdFuture for F {}

/// The closure a sync fn's body runs in when the fn returns `impl Future<Output = O>`, with
/// `O` named: the closure's future is then known to output `O`, so the body's `async` block
/// is type-checked against it as it would be in the fn's tail (`?` infers its error type,
/// `.collect()` its collection).
#[doc(hidden)]
#[inline]
pub fn future_body<O, F: StdFuture<Output = O>, C: FnOnce() -> F>(body: C) -> C {
    body
}

/// [`future_body`] for a body that runs inline (a `#[track_caller]` fn): the body's value.
#[doc(hidden)]
#[inline]
pub fn future_value<O, F: StdFuture<Output = O>>(value: F) -> F {
    value
}

/// The closure a sync fn's body runs in when the fn returns `impl Iterator<Item = O>`, with
/// `O` named: the body's iterator is type-checked against it (`.map(|s| s.parse().unwrap())`
/// infers what it parses).
#[doc(hidden)]
#[inline]
pub fn iter_body<O, I: StdIterator<Item = O>, C: FnOnce() -> I>(body: C) -> C {
    body
}

/// [`iter_body`] for a body that runs inline (a `#[track_caller]` fn): the body's value.
#[doc(hidden)]
#[inline]
pub fn iter_value<O, I: StdIterator<Item = O>>(value: I) -> I {
    value
}

/// A value of any type, for the never-taken `if false { return fake::<T>(); }` that gives an
/// async block its output type (see the macros' `fake_return`). Never called: rustc removes
/// the branch before code generation.
#[doc(hidden)]
pub fn fake<T>() -> T {
    unreachable!("`fake` is only named in a branch that is never taken")
}

/// The `done` of a [`TracedCall`] with nothing to record: a fn item, not a closure per fn.
#[doc(hidden)]
#[inline]
pub fn pass<T>(_: &mut Span, value: T) -> T {
    value
}

impl<C, F, D, R> Future for TracedCall<C, F, D>
where
    C: FnOnce(&mut Span) -> F,
    F: Future,
    D: FnOnce(&mut Span, F::Output) -> R,
{
    type Output = R;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        // SAFETY: `body`'s `Run` is structurally pinned: it is written once, in place, and
        // never moved until dropped (the Drop impl does not move it). `Start` is not pinned:
        // it is moved out before `Run` is written. The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Body::Start(_) = this.body {
            let Body::Start(start) = std::mem::replace(&mut this.body, Body::Done) else {
                unreachable!()
            };
            this.span = Span::detached(this.meta);
            // With the span current, as the body: what recording the arguments runs (their
            // `Debug`) is inside it.
            this.body = Body::Run(this.span.with_current(start));
        }
        let Body::Run(body) = &mut this.body else {
            panic!("a traced `async fn`'s future was polled after it completed");
        };
        let body = unsafe { Pin::new_unchecked(body) };
        let scope = this.span.poll_scope();
        let poll = body.poll(cx);
        drop(scope);
        let Poll::Ready(out) = poll else {
            return Poll::Pending;
        };
        // The body is done: dropped now, in place, before the span ends.
        this.body = Body::Done;
        let Some(done) = this.done.take() else {
            unreachable!()
        };
        Poll::Ready(complete(&mut this.span, done, out))
    }
}

impl<C, F, D> Drop for TracedCall<C, F, D> {
    fn drop(&mut self) {
        if self.done.is_some() {
            mark_cancelled(&mut self.span);
        }
    }
}

/// What a traced fn returned, to be recorded in one generic call per role: the kind of its
/// success value is picked at the expansion site by autoref specialization (most `&`s first)
/// and the kind's `record` does the rest; the error is recorded by the probe itself
/// (`hh_record_err`, one method to resolve rather than two). Each traced fn expands to two
/// calls rather than a `match` with a chain of probes per arm.
#[doc(hidden)]
pub struct Returned<'a, T: ?Sized>(pub &'a T);

/// Records a success value of type `T` (the kinds of [`crate::capture`]).
#[doc(hidden)]
pub trait RecordOk<T: ?Sized> {
    /// Records `v` as the output.
    fn record_ok(self, record: &mut SpanRecord, v: &T);
}
impl<T: AsText + ?Sized> RecordOk<T> for TextKind {
    #[inline]
    fn record_ok(self, record: &mut SpanRecord, v: &T) {
        record.output(self.out(v, record.cap()));
    }
}
impl<T: AsNumber + ?Sized> RecordOk<T> for NumberKind {
    #[inline]
    fn record_ok(self, record: &mut SpanRecord, v: &T) {
        record.output(self.out(v, record.cap()));
    }
}
impl<T: Debug + ?Sized> RecordOk<T> for DebugKind {
    #[inline]
    fn record_ok(self, record: &mut SpanRecord, v: &T) {
        record.output(self.out(v, record.cap()));
    }
}
impl<T: ?Sized> RecordOk<T> for SkipKind {
    #[inline]
    fn record_ok(self, _: &mut SpanRecord, _: &T) {}
}

/// Describes an error of type `E` (the error kinds of [`crate::capture`]).
pub(crate) trait RecordErr<E: ?Sized> {
    /// Marks the span failed with `e`.
    fn record_err(self, record: &mut SpanRecord, e: &E);
}
impl<E: Display + ?Sized> RecordErr<E> for ErrDisplay {
    #[inline]
    fn record_err(self, record: &mut SpanRecord, e: &E) {
        record.error(self.describe(e, record.cap()));
    }
}
impl<E: Debug + ?Sized> RecordErr<E> for ErrDebug {
    #[inline]
    fn record_err(self, record: &mut SpanRecord, e: &E) {
        record.error(self.describe(e, record.cap()));
    }
}
impl<E: ?Sized> RecordErr<E> for ErrOpaque {
    #[inline]
    fn record_err(self, record: &mut SpanRecord, e: &E) {
        record.error(self.describe(e, record.cap()));
    }
}

/// The `Ok` value of a returned `Result`, recorded by `K`.
#[doc(hidden)]
pub struct OkOf<K>(K);
/// A returned value that is not a `Result`, recorded whole by `K`.
#[doc(hidden)]
pub struct ValueOf<K>(K);

impl<K> OkOf<K> {
    /// Records the `Ok` value, if it is one and the span is recorded.
    #[inline]
    pub fn record<T, E>(self, span: &mut Span, r: &Result<T, E>)
    where
        K: RecordOk<T>,
    {
        if let Ok(v) = r
            && let Some(record) = span.recording()
        {
            self.0.record_ok(record, v);
        }
    }
}
impl<K> ValueOf<K> {
    /// Records the value, if the span is recorded.
    #[inline]
    pub fn record<R: ?Sized>(self, span: &mut Span, r: &R)
    where
        K: RecordOk<R>,
    {
        if let Some(record) = span.recording() {
            self.0.record_ok(record, r);
        }
    }
}

macro_rules! record_err_probes {
    ($($(#[$m:meta])* $probe:ident: [$($g:tt)*] $self_ty:ty => $kind:expr;)*) => {$(
        $(#[$m])*
        #[doc(hidden)]
        pub trait $probe {
            /// Marks the span failed when the value is an `Err` and the span is recorded.
            fn hh_record_err(&self, span: &mut Span);
        }
        impl<$($g)*> $probe for $self_ty {
            #[inline]
            fn hh_record_err(&self, span: &mut Span) {
                if let Err(e) = self.0
                    && let Some(record) = span.recording()
                {
                    $kind.record_err(record, e);
                }
            }
        }
    )*};
}

record_err_probes! {
    /// A `Result` whose error is `Display`.
    RecordErrDisplay: [T, E: Display] &&&Returned<'_, Result<T, E>> => ErrDisplay;
    /// A `Result` whose error is `Debug`.
    RecordErrDebug: [T, E: Debug] &&Returned<'_, Result<T, E>> => ErrDebug;
    /// A `Result` whose error is neither: described by its type name.
    RecordErrOpaque: [T, E] &Returned<'_, Result<T, E>> => ErrOpaque;
}

/// Any other value: no error.
#[doc(hidden)]
pub trait RecordNoErr {
    /// Nothing to record.
    fn hh_record_err(&self, span: &mut Span);
}
impl<T: ?Sized> RecordNoErr for Returned<'_, T> {
    #[inline]
    fn hh_record_err(&self, _: &mut Span) {}
}

/// The probes of [`Returned`] and of [`Capture`](crate::capture::Capture), imported together
/// by the expansion, once per traced fn (`use __private::{self as __hh, probes::*}`).
#[doc(hidden)]
pub mod probes {
    pub use super::{
        OkDebug as _, OkNumber as _, OkSkip as _, OkText as _, RecordErrDebug as _,
        RecordErrDisplay as _, RecordErrOpaque as _, RecordNoErr as _, ValueDebug as _,
        ValueNumber as _, ValueSkip as _, ValueText as _,
    };
    pub use crate::capture::{DebugProbe as _, NumberProbe as _, TextProbe as _};
}

macro_rules! probes {
    ($($(#[$m:meta])* $probe:ident: [$($g:tt)*] $self_ty:ty => $method:ident -> $kind:ty = $value:expr;)*) => {$(
        $(#[$m])*
        #[doc(hidden)]
        pub trait $probe {
            /// The kind.
            #[inline]
            fn $method(&self) -> $kind {
                $value
            }
        }
        impl<$($g)*> $probe for $self_ty {}
    )*};
}

probes! {
    /// A `Result` whose `Ok` is text.
    OkText: [T: AsText, E] &&&&&&&Returned<'_, Result<T, E>> => hh_ok_kind -> OkOf<TextKind> = OkOf(TextKind);
    /// A `Result` whose `Ok` is a number or a collection.
    OkNumber: [T: AsNumber, E] &&&&&&Returned<'_, Result<T, E>> => hh_ok_kind -> OkOf<NumberKind> = OkOf(NumberKind);
    /// A `Result` whose `Ok` is `Debug`.
    OkDebug: [T: Debug, E] &&&&&Returned<'_, Result<T, E>> => hh_ok_kind -> OkOf<DebugKind> = OkOf(DebugKind);
    /// A `Result` whose `Ok` cannot be recorded.
    OkSkip: [T, E] &&&&Returned<'_, Result<T, E>> => hh_ok_kind -> OkOf<SkipKind> = OkOf(SkipKind);
    /// Any other value that is text.
    ValueText: [T: AsText + ?Sized] &&&Returned<'_, T> => hh_ok_kind -> ValueOf<TextKind> = ValueOf(TextKind);
    /// Any other value that is a number or a collection.
    ValueNumber: [T: AsNumber + ?Sized] &&Returned<'_, T> => hh_ok_kind -> ValueOf<NumberKind> = ValueOf(NumberKind);
    /// Any other `Debug` value.
    ValueDebug: [T: Debug + ?Sized] &Returned<'_, T> => hh_ok_kind -> ValueOf<DebugKind> = ValueOf(DebugKind);
    /// Any other value (`impl Iterator`, ...): nothing is recorded.
    ValueSkip: [T: ?Sized] Returned<'_, T> => hh_ok_kind -> ValueOf<SkipKind> = ValueOf(SkipKind);
}
