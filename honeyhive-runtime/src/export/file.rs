//! The file exporter: traces as OTLP JSON lines, the format the OpenTelemetry Collector's
//! `file` exporter writes, for offline analysis ([`analysis::read_file`](crate::analysis::read_file),
//! the `honeyhive-traces` tool) or to replay into a backend later.
//!
//! Each export call appends one line: an `ExportTraceServiceRequest` in the OTLP/JSON
//! encoding (`resourceSpans` / `scopeSpans` / `spans`, lowerCamelCase keys, hex ids, unix-nano
//! times as strings, `kind` and status `code` as numbers). A trace is never split across
//! export calls, so a line holds whole traces.
//!
//! The line is written through a fixed-size buffer and handed to the OS at the end of the
//! export call, so memory stays bounded whatever the batch, a failed write is counted against
//! the spans it carried (as a failed export, in [`export_stats`](crate::export_stats)), and a
//! crash loses nothing already exported. Shutdown also syncs the file to disk.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::clock::unix_nanos;

/// Bytes buffered before a write to the file.
const BUFFER_BYTES: usize = 64 * 1024;

/// Where and how to write the trace file ([`Builder::file`](crate::Builder::file),
/// `HH_TRACES_FILE`).
///
/// ```
/// use honeyhive_runtime::export::file::FileExport;
///
/// // Start a new file past 64 MiB: traces.jsonl.1 is the previous one, and so on, keeping 3.
/// let file = FileExport::new("traces.jsonl").rotate(64 << 20, 3);
/// # let _ = file;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileExport {
    path: PathBuf,
    max_bytes: Option<u64>,
    keep: usize,
}

impl FileExport {
    /// Appends to `path` (created if missing), without rotation.
    pub fn new(path: impl Into<PathBuf>) -> FileExport {
        FileExport {
            path: path.into(),
            max_bytes: None,
            keep: 0,
        }
    }

    /// Once the file holds `max_bytes` or more (checked after each line, so a file ends at
    /// most one line past it), renames it to `<path>.1` (the older ones to `.2`, `.3`, ...),
    /// keeps `keep` of those old files and starts a new one.
    #[must_use]
    pub fn rotate(mut self, max_bytes: u64, keep: usize) -> FileExport {
        self.max_bytes = Some(max_bytes.max(1));
        self.keep = keep;
        self
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size past which the file is rotated, if it is.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The path of the `n`th older file (`<path>.n`).
    pub fn rotated_path(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }
}

impl<P: Into<PathBuf>> From<P> for FileExport {
    fn from(path: P) -> FileExport {
        FileExport::new(path)
    }
}

/// A `SpanExporter` that appends OTLP JSON lines to a file (see the [module docs](self)).
///
/// The pipeline builds one from [`Builder::file`](crate::Builder::file); it also works under
/// the OpenTelemetry SDK's own span processors.
pub struct FileExporter {
    config: FileExport,
    state: Mutex<State>,
    resource: Vec<KeyValue>,
    schema_url: Option<String>,
}

struct State {
    out: BufWriter<File>,
    /// Bytes in the current file.
    size: u64,
    /// A write failed part-way through a line: start the next one on a fresh line.
    torn: bool,
}

impl fmt::Debug for FileExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileExporter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FileExporter {
    /// Opens (or creates) the file for appending.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(config: FileExport) -> io::Result<FileExporter> {
        let file = open_append(&config.path)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(FileExporter {
            config,
            state: Mutex::new(State {
                out: BufWriter::with_capacity(BUFFER_BYTES, file),
                size,
                torn: false,
            }),
            resource: Vec::new(),
            schema_url: None,
        })
    }

    fn write_batch(&self, batch: &[SpanData]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        if state.torn {
            state.out.write_all(b"\n")?;
            state.torn = false;
        }
        let mut line = Counting {
            out: &mut state.out,
            written: 0,
        };
        let result = write_request(&mut line, &self.resource, self.schema_url.as_deref(), batch)
            .and_then(|()| line.write_all(b"\n"));
        let written = line.written;
        let result = result.and_then(|()| state.out.flush());
        state.size += written;
        if result.is_err() {
            state.torn = true;
            // What the buffer still holds belongs to the failed line: drop it (without the
            // flush a drop would try), so the next line does not inherit its tail.
            let file = state.out.get_ref().try_clone()?;
            let failed =
                std::mem::replace(&mut state.out, BufWriter::with_capacity(BUFFER_BYTES, file));
            drop(failed.into_parts());
            return result;
        }
        if let Some(max) = self.config.max_bytes
            && state.size >= max
            && self.rotate_files().is_ok()
            && let Ok(file) = open_append(&self.config.path)
        {
            state.out = BufWriter::with_capacity(BUFFER_BYTES, file);
            state.size = 0;
        }
        Ok(())
    }

    /// Shifts `<path>.n` to `<path>.n+1` (dropping the one past `keep`), then `<path>` to
    /// `<path>.1`.
    fn rotate_files(&self) -> io::Result<()> {
        let config = &self.config;
        if config.keep == 0 {
            return std::fs::remove_file(&config.path);
        }
        let _ = std::fs::remove_file(config.rotated_path(config.keep));
        for n in (1..config.keep).rev() {
            let from = config.rotated_path(n);
            if from.exists() {
                std::fs::rename(&from, config.rotated_path(n + 1))?;
            }
        }
        std::fs::rename(&config.path, config.rotated_path(1))
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl SpanExporter for FileExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        self.write_batch(&batch).map_err(|e| {
            OTelSdkError::InternalFailure(format!("trace file {}: {e}", self.config.path.display()))
        })
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .out
            .flush()
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .out
            .flush()
            .and_then(|()| state.out.get_ref().sync_data())
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = super::resource_attributes(resource);
        self.schema_url = resource.schema_url().map(str::to_owned);
    }
}

/// Counts the bytes of a line (for rotation).
struct Counting<'a, W: Write> {
    out: &'a mut W,
    written: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One `ExportTraceServiceRequest`: one resource, a `scopeSpans` per run of spans with the
/// same instrumentation scope.
fn write_request(
    w: &mut impl Write,
    resource: &[KeyValue],
    schema_url: Option<&str>,
    batch: &[SpanData],
) -> io::Result<()> {
    w.write_all(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":")?;
    write_attributes(w, resource.iter().map(|kv| (kv.key.as_str(), &kv.value)))?;
    w.write_all(b"},\"scopeSpans\":[")?;
    let mut scope: Option<&InstrumentationScope> = None;
    for span in batch {
        let same = scope.is_some_and(|s| same_scope(s, &span.instrumentation_scope));
        if same {
            w.write_all(b",")?;
        } else {
            if scope.is_some() {
                w.write_all(b"]},")?;
            }
            write_scope(w, &span.instrumentation_scope)?;
            scope = Some(&span.instrumentation_scope);
        }
        write_span(w, span)?;
    }
    w.write_all(b"]}]")?;
    if let Some(url) = schema_url {
        w.write_all(b",\"schemaUrl\":")?;
        write_str(w, url)?;
    }
    w.write_all(b"}]}")
}

fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    a.name() == b.name() && a.version() == b.version() && a.schema_url() == b.schema_url()
}

fn write_scope(w: &mut impl Write, scope: &InstrumentationScope) -> io::Result<()> {
    w.write_all(b"{\"scope\":{\"name\":")?;
    write_str(w, scope.name())?;
    if let Some(version) = scope.version() {
        w.write_all(b",\"version\":")?;
        write_str(w, version)?;
    }
    let mut attrs = scope.attributes().peekable();
    if attrs.peek().is_some() {
        w.write_all(b",\"attributes\":")?;
        write_attributes(w, attrs.map(|kv| (kv.key.as_str(), &kv.value)))?;
    }
    w.write_all(b"}")?;
    if let Some(url) = scope.schema_url() {
        w.write_all(b",\"schemaUrl\":")?;
        write_str(w, url)?;
    }
    w.write_all(b",\"spans\":[")
}

fn write_span(w: &mut impl Write, span: &SpanData) -> io::Result<()> {
    let cx = &span.span_context;
    write!(
        w,
        "{{\"traceId\":\"{}\",\"spanId\":\"{}\"",
        cx.trace_id(),
        cx.span_id()
    )?;
    let trace_state = cx.trace_state().header();
    if !trace_state.is_empty() {
        w.write_all(b",\"traceState\":")?;
        write_str(w, &trace_state)?;
    }
    if span.parent_span_id != opentelemetry::SpanId::INVALID {
        write!(w, ",\"parentSpanId\":\"{}\"", span.parent_span_id)?;
    }
    // Bits 0-7: W3C trace flags; bit 8: whether the parent's remoteness is known; bit 9: it is.
    let remote = if span.parent_span_is_remote {
        0x300
    } else {
        0x100
    };
    write!(
        w,
        ",\"flags\":{},\"name\":",
        u32::from(cx.trace_flags().to_u8()) | remote
    )?;
    write_str(w, &span.name)?;
    write!(
        w,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"",
        kind_number(&span.span_kind),
        unix_nanos(span.start_time),
        unix_nanos(span.end_time.max(span.start_time)),
    )?;
    write_attribute_fields(w, &span.attributes, span.dropped_attributes_count)?;
    if !span.events.events.is_empty() {
        w.write_all(b",\"events\":[")?;
        for (i, event) in span.events.events.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            write!(
                w,
                "{{\"timeUnixNano\":\"{}\",\"name\":",
                unix_nanos(event.timestamp)
            )?;
            write_str(w, &event.name)?;
            write_attribute_fields(w, &event.attributes, event.dropped_attributes_count)?;
            w.write_all(b"}")?;
        }
        w.write_all(b"]")?;
    }
    if span.events.dropped_count > 0 {
        write!(w, ",\"droppedEventsCount\":{}", span.events.dropped_count)?;
    }
    match &span.status {
        Status::Unset => w.write_all(b",\"status\":{}")?,
        Status::Ok => w.write_all(b",\"status\":{\"code\":1}")?,
        Status::Error { description } => {
            w.write_all(b",\"status\":{\"message\":")?;
            write_str(w, description)?;
            w.write_all(b",\"code\":2}")?;
        }
    }
    w.write_all(b"}")
}

/// The OTLP `SpanKind` enum number.
fn kind_number(kind: &SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// A span's or an event's `attributes` and `droppedAttributesCount`, each only when not empty.
fn write_attribute_fields(w: &mut impl Write, attrs: &[KeyValue], dropped: u32) -> io::Result<()> {
    if !attrs.is_empty() {
        w.write_all(b",\"attributes\":")?;
        write_attributes(w, attrs.iter().map(|kv| (kv.key.as_str(), &kv.value)))?;
    }
    if dropped > 0 {
        write!(w, ",\"droppedAttributesCount\":{dropped}")?;
    }
    Ok(())
}

fn write_attributes<'a>(
    w: &mut impl Write,
    attrs: impl Iterator<Item = (&'a str, &'a Value)>,
) -> io::Result<()> {
    w.write_all(b"[")?;
    for (i, (key, value)) in attrs.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(b"{\"key\":")?;
        write_str(w, key)?;
        w.write_all(b",\"value\":")?;
        write_value(w, value)?;
        w.write_all(b"}")?;
    }
    w.write_all(b"]")
}

/// An `AnyValue`: 64-bit integers as strings, as the OTLP/JSON encoding asks.
fn write_value(w: &mut impl Write, value: &Value) -> io::Result<()> {
    fn array<T>(
        w: &mut impl Write,
        items: &[T],
        mut item: impl FnMut(&mut dyn Write, &T) -> io::Result<()>,
    ) -> io::Result<()> {
        w.write_all(b"{\"arrayValue\":{\"values\":[")?;
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            item(w, x)?;
        }
        w.write_all(b"]}}")
    }
    match value {
        Value::Bool(b) => write!(w, "{{\"boolValue\":{b}}}"),
        Value::I64(i) => write!(w, "{{\"intValue\":\"{i}\"}}"),
        Value::F64(f) => write_double(w, *f),
        Value::String(s) => {
            w.write_all(b"{\"stringValue\":")?;
            write_str(w, s.as_str())?;
            w.write_all(b"}")
        }
        Value::Array(Array::Bool(a)) => array(w, a, |w, b| write!(w, "{{\"boolValue\":{b}}}")),
        Value::Array(Array::I64(a)) => array(w, a, |w, i| write!(w, "{{\"intValue\":\"{i}\"}}")),
        Value::Array(Array::F64(a)) => array(w, a, |mut w, f| write_double(&mut w, *f)),
        Value::Array(Array::String(a)) => array(w, a, |mut w, s| {
            w.write_all(b"{\"stringValue\":")?;
            write_str(&mut w, s.as_str())?;
            w.write_all(b"}")
        }),
        other => {
            w.write_all(b"{\"stringValue\":")?;
            write_str(w, &other.as_str())?;
            w.write_all(b"}")
        }
    }
}

/// A double; NaN and the infinities as the strings the protobuf JSON mapping names.
fn write_double(w: &mut impl Write, f: f64) -> io::Result<()> {
    if f.is_nan() {
        w.write_all(b"{\"doubleValue\":\"NaN\"}")
    } else if f.is_infinite() {
        let name = if f > 0.0 { "Infinity" } else { "-Infinity" };
        write!(w, "{{\"doubleValue\":\"{name}\"}}")
    } else {
        // `{:?}` keeps a fraction (`1.0`), so the value reads back as a double.
        write!(w, "{{\"doubleValue\":{f:?}}}")
    }
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(w, s).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_json(v: &Value) -> serde_json::Value {
        let mut out = Vec::new();
        write_value(&mut out, v).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn values_use_the_otlp_json_encoding() {
        use serde_json::json;
        assert_eq!(value_json(&Value::I64(-3)), json!({"intValue": "-3"}));
        assert_eq!(value_json(&Value::F64(2.0)), json!({"doubleValue": 2.0}));
        assert_eq!(
            value_json(&Value::F64(f64::NAN)),
            json!({"doubleValue": "NaN"})
        );
        assert_eq!(value_json(&Value::Bool(true)), json!({"boolValue": true}));
        assert_eq!(
            value_json(&Value::from("a \"quote\"\n")),
            json!({"stringValue": "a \"quote\"\n"})
        );
        assert_eq!(
            value_json(&Value::Array(Array::I64(vec![1, 2]))),
            json!({"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}})
        );
    }
}
