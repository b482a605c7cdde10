//! OTLP protobuf for metrics, written with the trace encoder's helpers (`export::otlp`).
//!
//! The layout follows `opentelemetry/proto/collector/metrics/v1/metrics_service.proto` and
//! `opentelemetry/proto/metrics/v1/metrics.proto`: an `ExportMetricsServiceRequest` of one
//! `ResourceMetrics` (the traces' resource) with one `ScopeMetrics` (this crate's scope).
//! Nested messages are written into scratch buffers and framed: a request is a few kilobytes
//! once a minute, so sizing every message ahead, as the span encoder does, would buy nothing.

use crate::export::otlp::{
    Envelope, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, put_bytes, put_tag, put_varint,
};

use super::aggregate::{Attrs, Family, Hist, Instruments};

/// `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
const CUMULATIVE: u64 = 2;

/// Metric names, units and descriptions.
pub mod names {
    /// Input and output tokens per call (`gen_ai.token.type`), a histogram.
    pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
    /// Duration of a call, seconds, a histogram.
    pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
    /// Time to the first streamed chunk, seconds, a histogram (streaming calls only).
    pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
    /// USD spent, a monotonic sum (the GenAI conventions define no cost metric).
    pub const COST: &str = "honeyhive.gen_ai.client.cost";
    /// Failed calls by `error.type`, a monotonic sum.
    pub const ERRORS: &str = "honeyhive.gen_ai.client.errors";
}

/// The time range every point of one request covers.
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub(super) start_unix_nanos: u64,
    pub(super) now_unix_nanos: u64,
}

/// Appends an `ExportMetricsServiceRequest` with every non-empty instrument to `out`.
pub(super) fn request(envelope: &Envelope, m: &Instruments, window: Window, out: &mut Vec<u8>) {
    let mut metrics = Vec::new();
    histogram(
        &mut metrics,
        names::TOKEN_USAGE,
        "Number of input and output tokens used.",
        "{token}",
        &m.token_usage,
        window,
    );
    histogram(
        &mut metrics,
        names::OPERATION_DURATION,
        "GenAI operation duration.",
        "s",
        &m.duration,
        window,
    );
    histogram(
        &mut metrics,
        names::TIME_TO_FIRST_CHUNK,
        "Time to receive the first chunk of a streaming response.",
        "s",
        &m.time_to_first_chunk,
        window,
    );
    sum(
        &mut metrics,
        names::COST,
        "Cost of GenAI calls, from the price table or the provider.",
        "USD",
        &m.cost,
        window,
    );
    sum(
        &mut metrics,
        names::ERRORS,
        "GenAI calls that failed, by error.type.",
        "{error}",
        &m.errors,
        window,
    );
    let mut scope_metrics = Vec::with_capacity(metrics.len() + envelope.scope.len() + 8);
    put_bytes(&mut scope_metrics, 1, &envelope.scope);
    scope_metrics.extend_from_slice(&metrics);
    let mut resource_metrics = Vec::with_capacity(scope_metrics.len() + 64);
    put_bytes(&mut resource_metrics, 1, &envelope.resource);
    put_bytes(&mut resource_metrics, 2, &scope_metrics);
    put_bytes(out, 1, &resource_metrics);
}

/// The points of a family: its series, then the overflow series.
fn points<V>(family: &Family<V>) -> impl Iterator<Item = (Option<&Attrs>, &V)> {
    family
        .series
        .iter()
        .map(|(attrs, v)| (Some(attrs), v))
        .chain(family.overflow.iter().map(|v| (None, v)))
}

/// A `Metric` header (name, description, unit) around `data` at field `data_field`.
fn metric(
    out: &mut Vec<u8>,
    name: &str,
    description: &str,
    unit: &str,
    data_field: u32,
    data: &[u8],
) {
    let mut m = Vec::with_capacity(data.len() + name.len() + description.len() + 16);
    put_bytes(&mut m, 1, name.as_bytes());
    put_bytes(&mut m, 2, description.as_bytes());
    put_bytes(&mut m, 3, unit.as_bytes());
    put_bytes(&mut m, data_field, data);
    // `ScopeMetrics.metrics`.
    put_bytes(out, 2, &m);
}

fn histogram(
    out: &mut Vec<u8>,
    name: &str,
    description: &str,
    unit: &str,
    family: &Family<Hist>,
    window: Window,
) {
    if family.is_empty() {
        return;
    }
    let mut data = Vec::new();
    let mut point = Vec::new();
    for (attrs, hist) in points(family) {
        point.clear();
        attributes(&mut point, 9, attrs);
        times(&mut point, window);
        let counts = hist.counts();
        // `count` is the sum of the bucket counts, as OTLP requires.
        put_tag(&mut point, 4, WIRE_FIXED64);
        point.extend_from_slice(&counts.iter().sum::<u64>().to_le_bytes());
        put_tag(&mut point, 5, WIRE_FIXED64);
        point.extend_from_slice(&hist.sum.to_le_bytes());
        put_tag(&mut point, 6, WIRE_LEN);
        put_varint(&mut point, 8 * counts.len() as u64);
        for c in &counts {
            point.extend_from_slice(&c.to_le_bytes());
        }
        put_tag(&mut point, 7, WIRE_LEN);
        put_varint(&mut point, 8 * hist.bounds.len() as u64);
        for b in hist.bounds {
            point.extend_from_slice(&b.to_le_bytes());
        }
        put_bytes(&mut data, 1, &point);
    }
    put_tag(&mut data, 2, WIRE_VARINT);
    put_varint(&mut data, CUMULATIVE);
    metric(out, name, description, unit, 9, &data);
}

fn sum(
    out: &mut Vec<u8>,
    name: &str,
    description: &str,
    unit: &str,
    family: &Family<f64>,
    window: Window,
) {
    if family.is_empty() {
        return;
    }
    let mut data = Vec::new();
    let mut point = Vec::new();
    for (attrs, value) in points(family) {
        point.clear();
        attributes(&mut point, 7, attrs);
        times(&mut point, window);
        // `as_double`.
        put_tag(&mut point, 4, WIRE_FIXED64);
        point.extend_from_slice(&value.to_le_bytes());
        put_bytes(&mut data, 1, &point);
    }
    put_tag(&mut data, 2, WIRE_VARINT);
    put_varint(&mut data, CUMULATIVE);
    // `is_monotonic`.
    put_tag(&mut data, 3, WIRE_VARINT);
    put_varint(&mut data, 1);
    metric(out, name, description, unit, 7, &data);
}

/// `start_time_unix_nano` and `time_unix_nano`.
fn times(point: &mut Vec<u8>, window: Window) {
    put_tag(point, 2, WIRE_FIXED64);
    point.extend_from_slice(&window.start_unix_nanos.to_le_bytes());
    put_tag(point, 3, WIRE_FIXED64);
    point.extend_from_slice(&window.now_unix_nanos.to_le_bytes());
}

/// A point's attributes at `field`: string values, or `otel.metric.overflow = true` for the
/// overflow series.
fn attributes(point: &mut Vec<u8>, field: u32, attrs: Option<&Attrs>) {
    let mut kv = Vec::new();
    let mut any = Vec::new();
    let Some(attrs) = attrs else {
        put_bytes(&mut kv, 1, b"otel.metric.overflow");
        put_tag(&mut any, 2, WIRE_VARINT);
        put_varint(&mut any, 1);
        put_bytes(&mut kv, 2, &any);
        put_bytes(point, field, &kv);
        return;
    };
    for (key, value) in attrs {
        kv.clear();
        any.clear();
        put_bytes(&mut kv, 1, key.as_bytes());
        put_bytes(&mut any, 1, value.as_bytes());
        put_bytes(&mut kv, 2, &any);
        put_bytes(point, field, &kv);
    }
}
