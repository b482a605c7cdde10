//! Spans: the compact records the hot path writes, and the guards that open and close them.
//!
//! A recorded span is a boxed [`SpanRecord`] owned by the caller's [`Span`]: ids from a
//! per-thread RNG, two monotonic timestamps, a pointer to static metadata and the attributes
//! the expansion chose to capture. When it ends it is moved into a per-thread buffer, and the
//! buffer is handed to the export thread when the thread leaves traced code. Building
//! `SpanData`, wall-clock time, durations and resource attributes all happen on the export
//! thread.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{Event, Status};
use opentelemetry::{KeyValue, StringValue, Value};

use crate::context::{self, Current, ScopeThreshold, State};
use crate::correlation::{self, Correlation};
pub use crate::record::{EventType, Meta, SpanRecord};
use crate::sampling::Pinned;
use crate::{clock, sampling, sink};

/// What only a span guard does to its record.
impl SpanRecord {
    fn panicked(&mut self) {
        let message = take_panic_message().unwrap_or_else(|| "panicked".to_owned());
        self.set_error(StringValue::from("panic"), StringValue::from(message));
    }
}

/// An open span. Created by the expansion of `#[trace]`; ends when dropped.
///
/// For sync functions it is current while it lives ([`Span::enter`]); for async functions
/// [`Instrumented`] makes it current only while the future is polled ([`Span::detached`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct Span {
    /// Boxed so that a `Span` stays small: it is returned and dropped by value on every traced
    /// call, and copying a record inline (about 170 bytes, several times per span) cost more
    /// than the whole rest of the sampled path.
    ///
    /// This and the other owning fields are `ManuallyDrop`: `Drop` takes them, so the drop glue
    /// that runs after it has nothing left to do and every traced call inlines a few tests.
    record: ManuallyDrop<Option<Box<SpanRecord>>>,
    /// How this span changes the current scope. `None` when it does not (an unsampled span
    /// under an unsampled parent, or no pipeline): then the span is a few words to write and
    /// to test, nothing to enter or leave.
    scope: Option<Scope>,
    /// The session a session root starts, current inside it.
    session: ManuallyDrop<Option<Arc<Correlation>>>,
    /// The correlation to restore when a sync session root ends (`None`: nothing to restore).
    #[allow(clippy::option_option)]
    prev_correlation: ManuallyDrop<Option<Option<Arc<Correlation>>>>,
}

/// The scope a span makes current.
#[derive(Clone, Copy, Debug)]
struct Scope {
    /// What is current inside the span.
    inner: Current,
    /// What was current before, restored on drop when `entered` (sync spans).
    outer: Current,
    entered: bool,
}

impl Span {
    /// Opens a span and makes it current on this thread until dropped.
    #[inline]
    pub fn enter(meta: &'static Meta) -> Span {
        Span::open(meta, true)
    }

    /// Opens a span without making it current; see [`Instrumented`].
    #[inline]
    pub fn detached(meta: &'static Meta) -> Span {
        Span::open(meta, false)
    }

    // Every path below writes the finished `Span` once, straight into the caller's slot:
    // building it in a temporary and then adjusting and moving it made the CPU stall on
    // reading back fields it had just written.
    #[inline]
    fn open(meta: &'static Meta, enter: bool) -> Span {
        // Only the state is read here; the work reads the whole parent again.
        match context::current().state {
            // A stray (see `open_traced`) may be the unsampled scope.
            State::Unsampled if !context::strays_pending() => Span::unchanged(),
            State::Idle | State::Remote { .. } if !sink::is_active() => Span::unchanged(),
            _ => Span::open_traced(meta, enter),
        }
    }

    /// The part of [`Span::open`] that does work, out of line so that the fast paths above
    /// inline into every traced function.
    #[inline(never)]
    fn open_traced(meta: &'static Meta, enter: bool) -> Span {
        if context::strays_pending() {
            // A scope exited on another thread may still be current here: leave it first, so
            // that it does not parent this span.
            context::settle_strays();
        }
        let parent = context::current();
        match parent.state {
            State::Unsampled => Span::unchanged(),
            State::Idle | State::Remote { .. } if !sink::is_active() => Span::unchanged(),
            State::Sampled => {
                let Some(rate) = meta.sample_rate else {
                    return Span::recorded(
                        meta,
                        parent.trace_id,
                        parent.span_id,
                        false,
                        (None, parent.threshold),
                        enter,
                    );
                };
                let decision =
                    sampling::decide_nested(rate, parent.trace_id, parent.threshold.get())
                        .pinned(pinned_roll());
                if !decision.keep {
                    return Span::unsampled(
                        Current {
                            state: State::Unsampled,
                            threshold: ScopeThreshold::UNKNOWN,
                            ..parent
                        },
                        enter,
                    );
                }
                Span::recorded(
                    meta,
                    parent.trace_id,
                    parent.span_id,
                    false,
                    (decision.rate, ScopeThreshold::new(decision.threshold)),
                    enter,
                )
            }
            State::Idle | State::Remote { .. } => Span::root(meta, parent, enter),
        }
    }

    #[inline]
    fn unchanged() -> Span {
        Span {
            record: ManuallyDrop::new(None),
            scope: None,
            session: ManuallyDrop::new(None),
            prev_correlation: ManuallyDrop::new(None),
        }
    }

    #[inline]
    fn unsampled(scope: Current, enter: bool) -> Span {
        Span {
            record: ManuallyDrop::new(None),
            scope: Some(Scope::new(scope, enter)),
            session: ManuallyDrop::new(None),
            prev_correlation: ManuallyDrop::new(None),
        }
    }

    #[cold]
    #[inline(never)]
    fn root(meta: &'static Meta, current: Current, enter: bool) -> Span {
        if sink::on_export_thread() {
            // A traced call inside an exporter: exporting its span would make another export.
            return Span::unchanged();
        }
        // A trace started elsewhere (another service, through `propagation::extract`, or the
        // OTel SDK in this process) is joined; the sampler decides whether its decision is kept.
        let ambient = context::root_parent(current);
        let (trace_id, parent_id, parent_remote) = match &ambient {
            Some(a) => (a.trace_id, a.span_id, a.is_remote),
            None => (sampling::new_trace_id(), 0, false),
        };
        let upstream = ambient.map(|a| sampling::Upstream {
            sampled: a.sampled,
            threshold: a.threshold,
        });
        let decision = sampling::decide_root(meta, trace_id, upstream, pinned_roll());
        if !decision.keep {
            // Real ids, so that `inject` and `otel_context` pass the "not sampled" decision on
            // and the services downstream keep it instead of deciding again.
            return Span::unsampled(
                Current {
                    trace_id,
                    span_id: crate::rng::new_span_id(),
                    state: State::Unsampled,
                    here: false,
                    threshold: ScopeThreshold::UNKNOWN,
                },
                enter,
            );
        }
        let mut span = Span::recorded(
            meta,
            trace_id,
            parent_id,
            parent_remote,
            (decision.rate, ScopeThreshold::new(decision.threshold)),
            enter,
        );
        if let Some(record) = span.record.as_mut() {
            record.local_root = true;
            record.randomness = sampling::explicit_randomness(trace_id)
                .and_then(|r| std::num::NonZeroU64::new(r.saturating_add(1)));
        }
        span
    }

    #[inline]
    fn recorded(
        meta: &'static Meta,
        trace_id: u128,
        parent_id: u64,
        parent_remote: bool,
        (root_sample_rate, threshold): (Option<f64>, ScopeThreshold),
        enter: bool,
    ) -> Span {
        let span_id = crate::rng::new_span_id();
        let scope = Current {
            trace_id,
            span_id,
            state: State::Sampled,
            here: true,
            threshold,
        };
        // A session root starts a session for its subtree, unless one is already current.
        let session = if meta.event_type == EventType::Session {
            correlation::session_for_root()
        } else {
            None
        };
        let record = match sink::take_record() {
            // A recycled record of this thread: what it still owns was allocated here and is
            // freed here, and its lists keep their capacity.
            Some(mut record) => {
                let r = &mut *record;
                r.trace_id = trace_id;
                r.span_id = span_id;
                r.parent_id = parent_id;
                r.parent_remote = parent_remote;
                r.meta = meta;
                r.end = 0;
                r.attrs.clear();
                r.attrs.reserve(meta.attr_capacity);
                r.events.clear();
                r.status = Status::Unset;
                r.root_sample_rate = root_sample_rate;
                r.threshold = threshold.get();
                r.local_root = false;
                r.randomness = None;
                r.lingers = false;
                r.opened_unwinding = std::thread::panicking();
                r.name = None;
                r.kind = None;
                r.start = clock::now();
                record
            }
            // Allocated before the record is built, so that it is written in place, not copied.
            None => Box::write(
                Box::new_uninit(),
                SpanRecord {
                    trace_id,
                    span_id,
                    parent_id,
                    parent_remote,
                    meta,
                    start: clock::now(),
                    end: 0,
                    attrs: Vec::with_capacity(meta.attr_capacity),
                    events: Vec::new(),
                    status: Status::Unset,
                    root_sample_rate,
                    threshold: threshold.get(),
                    local_root: false,
                    randomness: None,
                    lingers: false,
                    opened_unwinding: std::thread::panicking(),
                    home: sink::home_index(),
                    name: None,
                    kind: None,
                },
            ),
        };
        let mut record = record;
        match &session {
            Some(session) => session.stamp(&mut record.attrs),
            None => correlation::stamp(&mut record.attrs),
        }
        let scope = Some(Scope::new(scope, enter));
        let prev_correlation = match &session {
            Some(session) if enter => Some(correlation::replace(Some(Arc::clone(session)))),
            _ => None,
        };
        Span {
            record: ManuallyDrop::new(Some(record)),
            scope,
            session: ManuallyDrop::new(session),
            prev_correlation: ManuallyDrop::new(prev_correlation),
        }
    }

    /// The record to write to, if this span is recorded.
    #[inline]
    pub fn recording(&mut self) -> Option<&mut SpanRecord> {
        self.record.as_deref_mut()
    }

    /// A span that does nothing, in place of one that ended.
    #[inline]
    pub(crate) fn ended() -> Span {
        Span::unchanged()
    }

    /// Whether this span is recorded (sampled).
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    /// What is current inside this span, if it changes the scope at all.
    pub(crate) fn scope_inner(&self) -> Option<Current> {
        self.scope.map(|scope| scope.inner)
    }

    /// The session this span is the root of.
    pub(crate) fn session(&self) -> Option<Arc<Correlation>> {
        self.session.as_ref().map(Arc::clone)
    }

    /// Leaves this span's scope, entered outside a closure (see
    /// [`crate::ActiveSpan::enter`]): as when a poll of [`Instrumented`] ends, except that
    /// it may be left out of order: a scope entered after it that is still current stays so
    /// (see [`context::leaving`]). The caller restores the correlation it replaced (see
    /// `correlation::leave`).
    pub(crate) fn leave_scope(&mut self, prev: Current) {
        let entered_unwinding = self.record.as_ref().is_some_and(|r| r.opened_unwinding);
        let prev = match self.scope {
            Some(scope) => context::leaving(scope.inner, prev),
            None => prev,
        };
        drop(PollScope {
            prev,
            prev_correlation: None,
            entered_unwinding,
            span: self,
        });
    }

    /// Runs `f` on this (detached) span with the span current: what the expansion writes to
    /// record a detached span's arguments, output and evaluations, so that what that runs
    /// (a `Debug` impl, an evaluator) is inside the span as in a sync fn: a traced call made
    /// there is the span's child, an `enrich_span` lands on it.
    #[doc(hidden)]
    #[inline]
    pub fn with_current<T>(&mut self, f: impl FnOnce(&mut Span) -> T) -> T {
        let mut f = Some(f);
        let mut out = None;
        self.with_current_dyn(&mut |span| {
            if let Some(f) = f.take() {
                out = Some(f(span));
            }
        });
        match out {
            Some(out) => out,
            // `with_current_dyn` calls its closure once, or unwinds.
            None => unreachable!(),
        }
    }

    /// [`Span::with_current`] without a type parameter: compiled once, not once per traced fn.
    /// An unrecorded span records nothing, so `f` runs as it is, without entering the scope:
    /// no cost on the unsampled path.
    fn with_current_dyn(&mut self, f: &mut dyn FnMut(&mut Span)) {
        if !self.is_recording() || self.scope.is_none() {
            return f(self);
        }
        // The same scope as a poll's (restored on unwind too); `f` gets the span through it.
        if let Some(scope) = self.poll_scope() {
            f(scope.span);
        }
    }

    /// Runs `f` with this (detached) span current, as [`Instrumented`] does for one poll: what
    /// `f` annotates lands on the span, and a panic in `f` marks it. Used by token streams,
    /// whose span outlives the call that opened it.
    #[inline]
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let guard = self.poll_scope();
        let out = f();
        drop(guard);
        out
    }

    /// Makes this (detached) span current until the guard drops, as [`Span::in_scope`] does:
    /// for a `#[track_caller]` fn's body, which runs inline rather than in a closure.
    #[doc(hidden)]
    #[inline]
    pub fn enter_scope(&mut self) -> Option<PollScope<'_>> {
        self.poll_scope()
    }

    /// Makes this (detached) span current until the guard drops, as [`Span::in_scope`] does,
    /// without a closure: the poll of a traced `async fn` body uses it, so that each traced
    /// fn instantiates nothing here.
    #[inline]
    pub(crate) fn poll_scope(&mut self) -> Option<PollScope<'_>> {
        let scope = self.scope?;
        Some(PollScope {
            prev: context::replace(scope.inner),
            prev_correlation: self
                .session
                .as_ref()
                .map(|s| correlation::replace(Some(Arc::clone(s)))),
            // Read only for a recorded span, the only kind a panic can mark.
            entered_unwinding: self.record.is_some() && std::thread::panicking(),
            span: self,
        })
    }
}

impl Scope {
    /// Makes `inner` current now if `enter`; else a future's poll does (see [`Instrumented`]).
    #[inline]
    fn new(inner: Current, enter: bool) -> Scope {
        Scope {
            inner,
            outer: if enter {
                context::replace(inner)
            } else {
                inner
            },
            entered: enter,
        }
    }
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if self.scope.is_some()
            || self.record.is_some()
            || self.session.is_some()
            || self.prev_correlation.is_some()
        {
            self.close();
        }
    }
}

impl Span {
    /// Leaves the scope, ends the record and drops what the span owns; out of line, like
    /// [`Span::open_traced`].
    #[inline(never)]
    fn close(&mut self) {
        if let Some(scope) = self.scope
            && scope.entered
        {
            context::set(context::leaving(scope.inner, scope.outer));
        }
        if let Some(prev) = self.prev_correlation.take() {
            correlation::replace(prev);
        }
        if let Some(mut record) = self.record.take() {
            drain_annotations(&mut record);
            if std::thread::panicking() {
                // A panic unwinding through this span fails it; one this span opened during
                // (it runs in a `Drop` of the unwinding) is another span's.
                if !record.opened_unwinding && record.status == Status::Unset {
                    record.panicked();
                }
            } else {
                forget_stale_panic_message();
            }
            record.end = clock::now();
            if record.local_root {
                record.lingers = take_carried(record.trace_id);
            }
            let idle = context::current().state == State::Idle;
            sink::finish(record, idle);
        }
        drop(self.session.take());
    }
}

thread_local! {
    /// Attributes and events added to the current span through [`annotate`], by span id,
    /// until the span's scope on this thread ends.
    static ANNOTATIONS: RefCell<Vec<(u64, Annotation)>> = const { RefCell::new(Vec::new()) };
    /// The message of a panic in progress on this thread, kept by our panic hook.
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// A sampling decision made in advance; see [`pin_next_roll`].
    static PINNED_ROLL: Cell<Option<Pinned>> = const { Cell::new(None) };
    /// The trace whose scope was carried elsewhere ([`crate::Carried`]) since its root began.
    static CARRIED: Cell<u128> = const { Cell::new(0) };
}

/// Decides in advance whether the next span that rolls for sampling on this thread is kept
/// (`None` clears it): `#[retry] #[trace]` gives every attempt the first attempt's decision,
/// so that a call is recorded whole or not at all.
pub(crate) fn pin_next_roll(decision: Option<Pinned>) {
    let _ = PINNED_ROLL.try_with(|pinned| pinned.set(decision));
}

fn pinned_roll() -> Option<Pinned> {
    PINNED_ROLL.try_with(Cell::take).ok().flatten()
}

/// Notes that the current recorded scope is being carried to run elsewhere, so its root
/// waits a little for that work in the trace assembler.
pub(crate) fn note_carried() {
    let cur = context::current();
    if cur.state == State::Sampled {
        let _ = CARRIED.try_with(|c| c.set(cur.trace_id));
    }
}

fn take_carried(trace_id: u128) -> bool {
    CARRIED
        .try_with(|c| {
            let carried = c.get() == trace_id;
            if carried {
                c.set(0);
            }
            carried
        })
        .unwrap_or(false)
}

/// Something added to a span from inside its scope.
#[derive(Debug)]
pub(crate) enum Annotation {
    /// An attribute.
    Attr(KeyValue),
    /// An event.
    Event(Event),
    /// Marks the span failed.
    Error {
        type_name: StringValue,
        message: StringValue,
    },
}

/// Adds to the current span, if it is recorded; `make` runs only then, so nothing is built
/// for unsampled spans. Never blocks, never panics.
#[inline]
pub(crate) fn annotate(make: impl FnOnce() -> Annotation) {
    let Some(owner) = annotation_owner(1) else {
        return;
    };
    // Built before the buffer is borrowed: `make` may run the user's code (an error's
    // `Display` for a retry event), which may annotate too.
    let annotation = make();
    buffer_annotations(1, |buf| buf.push((owner, annotation)));
}

/// [`annotate`] for several attributes at once: one look at the current span and one borrow of
/// the buffer for all of them. Each one that cannot reach a span is counted.
pub(crate) fn annotate_attrs(attrs: Vec<KeyValue>) {
    let n = attrs.len();
    if n == 0 {
        return;
    }
    let Some(owner) = annotation_owner(n) else {
        return;
    };
    buffer_annotations(n, |buf| {
        buf.extend(attrs.into_iter().map(|kv| (owner, Annotation::Attr(kv))));
    });
}

/// [`annotate_attrs`] for a list that `fill` writes into a buffer of this thread's, kept
/// between calls: a call recorded on every span allocates no list for it.
pub(crate) fn annotate_attrs_in(fill: impl FnOnce(&mut Vec<KeyValue>)) {
    thread_local! {
        static SCRATCH: RefCell<Vec<KeyValue>> = const { RefCell::new(Vec::new()) };
    }
    let mut fill = Some(fill);
    let _ = SCRATCH.try_with(|scratch| {
        let Ok(mut list) = scratch.try_borrow_mut() else {
            return;
        };
        if let Some(fill) = fill.take() {
            fill(&mut list);
        }
        let n = list.len();
        if let Some(owner) = annotation_owner(n) {
            buffer_annotations(n, |buf| {
                buf.extend(list.drain(..).map(|kv| (owner, Annotation::Attr(kv))));
            });
        }
        list.clear();
        if list.capacity() > ANNOTATIONS_KEPT {
            list.shrink_to(ANNOTATIONS_KEPT);
        }
    });
    // The buffer is out of reach (the thread is ending, or this runs inside a `fill`).
    if let Some(fill) = fill {
        let mut list = Vec::new();
        fill(&mut list);
        annotate_attrs(list);
    }
}

/// The span `n` annotations made here go to: the current one, when it is recorded and open on
/// this thread. Else none, and they are counted lost where they could never reach a span (the
/// span is open on another thread or in another process, or only a remote parent is current).
#[inline]
fn annotation_owner(n: usize) -> Option<u64> {
    let cur = context::current();
    match cur.state {
        State::Sampled if cur.here => Some(cur.span_id),
        State::Sampled | State::Remote { .. } => {
            sink::lost_annotations(n);
            None
        }
        State::Idle | State::Unsampled => None,
    }
}

/// Adds `n` annotations to this thread's buffer with `push`; counts them lost when the buffer
/// is out of reach (destroyed with the thread, or borrowed further up the stack).
#[inline]
fn buffer_annotations(n: usize, push: impl FnOnce(&mut Vec<(u64, Annotation)>)) {
    let pushed = ANNOTATIONS.try_with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return false;
        };
        push(&mut buf);
        true
    });
    if pushed != Ok(true) {
        sink::lost_annotations(n);
    }
}

/// Counts an annotation skipped because only a remote parent is current (inside
/// `propagation::extract(..).run`, before any local span): it could never reach a span.
pub(crate) fn count_lost_under_remote() {
    if matches!(context::current().state, State::Remote { .. }) {
        sink::lost_annotation();
    }
}

/// Annotation slots a thread's buffer keeps between spans; a span that took more gives the
/// rest back when it ends.
const ANNOTATIONS_KEPT: usize = 64;

/// Moves what was added to `record` while it was current on this thread into it, in one
/// pass over what is buffered (the span's own annotations are usually the whole buffer). The
/// buffer keeps its room, so a thread that annotates every span allocates for it once.
fn drain_annotations(record: &mut SpanRecord) {
    let _ = ANNOTATIONS.try_with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return;
        };
        if buf.is_empty() {
            return;
        }
        let id = record.span_id;
        for (_, annotation) in buf.extract_if(.., |(owner, _)| *owner == id) {
            match annotation {
                Annotation::Attr(kv) => record.attrs.push(kv),
                Annotation::Event(e) => record.events.push(e),
                Annotation::Error { type_name, message } => {
                    record.set_error(type_name, message);
                }
            }
        }
        if buf.capacity() > ANNOTATIONS_KEPT {
            buf.shrink_to(ANNOTATIONS_KEPT);
        }
    });
}

/// Keeps the message of a panic so that the span it unwinds through can record it.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A panic in a user's `Debug` impl during capture is caught there and recorded as
            // a marker: not the program's panic, so neither kept for a span nor printed.
            if crate::capture::in_guarded_formatting() {
                return;
            }
            // Kept under any traced scope: a panic that starts below an unsampled child still
            // unwinds through the sampled spans above it.
            if context::current().state != State::Idle {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "Box<dyn Any>".to_owned());
                let _ = PANIC_MESSAGE.try_with(|m| {
                    if let Ok(mut m) = m.try_borrow_mut() {
                        *m = Some(message);
                    }
                });
            }
            previous(info);
        }));
    });
}

/// A message left by a panic that was caught without unwinding through a recorded span must
/// not end up on a later, unrelated panic's span.
#[inline]
fn forget_stale_panic_message() {
    let _ = PANIC_MESSAGE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut()
            && m.is_some()
        {
            *m = None;
        }
    });
}

fn take_panic_message() -> Option<String> {
    PANIC_MESSAGE
        .try_with(|m| m.try_borrow_mut().ok().and_then(|mut m| m.take()))
        .ok()
        .flatten()
}

/// A future that makes its span current while it is polled, and hands the span back with the
/// output so the expansion can record the output before the span ends.
///
/// Dropped before completion, the span ends marked `honeyhive.cancelled`.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Instrumented<F> {
    // Declared first, so dropped first: a cancelled future's children end before its span.
    future: F,
    span: Option<Span>,
}

impl<F: Future> Instrumented<F> {
    /// Wraps `future` in `span`.
    #[inline]
    pub fn new(span: Span, future: F) -> Self {
        Instrumented {
            span: Some(span),
            future,
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = (Span, F::Output);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, and the
        // Drop impl below does not move it. `span` is not pinned and may be taken.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let Some(span) = this.span.as_mut() else {
            panic!("`Instrumented` polled after completion");
        };
        let guard = span.poll_scope();
        let poll = future.poll(cx);
        drop(guard);
        match poll {
            Poll::Ready(out) => Poll::Ready((this.span.take().unwrap_or_else(Span::none), out)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Span {
    fn none() -> Span {
        Span::unchanged()
    }
}

/// Leaves the scope of a span that closed elsewhere while it was still entered on this thread
/// (a `tracing` guard sent to another thread): what was annotated to it here is counted lost.
#[cfg(feature = "tracing")]
pub(crate) fn leave_closed(inner: Current, outer: Current) {
    let now = context::set(context::leaving(inner, outer));
    // Owners are the ids of recorded spans (an unrecorded scope may carry its parent's).
    if inner.state == State::Sampled {
        let _ = ANNOTATIONS.try_with(|buf| {
            if let Ok(mut buf) = buf.try_borrow_mut() {
                let lost = buf
                    .extract_if(.., |(owner, _)| *owner == inner.span_id)
                    .count();
                if lost > 0 {
                    sink::lost_annotations(lost);
                }
            }
        });
    }
    if now.state == State::Idle {
        sink::flush_thread();
    }
}

/// Restores the previous scope after a poll, even when the poll panics, and records the panic.
#[doc(hidden)]
#[must_use = "the span is current only until the guard drops"]
pub struct PollScope<'a> {
    prev: Current,
    #[allow(clippy::option_option)] // `None`: nothing to restore
    prev_correlation: Option<Option<Arc<Correlation>>>,
    /// Whether the thread was already unwinding when the poll began: that panic is not one
    /// the poll ran into.
    entered_unwinding: bool,
    span: &'a mut Span,
}

impl Drop for PollScope<'_> {
    #[inline]
    fn drop(&mut self) {
        // A poll ends its task's turn on the thread: whatever it entered and did not leave is
        // no longer current.
        let now = context::set(self.prev);
        if let Some(prev) = self.prev_correlation.take() {
            correlation::replace(prev);
        }
        if let Some(record) = self.span.record.as_mut() {
            drain_annotations(record);
        }
        if std::thread::panicking()
            && !self.entered_unwinding
            && let Some(record) = self.span.record.as_mut()
            && record.status == Status::Unset
        {
            record.panicked();
        }
        if now.state == State::Idle {
            sink::flush_thread();
        }
    }
}

impl<F> Drop for Instrumented<F> {
    fn drop(&mut self) {
        if let Some(record) = self.span.as_mut().and_then(Span::recording) {
            record.attr("honeyhive.cancelled", Value::Bool(true));
        }
    }
}

/// Calls `f` once. The expansion runs a sync body through this so that `return` and `?` end
/// the body rather than the function, and so the closure is `FnOnce` (which lets a body return
/// borrows of `&mut self`).
#[doc(hidden)]
#[inline]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Whether the current span on this thread is recorded.
#[doc(hidden)]
#[inline]
pub fn current_is_recording() -> bool {
    context::current().state == State::Sampled
}

/// Adds an event to the current span, if recorded; `attributes` runs only then.
#[doc(hidden)]
#[inline]
pub fn current_add_event(name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
    annotate(|| {
        Annotation::Event(Event::new(
            name,
            std::time::SystemTime::now(),
            attributes(),
            0,
        ))
    });
}

/// Sets an attribute on the current span, if recorded; `value` runs only then.
#[doc(hidden)]
#[inline]
pub fn current_set_attribute(key: &'static str, value: impl FnOnce() -> Value) {
    annotate(|| Annotation::Attr(KeyValue::new(key, value())));
}

/// Marks the current span failed, if recorded.
#[doc(hidden)]
pub fn current_set_error(type_name: &str, message: &str) {
    annotate(|| Annotation::Error {
        type_name: StringValue::from(type_name.to_owned()),
        message: StringValue::from(message.to_owned()),
    });
}
