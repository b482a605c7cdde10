//! The span record and the static facts of a traced function: the data at the bottom of the
//! runtime's layers. Spans write records, the sink moves them, sampling reads the static facts
//! (its counters live here as data; `sampling` gives them behaviour), and export renders them.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{Key, KeyValue, StringValue, Value};

use crate::capture::{self, ErrorInfo};

/// What kind of step a span is, as HoneyHive models it (`honeyhive_event_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// A call to an LLM.
    Model,
    /// A tool, API or function call (the default).
    Tool,
    /// A composition of steps, such as a RAG pipeline.
    Chain,
    /// A user session: the root of a conversation.
    Session,
    /// An agent loop.
    Agent,
    /// A retrieval from a vector store or search index.
    Retriever,
    /// An embedding call.
    Embedding,
    /// An evaluator scoring an output.
    Evaluator,
    /// A guardrail checking an input or output.
    Guardrail,
}

impl EventType {
    /// The name HoneyHive uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Model => "model",
            EventType::Tool => "tool",
            EventType::Chain => "chain",
            EventType::Session => "session",
            EventType::Agent => "agent",
            EventType::Retriever => "retriever",
            EventType::Embedding => "embedding",
            EventType::Evaluator => "evaluator",
            EventType::Guardrail => "guardrail",
        }
    }
}

/// What a span is to the services around it, as OpenTelemetry's span kind says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpanKind {
    /// Work inside this process (the default of most event types).
    #[default]
    Internal,
    /// The handling of a request from another service.
    Server,
    /// A request to another service (an LLM API, an HTTP call); the default of model and
    /// embedding spans.
    Client,
    /// A message handed to a queue.
    Producer,
    /// A message taken from a queue.
    Consumer,
}

impl SpanKind {
    /// The kind a span of `event_type` has unless told otherwise: calls to a model are calls
    /// to another service (the GenAI conventions make them CLIENT spans).
    pub const fn default_for(event_type: EventType) -> SpanKind {
        match event_type {
            EventType::Model | EventType::Embedding => SpanKind::Client,
            _ => SpanKind::Internal,
        }
    }

    /// The value of OTLP's `Span.SpanKind` enum.
    pub(crate) const fn otlp(self) -> u64 {
        match self {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    pub(crate) fn to_otel(self) -> opentelemetry::trace::SpanKind {
        use opentelemetry::trace::SpanKind as K;
        match self {
            SpanKind::Internal => K::Internal,
            SpanKind::Server => K::Server,
            SpanKind::Client => K::Client,
            SpanKind::Producer => K::Producer,
            SpanKind::Consumer => K::Consumer,
        }
    }
}

/// Static facts about a traced function, written once by the macro as a `static`.
#[doc(hidden)]
#[derive(Debug)]
pub struct Meta {
    /// Span name.
    pub name: &'static str,
    /// Event type.
    pub event_type: EventType,
    /// `sample_rate = p` on the function, if any.
    pub sample_rate: Option<f64>,
    /// How many attributes the expansion records at most, so the vector is allocated once.
    pub attr_capacity: usize,
    /// Sampling counters and adaptive rate of this function as a root.
    pub root: RootState,
}

/// A recorded span, as the hot path keeps it.
#[doc(hidden)]
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // four independent facts of one span, not a state
pub struct SpanRecord {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) parent_id: u64,
    pub(crate) parent_remote: bool,
    pub(crate) meta: &'static Meta,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) attrs: Vec<KeyValue>,
    pub(crate) events: Vec<Event>,
    pub(crate) status: Status,
    pub(crate) root_sample_rate: Option<f64>,
    /// The trace's sampling threshold at this span, when known (its OTLP `trace_state`).
    pub(crate) threshold: Option<u64>,
    /// Whether this span is the first of its trace in this process (the trace assembler
    /// waits for it).
    pub(crate) local_root: bool,
    /// The randomness its caller sent for the trace (`ot=rv:`), on a local root that joined
    /// one: the tail sampler decides by it, as the head decisions did. Stored plus one (a
    /// randomness has 56 bits), so that it takes 8 bytes of each record, not 16.
    pub(crate) randomness: Option<std::num::NonZeroU64>,
    /// Whether work carried out of this trace's scope (a spawned task, another thread) may end
    /// after this root: the assembler then waits a little for it before sending the trace.
    pub(crate) lingers: bool,
    /// Whether the thread was unwinding from a panic when the span opened (a traced call in a
    /// `Drop` during unwinding): that panic is not this span's, so it does not fail the span.
    pub(crate) opened_unwinding: bool,
    /// The thread this record was allocated by, which gets it back for reuse.
    pub(crate) home: u32,
    /// The name of a span opened at run time ([`crate::SpanBuilder`]); else `meta.name`.
    pub(crate) name: Option<Cow<'static, str>>,
    /// The kind a run-time span was given; else the default of its event type.
    pub(crate) kind: Option<SpanKind>,
}

/// Bytes a record holds besides its inline fields, as the queue and the assembler count them.
const RECORD_BYTES: usize = std::mem::size_of::<SpanRecord>();

impl SpanRecord {
    /// About how many bytes this record holds: its fields, its attribute and event lists, and
    /// the text they own, names and keys included (a run-time span name or attribute key is
    /// the caller's and may be of any size).
    pub(crate) fn bytes(&self) -> usize {
        let text = |v: &Value| match v {
            Value::String(s) => s.as_str().len(),
            Value::Array(opentelemetry::Array::String(a)) => {
                a.iter().map(|s| s.as_str().len() + 24).sum()
            }
            _ => 0,
        };
        let attribute = |kv: &KeyValue| {
            std::mem::size_of::<KeyValue>() + kv.key.as_str().len() + text(&kv.value)
        };
        RECORD_BYTES
            + self.name.as_ref().map_or(0, |n| n.len())
            + self.attrs.iter().map(attribute).sum::<usize>()
            + self
                .events
                .iter()
                .map(|e| {
                    std::mem::size_of::<Event>()
                        + e.name.len()
                        + e.attributes.iter().map(attribute).sum::<usize>()
                })
                .sum::<usize>()
    }

    /// Whether this span is the first of its trace in this process: a root here, or the
    /// child of a span from another process.
    pub(crate) fn is_local_root(&self) -> bool {
        self.local_root || self.parent_remote
    }

    /// The span's name.
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.meta.name)
    }

    /// The span's kind.
    pub(crate) fn kind(&self) -> SpanKind {
        self.kind
            .unwrap_or(SpanKind::default_for(self.meta.event_type))
    }
}

impl SpanRecord {
    /// The byte cap for captured values.
    #[inline]
    pub fn cap(&self) -> usize {
        capture::capture_cap()
    }

    /// Records an attribute under a static key.
    #[inline]
    pub fn attr(&mut self, key: &'static str, value: Value) {
        self.attrs
            .push(KeyValue::new(Key::from_static_str(key), value));
    }

    /// Records the output, if it could be captured.
    #[inline]
    pub fn output(&mut self, value: Option<Value>) {
        if let Some(value) = value {
            self.attr("honeyhive_outputs.result", value);
        }
    }

    /// Marks the span failed with an error returned by the function.
    pub fn error(&mut self, info: ErrorInfo) {
        let ErrorInfo { type_name, message } = info;
        self.set_error(type_name, message);
    }

    pub(crate) fn set_error(&mut self, type_name: StringValue, message: StringValue) {
        self.status = Status::Error {
            description: Cow::Owned(message.as_str().to_owned()),
        };
        self.attrs.push(KeyValue::new(
            "honeyhive_error",
            Value::String(message.clone()),
        ));
        self.events.push(Event::new(
            "exception",
            std::time::SystemTime::now(),
            vec![
                KeyValue::new("exception.type", Value::String(type_name)),
                KeyValue::new("exception.message", Value::String(message)),
            ],
            0,
        ));
    }
}

/// Per-operation state kept in each traced function's static metadata, used when the function
/// is a root: sampling counters and the adaptive rate.
///
/// Aligned to its own cache lines (two: the adjacent line is prefetched with it): every root
/// writes its counters, and the export thread reads the facts beside them (name, event type)
/// for every span it renders, which took the line from the caller's core on every root.
#[doc(hidden)]
#[derive(Debug)]
#[repr(align(128))]
pub struct RootState {
    /// The install these counters belong to; 0 before the first root.
    pub(crate) generation: AtomicU64,
    pub(crate) seen: AtomicU64,
    pub(crate) sampled: AtomicU64,
    pub(crate) window: Window,
}

impl RootState {
    /// Fresh state, for the `static` the macro writes: a constant, evaluated once for every
    /// traced fn rather than a `const fn` call evaluated in each one's `static`.
    #[allow(clippy::declare_interior_mutable_const)] // copied into each fn's `static`, never used as is
    pub const NEW: RootState = RootState::new();

    /// Fresh state.
    #[allow(clippy::new_without_default)] // only ever built in a `static`
    pub const fn new() -> RootState {
        RootState {
            generation: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            window: Window::new(),
        }
    }
}

/// One operation's adaptive state, in its static metadata.
#[derive(Debug)]
pub(crate) struct Window {
    /// Start of the current window, clock nanoseconds + 1; 0 before the first root.
    pub(crate) start: AtomicU64,
    /// Roots seen in the current window.
    pub(crate) seen: AtomicU64,
    /// Roots kept in the current window.
    pub(crate) kept: AtomicU64,
    /// The current probability, as `f64` bits.
    pub(crate) rate: AtomicU64,
    /// Smoothed roots per second, as `f64` bits; NaN before the first window closes.
    pub(crate) arrivals: AtomicU64,
}

impl Window {
    pub(crate) const fn new() -> Window {
        Window {
            start: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            rate: AtomicU64::new(1.0f64.to_bits()),
            arrivals: AtomicU64::new(f64::NAN.to_bits()),
        }
    }
}

/// One attribute of a span being rendered on the export thread: read in place from the span's
/// record when rendering leaves it as it is (the common case: no copy, nothing allocated or
/// freed), or owned when rendering added or changed it. Writing through it copies a borrowed
/// attribute first, like [`Cow::to_mut`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr<'a> {
    Borrowed(&'a KeyValue),
    Owned(KeyValue),
}

impl Attr<'_> {
    /// The attribute, owned: a borrowed one is cloned.
    pub(crate) fn into_owned(self) -> KeyValue {
        match self {
            Attr::Borrowed(kv) => kv.clone(),
            Attr::Owned(kv) => kv,
        }
    }
}

impl std::ops::Deref for Attr<'_> {
    type Target = KeyValue;
    fn deref(&self) -> &KeyValue {
        match self {
            Attr::Borrowed(kv) => kv,
            Attr::Owned(kv) => kv,
        }
    }
}

impl std::ops::DerefMut for Attr<'_> {
    fn deref_mut(&mut self) -> &mut KeyValue {
        if let Attr::Borrowed(kv) = *self {
            *self = Attr::Owned(kv.clone());
        }
        match self {
            Attr::Owned(kv) => kv,
            Attr::Borrowed(_) => unreachable!("made owned above"),
        }
    }
}

impl From<KeyValue> for Attr<'_> {
    fn from(kv: KeyValue) -> Self {
        Attr::Owned(kv)
    }
}

impl<'a> From<&'a KeyValue> for Attr<'a> {
    fn from(kv: &'a KeyValue) -> Self {
        Attr::Borrowed(kv)
    }
}

impl std::borrow::Borrow<KeyValue> for Attr<'_> {
    fn borrow(&self) -> &KeyValue {
        self
    }
}

/// Asks the CPU for the first 256 bytes of `value` ahead of their use: memory a thread on the
/// other core wrote last (a record, its attributes) otherwise makes the first read wait for
/// the transfer. A hint: it reads nothing and cannot fault; x86-64 only.
#[inline]
pub(crate) fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = std::mem::size_of_val(value).min(256);
        let start = std::ptr::from_ref(value).cast::<i8>();
        let mut at = 0;
        while at < bytes {
            // SAFETY: a prefetch reads nothing and cannot fault; the address is inside `value`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(at)) };
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
