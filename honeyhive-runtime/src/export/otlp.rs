//! OTLP protobuf, written straight from span records and their rendered attributes: no
//! `SpanData`, no generated message types, no second copy. Sizes are computed before each
//! message is written, so every byte is written once, in place.
//!
//! The layout follows `opentelemetry/proto/collector/trace/v1/trace_service.proto` and
//! `opentelemetry/proto/trace/v1/trace.proto`: an `ExportTraceServiceRequest` of one
//! `ResourceSpans` (the pipeline's resource) with one `ScopeSpans` (this crate's scope).
//! Spans are encoded one by one into a body as they are rendered; [`Body::request`] frames any
//! range of them as a request, so a batch a backend refuses as too large can be split without
//! encoding again.

use std::ops::Range;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{Array, KeyValue, Value};

use super::semantics::Rendered;
use crate::clock;
use crate::span::SpanRecord;

pub(crate) const WIRE_VARINT: u8 = 0;
pub(crate) const WIRE_FIXED64: u8 = 1;
pub(crate) const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// `Status.code` values.
const STATUS_OK: u64 = 1;
const STATUS_ERROR: u64 = 2;
/// `Span.flags`: the sampled trace flag, and whether the parent's remoteness is known / is
/// remote (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`, `..._IS_REMOTE_MASK`).
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// Where encoded bytes go: a growing `Vec` (metrics, the envelope, a fallback), or a
/// [`Cursor`] over a span's bytes, sized exactly before it is written.
pub(crate) trait Sink {
    fn byte(&mut self, b: u8);
    fn bytes(&mut self, b: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

/// Writes into bytes already in place: the position stays in a register, where a `Vec` would
/// store its length after every byte. Never panics: a write past the end is dropped and
/// counted, and the caller sees it in [`Cursor::at`].
pub(crate) struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Sink for Cursor<'_> {
    #[inline]
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.at) {
            *slot = b;
        }
        self.at += 1;
    }
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }
}

pub(crate) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
pub(crate) fn put_varint(out: &mut impl Sink, mut v: u64) {
    while v >= 0x80 {
        #[allow(clippy::cast_possible_truncation)] // the low 7 bits
        out.byte((v as u8) | 0x80);
        v >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.byte(v as u8);
}

#[inline]
pub(crate) fn put_tag(out: &mut impl Sink, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// Size of a length-delimited field of `len` bytes (tags here are all one byte).
pub(crate) fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

pub(crate) fn put_bytes(out: &mut impl Sink, field: u32, bytes: &[u8]) {
    put_tag(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.bytes(bytes);
}

pub(crate) fn put_header(out: &mut impl Sink, field: u32, len: usize) {
    put_tag(out, field, WIRE_LEN);
    put_varint(out, len as u64);
}

/// `AnyValue`.
fn any_len(v: &Value) -> usize {
    match v {
        Value::Bool(_) => 2,
        #[allow(clippy::cast_sign_loss)] // int64 is encoded as its two's complement
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        Value::String(s) => field_len(s.as_str().len()),
        Value::Array(a) => field_len(array_len(a)),
        // A value type added later is sent as its text.
        other => field_len(other.as_str().len()),
    }
}

fn array_len(a: &Array) -> usize {
    match a {
        Array::Bool(items) => items.len() * field_len(2),
        Array::I64(items) => items
            .iter()
            .map(|i| field_len(any_len(&Value::I64(*i))))
            .sum(),
        Array::F64(items) => items.len() * field_len(9),
        Array::String(items) => items
            .iter()
            .map(|s| field_len(field_len(s.as_str().len())))
            .sum(),
        _ => 0,
    }
}

fn put_any(out: &mut impl Sink, v: &Value) {
    match v {
        Value::Bool(b) => {
            put_tag(out, 2, WIRE_VARINT);
            out.byte(u8::from(*b));
        }
        Value::I64(i) => {
            put_tag(out, 3, WIRE_VARINT);
            #[allow(clippy::cast_sign_loss)]
            put_varint(out, *i as u64);
        }
        Value::F64(f) => {
            put_tag(out, 4, WIRE_FIXED64);
            out.bytes(&f.to_le_bytes());
        }
        Value::String(s) => put_bytes(out, 1, s.as_str().as_bytes()),
        Value::Array(a) => {
            put_header(out, 5, array_len(a));
            match a {
                Array::Bool(items) => {
                    for b in items {
                        put_header(out, 1, 2);
                        put_any(out, &Value::Bool(*b));
                    }
                }
                Array::I64(items) => {
                    for i in items {
                        let v = Value::I64(*i);
                        put_header(out, 1, any_len(&v));
                        put_any(out, &v);
                    }
                }
                Array::F64(items) => {
                    for f in items {
                        put_header(out, 1, 9);
                        put_any(out, &Value::F64(*f));
                    }
                }
                Array::String(items) => {
                    for s in items {
                        put_header(out, 1, field_len(s.as_str().len()));
                        put_bytes(out, 1, s.as_str().as_bytes());
                    }
                }
                _ => {}
            }
        }
        other => put_bytes(out, 1, other.as_str().as_bytes()),
    }
}

/// `KeyValue`.
pub(crate) fn kv_len(kv: &KeyValue) -> usize {
    field_len(kv.key.as_str().len()) + field_len(any_len(&kv.value))
}

pub(crate) fn put_kv(out: &mut impl Sink, field: u32, kv: &KeyValue) {
    put_kv_sized(out, field, kv, any_len(&kv.value));
}

/// `put_kv` with the value's size already known.
fn put_kv_sized(out: &mut impl Sink, field: u32, kv: &KeyValue, value_len: usize) {
    let key = kv.key.as_str().as_bytes();
    put_header(out, field, field_len(key.len()) + field_len(value_len));
    put_bytes(out, 1, key);
    put_header(out, 2, value_len);
    put_any(out, &kv.value);
}

fn event_len(e: &Event) -> usize {
    9 + field_len(e.name.len())
        + e.attributes
            .iter()
            .map(|kv| field_len(kv_len(kv)))
            .sum::<usize>()
        + if e.dropped_attributes_count > 0 {
            1 + varint_len(u64::from(e.dropped_attributes_count))
        } else {
            0
        }
}

fn put_event(out: &mut impl Sink, e: &Event) {
    put_header(out, 11, event_len(e));
    put_tag(out, 1, WIRE_FIXED64);
    out.bytes(&clock::unix_nanos(e.timestamp).to_le_bytes());
    put_bytes(out, 2, e.name.as_bytes());
    for kv in &e.attributes {
        put_kv(out, 3, kv);
    }
    if e.dropped_attributes_count > 0 {
        put_tag(out, 4, WIRE_VARINT);
        put_varint(out, u64::from(e.dropped_attributes_count));
    }
}

fn status_len(status: &Status) -> usize {
    match status {
        Status::Unset => 0,
        Status::Ok => 2,
        Status::Error { description } => field_len(description.len()) + 2,
    }
}

/// Encodes one span (an `opentelemetry.proto.trace.v1.Span` field of `ScopeSpans`).
/// `value_lens` is scratch: each attribute's value size, measured once for both the span's
/// size and the attribute's own.
pub(crate) fn put_span(
    out: &mut Vec<u8>,
    value_lens: &mut Vec<usize>,
    record: &SpanRecord,
    r: &Rendered<'_>,
) {
    let name = r.name.as_deref().unwrap_or(record.name()).as_bytes();
    let has_parent = record.parent_id != 0;
    value_lens.clear();
    let mut attrs = 0;
    for kv in &r.attrs {
        let value_len = any_len(&kv.value);
        value_lens.push(value_len);
        attrs += field_len(field_len(kv.key.as_str().len()) + field_len(value_len));
    }
    let events: usize = r.events.iter().map(|e| field_len(event_len(e))).sum();
    let status = status_len(&r.status);
    let trace_state = r.trace_state.as_deref().unwrap_or("").as_bytes();
    let len = field_len(16)
        + field_len(8)
        + if trace_state.is_empty() {
            0
        } else {
            field_len(trace_state.len())
        }
        + if has_parent { field_len(8) } else { 0 }
        + field_len(name.len())
        + 2
        + 9
        + 9
        + attrs
        + if r.dropped_attributes > 0 {
            1 + varint_len(u64::from(r.dropped_attributes))
        } else {
            0
        }
        + events
        + if r.dropped_events > 0 {
            1 + varint_len(u64::from(r.dropped_events))
        } else {
            0
        }
        + if status > 0 { field_len(status) } else { 0 }
        // field 16 needs a two-byte tag
        + 6;
    let start = out.len();
    let total = field_len(len);
    out.resize(start + total, 0);
    let mut cursor = Cursor {
        buf: &mut out[start..],
        at: 0,
    };
    put_header(&mut cursor, 2, len);
    span_fields(&mut cursor, value_lens, record, r);
    if cursor.at != total {
        // A size measured wrong (a bug): the fields written apart and framed by what they
        // came to, so the message is still whole.
        debug_assert_eq!(cursor.at, total, "span size measured wrong");
        let mut fields = Vec::new();
        span_fields(&mut fields, value_lens, record, r);
        out.truncate(start);
        put_bytes(out, 2, &fields);
    }
}

/// The fields of a `Span` message, in field order.
fn span_fields(out: &mut impl Sink, value_lens: &[usize], record: &SpanRecord, r: &Rendered<'_>) {
    let name = r.name.as_deref().unwrap_or(record.name()).as_bytes();
    let has_parent = record.parent_id != 0;
    let trace_state = r.trace_state.as_deref().unwrap_or("").as_bytes();
    let status = status_len(&r.status);
    put_bytes(out, 1, &record.trace_id.to_be_bytes());
    put_bytes(out, 2, &record.span_id.to_be_bytes());
    if !trace_state.is_empty() {
        put_bytes(out, 3, trace_state);
    }
    if has_parent {
        put_bytes(out, 4, &record.parent_id.to_be_bytes());
    }
    put_bytes(out, 5, name);
    put_tag(out, 6, WIRE_VARINT);
    put_varint(out, record.kind().otlp());
    let end = record.end.max(record.start);
    put_tag(out, 7, WIRE_FIXED64);
    out.bytes(&clock::to_unix_nanos(record.start).to_le_bytes());
    put_tag(out, 8, WIRE_FIXED64);
    out.bytes(&clock::to_unix_nanos(end).to_le_bytes());
    for (kv, &value_len) in r.attrs.iter().zip(value_lens) {
        put_kv_sized(out, 9, kv, value_len);
    }
    if r.dropped_attributes > 0 {
        put_tag(out, 10, WIRE_VARINT);
        put_varint(out, u64::from(r.dropped_attributes));
    }
    for e in &r.events {
        put_event(out, e);
    }
    if r.dropped_events > 0 {
        put_tag(out, 12, WIRE_VARINT);
        put_varint(out, u64::from(r.dropped_events));
    }
    if status > 0 {
        put_header(out, 15, status);
        match &r.status {
            Status::Unset => {}
            Status::Ok => {
                put_tag(out, 3, WIRE_VARINT);
                put_varint(out, STATUS_OK);
            }
            Status::Error { description } => {
                put_bytes(out, 2, description.as_bytes());
                put_tag(out, 3, WIRE_VARINT);
                put_varint(out, STATUS_ERROR);
            }
        }
    }
    let mut flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE;
    if record.parent_remote {
        flags |= FLAG_IS_REMOTE;
    }
    put_tag(out, 16, WIRE_FIXED32);
    out.bytes(&flags.to_le_bytes());
}

/// The resource and scope every request carries, encoded once per pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// `Resource` message bytes.
    pub(crate) resource: Vec<u8>,
    /// `InstrumentationScope` message bytes.
    pub(crate) scope: Vec<u8>,
}

impl Envelope {
    pub(crate) fn new(resource: &[KeyValue], scope_name: &str, scope_version: &str) -> Envelope {
        let mut r = Vec::new();
        for kv in resource {
            put_kv(&mut r, 1, kv);
        }
        let mut s = Vec::new();
        put_bytes(&mut s, 1, scope_name.as_bytes());
        put_bytes(&mut s, 2, scope_version.as_bytes());
        Envelope {
            resource: r,
            scope: s,
        }
    }
}

/// Encoded spans waiting to be sent, with where each one starts.
#[derive(Debug, Default)]
pub(crate) struct Body {
    spans: Vec<u8>,
    starts: Vec<usize>,
    value_lens: Vec<usize>,
}

impl Body {
    pub(crate) fn push(&mut self, record: &SpanRecord, rendered: &Rendered<'_>) {
        self.starts.push(self.spans.len());
        put_span(&mut self.spans, &mut self.value_lens, record, rendered);
    }

    pub(crate) fn clear(&mut self) {
        self.spans.clear();
        self.starts.clear();
    }

    fn range_bytes(&self, range: Range<usize>) -> &[u8] {
        let start = self
            .starts
            .get(range.start)
            .copied()
            .unwrap_or(self.spans.len());
        let end = self
            .starts
            .get(range.end)
            .copied()
            .unwrap_or(self.spans.len());
        &self.spans[start..end]
    }

    /// Appends to `out` an `ExportTraceServiceRequest` for the spans in `range`.
    pub(crate) fn request(&self, envelope: &Envelope, range: Range<usize>, out: &mut Vec<u8>) {
        let spans = self.range_bytes(range);
        let scope_spans = field_len(envelope.scope.len()) + spans.len();
        let resource_spans = field_len(envelope.resource.len()) + field_len(scope_spans);
        out.reserve(field_len(resource_spans));
        put_header(out, 1, resource_spans);
        put_bytes(out, 1, &envelope.resource);
        put_header(out, 2, scope_spans);
        put_bytes(out, 1, &envelope.scope);
        out.extend_from_slice(spans);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use opentelemetry::trace::{Event, Status};
    use opentelemetry::{Array, KeyValue, StringValue, Value};

    use super::{Rendered, put_bytes, put_span, span_fields};
    use crate::record::{Attr, EventType, Meta, RootState, SpanRecord};

    static STEP: Meta = Meta {
        name: "step",
        event_type: EventType::Tool,
        sample_rate: None,
        attr_capacity: 0,
        root: RootState::new(),
    };

    /// The cursor writes into bytes sized beforehand: every kind of field lands where the
    /// same fields written one by one and framed by what they came to would be.
    #[test]
    fn a_span_sized_ahead_is_the_bytes_written_one_by_one() {
        let long = "x".repeat(300);
        let record = SpanRecord {
            trace_id: u128::MAX - 3,
            span_id: 0x0102_0304_0506_0708,
            parent_id: 9,
            parent_remote: true,
            meta: &STEP,
            start: 10,
            end: 20,
            attrs: vec![KeyValue::new("honeyhive_inputs.q", long.clone())],
            events: Vec::new(),
            status: Status::Unset,
            root_sample_rate: None,
            threshold: None,
            local_root: false,
            randomness: None,
            lingers: false,
            opened_unwinding: false,
            home: 0,
            name: None,
            kind: None,
        };
        let list = Value::Array(Array::String(vec![
            StringValue::from("a"),
            StringValue::from(long.clone()),
        ]));
        let rendered = Rendered {
            name: Some("renamed".to_owned()),
            attrs: vec![
                Attr::Borrowed(&record.attrs[0]),
                Attr::Owned(KeyValue::new("n", -5)),
                Attr::Owned(KeyValue::new("f", 0.5)),
                Attr::Owned(KeyValue::new("b", true)),
                Attr::Owned(KeyValue::new("list", list)),
                Attr::Owned(KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1])))),
            ],
            events: vec![Event::new(
                "exception",
                std::time::SystemTime::UNIX_EPOCH,
                vec![KeyValue::new("exception.message", "boom")],
                0,
            )],
            status: Status::Error {
                description: Cow::Owned(long),
            },
            dropped_attributes: 3,
            dropped_events: 172,
            trace_state: Some("ot=th:8".to_owned()),
        };
        let mut sized = Vec::new();
        let mut lens = Vec::new();
        put_span(&mut sized, &mut lens, &record, &rendered);
        let mut fields = Vec::new();
        span_fields(&mut fields, &lens, &record, &rendered);
        let mut framed = Vec::new();
        put_bytes(&mut framed, 2, &fields);
        assert_eq!(sized, framed);
        assert!(sized.len() > 900, "{} bytes", sized.len());
    }
}
