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
//! A span from [`SpanBuilder::start`] is sampled like a `#[trace]` span of its event type:
//! under a recorded parent it is recorded; as a root, the sampler decides (rules match the
//! event type; name rules see the name `honeyhive.span.<event type>`, since the run-time name
//! is not known to the per-function counters).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::Event;
use opentelemetry::{Key, KeyValue, StringValue, Value as OtelValue};

use crate::capture::{capture_cap, truncated_text};
use crate::context::{self, Current};
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
    /// Another span of this process, such as one opened on another thread.
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
        let meta = meta_for(self.event_type);
        let open = || Span::detached(meta);
        let span = match self.parent {
            Parent::Current => open(),
            Parent::Root => with_current(Current::IDLE, None, open),
            Parent::Remote(remote) => remote.run(open),
            Parent::Span(parent) => match parent.span.scope_inner() {
                Some(scope) => with_current(scope, parent.span.session(), open),
                // An unrecorded parent of no trace (no pipeline): nothing to join.
                None => open(),
            },
        };
        let mut span = ActiveSpan { span };
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

/// Runs `f` with `scope` (and `correlation`, when given) current on this thread.
fn with_current<R>(
    scope: Current,
    correlation: Option<Arc<Correlation>>,
    f: impl FnOnce() -> R,
) -> R {
    #[allow(clippy::option_option)] // `None`: nothing to restore
    struct Restore(Current, Option<Option<Arc<Correlation>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            context::set(self.0);
            if let Some(prev) = self.1.take() {
                correlation::replace(prev);
            }
        }
    }
    let _restore = Restore(
        context::replace(scope),
        correlation.map(|c| correlation::replace(Some(c))),
    );
    f()
}

/// The static facts of run-time spans of one event type: their sampling counters are shared.
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

    /// Runs `f` with this span current on this thread: spans opened, `enrich_span`,
    /// `record_llm` and `propagation::inject` inside land on it, and a panic in `f` marks it.
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.span.in_scope(f)
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
        InstrumentedBy {
            inner: crate::span::Instrumented::new(self.span, future),
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
                prev_correlation: self.span.session().map(|s| correlation::replace(Some(s))),
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
        self.span.leave_scope(prev, prev_correlation);
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
}

impl<F: Future> Future for InstrumentedBy<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: never moved out of `self`.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
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
