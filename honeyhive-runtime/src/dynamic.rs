//! Spans opened from code rather than by `#[trace]`: for integrations (HTTP middleware, the
//! `tracing` bridge, LLM clients) and for users whose span name is known only at run time.
//!
//! ```
//! use honeyhive_runtime::{EventType, SpanBuilder, SpanKind};
//!
//! let mut span = SpanBuilder::new("GET /users/{id}")
//!     .event_type(EventType::Tool)
//!     .kind(SpanKind::Server)
//!     .start();
//! span.set_attribute("http.request.method", "GET");
//! let status = span.in_scope(|| 200);
//! span.set_attribute("http.response.status_code", status);
//! drop(span); // ends the span
//! ```
//!
//! A span from [`SpanBuilder::start`] is sampled like a `#[trace]` span: under a recorded parent
//! it is recorded; as a root, the sampler decides by its name and event type, as for a traced
//! function of that name: [`Rule`]s match it, the adaptive sampler keeps a rate for it and
//! [`sampling_stats`] counts it under its name. Those tables keep at most 1024 such names
//! (and 64 KiB of them), so names built from unbounded input (ids, paths) cannot grow
//! them; past that, roots of new names are decided and counted as one operation per event
//! type, `honeyhive.span.<event type>` (a warning says so once).
//!
//! An [`ActiveSpan`] carries the correlation current where it started (request id, session,
//! user, and the caller's trace state: its `tracestate` and sampling randomness), as
//! [`bind_current`] does: wherever it is entered, on any thread, what runs inside decides,
//! stamps and propagates as it would have where the span started.
//!
//! [`Rule`]: crate::sampling::Rule
//! [`sampling_stats`]: crate::sampling::sampling_stats
//! [`bind_current`]: crate::bind_current

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::Event;
use opentelemetry::{Key, KeyValue, StringValue, Value as OtelValue};

use crate::capture::{capture_cap, truncated_text};
use crate::context::{self, Current, State};
use crate::correlation::{self, Correlation};
use crate::enrich::{self, Value};
use crate::propagation::Remote;
pub use crate::record::SpanKind;
use crate::record::{EventType, Meta, RootState};
use crate::span::Span;

/// Where a new span hangs in its trace.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Parent<'a> {
    /// The span current on this thread, as for `#[trace]` (the default); a root if none.
    #[default]
    Current,
    /// No parent in this process: a new trace, whatever is current.
    Root,
    /// The caller's span from another service, from [`propagation::extract`]; its sampling
    /// decision and correlation (request id, session, user) carry over.
    ///
    /// [`propagation::extract`]: crate::propagation::extract
    Remote(&'a Remote),
    /// Another span of this process, such as one opened on another thread; its correlation
    /// (request id, session, user, the caller's trace state) carries over.
    Span(&'a ActiveSpan),
}

/// Opens a span whose name, kind and parent are chosen at run time.
#[derive(Debug)]
#[must_use = "a builder does nothing until `start`"]
pub struct SpanBuilder<'a> {
    name: Cow<'static, str>,
    event_type: EventType,
    kind: Option<SpanKind>,
    parent: Parent<'a>,
    attributes: Vec<(Cow<'static, str>, Value)>,
}

impl<'a> SpanBuilder<'a> {
    /// A span named `name`, of event type [`EventType::Tool`] (as `#[trace]`), under the
    /// current span.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        SpanBuilder {
            name: name.into(),
            event_type: EventType::Tool,
            kind: None,
            parent: Parent::Current,
            attributes: Vec::new(),
        }
    }

    /// Its HoneyHive event type.
    pub fn event_type(mut self, event_type: EventType) -> Self {
        self.event_type = event_type;
        self
    }

    /// Its span kind; by default [`SpanKind::default_for`] its event type.
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Where it hangs; by default under the current span.
    pub fn parent(mut self, parent: Parent<'a>) -> Self {
        self.parent = parent;
        self
    }

    /// An attribute known before the span starts (the sampler does not see it).
    pub fn attribute(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// Starts the span. It is not current anywhere until [`ActiveSpan::in_scope`],
    /// [`ActiveSpan::instrument`] or [`ActiveSpan::enter`]; it ends when dropped.
    pub fn start(self) -> ActiveSpan {
        let (name, event_type) = (&self.name, self.event_type);
        // Where the span opens: with its parent's scope and correlation current.
        let open = || {
            // Only a root is decided by its name: a child follows its parent, and the name
            // table is not looked at.
            let meta = if opens_root() {
                named_meta(name, event_type)
            } else {
                meta_for(event_type)
            };
            let span = Span::detached(meta);
            let correlation = span.session().or_else(correlation::current);
            ActiveSpan { span, correlation }
        };
        let mut span = match self.parent {
            Parent::Current => open(),
            Parent::Root => with_current(Current::IDLE, correlation::current(), open),
            Parent::Remote(remote) => remote.run(open),
            Parent::Span(parent) => match parent.span.scope_inner() {
                Some(scope) => with_current(scope, parent.correlation.clone(), open),
                // An unrecorded parent of no trace (no pipeline): nothing to join.
                None => open(),
            },
        };
        if let Some(record) = span.span.recording() {
            record.name = Some(self.name);
            record.kind = self.kind;
            for (key, value) in self.attributes {
                push_value(&mut record.attrs, key, value);
            }
        }
        span
    }
}

/// Runs `f` with `scope` and `correlation` current on this thread.
fn with_current<R>(
    scope: Current,
    correlation: Option<Arc<Correlation>>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(Current);
    impl Drop for Restore {
        fn drop(&mut self) {
            context::set(self.0);
        }
    }
    let _correlation = RestoreCorrelation(correlation::replace(correlation));
    let _restore = Restore(context::replace(scope));
    f()
}

/// Makes `carried` current unless it is already (the usual case: a span entered where it
/// started); returns what it replaced, to restore.
#[allow(clippy::option_option)] // `None`: nothing to restore
fn carry_correlation(carried: Option<&Arc<Correlation>>) -> Option<Option<Arc<Correlation>>> {
    let same = correlation::same(correlation::current().as_ref(), carried);
    (!same).then(|| correlation::replace(carried.cloned()))
}

/// Makes the correlation it holds current again when dropped (also on unwind).
struct RestoreCorrelation(Option<Arc<Correlation>>);

impl Drop for RestoreCorrelation {
    fn drop(&mut self) {
        correlation::replace(self.0.take());
    }
}

/// Whether a span opened here now is a root the sampler decides (see `Span::open` and
/// `Span::root`): no recorded or unsampled parent is current, a pipeline is installed, and
/// this is not an export thread.
fn opens_root() -> bool {
    matches!(context::current().state, State::Idle | State::Remote { .. })
        && crate::sink::is_active()
        && !crate::sink::on_export_thread()
}

/// Most names of run-time roots that get their own sampling operation (rules by name, an
/// adaptive rate, `sampling_stats`); later names share their event type's operation.
pub(crate) const MAX_NAMED_ROOTS: usize = 1024;

/// Most bytes of names the table keeps, so that long names cannot make it large either.
const MAX_NAMED_ROOT_BYTES: usize = 64 * 1024;

/// The operations of run-time roots by name, then event type: each a `Meta` of its own, as a
/// traced function has, made once and kept (the sampler keys its counters by `&'static Meta`).
#[derive(Default)]
struct NamedRoots {
    metas: HashMap<&'static str, Vec<&'static Meta>>,
    count: usize,
    bytes: usize,
    /// Whether the warning that the table is full was given.
    warned: bool,
}

impl NamedRoots {
    /// The operation of roots named `name` of `event_type`, if it has one.
    fn find(&self, name: &str, event_type: EventType) -> Option<&'static Meta> {
        let metas = self.metas.get(name)?;
        metas.iter().find(|m| m.event_type == event_type).copied()
    }

    /// Gives roots named `name` of `event_type` an operation of their own, if there is room.
    fn add(&mut self, name: &str, event_type: EventType) -> Option<&'static Meta> {
        // A name already listed (for another event type) costs no more bytes.
        let listed = self.metas.get_key_value(name).map(|(name, _)| *name);
        let bytes = if listed.is_some() { 0 } else { name.len() };
        if self.count >= MAX_NAMED_ROOTS || self.bytes + bytes > MAX_NAMED_ROOT_BYTES {
            return None;
        }
        // Kept for the process's life, as a traced function's `static` is; bounded above.
        let name: &'static str = listed.unwrap_or_else(|| Box::leak(Box::from(name)));
        let meta: &'static Meta = Box::leak(Box::new(Meta {
            name,
            event_type,
            sample_rate: None,
            attr_capacity: 8,
            root: RootState::new(),
        }));
        self.count += 1;
        self.bytes += bytes;
        self.metas.entry(name).or_default().push(meta);
        Some(meta)
    }
}

static NAMED_ROOTS: LazyLock<RwLock<NamedRoots>> = LazyLock::new(RwLock::default);

/// The sampling operation of a root named `name`: its own while the table has room, else the
/// one its event type's roots share.
fn named_meta(name: &str, event_type: EventType) -> &'static Meta {
    let known = NAMED_ROOTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .find(name, event_type);
    if let Some(meta) = known {
        return meta;
    }
    let mut roots = NAMED_ROOTS.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(meta) = roots.find(name, event_type) {
        return meta;
    }
    if let Some(meta) = roots.add(name, event_type) {
        return meta;
    }
    if !roots.warned {
        roots.warned = true;
        eprintln!(
            "honeyhive: more than {MAX_NAMED_ROOTS} distinct names of root spans opened from \
             code (or {MAX_NAMED_ROOT_BYTES} bytes of them); roots of further names are \
             sampled and counted as `honeyhive.span.<event type>`, and name rules do not see \
             them. Names should not hold ids or paths: name spans by route."
        );
    }
    meta_for(event_type)
}

/// The static facts of run-time spans of one event type: what children use (their parent
/// decides for them), and roots once the name table is full.
fn meta_for(event_type: EventType) -> &'static Meta {
    macro_rules! metas {
        ($($variant:ident => $name:literal),* $(,)?) => {
            match event_type {
                $(EventType::$variant => {
                    static META: Meta = Meta {
                        name: $name,
                        event_type: EventType::$variant,
                        sample_rate: None,
                        attr_capacity: 8,
                        root: RootState::new(),
                    };
                    &META
                })*
            }
        };
    }
    metas! {
        Model => "honeyhive.span.model",
        Tool => "honeyhive.span.tool",
        Chain => "honeyhive.span.chain",
        Session => "honeyhive.span.session",
        Agent => "honeyhive.span.agent",
        Retriever => "honeyhive.span.retriever",
        Embedding => "honeyhive.span.embedding",
        Evaluator => "honeyhive.span.evaluator",
        Guardrail => "honeyhive.span.guardrail",
    }
}

/// A text set by hand: JSON of up to [`JSON_ROOM`](crate::llm::json::JSON_ROOM) caps is
/// kept whole, for the export thread to shrink as JSON; other text is cut here at the cap.
fn cut_text(text: Cow<'static, str>, cap: usize) -> opentelemetry::StringValue {
    let keep = text.len() <= cap
        || (text.len() <= cap.saturating_mul(crate::llm::json::JSON_ROOM)
            && crate::llm::json::looks_like_json(&text));
    if keep {
        return opentelemetry::StringValue::from(text);
    }
    truncated_text(&text, cap)
}

fn push_value(attrs: &mut Vec<KeyValue>, key: Cow<'static, str>, value: Value) {
    let key = match key {
        Cow::Borrowed(key) => Key::from_static_str(key),
        Cow::Owned(key) => Key::from(key),
    };
    let value = match value {
        Value::Null => return,
        Value::Bool(b) => OtelValue::Bool(b),
        Value::Int(i) => OtelValue::I64(i),
        Value::Float(f) => OtelValue::F64(f),
        // A JSON text set by hand (an `input.value`) stays JSON when it is cut.
        Value::Str(s) if crate::llm::json::shrinks_as_json(key.as_str()) => {
            OtelValue::String(cut_text(s, capture_cap()))
        }
        Value::Str(s) => OtelValue::String(truncated_text(&s, capture_cap())),
        nested => {
            enrich::flatten(key.as_str().to_owned(), nested, capture_cap(), attrs);
            return;
        }
    };
    attrs.push(KeyValue::new(key, value));
}

/// A span opened by [`SpanBuilder`]. It can move between threads and tasks; it ends when
/// dropped (or [`ActiveSpan::end`]).
///
/// Everything here is a no-op on a span that is not recorded (unsampled, or no pipeline).
#[derive(Debug)]
pub struct ActiveSpan {
    span: Span,
    /// The correlation current where the span started (the session, if it started one):
    /// current inside the span wherever it is entered, as [`crate::bind_current`] carries it.
    correlation: Option<Arc<Correlation>>,
}

impl ActiveSpan {
    /// Whether the span is recorded: when it is not, nothing set on it is kept, so work done
    /// only to annotate it can be skipped.
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// Sets an attribute. A map or list is flattened into dotted keys, as `enrich_span` does;
    /// text is cut at the capture cap.
    pub fn set_attribute(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        if let Some(record) = self.span.recording() {
            push_value(&mut record.attrs, key.into(), value.into());
        }
    }

    /// Adds an event, now.
    pub fn add_event(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        attributes: impl IntoIterator<Item = (&'static str, Value)>,
    ) {
        if let Some(record) = self.span.recording() {
            let mut attrs = Vec::new();
            for (key, value) in attributes {
                push_value(&mut attrs, Cow::Borrowed(key), value);
            }
            record.events.push(Event::new(
                name.into(),
                std::time::SystemTime::now(),
                attrs,
                0,
            ));
        }
    }

    /// Marks the span failed, with an `exception` event of this type and message.
    pub fn set_error(&mut self, type_name: &str, message: &str) {
        if let Some(record) = self.span.recording() {
            record.set_error(
                StringValue::from(type_name.to_owned()),
                StringValue::from(message.to_owned()),
            );
        }
    }

    /// Renames the span (a server span learns its route after routing).
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(record) = self.span.recording() {
            record.name = Some(name.into());
        }
    }

    /// Runs `f` with this span current on this thread, with the correlation current where it
    /// started: spans opened, `enrich_span`, `record_llm` and `propagation::inject` inside land
    /// on it, and a panic in `f` marks it.
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _correlation = self.enter_correlation();
        self.span.in_scope(f)
    }

    /// Makes the span's correlation current until the guard drops, if the span has a scope to
    /// enter (else nothing changes, as nothing is traced inside).
    fn enter_correlation(&self) -> Option<RestoreCorrelation> {
        self.span.scope_inner()?;
        carry_correlation(self.correlation.as_ref()).map(RestoreCorrelation)
    }

    /// Makes this span current on this thread until the guard drops (for code that cannot
    /// pass a closure, such as a `tracing` layer's enter and exit).
    pub fn enter(&mut self) -> Entered<'_> {
        let raw = self.enter_raw();
        Entered { span: self, raw }
    }

    /// Wraps `future`: the span is current while the future is polled, and ends when it
    /// completes or is dropped (then marked `honeyhive.cancelled`).
    pub fn instrument<F: Future>(self, future: F) -> InstrumentedBy<F> {
        let correlation = self.span.scope_inner().map(|_| self.correlation);
        InstrumentedBy {
            inner: crate::span::Instrumented::new(self.span, future),
            correlation,
        }
    }

    /// Ends the span now (the same as dropping it).
    pub fn end(self) {}

    /// Makes the span current; [`ActiveSpan::exit_raw`] with what this returns restores the
    /// previous scope and moves what was annotated meanwhile into the span.
    pub(crate) fn enter_raw(&mut self) -> RawEntered {
        match self.span.scope_inner() {
            Some(scope) => RawEntered {
                prev: Some(context::replace(scope)),
                prev_correlation: carry_correlation(self.correlation.as_ref()),
            },
            None => RawEntered {
                prev: None,
                prev_correlation: None,
            },
        }
    }

    /// The record, for the `tracing` bridge, which writes fields and the span kind into it
    /// directly (field names are `&'static str` keys already).
    #[cfg(feature = "tracing")]
    pub(crate) fn record_mut(&mut self) -> Option<&mut crate::record::SpanRecord> {
        self.span.recording()
    }

    /// Leaves the scope [`ActiveSpan::enter_raw`] made current.
    pub(crate) fn exit_raw(&mut self, raw: RawEntered) {
        let RawEntered {
            prev,
            prev_correlation,
        } = raw;
        let Some(prev) = prev else { return };
        if let Some(prev_correlation) = prev_correlation {
            correlation::leave(self.correlation.clone(), prev_correlation);
        }
        self.span.leave_scope(prev);
    }
}

/// What [`ActiveSpan::enter_raw`] replaced.
#[derive(Debug)]
pub(crate) struct RawEntered {
    prev: Option<Current>,
    #[allow(clippy::option_option)] // `None`: nothing to restore
    prev_correlation: Option<Option<Arc<Correlation>>>,
}

#[cfg(feature = "tracing")]
impl RawEntered {
    /// Whether entering changed the current scope (else leaving has nothing to restore).
    pub(crate) fn changes_scope(&self) -> bool {
        self.prev.is_some()
    }
}

/// The scope of an [`ActiveSpan::enter`]: the span is current until this drops.
#[derive(Debug)]
#[must_use = "the span is current only while the guard lives"]
pub struct Entered<'a> {
    span: &'a mut ActiveSpan,
    raw: RawEntered,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let raw = RawEntered {
            prev: self.raw.prev.take(),
            prev_correlation: self.raw.prev_correlation.take(),
        };
        self.span.exit_raw(raw);
    }
}

/// A future whose [`ActiveSpan`] is current while it is polled; see [`ActiveSpan::instrument`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct InstrumentedBy<F> {
    inner: crate::span::Instrumented<F>,
    /// The span's correlation, current while the future is polled.
    #[allow(clippy::option_option)] // `None`: the span has no scope, nothing to carry
    correlation: Option<Option<Arc<Correlation>>>,
}

impl<F: Future> Future for InstrumentedBy<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: never moved out of `self`; `correlation`
        // is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let _correlation = this
            .correlation
            .as_ref()
            .and_then(|c| carry_correlation(c.as_ref()).map(RestoreCorrelation));
        match inner.poll(cx) {
            // The span ends here, as the work it times does.
            Poll::Ready((span, out)) => {
                drop(span);
                Poll::Ready(out)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_table_gives_each_name_and_type_one_operation_and_stays_bounded() {
        let mut roots = NamedRoots::default();
        let health = roots.add("GET /health", EventType::Chain).expect("room");
        assert_eq!(health.name, "GET /health");
        assert!(std::ptr::eq(
            roots.find("GET /health", EventType::Chain).expect("listed"),
            health
        ));
        assert!(roots.find("GET /health", EventType::Tool).is_none());
        let tool = roots.add("GET /health", EventType::Tool).expect("room");
        assert!(!std::ptr::eq(tool, health));
        // The name is kept once for both event types.
        assert_eq!(roots.bytes, "GET /health".len());
        for i in 2..MAX_NAMED_ROOTS {
            assert!(roots.add(&format!("op {i}"), EventType::Tool).is_some());
        }
        assert!(roots.add("one too many", EventType::Tool).is_none());
        assert!(roots.find("op 2", EventType::Tool).is_some());

        let mut roots = NamedRoots::default();
        let long = |i: usize| format!("{i:01024}");
        for i in 0..MAX_NAMED_ROOT_BYTES / 1024 {
            assert!(roots.add(&long(i), EventType::Tool).is_some());
        }
        assert!(roots.add(&long(usize::MAX), EventType::Tool).is_none());
        assert!(roots.add("short", EventType::Tool).is_none());
    }
}
