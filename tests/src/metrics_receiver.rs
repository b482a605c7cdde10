//! An OTLP/HTTP metrics receiver on 127.0.0.1, and lookups over what it received.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, NumberDataPoint, metric,
};
use prost::Message;

/// One request as received.
#[derive(Debug, Clone)]
pub struct MetricsRequest {
    /// The path of the request.
    pub path: String,
    /// The decoded body.
    pub body: ExportMetricsServiceRequest,
}

/// What [`metrics_receiver`] answers: 200, or this status for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with an empty body.
    Ok,
    /// The status, with an empty body (not retried when it is not 429/502/503/504).
    Status(u16),
}

/// An OTLP/HTTP receiver on 127.0.0.1 that accepts `/v1/metrics` (and any other path):
/// decodes every request (HTTP/1.1, keep-alive) as an `ExportMetricsServiceRequest`, sends it
/// on the returned channel, and answers `answer`. Returns the base URL (`http://127.0.0.1:N`).
///
/// # Panics
/// If no port on 127.0.0.1 can be bound.
pub fn metrics_receiver(answer: Answer) -> (String, mpsc::Receiver<MetricsRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(&stream, &tx, answer));
        }
    });
    (url, rx)
}

fn serve(stream: &TcpStream, tx: &mpsc::Sender<MetricsRequest>, answer: Answer) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    while let Some(request) = crate::http1::read_request(&mut reader) {
        let path = request.path;
        if let Ok(body) = ExportMetricsServiceRequest::decode(request.body.as_slice()) {
            let _ = tx.send(MetricsRequest { path, body });
        }
        let status = match answer {
            Answer::Ok => "200 OK".to_owned(),
            Answer::Status(code) => format!("{code} Refused"),
        };
        let mut w = stream;
        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

impl MetricsRequest {
    /// Every metric of the request.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        self.body
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
    }

    /// The metric named `name`.
    ///
    /// # Panics
    /// If there is none.
    pub fn metric(&self, name: &str) -> &Metric {
        self.metrics().find(|m| m.name == name).unwrap_or_else(|| {
            let names: Vec<&str> = self.metrics().map(|m| m.name.as_str()).collect();
            panic!("no metric {name} in {names:?}")
        })
    }

    /// The metric named `name`, if the request has it.
    pub fn find(&self, name: &str) -> Option<&Metric> {
        self.metrics().find(|m| m.name == name)
    }

    /// A resource attribute's string value.
    pub fn resource_attr(&self, key: &str) -> Option<&str> {
        self.body
            .resource_metrics
            .first()?
            .resource
            .as_ref()?
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
    }
}

fn text(v: &any_value::Value) -> Option<&str> {
    match v {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A point's attributes as `(key, value)` text pairs, sorted (booleans as `true`/`false`).
pub fn point_attrs(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = attrs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect();
    out.sort();
    out
}

/// The histogram points of a metric.
///
/// # Panics
/// If the metric is not a histogram.
pub fn histogram_points(m: &Metric) -> &[HistogramDataPoint] {
    match &m.data {
        Some(metric::Data::Histogram(h)) => &h.data_points,
        other => panic!("{} is not a histogram: {other:?}", m.name),
    }
}

/// The sum points of a metric.
///
/// # Panics
/// If the metric is not a sum.
pub fn sum_points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(metric::Data::Sum(s)) => &s.data_points,
        other => panic!("{} is not a sum: {other:?}", m.name),
    }
}

/// A number point's value as `f64`.
pub fn value(p: &NumberDataPoint) -> f64 {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    match p.value {
        Some(Value::AsDouble(d)) => d,
        #[allow(clippy::cast_precision_loss)]
        Some(Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

/// Whether a point's attributes include every pair of `want`.
pub fn has_attrs(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    want: &[(&str, &str)],
) -> bool {
    let have = point_attrs(attrs);
    want.iter()
        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
}
