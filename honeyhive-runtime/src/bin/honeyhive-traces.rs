//! `honeyhive-traces`: reads OTLP JSON-lines trace files (from `Builder::file`, or the
//! OpenTelemetry Collector's `file` exporter) and prints what a person asks of them first.
//!
//! ```text
//! honeyhive-traces summary FILE...                 calls, errors, latency, tokens and cost by model
//! honeyhive-traces slowest FILE... [-n N]          the slowest operations (span names), by p95
//! honeyhive-traces critical-path FILE... [TRACE]   the chain of spans that decided when the
//!                                                  trace ended (the slowest trace by default)
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use honeyhive_runtime::analysis::{self, GroupBy, Query, Span, Trace, TraceFile};
use honeyhive_runtime::export::console::clean_line;

/// Deeper steps of a critical path stop indenting, as in the console, so the output of a
/// very deep trace grows with its depth, not with the square of it.
const MAX_INDENT_DEPTH: usize = 30;

const USAGE: &str = "usage:
  honeyhive-traces summary FILE...
  honeyhive-traces slowest FILE... [-n N]
  honeyhive-traces critical-path FILE... [TRACE_ID]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("honeyhive-traces: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let (command, rest) = args.split_first().ok_or("no command")?;
    let mut files = Vec::new();
    let mut top = 10;
    let mut trace_id = None;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        if arg == "-n" {
            let n = rest.next().ok_or("-n needs a number")?;
            top = n.parse().map_err(|_| format!("-n {n}: not a number"))?;
        } else if command == "critical-path"
            && !files.is_empty()
            && !std::path::Path::new(arg).exists()
        {
            trace_id = Some(arg.to_ascii_lowercase());
        } else {
            files.push(arg.clone());
        }
    }
    if files.is_empty() {
        return Err("no trace file given".to_owned());
    }
    let traces = load(&files)?;
    match command.as_str() {
        "summary" => Ok(summary(&traces)),
        "slowest" => Ok(slowest(&traces, top)),
        "critical-path" => critical_path(&traces, trace_id.as_deref()),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Reads every file, reporting skipped lines on stderr; spans of one trace spread over
/// several files (rotation) are put back together.
fn load(files: &[String]) -> Result<Vec<Trace>, String> {
    let mut spans = Vec::new();
    for path in files {
        let file = TraceFile::open(path).map_err(|e| format!("{path}: {e}"))?;
        if file.skipped_lines > 0 || file.skipped_spans > 0 {
            eprintln!(
                "{path}: skipped {} line(s) without readable traces and {} span(s) without valid ids",
                file.skipped_lines, file.skipped_spans
            );
            for skipped in &file.skipped {
                eprintln!("  line {}: {}", skipped.line, clean(&skipped.reason));
            }
        }
        spans.extend(file.traces.into_iter().flat_map(|t| t.spans));
    }
    Ok(Trace::group(spans))
}

fn summary(traces: &[Trace]) -> String {
    let rows = analysis::summarize(traces);
    let spans: usize = traces.iter().map(|t| t.spans.len()).sum();
    let mut out = format!("{} traces, {spans} spans\n", traces.len());
    if rows.is_empty() {
        out.push_str("no LLM calls (spans with a gen_ai or llm model attribute)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12}  provider",
        "model", "calls", "errors", "p50", "p95", "tokens in", "tokens out", "cost USD"
    );
    for row in rows {
        let line = format!(
            "{:<24} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12.6}  {}",
            clean(&row.model),
            row.calls,
            row.errors,
            ms(row.p50),
            ms(row.p95),
            row.input_tokens,
            row.output_tokens,
            row.cost_usd,
            clean(row.provider.as_deref().unwrap_or("")),
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn slowest(traces: &[Trace], top: usize) -> String {
    let mut ops = Query::over(traces).group_by(GroupBy::Name);
    ops.sort_by(|a, b| b.stats.p95.cmp(&a.stats.p95).then(a.key.cmp(&b.key)));
    let mut out = format!(
        "{:<32} {:>6} {:>6} {:>10} {:>10} {:>10}\n",
        "operation", "count", "errors", "p50", "p95", "max"
    );
    for op in ops.into_iter().take(top) {
        let _ = writeln!(
            out,
            "{:<32} {:>6} {:>6} {:>10} {:>10} {:>10}",
            clean(&op.key),
            op.stats.count,
            op.stats.errors,
            ms(op.stats.p50),
            ms(op.stats.p95),
            ms(op.stats.max),
        );
    }
    out
}

fn critical_path(traces: &[Trace], wanted: Option<&str>) -> Result<String, String> {
    let trace = match wanted {
        Some(id) => traces
            .iter()
            .find(|t| format!("{:032x}", t.trace_id).starts_with(id))
            .ok_or_else(|| format!("no trace {id} in the file"))?,
        None => traces
            .iter()
            .filter(|t| t.root().is_some())
            .max_by_key(|t| t.root().map_or(0, Span::duration_nanos))
            .ok_or("no trace with a root span in the file")?,
    };
    let path = trace.critical_path();
    let root = path.first().ok_or("the trace has no root span")?.span;
    let mut out = format!(
        "trace {:032x} · {} · {} · critical path of {} spans\n",
        trace.trace_id,
        clean(&root.name),
        ms(Duration::from_nanos(root.duration_nanos())),
        path.len()
    );
    for step in path {
        let span = step.span;
        let mark = if span.status.is_error() { "✗ " } else { "  " };
        let indent = step.depth.min(MAX_INDENT_DEPTH) * 2;
        let _ = writeln!(
            out,
            "{mark}{:indent$}{:<width$} {:>10}  on the path {:>10}",
            "",
            clean(&span.name),
            ms(Duration::from_nanos(span.duration_nanos())),
            ms(Duration::from_nanos(step.self_nanos)),
            width = 32usize.saturating_sub(indent),
        );
    }
    Ok(out)
}

/// Text from a trace file, safe to print: it cannot move the cursor, clear the screen or
/// reorder what is shown (see [`clean_line`]).
fn clean(text: &str) -> String {
    clean_line(text, usize::MAX)
}

/// A duration for people: `812µs`, `41.3ms`, `2.05s`.
fn ms(d: Duration) -> String {
    let nanos = d.as_nanos();
    #[allow(clippy::cast_precision_loss)] // display only
    let n = nanos as f64;
    if nanos < 1_000_000 {
        format!("{:.0}µs", n / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.1}ms", n / 1e6)
    } else {
        format!("{:.2}s", n / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::{critical_path, slowest, summary};
    use honeyhive_runtime::analysis::{self, Trace};

    /// One OTLP JSON line with spans `(id, parent, name, start, end, attributes)`.
    fn file(spans: &[(u64, u64, &str, u64, u64, &str)]) -> Vec<Trace> {
        let spans: Vec<String> = spans
            .iter()
            .map(|(id, parent, name, start, end, attributes)| {
                let parent = if *parent == 0 {
                    String::new()
                } else {
                    format!(r#","parentSpanId":"{parent:016x}""#)
                };
                format!(
                    r#"{{"traceId":"{:032x}","spanId":"{id:016x}"{parent},"name":{},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{attributes}]}}"#,
                    0xabc,
                    serde_json::to_string(name).unwrap()
                )
            })
            .collect();
        let line = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        analysis::read(line.as_bytes()).unwrap()
    }

    #[test]
    fn names_from_the_file_cannot_drive_the_terminal() {
        // Clear the screen and set the window title; hide what follows; reverse it.
        let evil = "op\x1b[2J\x1b]0;pwned\x07\u{202E}";
        let model = r#"{"key":"gen_ai.request.model","value":{"stringValue":"gpt\u001b[8m"}},{"key":"gen_ai.provider.name","value":{"stringValue":"ai\u2066"}}"#;
        let traces = file(&[
            (1, 0, evil, 0, 1_000_000, model),
            (2, 1, evil, 10, 900_000, ""),
        ]);
        for out in [
            summary(&traces),
            slowest(&traces, 10),
            critical_path(&traces, None).unwrap(),
        ] {
            assert!(
                !out.contains(['\x1b', '\x07', '\u{202E}', '\u{2066}']),
                "{out:?}"
            );
        }
        assert!(summary(&traces).contains("gpt [8m"));
        assert!(slowest(&traces, 10).contains("op [2J ]0;pwned  "));
    }

    #[test]
    fn a_deep_critical_path_stops_indenting() {
        let depth = 1_000;
        let spans: Vec<_> = (0..depth)
            .map(|i| (i + 1, i, "nested", i, 2 * depth - i, ""))
            .collect();
        let out = critical_path(&file(&spans), None).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 1_000);
        let indent = |line: &str| line.len() - line.trim_start().len();
        assert_eq!(indent(lines[1]), 2);
        assert_eq!(indent(lines[31]), 2 + 60);
        assert_eq!(indent(lines[1_000]), 2 + 60);
        assert!(lines.iter().all(|line| line.len() < 120), "{out}");
    }
}
