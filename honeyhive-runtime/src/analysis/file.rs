//! Reading OTLP JSON-lines trace files: what the file exporter writes
//! ([`Builder::file`](crate::Builder::file)) and what the OpenTelemetry Collector's `file`
//! exporter writes.
//!
//! Each line is one `ExportTraceServiceRequest` in the OTLP/JSON encoding. The reader is
//! lenient the way the encoding's readers are asked to be: integers as numbers or strings,
//! enums as numbers or names, empty ids as absent. A line it cannot read (cut short by a
//! crash, or metrics and logs from the same Collector) is skipped and counted, never fatal;
//! so is a span without valid ids. A byte order mark at the start of a line is ignored.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde_json::{Map, Value as Json};

use super::{Span, SpanEvent, Status, Trace};
use crate::enrich::Value;
use crate::record::SpanKind;

/// How many skipped lines keep their reason (the rest are only counted).
const REASONS_KEPT: usize = 20;

/// The UTF-8 byte order mark.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// Why a trace file could not be read at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// Opening or reading the file failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read the trace file: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// A line that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub reason: String,
}

/// The traces of a file, with what could not be read.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TraceFile {
    /// Whole traces, in the order their first span appears (a trace written over several
    /// lines is put back together).
    pub traces: Vec<Trace>,
    /// Spans read.
    pub spans: usize,
    /// Lines that held no readable `resourceSpans`.
    pub skipped_lines: usize,
    /// The first skipped lines, with the reason.
    pub skipped: Vec<SkippedLine>,
    /// Spans skipped inside readable lines (no valid trace or span id).
    pub skipped_spans: usize,
}

impl TraceFile {
    /// Reads the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or read; unreadable lines are skipped, not errors.
    pub fn open(path: impl AsRef<Path>) -> Result<TraceFile, ReadError> {
        TraceFile::from_reader(BufReader::new(File::open(path)?))
    }

    /// Reads OTLP JSON lines from `reader`.
    ///
    /// # Errors
    /// When reading fails; unreadable lines are skipped, not errors.
    pub fn from_reader(mut reader: impl BufRead) -> Result<TraceFile, ReadError> {
        let mut file = TraceFile::default();
        let mut spans = Vec::new();
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            // A byte order mark (written by some Windows tools) opens a file, and so a line
            // of files joined with `cat`; it is not part of the JSON.
            let text = line.strip_prefix(BOM).unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let before = spans.len();
            match read_line(text, &mut spans, &mut file.skipped_spans) {
                Ok(()) => file.spans += spans.len() - before,
                Err(reason) => {
                    file.skipped_lines += 1;
                    if file.skipped.len() < REASONS_KEPT {
                        file.skipped.push(SkippedLine {
                            line: number,
                            reason,
                        });
                    }
                }
            }
        }
        file.traces = Trace::group(spans);
        Ok(file)
    }
}

/// Reads the traces of an OTLP JSON-lines file (see [`TraceFile`] for what was skipped).
///
/// # Errors
/// When the file cannot be opened or read.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<Trace>, ReadError> {
    TraceFile::open(path).map(|f| f.traces)
}

/// Reads the traces of OTLP JSON lines from `reader`.
///
/// # Errors
/// When reading fails.
pub fn read(reader: impl BufRead) -> Result<Vec<Trace>, ReadError> {
    TraceFile::from_reader(reader).map(|f| f.traces)
}

fn read_line(line: &[u8], out: &mut Vec<Span>, bad_spans: &mut usize) -> Result<(), String> {
    let json: Json = serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
    let Some(resources) = json.get("resourceSpans").and_then(Json::as_array) else {
        let what = ["resourceMetrics", "resourceLogs"]
            .into_iter()
            .find(|k| json.get(k).is_some())
            .map_or("no resourceSpans".to_owned(), |k| {
                format!("{k}, not traces")
            });
        return Err(what);
    };
    for resource in resources {
        for scope in array(resource, "scopeSpans") {
            for span in array(scope, "spans") {
                match read_span(span) {
                    Some(span) => out.push(span),
                    None => *bad_spans += 1,
                }
            }
        }
    }
    Ok(())
}

fn array<'a>(json: &'a Json, key: &str) -> &'a [Json] {
    json.get(key)
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

fn read_span(json: &Json) -> Option<Span> {
    let span = json.as_object()?;
    let trace_id = hex_id(span.get("traceId")?).filter(|id| *id != 0)?;
    let span_id = u64::try_from(hex_id(span.get("spanId")?)?)
        .ok()
        .filter(|id| *id != 0)?;
    let parent_span_id = match span.get("parentSpanId") {
        None | Some(Json::Null) => 0,
        Some(id) => u64::try_from(hex_id(id)?).ok()?,
    };
    let flags = span.get("flags").and_then(integer).unwrap_or(0);
    let start = span.get("startTimeUnixNano").and_then(integer).unwrap_or(0);
    let end = span
        .get("endTimeUnixNano")
        .and_then(integer)
        .unwrap_or(start);
    Some(Span {
        trace_id,
        span_id,
        parent_span_id,
        parent_remote: flags & 0x300 == 0x300,
        name: span
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        kind: kind(span.get("kind")),
        start_unix_nanos: start,
        end_unix_nanos: end.max(start),
        status: status(span.get("status")),
        attributes: attributes(span),
        events: array(json, "events")
            .iter()
            .filter_map(Json::as_object)
            .map(|e| SpanEvent {
                name: e
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                time_unix_nanos: e.get("timeUnixNano").and_then(integer).unwrap_or(0),
                attributes: attributes(e),
            })
            .collect(),
    })
}

/// A hex id (empty reads as 0, the invalid id, as the encoding allows).
fn hex_id(json: &Json) -> Option<u128> {
    let s = json.as_str()?;
    if s.is_empty() {
        return Some(0);
    }
    if s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// A 64-bit integer: a JSON number or a decimal string.
fn integer(json: &Json) -> Option<u64> {
    match json {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn kind(json: Option<&Json>) -> SpanKind {
    let number = match json {
        Some(Json::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Json::String(s)) => match s.as_str() {
            "SPAN_KIND_SERVER" => 2,
            "SPAN_KIND_CLIENT" => 3,
            "SPAN_KIND_PRODUCER" => 4,
            "SPAN_KIND_CONSUMER" => 5,
            _ => 1,
        },
        _ => 1,
    };
    match number {
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

fn status(json: Option<&Json>) -> Status {
    let Some(status) = json.and_then(Json::as_object) else {
        return Status::Unset;
    };
    let code = match status.get("code") {
        Some(Json::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Json::String(s)) => match s.as_str() {
            "STATUS_CODE_OK" => 1,
            "STATUS_CODE_ERROR" => 2,
            _ => 0,
        },
        _ => 0,
    };
    match code {
        1 => Status::Ok,
        2 => Status::Error(
            status
                .get("message")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => Status::Unset,
    }
}

fn attributes(owner: &Map<String, Json>) -> Vec<(String, Value)> {
    owner
        .get("attributes")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|kv| {
            let key = kv.get("key")?.as_str()?;
            Some((key.to_owned(), any_value(kv.get("value")?)))
        })
        .collect()
}

/// An `AnyValue`; bytes as their base64 text, a key-value list as a map.
fn any_value(json: &Json) -> Value {
    let Some((kind, v)) = json.as_object().and_then(|o| o.iter().next()) else {
        return Value::Null;
    };
    match kind.as_str() {
        "stringValue" | "bytesValue" => {
            Value::Str(v.as_str().unwrap_or_default().to_owned().into())
        }
        "boolValue" => Value::Bool(v.as_bool().unwrap_or(false)),
        "intValue" => match v {
            Json::Number(n) => n.as_i64().map_or(Value::Null, Value::Int),
            Json::String(s) => s.trim().parse().map_or(Value::Null, Value::Int),
            _ => Value::Null,
        },
        "doubleValue" => match v {
            Json::Number(n) => n.as_f64().map_or(Value::Null, Value::Float),
            Json::String(s) => match s.as_str() {
                "NaN" => Value::Float(f64::NAN),
                "Infinity" => Value::Float(f64::INFINITY),
                "-Infinity" => Value::Float(f64::NEG_INFINITY),
                other => other.parse().map_or(Value::Null, Value::Float),
            },
            _ => Value::Null,
        },
        "arrayValue" => Value::List(array(v, "values").iter().map(any_value).collect()),
        "kvlistValue" => Value::Map(
            array(v, "values")
                .iter()
                .filter_map(|kv| {
                    Some((
                        kv.get("key")?.as_str()?.to_owned(),
                        any_value(kv.get("value")?),
                    ))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_short_is_skipped_and_the_rest_read() {
        let good = r#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"a","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"3","status":{}}]}]}]}"#;
        let text = format!("{good}\n{}\n\n{{\"resourceMetrics\":[]}}\n", &good[..40]);
        let file = TraceFile::from_reader(text.as_bytes()).unwrap();
        assert_eq!(file.traces.len(), 1);
        assert_eq!(file.spans, 1);
        assert_eq!(file.skipped_lines, 2);
        assert_eq!(file.skipped[0].line, 2);
        assert!(file.skipped[1].reason.contains("resourceMetrics"));
        assert_eq!(file.traces[0].spans[0].duration_nanos(), 2);
    }

    #[test]
    fn values_read_in_every_encoding() {
        let v = |s: &str| any_value(&serde_json::from_str(s).unwrap());
        assert_eq!(v(r#"{"intValue":"42"}"#), Value::Int(42));
        assert_eq!(v(r#"{"intValue":42}"#), Value::Int(42));
        assert_eq!(v(r#"{"doubleValue":1.5}"#), Value::Float(1.5));
        assert_eq!(v(r#"{"boolValue":true}"#), Value::Bool(true));
        assert_eq!(
            v(r#"{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}"#),
            Value::List(vec![Value::Str("a".into()), Value::Int(1)])
        );
        assert_eq!(
            v(r#"{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":false}}]}}"#),
            Value::Map(vec![("k".to_owned(), Value::Bool(false))])
        );
    }

    #[test]
    fn a_byte_order_mark_does_not_cost_the_first_line() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"a"}]}]}]}"#;
        // A file saved with a BOM, then one joined to it with `cat`.
        let text = format!("\u{feff}{line}\n\u{feff}{line}\r\n");
        let file = TraceFile::from_reader(text.as_bytes()).unwrap();
        assert_eq!((file.spans, file.skipped_lines), (2, 0), "{file:?}");
    }
}
