//! `honeyhive-traces`: reads OTLP JSON-lines trace files (from `Builder::file`, or the
//! OpenTelemetry Collector's `file` exporter) and prints what a person asks of them first.
//!
//! ```text
//! honeyhive-traces summary FILE...                 calls, errors, latency, tokens and cost by model
//! honeyhive-traces slowest FILE... [-n N]          the slowest operations (span names), by p95
//! honeyhive-traces critical-path FILE... [TRACE]   the chain of spans that decided when the
//!                                                  trace ended (the slowest trace by default)
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use honeyhive_runtime::analysis::{Span, Trace, TraceFile};
use honeyhive_runtime::llm::{gen_ai, openinference};

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
                eprintln!("  line {}: {}", skipped.line, skipped.reason);
            }
        }
        spans.extend(file.traces.into_iter().flat_map(|t| t.spans));
    }
    Ok(Trace::group(spans))
}

// The summaries below are this tool's own, minimal versions. The `analysis` module's
// per-model summary and critical path should replace them once they land.

/// The model a span called, if it is an LLM call.
fn model(span: &Span) -> Option<&str> {
    span.str(gen_ai::RESPONSE_MODEL)
        .or_else(|| span.str(gen_ai::REQUEST_MODEL))
        .or_else(|| span.str(openinference::LLM_MODEL_NAME))
}

#[derive(Default)]
struct ModelRow {
    calls: usize,
    errors: usize,
    durations: Vec<u64>,
    input_tokens: f64,
    output_tokens: f64,
    cost: f64,
}

fn summary(traces: &[Trace]) -> String {
    let mut rows: HashMap<&str, ModelRow> = HashMap::new();
    for span in traces.iter().flat_map(|t| &t.spans) {
        let Some(model) = model(span) else { continue };
        let row = rows.entry(model).or_default();
        row.calls += 1;
        row.errors += usize::from(span.status.is_error());
        row.durations.push(span.duration_nanos());
        row.input_tokens += span
            .f64(gen_ai::USAGE_INPUT_TOKENS)
            .or_else(|| span.f64(openinference::LLM_TOKEN_COUNT_PROMPT))
            .unwrap_or(0.0);
        row.output_tokens += span
            .f64(gen_ai::USAGE_OUTPUT_TOKENS)
            .or_else(|| span.f64(openinference::LLM_TOKEN_COUNT_COMPLETION))
            .unwrap_or(0.0);
        row.cost += span.f64(openinference::LLM_COST_TOTAL).unwrap_or(0.0);
    }
    let spans: usize = traces.iter().map(|t| t.spans.len()).sum();
    let mut out = format!("{} traces, {spans} spans\n", traces.len());
    if rows.is_empty() {
        out.push_str("no LLM calls (spans with a gen_ai or llm model attribute)\n");
        return out;
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
    let _ = writeln!(
        out,
        "{:<24} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "model", "calls", "errors", "p50", "p95", "tokens in", "tokens out", "cost USD"
    );
    for (model, mut row) in rows {
        row.durations.sort_unstable();
        let _ = writeln!(
            out,
            "{model:<24} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12.6}",
            row.calls,
            row.errors,
            ms(percentile(&row.durations, 50)),
            ms(percentile(&row.durations, 95)),
            row.input_tokens,
            row.output_tokens,
            row.cost,
        );
    }
    out
}

fn slowest(traces: &[Trace], top: usize) -> String {
    let mut ops: HashMap<&str, (Vec<u64>, usize)> = HashMap::new();
    for span in traces.iter().flat_map(|t| &t.spans) {
        let op = ops.entry(&span.name).or_default();
        op.0.push(span.duration_nanos());
        op.1 += usize::from(span.status.is_error());
    }
    let mut ops: Vec<_> = ops
        .into_iter()
        .map(|(name, (mut d, errors))| {
            d.sort_unstable();
            (name, d, errors)
        })
        .collect();
    ops.sort_by(|a, b| {
        percentile(&b.1, 95)
            .cmp(&percentile(&a.1, 95))
            .then(a.0.cmp(b.0))
    });
    let mut out = format!(
        "{:<32} {:>6} {:>6} {:>10} {:>10} {:>10}\n",
        "operation", "count", "errors", "p50", "p95", "max"
    );
    for (name, d, errors) in ops.into_iter().take(top) {
        let _ = writeln!(
            out,
            "{name:<32} {:>6} {errors:>6} {:>10} {:>10} {:>10}",
            d.len(),
            ms(percentile(&d, 50)),
            ms(percentile(&d, 95)),
            ms(d.last().copied().unwrap_or(0)),
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
    let root = trace.root().ok_or("the trace has no root span")?;
    let mut path = Vec::new();
    walk(trace, root, root.end_unix_nanos, 0, &mut path);
    path.sort_by_key(|(span, _, _)| span.start_unix_nanos);
    let mut out = format!(
        "trace {:032x} · {} · {} · critical path of {} spans\n",
        trace.trace_id,
        root.name,
        ms(root.duration_nanos()),
        path.len()
    );
    for (span, depth, own) in path {
        let mark = if span.status.is_error() { "✗ " } else { "  " };
        let _ = writeln!(
            out,
            "{mark}{:indent$}{:<width$} {:>10}  on the path {:>10}",
            "",
            span.name,
            ms(span.duration_nanos()),
            ms(own),
            indent = depth * 2,
            width = 32usize.saturating_sub(depth * 2),
        );
    }
    Ok(out)
}

/// Walks back from `until` (when `span` had to be done): the child that ended last before
/// that is on the path, then the one that ended last before it started, and so on; the gaps
/// are the span's own time on the path.
fn walk<'a>(
    trace: &'a Trace,
    span: &'a Span,
    until: u64,
    depth: usize,
    path: &mut Vec<(&'a Span, usize, u64)>,
) {
    let mut children: Vec<&Span> = trace
        .spans
        .iter()
        .filter(|c| {
            c.parent_span_id == span.span_id && !c.parent_remote && c.span_id != span.span_id
        })
        .collect();
    children.sort_by_key(|c| std::cmp::Reverse(c.end_unix_nanos));
    let at = path.len();
    path.push((span, depth, 0));
    let mut cursor = until.min(span.end_unix_nanos);
    let mut own = 0;
    for child in children {
        if child.start_unix_nanos >= cursor {
            continue;
        }
        let end = child.end_unix_nanos.min(cursor);
        own += cursor - end;
        walk(trace, child, end, depth + 1, path);
        cursor = child.start_unix_nanos.max(span.start_unix_nanos);
    }
    own += cursor.saturating_sub(span.start_unix_nanos);
    path[at].2 = own;
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A duration for people: `812µs`, `41.3ms`, `2.05s`.
fn ms(nanos: u64) -> String {
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
