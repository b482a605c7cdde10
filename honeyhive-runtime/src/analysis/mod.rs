//! Trace analysis: whole traces as plain data, from the in-process store of recent traces,
//! from [`testing::Recorder`](crate::testing::Recorder) spans or from an OTLP JSON file, and
//! what can be asked of them.
//!
//! - [`Trace::critical_path`]: the chain of spans that decided when the root ended,
//!   concurrency accounted for (the console waterfall marks it with `◆`).
//! - [`summarize`]: calls, errors, tokens, cost and latency per model and provider.
//! - [`Query`]: filters, a group-by and aggregates over spans.
//! - [`TraceStore`]: recent traces kept in the process, bounded in bytes
//!   ([`Builder::trace_store`](crate::Builder::trace_store)).
//! - [`alerts`]: error-rate, latency and cost-burn rules over a window
//!   ([`Builder::alert`](crate::Builder::alert)).
//! - [`read_file`]: traces from an OTLP JSON-lines file.
//!
//! The model here names no OpenTelemetry type, so code written against it survives an
//! OpenTelemetry upgrade. It sits below `export`: the export thread's observers build it,
//! the console uses its algorithms.

pub mod alerts;
mod critical_path;
mod file;
mod query;
mod store;
mod summary;

pub use critical_path::PathStep;
pub use file::{ReadError, SkippedLine, TraceFile, read, read_file};
pub use query::{Aggregate, Group, GroupBy, Query};
pub use store::{StoreStats, TraceStore};
pub use summary::{ModelSummary, summarize, summarize_spans};

use std::collections::{HashMap, HashSet};

use crate::enrich::Value;
use crate::record::SpanKind;

/// A span's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Not set (most successful spans).
    #[default]
    Unset,
    /// Set to OK explicitly.
    Ok,
    /// Failed, with the description.
    Error(String),
}

impl Status {
    /// Whether the span failed.
    pub fn is_error(&self) -> bool {
        matches!(self, Status::Error(_))
    }
}

/// An event recorded on a span (a log line, an exception, an evaluation result).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SpanEvent {
    /// The event's name.
    pub name: String,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Its attributes, in their order.
    pub attributes: Vec<(String, Value)>,
}

/// One finished span.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Span {
    /// The trace id.
    pub trace_id: u128,
    /// The span id.
    pub span_id: u64,
    /// The parent's span id; 0 for a root.
    pub parent_span_id: u64,
    /// Whether the parent is in another process.
    pub parent_remote: bool,
    /// The span's name.
    pub name: String,
    /// Its OpenTelemetry span kind.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch; never before the start.
    pub end_unix_nanos: u64,
    /// Its outcome.
    pub status: Status,
    /// Its attributes as the backend got them (conventions' keys, cost and roll-ups
    /// included), in their order.
    pub attributes: Vec<(String, Value)>,
    /// Its events.
    pub events: Vec<SpanEvent>,
}

impl Span {
    /// The value of attribute `key`, if set.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The text of attribute `key`, if it is text.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number in attribute `key`, if it is a number.
    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.attr(key)? {
            #[allow(clippy::cast_precision_loss)] // token counts and the like
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// How long the span took, in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// The spans of one trace.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Trace {
    /// The trace id.
    pub trace_id: u128,
    /// Its spans, in no particular order.
    pub spans: Vec<Span>,
}

impl Trace {
    /// A trace of `spans` (all of one trace id; the first span's is taken).
    pub fn new(spans: Vec<Span>) -> Trace {
        Trace {
            trace_id: spans.first().map_or(0, |s| s.trace_id),
            spans,
        }
    }

    /// Groups spans of any traces by trace id, each trace's spans in their given order, the
    /// traces in the order their first span came.
    pub fn group(spans: impl IntoIterator<Item = Span>) -> Vec<Trace> {
        let mut index: HashMap<u128, usize> = HashMap::new();
        let mut traces: Vec<Trace> = Vec::new();
        for span in spans {
            let i = *index.entry(span.trace_id).or_insert_with(|| {
                traces.push(Trace {
                    trace_id: span.trace_id,
                    spans: Vec::new(),
                });
                traces.len() - 1
            });
            traces[i].spans.push(span);
        }
        traces
    }

    /// The roots: the spans without a parent in this trace. That is a span without a
    /// parent, or under a remote parent that is not in the trace: a request that came from
    /// another service is a root, but feedback on a span, or the server side of a call
    /// whose client side is here too, is a child of that span. A span under a missing
    /// parent of its own process is not a root either: its trace's root was lost. Queries
    /// ([`Query::roots`]), alert rules and the critical path take roots the same way.
    pub fn roots(&self) -> impl Iterator<Item = &Span> {
        self.spans
            .iter()
            .zip(roots(&self.spans))
            .filter_map(|(span, root)| root.then_some(span))
    }

    /// The root (the earliest-starting one if several, see [`Trace::roots`]).
    pub fn root(&self) -> Option<&Span> {
        self.roots().min_by_key(|s| s.start_unix_nanos)
    }
}

/// Which of `spans` (of any traces) are roots, in their order: the one notion of a root in
/// analysis, described at [`Trace::roots`].
fn roots(spans: &[Span]) -> Vec<bool> {
    let ids: HashSet<(u128, u64)> = spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
    spans
        .iter()
        .map(|s| is_root_among(s, |parent| ids.contains(&(s.trace_id, parent))))
        .collect()
}

/// Whether `span` is a root when `has_span` tells which span ids of its trace are known.
fn is_root_among(span: &Span, has_span: impl Fn(u64) -> bool) -> bool {
    span.parent_span_id == 0
        || (span.parent_remote
            && (span.parent_span_id == span.span_id || !has_span(span.parent_span_id)))
}

/// The nearest-rank percentile `p` (0 to 100) of `sorted` values; 0 when empty.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // a rank within the slice
    let rank = (p.clamp(0.0, 100.0) * sorted.len() as f64 / 100.0).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// An OpenTelemetry value as ours.
pub(crate) fn value_of(v: &opentelemetry::Value) -> Value {
    use opentelemetry::{Array, Value as V};
    match v {
        V::Bool(b) => Value::Bool(*b),
        V::I64(i) => Value::Int(*i),
        V::F64(f) => Value::Float(*f),
        V::String(s) => Value::Str(s.as_str().to_owned().into()),
        V::Array(Array::Bool(a)) => Value::List(a.iter().map(|b| Value::Bool(*b)).collect()),
        V::Array(Array::I64(a)) => Value::List(a.iter().map(|i| Value::Int(*i)).collect()),
        V::Array(Array::F64(a)) => Value::List(a.iter().map(|f| Value::Float(*f)).collect()),
        V::Array(Array::String(a)) => Value::List(
            a.iter()
                .map(|s| Value::Str(s.as_str().to_owned().into()))
                .collect(),
        ),
        _ => Value::Str(v.as_str().into_owned().into()),
    }
}

pub(crate) fn attributes_of<A: std::borrow::Borrow<opentelemetry::KeyValue>>(
    kvs: &[A],
) -> Vec<(String, Value)> {
    kvs.iter()
        .map(A::borrow)
        .map(|kv| (kv.key.as_str().to_owned(), value_of(&kv.value)))
        .collect()
}

pub(crate) fn status_of(status: &opentelemetry::trace::Status) -> Status {
    match status {
        opentelemetry::trace::Status::Unset => Status::Unset,
        opentelemetry::trace::Status::Ok => Status::Ok,
        opentelemetry::trace::Status::Error { description } => {
            Status::Error(description.to_string())
        }
    }
}

pub(crate) fn events_of(events: &[opentelemetry::trace::Event]) -> Vec<SpanEvent> {
    events
        .iter()
        .map(|e| SpanEvent {
            name: e.name.to_string(),
            time_unix_nanos: crate::clock::unix_nanos(e.timestamp),
            attributes: attributes_of(&e.attributes),
        })
        .collect()
}
