//! The file exporter writes OTLP JSON lines that read back as the same traces, and reads
//! files the OpenTelemetry Collector's `file` exporter wrote.

use std::path::PathBuf;

use honeyhive_runtime::analysis::{self, Status, TraceFile};
use honeyhive_runtime::export::file::FileExport;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{Builder, ExporterKind, SpanKind, Value, enrich_span, trace};

#[trace(event_type = "tool")]
fn lookup(city: &str) -> Result<u32, String> {
    if city.is_empty() {
        return Err("no city".to_owned());
    }
    enrich_span()
        .metadata("tags", vec!["a", "b"])
        .metrics("score", 0.5);
    Ok(7)
}

#[trace(event_type = "chain")]
fn answer(city: &str) -> u32 {
    let _ = lookup("");
    lookup(city).unwrap_or(0)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hh-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn spans_read_back_from_the_file_as_the_exporters_got_them() {
    let dir = TempDir::new("roundtrip");
    let path = dir.0.join("traces.jsonl");
    let recorder = Recorder::with(|b| b.file(&path));
    answer("Paris");
    answer("Rome");
    let expected = recorder.spans().traces();
    assert!(recorder.shutdown().completed);

    let file = TraceFile::open(&path).expect("the file reads");
    assert_eq!(file.skipped_lines, 0);
    assert_eq!(file.spans, 6);
    // Ids, parents, names, kinds, times, status, attributes with their types, events: all.
    assert_eq!(file.traces, expected);

    let trace = &file.traces[0];
    let root = trace.root().expect("a root");
    assert_eq!(root.name, "answer");
    assert_eq!(root.kind, SpanKind::Internal);
    let lookups: Vec<_> = trace.spans.iter().filter(|s| s.name == "lookup").collect();
    assert_eq!(lookups.len(), 2);
    assert!(lookups.iter().all(|s| s.parent_span_id == root.span_id));
    let failed = lookups
        .iter()
        .find(|s| s.status.is_error())
        .expect("an error");
    assert_eq!(failed.status, Status::Error("no city".to_owned()));
    assert!(failed.events.iter().any(|e| e.name == "exception"));
    let ok = lookups
        .iter()
        .find(|s| !s.status.is_error())
        .expect("a success");
    assert_eq!(ok.str("honeyhive_inputs.city"), Some("Paris"));
    assert_eq!(ok.attr("honeyhive_outputs.result"), Some(&Value::Int(7)));
    assert_eq!(ok.f64("honeyhive_metrics.score"), Some(0.5));
}

#[test]
fn every_line_is_an_otlp_json_export_request() {
    let dir = TempDir::new("format");
    let path = dir.0.join("traces.jsonl");
    let recorder = Recorder::with(|b| b.file(&path).service_name("file-test"));
    answer("Paris");
    assert!(recorder.shutdown().completed);

    let text = std::fs::read_to_string(&path).expect("the file");
    let line: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("a JSON line");
    let resource = &line["resourceSpans"][0];
    assert!(
        resource["resource"]["attributes"]
            .as_array()
            .expect("resource attributes")
            .iter()
            .any(|kv| kv["key"] == "service.name" && kv["value"]["stringValue"] == "file-test")
    );
    let scope = &resource["scopeSpans"][0];
    assert_eq!(scope["scope"]["name"], "honeyhive-rs");
    let span = scope["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .find(|s| s["name"] == "lookup" && s["status"]["code"].is_null())
        .expect("the successful lookup");
    assert_eq!(span["traceId"].as_str().map(str::len), Some(32));
    assert_eq!(span["spanId"].as_str().map(str::len), Some(16));
    assert_eq!(span["parentSpanId"].as_str().map(str::len), Some(16));
    assert_eq!(span["kind"], 1);
    assert!(
        span["startTimeUnixNano"]
            .as_str()
            .expect("a string")
            .parse::<u64>()
            .is_ok()
    );
    let attr = |key: &str| {
        span["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| kv["value"].clone())
    };
    assert_eq!(
        attr("honeyhive_outputs.result"),
        Some(serde_json::json!({"intValue": "7"}))
    );
    assert_eq!(
        attr("honeyhive_inputs.city"),
        Some(serde_json::json!({"stringValue": "Paris"}))
    );
}

#[test]
fn a_full_disk_is_counted_as_failed_export_not_hidden() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let recorder = Recorder::with(|b| b.file("/dev/full"));
    answer("Paris");
    recorder.spans();
    let stats = honeyhive_runtime::export_stats();
    assert_eq!(stats.failed, 3);
    assert_eq!(stats.dropped, 3);
    assert!(recorder.shutdown().completed);
}

#[test]
fn a_file_that_cannot_be_opened_fails_install() {
    let err = Builder::new()
        .env(|_| None)
        .file("/nonexistent-dir/traces.jsonl")
        .install()
        .expect_err("no such directory");
    assert!(
        err.to_string().contains("/nonexistent-dir/traces.jsonl"),
        "{err}"
    );
}

#[test]
fn rotation_keeps_every_trace_across_files() {
    let dir = TempDir::new("rotate");
    let path = dir.0.join("traces.jsonl");
    let config = FileExport::new(&path).rotate(1, 10);
    // A batch of one trace per export call, so each trace gets its own line and file.
    let recorder = Recorder::with(|b| b.file(config.clone()).max_export_batch(1));
    for city in ["Paris", "Rome", "Oslo"] {
        answer(city);
        recorder.spans();
    }
    assert!(recorder.shutdown().completed);

    let mut files = vec![path.clone()];
    files.extend(
        (1..=10)
            .map(|n| config.rotated_path(n))
            .filter(|p| p.exists()),
    );
    assert!(files.len() >= 3, "rotated into {files:?}");
    let cities: Vec<String> = files
        .iter()
        .flat_map(|f| analysis::read_file(f).expect("a file reads"))
        .filter_map(|t| t.root()?.str("honeyhive_inputs.city").map(str::to_owned))
        .collect();
    let mut cities = cities;
    cities.sort();
    assert_eq!(cities, ["Oslo", "Paris", "Rome"]);
}

#[test]
fn hh_traces_file_replaces_the_console_default() {
    let settings = Builder::new()
        .env(|k| match k {
            "HH_TRACES_FILE" => Some("/tmp/t.jsonl".to_owned()),
            "HH_TRACES_FILE_MAX_BYTES" => Some("1000".to_owned()),
            _ => None,
        })
        .resolve();
    assert_eq!(
        settings.exporters,
        [ExporterKind::File(
            FileExport::new("/tmp/t.jsonl").rotate(1000, 5)
        )]
    );
    // Next to an OTLP endpoint from the environment, it is one more exporter.
    let settings = Builder::new()
        .env(|k| match k {
            "HH_TRACES_FILE" => Some("/tmp/t.jsonl".to_owned()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_owned()),
            _ => None,
        })
        .resolve();
    assert_eq!(settings.exporters.len(), 2);
    assert!(matches!(
        settings.exporters[0],
        ExporterKind::OtlpHttp { .. }
    ));
}

#[test]
fn a_collector_file_reads_with_its_metrics_line_skipped() {
    let file = TraceFile::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../honeyhive-runtime/tests/data/collector-file-exporter.jsonl"
    ))
    .expect("the fixture reads");
    assert_eq!((file.traces.len(), file.spans), (2, 5));
    assert_eq!(file.skipped_lines, 1);
    let trace = &file.traces[0];
    assert_eq!(
        format!("{:032x}", trace.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // Its root has a remote parent (flags 0x300), so it is the root here.
    let root = trace.root().expect("a root");
    assert_eq!(
        (root.name.as_str(), root.kind),
        ("POST /chat", SpanKind::Server)
    );
    assert!(root.parent_remote);
    let llm = trace
        .spans
        .iter()
        .find(|s| s.name == "ChatCompletion")
        .expect("the LLM call");
    assert_eq!(llm.parent_span_id, root.span_id);
    assert_eq!(llm.kind, SpanKind::Client);
    assert_eq!(llm.attr("llm.token_count.prompt"), Some(&Value::Int(412)));
    assert_eq!(llm.duration_nanos(), 900_000_000);
    let retrieve = trace
        .spans
        .iter()
        .find(|s| s.name == "retrieve")
        .expect("retrieve");
    assert_eq!(
        retrieve.attr("tags"),
        Some(&Value::List(vec![
            Value::Str("kb".into()),
            Value::Str("faq".into())
        ]))
    );
    let failed = file.traces[1].root().expect("the second root");
    assert_eq!(
        failed.status,
        Status::Error("upstream model unavailable".to_owned())
    );
}
