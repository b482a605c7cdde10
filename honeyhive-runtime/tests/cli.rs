//! `honeyhive-traces` (feature `cli`) run as a person would: over a file the OpenTelemetry
//! Collector's `file` exporter wrote, and over one our pipeline wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use honeyhive_runtime::{Builder, LlmCall, trace};

const COLLECTOR_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/collector-file-exporter.jsonl"
);

fn traces_tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_honeyhive-traces"))
        .args(args)
        .output()
        .expect("honeyhive-traces runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// The line of `text` that starts with `name` (after indentation and marks).
fn row<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.trim_start_matches(['✗', ' ']).starts_with(name))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn summary_of_a_collector_file_lists_each_model() {
    let out = traces_tool(&["summary", COLLECTOR_FILE]);
    let text = stdout(&out);
    assert!(text.starts_with("2 traces, 5 spans"), "{text}");
    // model, calls, errors, p50, p95, tokens in, tokens out, cost
    assert_eq!(
        row(&text, "gpt-4o-mini"),
        [
            "gpt-4o-mini",
            "1",
            "0",
            "900.0ms",
            "900.0ms",
            "412",
            "57",
            "0.000096"
        ]
    );
    assert_eq!(
        row(&text, "gpt-4o "),
        [
            "gpt-4o", "1", "1", "380.0ms", "380.0ms", "120", "0", "0.000000"
        ]
    );
    // The metrics line of the same file is skipped and said so, not fatal.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipped 1 line(s) without readable traces"),
        "{stderr}"
    );
    assert!(stderr.contains("line 2: resourceMetrics"), "{stderr}");
}

#[test]
fn slowest_ranks_operations_by_p95() {
    let text = stdout(&traces_tool(&["slowest", COLLECTOR_FILE, "-n", "2"]));
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        row(rows[0], "POST /chat"),
        ["POST", "/chat", "2", "1", "400.0ms", "1.20s", "1.20s"]
    );
    assert!(rows[1].starts_with("ChatCompletion"), "{text}");
}

#[test]
fn critical_path_of_the_slowest_trace_walks_back_from_its_end() {
    let text = stdout(&traces_tool(&["critical-path", COLLECTOR_FILE]));
    assert!(
        text.starts_with("trace 4bf92f3577b34da6a3ce929d0e0e4736 · POST /chat · 1.20s"),
        "{text}"
    );
    // The model call ends last; the retrieval ended before it started: both decide the end.
    // The root's own time on the path: 20ms before retrieve, 10ms between, 50ms after.
    let on_path = |name| row(&text, name).last().copied();
    assert_eq!(on_path("POST /chat"), Some("80.0ms"));
    assert_eq!(on_path("retrieve"), Some("220.0ms"));
    assert_eq!(on_path("ChatCompletion"), Some("900.0ms"));
    // A chosen trace, by a prefix of its id; its failed spans are marked.
    let text = stdout(&traces_tool(&["critical-path", COLLECTOR_FILE, "0af76519"]));
    assert!(text.contains("✗ POST /chat"), "{text}");
    assert!(text.contains("✗   chat gpt-4o"), "{text}");
}

#[test]
fn mistakes_print_the_usage() {
    let out = traces_tool(&["sumary", COLLECTOR_FILE]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    let out = traces_tool(&["summary", "/nonexistent/traces.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
}

#[trace(event_type = "model")]
fn complete(question: &str) -> String {
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .usage(31, 13)
        .record();
    format!("answer to {question}")
}

#[trace(event_type = "chain")]
fn answer(question: &str) -> String {
    complete(question)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hh-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[test]
fn the_tool_reads_what_our_pipeline_wrote() {
    let dir = TempDir::new("pipeline");
    let file = dir.path("traces.jsonl");
    let guard = Builder::new()
        .env(|_| None)
        .file(&file)
        .install()
        .expect("the pipeline starts");
    answer("first");
    answer("second");
    assert!(guard.shutdown().completed);

    let text = stdout(&traces_tool(&["summary", arg(&file)]));
    assert!(text.starts_with("2 traces, 4 spans"), "{text}");
    let gpt = row(&text, "gpt-4o-mini");
    assert_eq!(gpt[1..3], ["2", "0"], "{text}");
    assert_eq!(gpt[5..7], ["62", "26"], "{text}");

    let text = stdout(&traces_tool(&["critical-path", arg(&file)]));
    assert!(text.contains("answer"), "{text}");
    assert!(text.contains("  complete"), "{text}");
}

/// One span of a hand-written OTLP JSON line; times in ms.
fn json_span(id: u8, parent: u8, name: &str, start_ms: u64, end_ms: u64) -> String {
    let parent = if parent == 0 {
        String::new()
    } else {
        format!("\"parentSpanId\":\"{parent:016x}\",")
    };
    format!(
        "{{\"traceId\":\"{:032x}\",\"spanId\":\"{id:016x}\",{parent}\"name\":\"{name}\",\
         \"kind\":1,\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"}}",
        7,
        1_767_225_600_000_000_000 + start_ms * 1_000_000,
        1_767_225_600_000_000_000 + end_ms * 1_000_000,
    )
}

#[test]
fn the_critical_path_leaves_out_a_longer_child_that_ran_alongside_it() {
    // `slow_search` is the longest child, but it was still running when `model` started and
    // ended before `model` did: the request waited for `quick_cache`, then `model`.
    let dir = TempDir::new("concurrent");
    let file = dir.path("traces.jsonl");
    let spans = [
        json_span(2, 1, "slow_search", 5, 80),
        json_span(3, 1, "quick_cache", 10, 20),
        json_span(4, 1, "model", 30, 95),
        json_span(1, 0, "request", 0, 100),
    ];
    let line = format!(
        "{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{}]}}]}}]}}\n",
        spans.join(",")
    );
    std::fs::write(&file, line).expect("write the file");
    let text = stdout(&traces_tool(&["critical-path", arg(&file)]));
    assert!(text.contains("critical path of 3 spans"), "{text}");
    let on_path = |name| row(&text, name).last().copied();
    assert_eq!(on_path("request"), Some("25.0ms"));
    assert_eq!(on_path("quick_cache"), Some("10.0ms"));
    assert_eq!(on_path("model"), Some("65.0ms"));
    assert!(!text.contains("slow_search"), "{text}");
}
