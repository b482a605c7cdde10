//! The `tracing` bridge: `tracing` spans and events in our traces (cargo feature `tracing`).
//!
//! ```
//! use honeyhive_runtime::trace;
//! use honeyhive_runtime::tracing::HoneyHiveLayer;
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! #[trace(event_type = "chain")]
//! fn answer(question: &str) -> usize {
//!     // A child of `answer`, with `db.system` as an attribute.
//!     let span = tracing::info_span!("lookup", db.system = "postgresql");
//!     let _entered = span.enter();
//!     tracing::info!(rows = 3, "query done"); // an event on `lookup`
//!     question.len()
//! }
//!
//! let subscriber = tracing_subscriber::registry().with(HoneyHiveLayer::new());
//! tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
//! let _guard = honeyhive_runtime::init();
//! answer("Capital of France?");
//! ```
//!
//! What the layer does:
//!
//! - A `tracing` span opened inside a `#[trace]` call, or inside another `tracing` span this
//!   layer bridged, is a child span in the same trace; one with neither (or `parent: None`)
//!   is a root, sampled like any root. An explicit `parent: &span` is honoured.
//! - Its fields are attributes under their own names, and so are fields recorded later
//!   (`span.record(..)`). Text is cut at the capture cap; `Debug` values are formatted only
//!   when the span is recorded. `tracing-opentelemetry`'s special fields work the same way:
//!   `otel.name` renames the span, `otel.kind` sets its span kind, `otel.status_code =
//!   "ERROR"` (with `otel.status_description`) marks it failed.
//! - Entering a `tracing` span makes its span current, so `#[trace]` calls, `enrich_span`,
//!   `LlmCall::record` and `propagation::inject` inside it land on it; with
//!   `tracing::Instrument` this holds across `.await`s and threads. A span may be entered on
//!   several threads at once, re-entered, exited out of order and closed on any thread; an
//!   `EnteredSpan` returned from a `#[trace]` call stays current until it is dropped, and
//!   nothing of the ended call does after. A guard dropped on another thread than the one it
//!   entered on (an `enter()` held across an `.await`, a known misuse) leaves the span there
//!   when that thread next opens a span: while suspended it is still current on the thread it
//!   was entered on, as it is to `tracing` itself.
//! - `tracing` has no notion of cancellation: an `.instrument(..)` future dropped before it
//!   finished is entered, exited and closed just as one that finished, so its span is not
//!   marked `honeyhive.cancelled` as a `#[trace]` future's is.
//! - `gen_ai.*` fields (as rig and other crates emit them) make an LLM span: the event type
//!   follows `gen_ai.operation.name` (`chat`, `text_completion`, `generate_content` and any
//!   other operation with a model: `model`; `embeddings`: `embedding`; `execute_tool`: `tool`;
//!   `invoke_agent`, `create_agent`: `agent`; `retrieval`: `retriever`). On model and embedding
//!   spans the model, provider, parameters, tokens, finish reasons, response id and messages
//!   (`gen_ai.input.messages` / `gen_ai.output.messages` in the GenAI, OpenAI, Anthropic or
//!   Gemini shape, `gen_ai.system_instructions`, or the older `gen_ai.prompt` /
//!   `gen_ai.completion`) are recorded as an [`LlmCall`] when the span closes, so cost, token
//!   totals and both conventions come out as for a hand-written one. On other spans (an agent
//!   that sums its turns) the model and token fields are kept under `honeyhive_metadata.` and
//!   `honeyhive_metrics.` so that the trace's totals count each call once, on its model span;
//!   `gen_ai.prompt` / `gen_ai.completion` and a tool's `gen_ai.tool.call.arguments` /
//!   `gen_ai.tool.call.result` also become `input.value` / `output.value`.
//! - A `tracing` event is a span event on the current span (a bridged `tracing` span or a
//!   `#[trace]` call, whichever is innermost; its explicit parent if it has one), named by its
//!   message, with `level`, `target`, `message` and its fields. Outside any span it is dropped.
//!   An `ERROR` event marks nothing: a logged error is often handled or retried, so the span's
//!   status stays what the code returns (`#[trace]` marks an `Err`).
//!
//! Combine it with any other layer or filter; spans a per-layer filter hides from it are
//! simply not bridged (their children then hang under the nearest bridged span or call).
//!
//! `span.follows_from(&cause)` (a batch job that follows the requests it serves, a retry that
//! follows the attempt before) is recorded on `span` as the attribute [`FOLLOWS_FROM`]: the
//! span ids of the causes, 16 hex digits each as OpenTelemetry writes them, in the order
//! given, each once. Our span records carry no OpenTelemetry links, so the ids are data for a
//! query, not links a viewer draws. A cause that is not recorded (unsampled, or hidden from the
//! layer) is left out.
//!
//! [`LlmCall`]: crate::LlmCall

use std::cell::{Cell, RefCell};
use std::fmt;

use opentelemetry::trace::Event;
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event as TracingEvent, Level, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::capture::{capture_cap, debug_text, truncated_text};
use crate::context::{self, Current};
use crate::dynamic::{ActiveSpan, Parent, RawEntered, SpanBuilder};
use crate::record::{EventType, SpanKind, SpanRecord};
use crate::span::{self, Annotation};
use crate::{LlmCall, Message};

/// The attribute a bridged span lists the spans it follows from in (`Span::follows_from`):
/// their span ids as hex text.
pub const FOLLOWS_FROM: &str = "honeyhive.follows_from";

/// A `tracing_subscriber` layer that puts `tracing` spans and events in our traces; see the
/// [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct HoneyHiveLayer {
    _private: (),
}

impl HoneyHiveLayer {
    /// The layer. Install the pipeline as usual (`honeyhive_runtime::init()`); without one,
    /// bridged spans are not recorded and cost a few nanoseconds.
    pub fn new() -> HoneyHiveLayer {
        HoneyHiveLayer { _private: () }
    }
}

/// What the layer keeps in a `tracing` span's extensions.
struct Bridged {
    span: ActiveSpan,
    /// The `gen_ai.*` fields of a model or embedding span, recorded as one `LlmCall` when it
    /// closes (tokens and the completion usually arrive after the span opened).
    llm: Option<Box<GenAi>>,
    status: OtelStatus,
    /// What entering it makes current, once entered.
    inner: Option<Current>,
    /// How many [`ENTERED`] entries of this span the threads hold.
    entries: u32,
    /// How many exits found no entry on their thread: the span was entered on another one,
    /// where its entries made before are strays, left when that thread next opens a span.
    strays: u32,
}

/// `otel.status_code = "ERROR"` and `otel.status_description`, applied when the span closes
/// (they may come in either order).
#[derive(Default)]
struct OtelStatus {
    failed: bool,
    description: Option<String>,
}

thread_local! {
    /// The bridged spans entered on this thread, innermost last. Keyed by span id, since a
    /// span can be entered on several threads at once and exits need not come in order.
    static ENTERED: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// Set while a span's fields are recorded with its extensions locked: they run the user's
    /// `Debug` impls, whose traced calls must not settle strays (that locks extensions).
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// An enter of a bridged span on this thread.
struct Entry {
    id: u64,
    /// What entering replaced.
    raw: RawEntered,
    /// What entering made current and what it replaced, to leave it by if the span closes
    /// while it is a stray (its `raw` is left through the span).
    inner: Current,
    outer: Current,
    /// The span's [`Bridged::strays`] when it was entered: a later exit elsewhere ends it.
    strays: u32,
}

impl<S> Layer<S> for HoneyHiveLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        settle_strays_in(&ctx);
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        let event_type = event_type_of(attrs);
        let builder = SpanBuilder::new(attrs.metadata().name()).event_type(event_type);
        let explicit = attrs.parent().and_then(|parent| ctx.span(parent));
        let mut active = if attrs.is_root() {
            builder.parent(Parent::Root).start()
        } else if let Some(parent) = explicit {
            let extensions = parent.extensions();
            match extensions.get::<Bridged>() {
                Some(bridged) => builder.parent(Parent::Span(&bridged.span)).start(),
                // A parent hidden from this layer: the span hangs where it was opened.
                None => builder.start(),
            }
        } else {
            builder.start()
        };
        let mut llm =
            matches!(event_type, EventType::Model | EventType::Embedding).then(Box::default);
        let mut status = OtelStatus::default();
        if let Some(record) = active.record_mut() {
            attrs.record(&mut Fields {
                record,
                llm: &mut llm,
                status: &mut status,
            });
        }
        span_ref.extensions_mut().insert(Bridged {
            span: active,
            llm,
            status,
            inner: None,
            entries: 0,
            strays: 0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        let mut extensions = span_ref.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        if let Some(record) = bridged.span.record_mut() {
            let outer = RECORDING.replace(true);
            values.record(&mut Fields {
                record,
                llm: &mut bridged.llm,
                status: &mut bridged.status,
            });
            RECORDING.set(outer);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let cause = ctx.span(follows).and_then(|cause| {
            let mut extensions = cause.extensions_mut();
            let record = extensions.get_mut::<Bridged>()?.span.record_mut()?;
            Some(opentelemetry::SpanId::from(record.span_id).to_string())
        });
        let (Some(cause), Some(span_ref)) = (cause, ctx.span(id)) else {
            return;
        };
        let mut extensions = span_ref.extensions_mut();
        let Some(record) = extensions
            .get_mut::<Bridged>()
            .and_then(|bridged| bridged.span.record_mut())
        else {
            return;
        };
        let listed = record.attrs.iter_mut().find_map(|kv| match &mut kv.value {
            Value::Array(Array::String(ids)) if kv.key.as_str() == FOLLOWS_FROM => Some(ids),
            _ => None,
        });
        match listed {
            Some(ids) => {
                if !ids.iter().any(|listed| listed.as_str() == cause) {
                    ids.push(StringValue::from(cause));
                }
            }
            None => record.attrs.push(KeyValue::new(
                FOLLOWS_FROM,
                Value::Array(Array::String(vec![StringValue::from(cause)])),
            )),
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        settle_strays_in(&ctx);
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        let mut extensions = span_ref.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        let outer = context::current();
        let raw = bridged.span.enter_raw();
        if !raw.changes_scope() {
            // Nothing to restore on exit (an unrecorded span under an unrecorded parent).
            bridged.span.exit_raw(raw);
            return;
        }
        let inner = context::current();
        bridged.inner = Some(inner);
        let mut entry = Some(Entry {
            id: id.into_u64(),
            raw,
            inner,
            outer,
            strays: bridged.strays,
        });
        let _ = ENTERED.try_with(|stack| {
            if let Ok(mut stack) = stack.try_borrow_mut()
                && let Some(entry) = entry.take()
            {
                stack.push(entry);
            }
        });
        match entry {
            None => bridged.entries += 1,
            // This thread is exiting (or the stack is busy): leave at once rather than leave
            // the span current for good.
            Some(entry) => bridged.span.exit_raw(entry.raw),
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        let mut extensions = span_ref.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        match take_entered(id.into_u64()) {
            Some(raw) => {
                bridged.entries -= 1;
                bridged.span.exit_raw(raw);
            }
            // Entered on another thread (a guard held across an `.await` that resumed on
            // another worker, or sent there): it must not stay current there.
            None if bridged.entries > 0 => {
                bridged.strays = bridged.strays.wrapping_add(1);
                context::note_stray(settle_strays_here);
            }
            None => {}
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(&id) else {
            return;
        };
        let Some(bridged) = span_ref.extensions_mut().remove::<Bridged>() else {
            return;
        };
        if bridged.entries > 0 {
            // Closed while entered: its entries are on other threads (a guard sent or held
            // across an `.await`), which leave it when they next open a span.
            context::note_stray(settle_strays_here);
        }
        finish(bridged);
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: Context<'_, S>) {
        if event.is_root() {
            // `parent: None`: an event of no span.
            return;
        }
        if let Some(parent) = event.parent() {
            let Some(span_ref) = ctx.span(parent) else {
                return;
            };
            let mut extensions = span_ref.extensions_mut();
            if let Some(record) = extensions
                .get_mut::<Bridged>()
                .and_then(|bridged| bridged.span.record_mut())
            {
                record.events.push(span_event(event));
            }
            return;
        }
        if span::current_is_recording() {
            span::annotate(|| Annotation::Event(span_event(event)));
        }
    }
}

/// Takes this thread's innermost entry for span `id`. A scope left out of order hands what it
/// restores to the one entered after it (see `context::leaving`).
fn take_entered(id: u64) -> Option<RawEntered> {
    ENTERED
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let i = stack.iter().rposition(|entry| entry.id == id)?;
            Some(stack.remove(i).raw)
        })
        .ok()
        .flatten()
}

/// Leaves, on this thread, the scopes of bridged spans entered here and since exited on
/// another thread, innermost first; what was annotated here meanwhile goes to them.
fn settle_strays_in<S>(ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if context::strays_pending() {
        context::settle_strays_with(|| settle_strays(|id| ctx.span(id)));
    }
}

/// [`settle_strays_in`] for a traced call outside the layer, through the default
/// subscriber's registry; `false` when it cannot be reached now (inside a callback of the
/// subscriber), to try again at the next span.
fn settle_strays_here() -> bool {
    let has_entries = ENTERED
        .try_with(|stack| stack.try_borrow().map_or(true, |stack| !stack.is_empty()))
        .unwrap_or(false);
    if !has_entries {
        return true;
    }
    tracing_core::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<Registry>()
            .is_some_and(|registry| settle_strays(|id| registry.span(id)))
    })
}

/// Leaves this thread's entries that an exit elsewhere or a close ended, innermost first,
/// looking their spans up with `lookup`; `false` when this thread's entries cannot be read or
/// its spans locked now.
fn settle_strays<'a, R>(lookup: impl Fn(&Id) -> Option<SpanRef<'a, R>>) -> bool
where
    R: LookupSpan<'a> + 'a,
{
    if RECORDING.get() {
        return false;
    }
    let mut i = match ENTERED.try_with(|stack| stack.try_borrow().map(|stack| stack.len())) {
        Ok(Ok(len)) => len,
        Ok(Err(_)) => return false,
        // The thread is ending: nothing of it is current any more.
        Err(_) => return true,
    };
    while i > 0 {
        i -= 1;
        let Some((id, inner, strays)) = entry_at(i, |entry| (entry.id, entry.inner, entry.strays))
        else {
            continue;
        };
        let span_ref = lookup(&Id::from_u64(id));
        let mut extensions = span_ref.as_ref().map(SpanRef::extensions_mut);
        // The span is open (and the id not taken by a newer span): a stray if it was exited
        // elsewhere since this entry.
        if let Some(bridged) = extensions
            .as_mut()
            .and_then(|extensions| extensions.get_mut::<Bridged>())
            .filter(|bridged| bridged.inner == Some(inner))
        {
            if bridged.strays != strays
                && let Some(entry) = remove_entry(i)
            {
                bridged.entries -= 1;
                bridged.span.exit_raw(entry.raw);
            }
        } else if let Some(entry) = remove_entry(i) {
            // Closed: left without it, and what was annotated here meanwhile is lost.
            span::leave_closed(entry.inner, entry.outer);
        }
    }
    true
}

/// Reads this thread's `i`-th entry.
fn entry_at<T>(i: usize, read: impl FnOnce(&Entry) -> T) -> Option<T> {
    ENTERED
        .try_with(|stack| stack.try_borrow().ok()?.get(i).map(read))
        .ok()
        .flatten()
}

fn remove_entry(i: usize) -> Option<Entry> {
    ENTERED
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            (i < stack.len()).then(|| stack.remove(i))
        })
        .ok()
        .flatten()
}

/// Ends a bridged span: the LLM call its fields describe, its status, then the span.
fn finish(bridged: Bridged) {
    let Bridged {
        mut span,
        llm,
        status,
        ..
    } = bridged;
    if !span.is_recording() {
        return;
    }
    if let Some(llm) = llm
        && let Some(call) = llm.into_call()
    {
        span.in_scope(|| call.record());
    }
    if status.failed {
        span.set_error("error", status.description.as_deref().unwrap_or("error"));
    }
}

/// The event type of a span, from its `gen_ai.*` fields; [`EventType::Tool`] (as for
/// `#[trace]`) when it has none.
fn event_type_of(attrs: &Attributes<'_>) -> EventType {
    let fields = attrs.metadata().fields();
    if !fields.iter().any(|f| f.name().starts_with("gen_ai.")) {
        return EventType::Tool;
    }
    let mut operation = Operation(None);
    attrs.record(&mut operation);
    match operation.0.as_deref() {
        Some("embeddings") => EventType::Embedding,
        Some("execute_tool") => EventType::Tool,
        Some("invoke_agent" | "create_agent") => EventType::Agent,
        Some("invoke_workflow") => EventType::Chain,
        Some("retrieval") => EventType::Retriever,
        Some(_) => EventType::Model,
        // No operation: a model span if it names a model or a provider.
        None if fields.iter().any(|f| {
            matches!(
                f.name(),
                "gen_ai.request.model" | "gen_ai.system" | "gen_ai.provider.name"
            )
        }) =>
        {
            EventType::Model
        }
        None => EventType::Tool,
    }
}

/// Reads `gen_ai.operation.name`, and nothing else.
struct Operation(Option<String>);

impl Visit for Operation {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "gen_ai.operation.name" {
            self.0 = Some(truncated_text(value, 64).as_str().to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "gen_ai.operation.name" {
            self.0 = Some(debug_text(value, 64).as_str().to_owned());
        }
    }
}

/// A field's value, as `tracing` hands it over.
enum FieldValue<'v> {
    Str(&'v str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Debug(&'v dyn fmt::Debug),
}

impl FieldValue<'_> {
    /// The value as an attribute: text cut at the cap, `Debug` formatted (at most the cap's
    /// worth of work), integers past `i64::MAX` as text.
    fn into_value(self) -> Value {
        let cap = capture_cap();
        match self {
            FieldValue::Str(s) => Value::String(truncated_text(s, cap)),
            FieldValue::I64(n) => Value::I64(n),
            FieldValue::U64(n) => match i64::try_from(n) {
                Ok(n) => Value::I64(n),
                Err(_) => Value::String(StringValue::from(n.to_string())),
            },
            FieldValue::F64(f) => Value::F64(f),
            FieldValue::Bool(b) => Value::Bool(b),
            FieldValue::Debug(d) => Value::String(debug_text(d, cap)),
        }
    }

    /// The value as text, at most `cap` bytes and about that much formatting work.
    fn text(&self, cap: usize) -> Option<String> {
        match self {
            FieldValue::Str(s) => Some(truncated_text(s, cap).as_str().to_owned()),
            FieldValue::Debug(d) => Some(debug_text(d, cap).as_str().to_owned()),
            _ => None,
        }
    }

    fn count(&self) -> Option<u64> {
        match *self {
            FieldValue::I64(n) => u64::try_from(n).ok(),
            FieldValue::U64(n) => Some(n),
            // Some crates record counts as floats or text.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            FieldValue::F64(f) if f >= 0.0 && f.is_finite() => Some(f as u64),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn float(&self) -> Option<f64> {
        match *self {
            FieldValue::F64(f) => Some(f),
            #[allow(clippy::cast_precision_loss)] // parameters are small numbers
            FieldValue::I64(n) => Some(n as f64),
            #[allow(clippy::cast_precision_loss)]
            FieldValue::U64(n) => Some(n as f64),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Writes a span's fields into its record.
struct Fields<'a> {
    record: &'a mut SpanRecord,
    llm: &'a mut Option<Box<GenAi>>,
    status: &'a mut OtelStatus,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: FieldValue<'_>) {
        let name = field.name();
        match name {
            "otel.name" => {
                if let Some(text) = value.text(capture_cap()) {
                    self.record.name = Some(text.into());
                }
                return;
            }
            "otel.kind" => {
                if let Some(kind) = value.text(64).as_deref().and_then(span_kind) {
                    self.record.kind = Some(kind);
                }
                return;
            }
            "otel.status_code" => {
                if let Some(code) = value.text(64) {
                    self.status.failed = code.eq_ignore_ascii_case("error");
                }
                return;
            }
            "otel.status_description" | "otel.status_message" => {
                if let Some(text) = value.text(capture_cap()) {
                    self.status.description = Some(text);
                }
                return;
            }
            _ => {}
        }
        if let Some(llm) = self.llm.as_mut() {
            if llm.take(name, &value) {
                return;
            }
        } else if name.starts_with("gen_ai.") || name.starts_with("llm.token_count.") {
            self.put_other_gen_ai(name, value);
            return;
        }
        self.record.attrs.push(KeyValue::new(
            Key::from_static_str(name),
            value.into_value(),
        ));
    }

    /// A `gen_ai.*` field of a span that is not a model call: model and token fields are moved
    /// out of the keys the trace's totals read, prompt and completion (and a tool's arguments
    /// and result) shown as the span's input and output.
    fn put_other_gen_ai(&mut self, name: &'static str, value: FieldValue<'_>) {
        let io = match name {
            "gen_ai.prompt" | "gen_ai.tool.call.arguments" => Some("input.value"),
            "gen_ai.completion" | "gen_ai.tool.call.result" => Some("output.value"),
            _ => None,
        };
        let key = if name.starts_with("gen_ai.usage.") || name.starts_with("llm.token_count.") {
            Key::from(format!("honeyhive_metrics.{name}"))
        } else if matches!(name, "gen_ai.request.model" | "gen_ai.response.model") {
            Key::from(format!("honeyhive_metadata.{name}"))
        } else {
            Key::from_static_str(name)
        };
        let value = value.into_value();
        if let Some(io) = io {
            self.record.attrs.push(KeyValue::new(io, value.clone()));
        }
        self.record.attrs.push(KeyValue::new(key, value));
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, FieldValue::Str(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, FieldValue::Debug(value));
    }
}

fn span_kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_lowercase().as_str() {
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => return None,
    })
}

/// A span event for a `tracing` event: named by its message, with `level`, `target`,
/// `message` and its fields.
fn span_event(event: &TracingEvent<'_>) -> Event {
    let meta = event.metadata();
    let mut visitor = EventFields {
        attrs: Vec::with_capacity(4 + meta.fields().len()),
        message: None,
    };
    visitor
        .attrs
        .push(KeyValue::new("level", level_name(*meta.level())));
    visitor
        .attrs
        .push(KeyValue::new("target", StringValue::from(meta.target())));
    event.record(&mut visitor);
    let EventFields { mut attrs, message } = visitor;
    let name = match message {
        Some(message) => {
            let name = message.as_str().to_owned();
            attrs.push(KeyValue::new("message", Value::String(message)));
            std::borrow::Cow::Owned(name)
        }
        None => std::borrow::Cow::Borrowed(meta.name()),
    };
    Event::new(name, std::time::SystemTime::now(), attrs, 0)
}

const fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

struct EventFields {
    attrs: Vec<KeyValue>,
    message: Option<StringValue>,
}

impl EventFields {
    fn put(&mut self, field: &Field, value: FieldValue<'_>) {
        let value = value.into_value();
        if field.name() == "message" {
            if let Value::String(message) = value {
                self.message = Some(message);
            }
            return;
        }
        self.attrs
            .push(KeyValue::new(Key::from_static_str(field.name()), value));
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, FieldValue::Str(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, FieldValue::Debug(value));
    }
}

/// A text field of a model span (a message list) is read up to this many capture caps.
const MESSAGE_LIST_CAPS: usize = 64;

/// The `gen_ai.*` fields of a model or embedding span, until it closes.
#[derive(Debug, Default)]
struct GenAi {
    model: Option<String>,
    response_model: Option<String>,
    provider: Option<String>,
    operation: Option<String>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    max_tokens: Option<u64>,
    seed: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    finish_reasons: Vec<String>,
    response_id: Option<String>,
    system_instructions: Option<String>,
    input_messages: Option<String>,
    output_messages: Option<String>,
    prompt: Option<String>,
    completion: Option<String>,
}

impl GenAi {
    /// Keeps `name` if it is a field the LLM call carries; `false` leaves it an attribute.
    fn take(&mut self, name: &str, value: &FieldValue<'_>) -> bool {
        // A message list holds many messages of up to the cap each; each is cut at the cap
        // when the call is recorded.
        let cap = capture_cap().saturating_mul(MESSAGE_LIST_CAPS);
        let text = |slot: &mut Option<String>| {
            if let Some(text) = value.text(cap) {
                *slot = Some(text);
            }
        };
        let count = |slot: &mut Option<u64>| {
            if let Some(n) = value.count() {
                *slot = Some(n);
            }
        };
        let float = |slot: &mut Option<f64>| {
            if let Some(f) = value.float() {
                *slot = Some(f);
            }
        };
        match name {
            "gen_ai.request.model" => text(&mut self.model),
            "gen_ai.response.model" => text(&mut self.response_model),
            // `gen_ai.system` is the older name of the provider.
            "gen_ai.provider.name" | "gen_ai.system" => text(&mut self.provider),
            "gen_ai.operation.name" => text(&mut self.operation),
            "gen_ai.request.temperature" => float(&mut self.temperature),
            "gen_ai.request.top_p" => float(&mut self.top_p),
            "gen_ai.request.top_k" => float(&mut self.top_k),
            "gen_ai.request.frequency_penalty" => float(&mut self.frequency_penalty),
            "gen_ai.request.presence_penalty" => float(&mut self.presence_penalty),
            "gen_ai.request.max_tokens" => count(&mut self.max_tokens),
            "gen_ai.request.seed" => count(&mut self.seed),
            "gen_ai.usage.input_tokens" | "gen_ai.usage.prompt_tokens" => {
                count(&mut self.input_tokens);
            }
            "gen_ai.usage.output_tokens" | "gen_ai.usage.completion_tokens" => {
                count(&mut self.output_tokens);
            }
            "gen_ai.usage.cache_read.input_tokens" => count(&mut self.cache_read_input_tokens),
            "gen_ai.usage.cache_creation.input_tokens" => {
                count(&mut self.cache_creation_input_tokens);
            }
            "gen_ai.usage.reasoning.output_tokens" | "gen_ai.usage.reasoning_tokens" => {
                count(&mut self.reasoning_tokens);
            }
            "gen_ai.response.finish_reasons" => {
                if let Some(text) = value.text(capture_cap()) {
                    self.finish_reasons = finish_reasons(&text);
                }
            }
            "gen_ai.response.id" => text(&mut self.response_id),
            "gen_ai.system_instructions" => text(&mut self.system_instructions),
            "gen_ai.input.messages" => text(&mut self.input_messages),
            "gen_ai.output.messages" => text(&mut self.output_messages),
            "gen_ai.prompt" => text(&mut self.prompt),
            "gen_ai.completion" => text(&mut self.completion),
            _ => return false,
        }
        true
    }

    /// The call, when anything was recorded.
    fn into_call(self) -> Option<LlmCall> {
        let GenAi {
            model,
            response_model,
            provider,
            operation,
            temperature,
            top_p,
            top_k,
            frequency_penalty,
            presence_penalty,
            max_tokens,
            seed,
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_creation_input_tokens,
            reasoning_tokens,
            finish_reasons,
            response_id,
            system_instructions,
            input_messages,
            output_messages,
            prompt,
            completion,
        } = self;
        let mut any = model.is_some();
        let mut call = match model {
            Some(model) => LlmCall::new(model),
            None => LlmCall::default(),
        };
        macro_rules! set {
            ($($field:ident => $method:ident),* $(,)?) => {
                $(if let Some(value) = $field {
                    call = call.$method(value);
                    any = true;
                })*
            };
        }
        set! {
            response_model => response_model,
            provider => provider,
            operation => operation,
            temperature => temperature,
            top_p => top_p,
            top_k => top_k,
            frequency_penalty => frequency_penalty,
            presence_penalty => presence_penalty,
            max_tokens => max_tokens,
            input_tokens => input_tokens,
            output_tokens => output_tokens,
            cache_read_input_tokens => cache_read_input_tokens,
            cache_creation_input_tokens => cache_creation_input_tokens,
            reasoning_tokens => reasoning_tokens,
            response_id => response_id,
        }
        if let Some(seed) = seed {
            call = call.seed(i64::try_from(seed).unwrap_or(i64::MAX));
            any = true;
        }
        for reason in finish_reasons {
            call = call.finish_reason(reason);
            any = true;
        }
        let mut inputs = Vec::new();
        if let Some(system) = system_instructions {
            inputs.extend(messages(&system, "system"));
        }
        match (input_messages, prompt) {
            (Some(raw), _) | (None, Some(raw)) => inputs.extend(messages(&raw, "user")),
            (None, None) => {}
        }
        let outputs = match (output_messages, completion) {
            (Some(raw), _) | (None, Some(raw)) => messages(&raw, "assistant"),
            (None, None) => Vec::new(),
        };
        any |= !inputs.is_empty() || !outputs.is_empty();
        call = call.messages(inputs);
        for message in outputs {
            call = call.output_message(message.role, message.content);
        }
        any.then_some(call)
    }
}

/// `["stop"]` as JSON, or plain `stop`.
fn finish_reasons(text: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => vec![text.to_owned()],
    }
}

/// Messages from a field: a JSON list (or one object) in the GenAI shape (`parts`), the
/// OpenAI and Anthropic shape (`content` as text or as a list of blocks) or Gemini's (`parts`
/// of `text`); anything else is one message of `role` with the text as it is.
fn messages(raw: &str, role: &'static str) -> Vec<Message> {
    let plain = || vec![Message::new(role, raw)];
    let Ok(json) = serde_json::from_str::<serde_json::Value>(raw) else {
        return plain();
    };
    let items = match json {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return plain(),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let role = item
            .get("role")
            .and_then(serde_json::Value::as_str)
            .map_or(std::borrow::Cow::Borrowed(role), |r| {
                std::borrow::Cow::Owned(r.to_owned())
            });
        let content = item
            .get("content")
            .or_else(|| item.get("parts"))
            .map_or_else(|| text_of(item), text_of);
        out.push(Message::new(role, content));
    }
    out
}

/// The text of a message's content: a string, or the text parts of a list of blocks; a
/// block with no text (a tool call, an image) as its JSON.
fn text_of(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(blocks) => {
            let texts: Vec<String> = blocks
                .iter()
                .map(|block| match block {
                    serde_json::Value::String(s) => s.clone(),
                    _ => block
                        .get("content")
                        .or_else(|| block.get("text"))
                        .and_then(serde_json::Value::as_str)
                        .map_or_else(|| block.to_string(), str::to_owned),
                })
                .collect();
            texts.join("\n")
        }
        serde_json::Value::Object(_) => content
            .get("text")
            .or_else(|| content.get("content"))
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| content.to_string(), str::to_owned),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_in_every_common_shape() {
        let texts = |raw: &str| -> Vec<(String, String)> {
            messages(raw, "user")
                .into_iter()
                .map(|m| (m.role.into_owned(), m.content))
                .collect()
        };
        let pair = |r: &str, c: &str| (r.to_owned(), c.to_owned());
        assert_eq!(
            texts(r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#),
            [pair("user", "hi")]
        );
        assert_eq!(
            texts(r#"[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]"#),
            [pair("system", "be brief"), pair("user", "hi")]
        );
        assert_eq!(
            texts(
                r#"[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]"#
            ),
            [pair("user", "a\nb")]
        );
        assert_eq!(
            texts(r#"[{"role":"model","parts":[{"text":"ok"}]}]"#),
            [pair("model", "ok")]
        );
        assert_eq!(texts("just text"), [pair("user", "just text")]);
        assert_eq!(texts("42"), [pair("user", "42")]);
    }

    #[test]
    fn finish_reasons_are_read_as_json_or_text() {
        assert_eq!(finish_reasons(r#"["stop","length"]"#), ["stop", "length"]);
        assert_eq!(finish_reasons("stop"), ["stop"]);
    }
}
