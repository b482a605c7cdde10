//! Console exporter: a waterfall of each finished trace, the default when no remote exporter is set.
//!
//! Spans reach an exporter in the order they end, so a trace's children usually arrive before its
//! root. [`ConsoleExporter`] holds each trace's spans until the root arrives, then prints the whole
//! trace at once, like a Gantt chart in a trace viewer:
//!
//! ```text
//! trace 3df5a350779dc118c97cfbeebe7897cf · handle_request · 120ms · 5 spans · 1 error · tokens 1200→45 · $0.0021
//!   ◆ handle_request [chain]          120ms │████████████████████████████████████████│
//!       retrieve_documents [tool]    30.3ms │███████████                             │
//!     ◆ call_llm [model]             86.7ms │          ██████████████████████████████│  tokens 1200→45  $0.0021  (2 attempts)
//!     ◆ validate                     1.10ms │                                       █│
//! ✗     ◆ check_schema [guardrail]    850µs │                                       █│  error: missing field `answer`
//! ```
//!
//! `◆` marks the trace's critical path
//! ([`Trace::critical_path`](crate::analysis::Trace::critical_path)): the chain of spans that
//! decided when the root ended, concurrency accounted for.
//!
//! A root is a span without a parent or with a remote parent. Spans whose root never arrives
//! (the root is still running, or was dropped) are printed as a partial trace on
//! [`force_flush`](SpanExporter::force_flush) and [`shutdown`](SpanExporter::shutdown), or when
//! too many traces are waiting.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::evaluate;
use crate::llm::openinference;

const DEFAULT_BAR_WIDTH: usize = 40;
/// Bounds the allocation a careless `bar_width` could cause; no terminal is wider.
const MAX_BAR_WIDTH: usize = 500;
const MAX_NAME_CHARS: usize = 40;
const MAX_EVENT_TYPE_CHARS: usize = 16;
const MAX_MESSAGE_CHARS: usize = 120;
/// Deeper spans stop indenting, so one very deep chain cannot widen every line of its trace.
const MAX_INDENT_DEPTH: usize = 30;
/// Traces wait for roots that may never come (still running, dropped by a full queue), so the
/// number of waiting traces and spans is capped; past a cap the oldest trace is printed as is.
const MAX_HELD_TRACES: usize = 10_000;
const MAX_HELD_SPANS: usize = 100_000;
/// How long the part of a trace under a remote parent waits for its caller's spans.
const REMOTE_ROOT_GRACE: Duration = Duration::from_secs(1);

const EVENT_TYPE_KEY: &str = "honeyhive_event_type";
const INPUT_TOKENS_KEY: &str = "gen_ai.usage.input_tokens";
const OUTPUT_TOKENS_KEY: &str = "gen_ai.usage.output_tokens";
const COST_KEY: &str = "llm.cost.total";
const RETRY_ATTEMPTS_KEY: &str = "retry.attempts";
const EXCEPTION_EVENT: &str = "exception";
const EXCEPTION_MESSAGE_KEY: &str = "exception.message";

const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// Where the waterfall goes.
#[derive(Clone)]
pub enum ConsoleTarget {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// An in-memory buffer that each printed trace is appended to, as UTF-8 text.
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl ConsoleTarget {
    fn write(&self, text: &str) {
        // The waterfall is diagnostics: a closed pipe or a full disk must fail neither the export
        // nor the application, so write errors are dropped.
        let _ = match self {
            Self::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Self::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
            Self::Buffer(buffer) => {
                lock(buffer).extend_from_slice(text.as_bytes());
                Ok(())
            }
        };
    }
}

impl fmt::Debug for ConsoleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A buffer's contents are output, not configuration.
        f.write_str(match self {
            Self::Stdout => "Stdout",
            Self::Stderr => "Stderr",
            Self::Buffer(_) => "Buffer(..)",
        })
    }
}

/// Prints each finished trace to a [`ConsoleTarget`] as a waterfall: one line per span in tree
/// order, with its duration and a bar on the trace's time axis.
///
/// Spans are held per trace until the trace's root arrives; see the [module docs](self).
pub struct ConsoleExporter {
    target: ConsoleTarget,
    bar_width: usize,
    color: bool,
    held: Mutex<HeldTraces>,
}

impl ConsoleExporter {
    /// An exporter that writes to `target`, with bars 40 columns wide and no colour.
    #[must_use]
    pub fn new(target: ConsoleTarget) -> Self {
        Self {
            target,
            bar_width: DEFAULT_BAR_WIDTH,
            color: false,
            held: Mutex::new(HeldTraces::default()),
        }
    }

    /// Sets the width of the bars in columns (at most 500); `0` leaves the bars out.
    #[must_use]
    pub fn with_bar_width(mut self, cols: usize) -> Self {
        self.bar_width = cols;
        self
    }

    /// Marks error spans, their bars and messages in red with ANSI escapes when `on`. Off by
    /// default, because the output often goes to a file or a CI log.
    #[must_use]
    pub fn with_color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }

    fn write_traces(&self, traces: &[Vec<SpanData>]) {
        if traces.is_empty() {
            return;
        }
        // One write for all the traces, so the application's own output cannot land inside one.
        let text: String = traces
            .iter()
            .map(|spans| render_trace(spans, self.bar_width, self.color))
            .collect();
        self.target.write(&text);
    }
}

impl fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleExporter")
            .field("target", &self.target)
            .field("bar_width", &self.bar_width)
            .field("color", &self.color)
            .finish_non_exhaustive()
    }
}

impl SpanExporter for ConsoleExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        // Rendering is quick and the target is local, so the work is done before returning and
        // the future is already complete; the lock is released before writing.
        let completed = lock(&self.held).accept(batch);
        std::future::ready(completed.map(|traces| self.write_traces(&traces)))
    }

    fn force_flush(&self) -> OTelSdkResult {
        let partial = lock(&self.held).take_all();
        self.write_traces(&partial);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let partial = {
            let mut held = lock(&self.held);
            if held.is_shutdown {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            held.is_shutdown = true;
            held.take_all()
        };
        self.write_traces(&partial);
        Ok(())
    }
}

/// A panic elsewhere while a lock was held leaves plain data behind that is still fit to print.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spans waiting for their trace's root.
#[derive(Default)]
struct HeldTraces {
    traces: HashMap<TraceId, HeldTrace>,
    /// Trace ids by arrival number, so that overflow prints the oldest trace first.
    arrivals: BTreeMap<u64, TraceId>,
    next_arrival: u64,
    span_count: usize,
    /// Kept under the same lock as the spans, so no export can slip in after the final flush.
    is_shutdown: bool,
}

struct HeldTrace {
    arrival: u64,
    spans: Vec<SpanData>,
    /// When a span whose parent is in another process arrived.
    remote_root_at: Option<std::time::Instant>,
}

impl HeldTraces {
    /// Holds `batch` and returns the traces it completes, then any that the caps push out.
    fn accept(&mut self, batch: Vec<SpanData>) -> Result<Vec<Vec<SpanData>>, OTelSdkError> {
        if self.is_shutdown {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // The whole batch is held before any trace is taken, so a root that precedes its children
        // in the same batch still gets them.
        let mut completed = Vec::new();
        let now = std::time::Instant::now();
        for span in batch {
            let trace_id = span.span_context.trace_id();
            let remote_root = span.parent_span_is_remote;
            if span.parent_span_id == SpanId::INVALID {
                completed.push(trace_id);
            }
            self.hold(trace_id, span);
            if remote_root && let Some(trace) = self.traces.get_mut(&trace_id) {
                trace.remote_root_at.get_or_insert(now);
            }
        }
        // A part of a trace that started in another service is printed once its caller's
        // spans had a moment to arrive too (in one process they usually do).
        completed.extend(
            self.traces
                .iter()
                .filter(|(_, t)| {
                    t.remote_root_at
                        .is_some_and(|at| now.duration_since(at) >= REMOTE_ROOT_GRACE)
                })
                .map(|(id, _)| *id),
        );
        // A trace with two roots in the batch is listed twice; the second `take` finds nothing.
        let mut ready: Vec<_> = completed
            .into_iter()
            .filter_map(|trace_id| self.take(trace_id))
            .collect();
        while self.traces.len() > MAX_HELD_TRACES || self.span_count > MAX_HELD_SPANS {
            let Some((_, oldest)) = self.arrivals.pop_first() else {
                break;
            };
            ready.extend(self.take(oldest));
        }
        Ok(ready)
    }

    fn hold(&mut self, trace_id: TraceId, span: SpanData) {
        let trace = self.traces.entry(trace_id).or_insert_with(|| {
            let arrival = self.next_arrival;
            self.next_arrival += 1;
            self.arrivals.insert(arrival, trace_id);
            HeldTrace {
                arrival,
                spans: Vec::new(),
                remote_root_at: None,
            }
        });
        trace.spans.push(span);
        self.span_count += 1;
    }

    fn take(&mut self, trace_id: TraceId) -> Option<Vec<SpanData>> {
        let trace = self.traces.remove(&trace_id)?;
        self.arrivals.remove(&trace.arrival);
        self.span_count -= trace.spans.len();
        Some(trace.spans)
    }

    /// Every held trace, oldest first.
    fn take_all(&mut self) -> Vec<Vec<SpanData>> {
        let arrivals = std::mem::take(&mut self.arrivals);
        arrivals
            .into_values()
            .filter_map(|trace_id| self.take(trace_id))
            .collect()
    }
}

fn is_root(span: &SpanData) -> bool {
    span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote
}

/// Renders one finished trace (all its spans) as text. Pure function, used by the exporter and
/// tests.
///
/// The text is a header line (trace id, root name, total duration, span and error counts, token
/// and cost totals), then one line per span in tree order with children sorted by start time,
/// indented two spaces per level, and a blank line. Each span line shows the name, the
/// `[event_type]`, the duration and a bar `bar_width` columns wide (at most 500; `0` leaves it
/// out) placed on the trace's time axis, then tokens, cost, retry attempts,
/// evaluation results (`eval name=score label`) and error messages.
/// `color` marks error spans in red with ANSI escapes. A trace without a root span is rendered
/// as partial and says so in its header.
///
/// Odd input is rendered rather than rejected: a span whose parent is not among `spans` goes to
/// the top level, as do spans caught in a cycle of parent links, and spans of several traces are
/// rendered one trace after another.
#[must_use]
pub fn render_trace(spans: &[SpanData], bar_width: usize, color: bool) -> String {
    let mut traces: Vec<Vec<&SpanData>> = Vec::new();
    let mut position: HashMap<TraceId, usize> = HashMap::new();
    for span in spans {
        let next = traces.len();
        let index = *position.entry(span.span_context.trace_id()).or_insert(next);
        if index == next {
            traces.push(Vec::new());
        }
        traces[index].push(span);
    }
    let bar_width = bar_width.min(MAX_BAR_WIDTH);
    traces
        .into_iter()
        .map(|spans| {
            Waterfall {
                spans,
                bar_width,
                color,
            }
            .to_string()
        })
        .collect()
}

/// The spans of one trace, displayed as a waterfall.
struct Waterfall<'a> {
    spans: Vec<&'a SpanData>,
    bar_width: usize,
    color: bool,
}

/// A span's place in the tree: its index in [`Waterfall::spans`] and its depth.
struct Row {
    index: usize,
    depth: usize,
}

impl fmt::Display for Waterfall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = tree_order(&self.spans);
        let axis = TimeAxis::of(&self.spans);
        self.write_header(f, &rows, &axis)?;
        let critical = critical_path(&self.spans);
        let labels: Vec<String> = rows
            .iter()
            .map(|row| {
                let on_path = critical.get(row.index).copied().unwrap_or(false);
                label(self.spans[row.index], row.depth, on_path)
            })
            .collect();
        let label_width = labels
            .iter()
            .map(|label| label.chars().count())
            .max()
            .unwrap_or(0);
        for (row, label) in rows.iter().zip(&labels) {
            self.write_span(f, self.spans[row.index], label, label_width, &axis)?;
        }
        writeln!(f)
    }
}

impl Waterfall<'_> {
    fn write_header(
        &self,
        f: &mut fmt::Formatter<'_>,
        rows: &[Row],
        axis: &TimeAxis,
    ) -> fmt::Result {
        let spans = &self.spans;
        // Name the real root; a partial trace has none, so its earliest top-level span stands in.
        let Some(root) = rows
            .iter()
            .map(|row| spans[row.index])
            .find(|span| is_root(span))
            .or_else(|| rows.first().map(|row| spans[row.index]))
        else {
            return Ok(());
        };
        let errors = spans.iter().filter(|span| error_of(span).is_some()).count();
        write!(
            f,
            "trace {} · {} · {} · {} · {}",
            root.span_context.trace_id(),
            clean_line(&root.name, MAX_NAME_CHARS),
            format_duration(axis.duration),
            plural(spans.len(), "span"),
            plural(errors, "error"),
        )?;
        let totals = trace_usage(spans, rows);
        if let Some(tokens) = totals.tokens() {
            write!(f, " · {tokens}")?;
        }
        if let Some(cost) = totals.cost {
            write!(f, " · {}", format_cost(cost))?;
        }
        // Apart from the LLM tokens, as in the root's totals (`honeyhive.total.*`).
        let embedding = spans
            .iter()
            .filter(|span| is_embedding(span))
            .filter_map(|span| Usage::of(span).input_tokens)
            .fold(0, i64::saturating_add);
        if embedding > 0 {
            write!(f, " · embedding tokens {embedding}")?;
        }
        if !spans.iter().any(|span| is_root(span)) {
            f.write_str(" · partial: root span not received")?;
        }
        writeln!(f)
    }

    fn write_span(
        &self,
        f: &mut fmt::Formatter<'_>,
        span: &SpanData,
        label: &str,
        label_width: usize,
        axis: &TimeAxis,
    ) -> fmt::Result {
        let error = error_of(span);
        let red = self.color && error.is_some();
        paint(f, if error.is_some() { "✗" } else { " " }, red)?;
        write!(
            f,
            " {label:<label_width$}  {:>7}",
            format_duration(duration_of(span))
        )?;
        if self.bar_width > 0 {
            let cells = axis.cells(span, self.bar_width);
            write!(f, " │{}", " ".repeat(cells.start))?;
            paint(f, &"█".repeat(cells.len()), red)?;
            write!(f, "{}│", " ".repeat(self.bar_width - cells.end))?;
        }
        let usage = Usage::of(span);
        if let Some(tokens) = usage.tokens() {
            write!(f, "  {tokens}")?;
        }
        if let Some(cost) = usage.cost {
            write!(f, "  {}", format_cost(cost))?;
        }
        match int_attribute(span, RETRY_ATTEMPTS_KEY) {
            Some(1) => f.write_str("  (1 attempt)")?,
            Some(attempts) => write!(f, "  ({attempts} attempts)")?,
            None => {}
        }
        for evaluation in evaluations(span) {
            write!(f, "  eval {evaluation}")?;
        }
        if let Some(description) = error.filter(|description| !description.is_empty()) {
            f.write_str("  ")?;
            paint(
                f,
                &format!("error: {}", clean_line(description, MAX_MESSAGE_CHARS)),
                red,
            )?;
        }
        // The `Err` path records the same text as status and exception; print it once.
        if let Some(message) = exception_message(span).filter(|message| Some(*message) != error) {
            write!(f, "  exception: {}", clean_line(message, MAX_MESSAGE_CHARS))?;
        }
        writeln!(f)
    }
}

/// Lists spans parents first, children by start time, each with its depth. Every span appears
/// exactly once: a span whose parent is missing (or is itself) starts at the top level, and so
/// does the earliest span of a cycle of parent links, which no top-level span reaches.
fn tree_order(spans: &[&SpanData]) -> Vec<Row> {
    let mut by_start: Vec<usize> = (0..spans.len()).collect();
    by_start.sort_by_key(|&index| spans[index].start_time);
    // With duplicate span ids, children attach to the first span that has the id.
    let mut index_of = HashMap::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        index_of.entry(span.span_context.span_id()).or_insert(index);
    }
    let mut children = vec![Vec::new(); spans.len()];
    let mut top_level = Vec::new();
    for &index in &by_start {
        let span = spans[index];
        // A span whose parent is remote still hangs under that parent when both services
        // export to this console (one process, or spans forwarded here).
        let parent = if span.parent_span_id == SpanId::INVALID {
            None
        } else {
            index_of
                .get(&span.parent_span_id)
                .copied()
                .filter(|&parent| parent != index)
        };
        match parent {
            Some(parent) => children[parent].push(index),
            None => top_level.push(index),
        }
    }
    let mut rows = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    // An explicit stack, because a chain of spans can be deeper than the thread's stack.
    let mut stack = Vec::new();
    for &start in top_level.iter().chain(&by_start) {
        stack.push((start, 0));
        while let Some((index, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[index], true) {
                continue;
            }
            rows.push(Row { index, depth });
            stack.extend(
                children[index]
                    .iter()
                    .rev()
                    .map(|&child| (child, depth + 1)),
            );
        }
    }
    rows
}

/// Whether each span is on the trace's critical path
/// ([`Trace::critical_path`](crate::analysis::Trace::critical_path)); none are in a partial
/// trace (no root).
fn critical_path(spans: &[&SpanData]) -> Vec<bool> {
    let id = |span_id: SpanId| u64::from_be_bytes(span_id.to_bytes());
    let trace = crate::analysis::Trace::new(
        spans
            .iter()
            .map(|s| crate::analysis::Span {
                trace_id: 0,
                span_id: id(s.span_context.span_id()),
                parent_span_id: id(s.parent_span_id),
                parent_remote: s.parent_span_is_remote,
                name: String::new(),
                kind: crate::record::SpanKind::Internal,
                start_unix_nanos: crate::clock::unix_nanos(s.start_time),
                end_unix_nanos: crate::clock::unix_nanos(s.end_time.max(s.start_time)),
                status: crate::analysis::Status::Unset,
                attributes: Vec::new(),
                events: Vec::new(),
            })
            .collect(),
    );
    // The steps borrow `trace.spans`, which is in the order of `spans`.
    let index: HashMap<*const crate::analysis::Span, usize> = trace
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (std::ptr::from_ref(s), i))
        .collect();
    let mut on_path = vec![false; spans.len()];
    for step in trace.critical_path() {
        if let Some(&i) = index.get(&std::ptr::from_ref(step.span)) {
            on_path[i] = true;
        }
    }
    on_path
}

/// The time span shared by all bars of a trace: from its first start to its last end.
struct TimeAxis {
    start: SystemTime,
    duration: Duration,
}

impl TimeAxis {
    fn of(spans: &[&SpanData]) -> Self {
        let start = spans
            .iter()
            .map(|span| span.start_time)
            .min()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // Normally the root's end; children that outlive the root widen the axis to fit.
        let end = spans
            .iter()
            .map(|span| span.end_time.max(span.start_time))
            .max()
            .unwrap_or(start);
        Self {
            start,
            duration: end.duration_since(start).unwrap_or_default(),
        }
    }

    /// The cells of a `width`-cell bar that `span` covers: at least one, even for an instant.
    fn cells(&self, span: &SpanData, width: usize) -> Range<usize> {
        if width == 0 {
            return 0..0;
        }
        let axis = self.duration.as_nanos();
        if axis == 0 {
            // Everything happened at one instant, which is the whole trace.
            return 0..width;
        }
        let offset = span
            .start_time
            .duration_since(self.start)
            .map_or(0, |offset| offset.as_nanos());
        let end = offset + duration_of(span).as_nanos();
        let scale = |nanos: u128, round_up: bool| {
            let scaled = nanos * width as u128;
            let cell = if round_up {
                scaled.div_ceil(axis)
            } else {
                scaled / axis
            };
            usize::try_from(cell).unwrap_or(width)
        };
        let first = scale(offset, false).min(width - 1);
        let last = scale(end, true).clamp(first + 1, width);
        first..last
    }
}

/// A span's duration; zero for a span that ends before it starts (a clock step).
fn duration_of(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
}

/// Token counts and cost recorded on a span, or summed over a trace.
#[derive(Clone, Copy, Default)]
struct Usage {
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cost: Option<f64>,
}

impl Usage {
    fn of(span: &SpanData) -> Self {
        Self {
            // OpenInference's names when only that convention is written.
            input_tokens: int_attribute(span, INPUT_TOKENS_KEY)
                .or_else(|| int_attribute(span, openinference::LLM_TOKEN_COUNT_PROMPT)),
            output_tokens: int_attribute(span, OUTPUT_TOKENS_KEY)
                .or_else(|| int_attribute(span, openinference::LLM_TOKEN_COUNT_COMPLETION)),
            cost: match attribute(&span.attributes, COST_KEY) {
                Some(Value::F64(cost)) => Some(*cost),
                _ => None,
            },
        }
    }

    /// `tokens 120→45`, with `?` for a missing side.
    fn tokens(&self) -> Option<String> {
        if self.input_tokens.is_none() && self.output_tokens.is_none() {
            return None;
        }
        let side = |tokens: Option<i64>| tokens.map_or_else(|| "?".to_owned(), |n| n.to_string());
        Some(format!(
            "tokens {}→{}",
            side(self.input_tokens),
            side(self.output_tokens)
        ))
    }
}

/// Sums tokens and cost over a trace. Tokens and cost roll up to the root span, so a value counts
/// only when no ancestor carries the same attribute: a trace without roll-up still gets the sum
/// of its spans, and one with roll-up is not counted twice.
fn trace_usage(spans: &[&SpanData], rows: &[Row]) -> Usage {
    let mut total = Usage::default();
    // The current path from the top level: each span's depth and what it or an ancestor carries.
    let mut path: Vec<(usize, Usage)> = Vec::new();
    for row in rows {
        while path.last().is_some_and(|&(depth, _)| depth >= row.depth) {
            path.pop();
        }
        let above = path.last().map(|&(_, usage)| usage).unwrap_or_default();
        let span = spans[row.index];
        let own = if is_embedding(span) {
            Usage::default()
        } else {
            Usage::of(span)
        };
        if above.input_tokens.is_none() {
            total.input_tokens = add_tokens(total.input_tokens, own.input_tokens);
        }
        if above.output_tokens.is_none() {
            total.output_tokens = add_tokens(total.output_tokens, own.output_tokens);
        }
        if above.cost.is_none()
            && let Some(cost) = own.cost
        {
            total.cost = Some(total.cost.unwrap_or(0.0) + cost);
        }
        let carried = Usage {
            input_tokens: above.input_tokens.or(own.input_tokens),
            output_tokens: above.output_tokens.or(own.output_tokens),
            cost: above.cost.or(own.cost),
        };
        path.push((row.depth, carried));
    }
    total
}

/// An embedding call, whose tokens the header counts apart from the LLM calls'.
fn is_embedding(span: &SpanData) -> bool {
    let text = |key| match attribute(&span.attributes, key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    text(EVENT_TYPE_KEY) == Some("embedding")
        || text(crate::llm::gen_ai::OPERATION_NAME) == Some("embeddings")
}

fn add_tokens(total: Option<i64>, tokens: Option<i64>) -> Option<i64> {
    match (total, tokens) {
        (Some(total), Some(tokens)) => Some(total.saturating_add(tokens)),
        (total, tokens) => total.or(tokens),
    }
}

/// The last value recorded for `key`, as on a live span where a later write replaces an earlier.
fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .rev()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.value)
}

fn int_attribute(span: &SpanData, key: &str) -> Option<i64> {
    match attribute(&span.attributes, key)? {
        Value::I64(value) => Some(*value),
        _ => None,
    }
}

fn error_of(span: &SpanData) -> Option<&str> {
    match &span.status {
        Status::Error { description } => Some(description),
        Status::Unset | Status::Ok => None,
    }
}

fn exception_message(span: &SpanData) -> Option<&str> {
    span.events
        .iter()
        .rev()
        .filter(|event| event.name == EXCEPTION_EVENT)
        .find_map(
            |event| match attribute(&event.attributes, EXCEPTION_MESSAGE_KEY)? {
                Value::String(message) => Some(message.as_str()),
                _ => None,
            },
        )
}

/// Each `gen_ai.evaluation.result` event of `span`, as `name=score label` (or `name failed:
/// message` for an evaluator that failed), cut to fit the line.
fn evaluations(span: &SpanData) -> impl Iterator<Item = String> + '_ {
    span.events
        .iter()
        .filter(|event| event.name == evaluate::EVENT)
        .map(|event| {
            let text = |key| attribute(&event.attributes, key).map(Value::as_str);
            let mut shown = text(evaluate::NAME).unwrap_or_default().into_owned();
            if let Some(score) = attribute(&event.attributes, evaluate::SCORE) {
                shown.push('=');
                shown.push_str(&score.as_str());
            }
            if let Some(label) = text(evaluate::LABEL) {
                shown.push(' ');
                shown.push_str(&label);
            }
            if let Some(message) = text(EXCEPTION_MESSAGE_KEY) {
                shown.push_str(" failed: ");
                shown.push_str(&message);
            }
            clean_line(&shown, MAX_MESSAGE_CHARS)
        })
}

/// The name column: indentation, the name and the `[event_type]`.
fn label(span: &SpanData, depth: usize, on_path: bool) -> String {
    let mut label = "  ".repeat(depth.min(MAX_INDENT_DEPTH));
    // `◆ ` on the critical path, else two blanks, so names stay aligned.
    label.push_str(if on_path { "◆ " } else { "  " });
    label.push_str(&clean_line(&span.name, MAX_NAME_CHARS));
    if let Some(event_type) = attribute(&span.attributes, EVENT_TYPE_KEY) {
        label.push_str(" [");
        label.push_str(&clean_line(&event_type.as_str(), MAX_EVENT_TYPE_CHARS));
        label.push(']');
    }
    label
}

/// Makes recorded text safe for one line of a terminal: every character a terminal would not
/// show as itself becomes a space, and text longer than `max_chars` is cut to end in `…`.
///
/// Those are the control characters (newlines, the ESC of ANSI escapes), the line and
/// paragraph separators, and the format characters (Unicode category Cf): bidirectional
/// overrides and isolates (U+202A..U+202E, U+2066..U+2069), zero-width spaces and joiners
/// (U+200B..U+200D, U+2060, U+FEFF) and the like, which could otherwise make a span name or
/// an error message read as something else ("Trojan Source" spoofing). Span names,
/// attributes and messages come from the traced code, its users and trace files; the
/// console and `honeyhive-traces` print them only through this.
#[must_use]
pub fn clean_line(text: &str, max_chars: usize) -> String {
    let mut cleaned: String = text
        .chars()
        .take(max_chars)
        .map(|c| if shows_as_itself(c) { c } else { ' ' })
        .collect();
    if text.chars().nth(max_chars).is_some() {
        cleaned.pop();
        cleaned.push('…');
    }
    cleaned
}

/// Not a control, format (Unicode 16's category Cf) or line/paragraph separator character.
fn shows_as_itself(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{AD}'
                | '\u{600}'..='\u{605}'
                | '\u{61C}'
                | '\u{6DD}'
                | '\u{70F}'
                | '\u{890}'..='\u{891}'
                | '\u{8E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

fn paint(f: &mut fmt::Formatter<'_>, text: &str, red: bool) -> fmt::Result {
    if red {
        write!(f, "{RED}{text}{RESET}")
    } else {
        f.write_str(text)
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Three significant digits in the largest unit below 1000: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    let secs = duration.as_secs_f64();
    for (per_second, unit) in [(1e6, "µs"), (1e3, "ms")] {
        let value = secs * per_second;
        // From 999.5 on, three digits would round up to `1000` of this unit.
        if value < 999.5 {
            return format!("{}{unit}", three_digits(value));
        }
    }
    format!("{}s", three_digits(secs))
}

fn three_digits(value: f64) -> String {
    if value < 9.995 {
        format!("{value:.2}")
    } else if value < 99.95 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// US dollars to a hundredth of a cent; smaller non-zero costs keep more digits, so they don't
/// show as `$0.0000`.
fn format_cost(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 0.0001 {
        format!("${usd:.6}")
    } else {
        format!("${usd:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        Event, SpanContext, SpanKind, TraceFlags, TraceState, Tracer as _, TracerProvider as _,
    };
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanEvents, SpanLinks};
    use std::time::UNIX_EPOCH;

    const ROOT: u64 = 0;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    fn span(
        trace: u128,
        id: u64,
        parent: u64,
        name: &'static str,
        start_ms: u64,
        end_ms: u64,
    ) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: at(start_ms),
            end_time: at(end_ms),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::default(),
        }
    }

    fn with_attributes(mut span: SpanData, attributes: Vec<KeyValue>) -> SpanData {
        span.attributes = attributes;
        span
    }

    /// The line of the span named `name` (followed by a space, so `a` doesn't match `ab`).
    fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
        let needle = format!("{name} ");
        text.lines()
            .skip(1)
            .find(|line| {
                line.trim_start_matches(['✗', '◆', ' '])
                    .starts_with(&needle)
            })
            .unwrap_or_else(|| panic!("no line for {name:?} in\n{text}"))
    }

    fn bar(empty_before: usize, filled: usize, empty_after: usize) -> String {
        format!(
            "│{}{}{}│",
            " ".repeat(empty_before),
            "█".repeat(filled),
            " ".repeat(empty_after)
        )
    }

    fn buffered() -> (ConsoleExporter, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        (
            ConsoleExporter::new(ConsoleTarget::Buffer(buffer.clone())),
            buffer,
        )
    }

    fn export(exporter: &ConsoleExporter, batch: Vec<SpanData>) -> OTelSdkResult {
        futures_executor::block_on(exporter.export(batch))
    }

    fn printed(buffer: &Mutex<Vec<u8>>) -> String {
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    fn headers(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| line.starts_with("trace "))
            .collect()
    }

    #[test]
    fn spans_are_listed_in_tree_order_and_indented_by_depth() {
        let spans = [
            span(1, 4, 2, "leaf", 50, 60),
            span(1, 2, 1, "second", 40, 90),
            span(1, 3, 1, "first", 10, 30),
            span(1, 1, ROOT, "root", 0, 100),
        ];
        let text = render_trace(&spans, 0, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(
                "trace 00000000000000000000000000000001 · root · 100ms · 4 spans · 0 errors"
            ),
            "{text}"
        );
        // Marker column, a space, two spaces per level, then the critical-path mark (all four are
        // on it here: `first` ended before `second` started).
        assert!(lines[1].starts_with("  ◆ root "), "{text}");
        assert!(lines[2].starts_with("    ◆ first "), "{text}");
        assert!(lines[3].starts_with("    ◆ second "), "{text}");
        assert!(lines[4].starts_with("      ◆ leaf "), "{text}");
        assert_eq!(lines[5], "");
        assert_eq!(lines.len(), 6, "{text}");
    }

    #[test]
    fn the_critical_path_is_marked_and_a_longer_concurrent_child_is_not() {
        // `search` is the longest child, but `model` ends last and `cache` is the last to end
        // before `model` started: the request waited for those two.
        let spans = [
            span(1, 2, 1, "search", 5, 80),
            span(1, 3, 1, "cache", 10, 20),
            span(1, 4, 1, "model", 30, 95),
            span(1, 1, ROOT, "request", 0, 100),
        ];
        let text = render_trace(&spans, 0, false);
        assert!(
            line_of(&text, "request").starts_with("  ◆ request "),
            "{text}"
        );
        assert!(
            line_of(&text, "cache").starts_with("    ◆ cache "),
            "{text}"
        );
        assert!(
            line_of(&text, "model").starts_with("    ◆ model "),
            "{text}"
        );
        assert!(
            line_of(&text, "search").starts_with("      search "),
            "{text}"
        );
    }

    #[test]
    fn bars_share_the_time_axis_of_the_root() {
        let spans = [
            span(1, 2, 1, "late_half", 50, 100),
            span(1, 3, 1, "first_quarter", 0, 25),
            span(1, 4, 1, "instant", 10, 10),
            span(1, 1, ROOT, "root", 0, 100),
        ];
        let text = render_trace(&spans, 40, false);
        assert!(line_of(&text, "root").ends_with(&bar(0, 40, 0)), "{text}");
        assert!(
            line_of(&text, "late_half").ends_with(&bar(20, 20, 0)),
            "{text}"
        );
        assert!(
            line_of(&text, "first_quarter").ends_with(&bar(0, 10, 30)),
            "{text}"
        );
        // 10% of 40 cells; an instant still gets one cell.
        assert!(
            line_of(&text, "instant").ends_with(&bar(4, 1, 35)),
            "{text}"
        );
        assert!(line_of(&text, "late_half").contains(" 50.0ms │"), "{text}");
    }

    #[test]
    fn names_event_types_and_durations_are_aligned() {
        let long = "a_span_name_that_goes_on_far_longer_than_forty_characters";
        let spans = [
            with_attributes(
                span(1, 2, 1, long, 0, 1),
                vec![KeyValue::new(EVENT_TYPE_KEY, "model")],
            ),
            with_attributes(
                span(1, 1, ROOT, "root", 0, 2),
                vec![KeyValue::new(EVENT_TYPE_KEY, "chain")],
            ),
        ];
        let text = render_trace(&spans, 10, false);
        let root = line_of(&text, "root");
        let child = text.lines().nth(2).unwrap();
        let cut: String = long.chars().take(MAX_NAME_CHARS - 1).collect();
        assert!(
            child.starts_with(&format!("    ◆ {cut}… [model]  ")),
            "{text}"
        );
        assert!(root.starts_with("  ◆ root [chain]  "), "{text}");
        let bar_column = |line: &str| line.chars().position(|c| c == '│');
        assert_eq!(bar_column(root), bar_column(child), "{text}");
        assert!(root.contains(" 2.00ms │"), "{text}");
        assert!(child.contains(" 1.00ms │"), "{text}");
    }

    #[test]
    fn error_spans_are_marked_with_their_messages() {
        let mut failed = span(1, 2, 1, "call_llm", 10, 20);
        failed.status = Status::error("rate limited");
        failed.events.events.push(Event::new(
            EXCEPTION_EVENT,
            at(20),
            vec![KeyValue::new(
                EXCEPTION_MESSAGE_KEY,
                "429 Too Many Requests",
            )],
            0,
        ));
        let mut same_text = span(1, 3, 1, "parse", 30, 40);
        same_text.status = Status::error("bad json");
        same_text.events.events.push(Event::new(
            EXCEPTION_EVENT,
            at(40),
            vec![KeyValue::new(EXCEPTION_MESSAGE_KEY, "bad json")],
            0,
        ));
        let spans = [failed, same_text, span(1, 1, ROOT, "root", 0, 100)];
        let text = render_trace(&spans, 10, false);
        assert!(headers(&text)[0].contains(" · 2 errors"), "{text}");
        let failed = line_of(&text, "call_llm");
        assert!(failed.starts_with("✗ "), "{text}");
        assert!(
            failed.ends_with("  error: rate limited  exception: 429 Too Many Requests"),
            "{text}"
        );
        assert!(
            line_of(&text, "parse").ends_with("  error: bad json"),
            "{text}"
        );
        assert!(!line_of(&text, "root").contains('✗'), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
    }

    #[test]
    fn evaluation_results_are_shown_on_their_span() {
        let mut judged = span(1, 2, 1, "faithfulness", 10, 20);
        let result = |attrs: Vec<KeyValue>| Event::new(evaluate::EVENT, at(20), attrs, 0);
        judged.events.events.push(result(vec![
            KeyValue::new(evaluate::NAME, "faithfulness"),
            KeyValue::new(evaluate::SCORE, 0.57),
            KeyValue::new(evaluate::LABEL, "unfaithful"),
            KeyValue::new(evaluate::EXPLANATION, "not in the context: 450"),
        ]));
        judged.events.events.push(result(vec![
            KeyValue::new(evaluate::NAME, "judge"),
            KeyValue::new("error.type", "panic"),
            KeyValue::new(EXCEPTION_MESSAGE_KEY, "the judge fell over"),
        ]));
        let spans = [judged, span(1, 1, ROOT, "root", 0, 100)];
        let text = render_trace(&spans, 10, false);
        assert!(
            line_of(&text, "faithfulness").ends_with(
                "  eval faithfulness=0.57 unfaithful  eval judge failed: the judge fell over"
            ),
            "{text}"
        );
        assert!(!line_of(&text, "root").contains("eval"), "{text}");
    }

    #[test]
    fn color_marks_only_error_spans() {
        let mut failed = span(1, 2, 1, "failed", 0, 10);
        failed.status = Status::error("boom");
        let spans = [failed, span(1, 1, ROOT, "root", 0, 10)];
        let text = render_trace(&spans, 4, true);
        let failed = text.lines().nth(2).unwrap();
        assert!(failed.starts_with(&format!("{RED}✗{RESET} ")), "{text:?}");
        assert!(failed.contains(&format!("│{RED}████{RESET}│")), "{text:?}");
        assert!(
            failed.ends_with(&format!("{RED}error: boom{RESET}")),
            "{text:?}"
        );
        assert!(!line_of(&text, "root").contains('\x1b'), "{text:?}");
    }

    #[test]
    fn tokens_and_cost_are_shown_per_span_and_summed_in_the_header() {
        let spans = [
            with_attributes(
                span(1, 2, 1, "draft", 0, 10),
                vec![
                    KeyValue::new(INPUT_TOKENS_KEY, 120),
                    KeyValue::new(OUTPUT_TOKENS_KEY, 45),
                    KeyValue::new(COST_KEY, 0.0012),
                ],
            ),
            with_attributes(
                span(1, 3, 1, "review", 10, 20),
                vec![
                    KeyValue::new(INPUT_TOKENS_KEY, 30),
                    KeyValue::new(OUTPUT_TOKENS_KEY, 5),
                    KeyValue::new(COST_KEY, 0.0003),
                    KeyValue::new(RETRY_ATTEMPTS_KEY, 3),
                ],
            ),
            span(1, 1, ROOT, "root", 0, 20),
        ];
        let text = render_trace(&spans, 10, false);
        assert!(
            line_of(&text, "draft").ends_with("│  tokens 120→45  $0.0012"),
            "{text}"
        );
        assert!(
            line_of(&text, "review").ends_with("│  tokens 30→5  $0.0003  (3 attempts)"),
            "{text}"
        );
        assert!(line_of(&text, "root").ends_with('│'), "{text}");
        assert!(
            headers(&text)[0].ends_with(" · tokens 150→50 · $0.0015"),
            "{text}"
        );
    }

    #[test]
    fn embedding_tokens_are_shown_apart_from_the_llm_tokens() {
        let spans = [
            with_attributes(
                span(1, 2, 1, "chat", 0, 10),
                vec![
                    KeyValue::new(INPUT_TOKENS_KEY, 1000),
                    KeyValue::new(OUTPUT_TOKENS_KEY, 200),
                ],
            ),
            with_attributes(
                span(1, 3, 1, "embed", 10, 20),
                vec![
                    KeyValue::new(EVENT_TYPE_KEY, "embedding"),
                    KeyValue::new(INPUT_TOKENS_KEY, 24),
                ],
            ),
            span(1, 1, ROOT, "root", 0, 20),
        ];
        let text = render_trace(&spans, 10, false);
        assert!(line_of(&text, "embed").contains("tokens 24→?"), "{text}");
        assert!(
            headers(&text)[0].ends_with(" · tokens 1000→200 · embedding tokens 24"),
            "{text}"
        );
    }

    #[test]
    fn totals_rolled_up_to_the_root_are_not_counted_twice() {
        let usage = |input: i64, output: i64| {
            vec![
                KeyValue::new(INPUT_TOKENS_KEY, input),
                KeyValue::new(OUTPUT_TOKENS_KEY, output),
            ]
        };
        let spans = [
            with_attributes(span(1, 2, 1, "a", 0, 10), usage(100, 40)),
            with_attributes(span(1, 3, 1, "b", 10, 20), usage(50, 10)),
            with_attributes(span(1, 1, ROOT, "root", 0, 20), usage(150, 50)),
            // Another top-level span (its parent is missing) adds to the total.
            with_attributes(span(1, 5, 99, "stray", 5, 6), usage(1, 1)),
        ];
        let text = render_trace(&spans, 0, false);
        assert!(headers(&text)[0].ends_with(" · tokens 151→51"), "{text}");
    }

    #[test]
    fn a_trace_is_held_until_its_root_arrives() {
        let (exporter, buffer) = buffered();
        export(&exporter, vec![span(7, 2, 1, "child", 10, 20)]).unwrap();
        assert_eq!(printed(&buffer), "");
        export(&exporter, vec![span(7, 1, ROOT, "root", 0, 30)]).unwrap();
        let text = printed(&buffer);
        assert_eq!(headers(&text).len(), 1, "{text}");
        assert!(!text.contains("partial"), "{text}");
        assert!(
            line_of(&text, "child").starts_with("    ◆ child "),
            "{text}"
        );
        // Printed traces are forgotten.
        exporter.force_flush().unwrap();
        assert_eq!(printed(&buffer), text);
    }

    #[test]
    fn a_part_under_a_remote_parent_waits_for_its_caller_or_a_flush() {
        let (exporter, buffer) = buffered();
        let mut server = span(7, 1, 0xfeed, "server", 0, 30);
        server.parent_span_is_remote = true;
        export(&exporter, vec![server.clone()]).unwrap();
        assert_eq!(
            printed(&buffer),
            "",
            "held: the caller may be in this process"
        );
        exporter.force_flush().unwrap();
        assert!(printed(&buffer).starts_with("trace 00000000000000000000000000000007 · server · "));

        // Both services in one process: one tree, the server under the caller's span.
        let (exporter, buffer) = buffered();
        export(&exporter, vec![server]).unwrap();
        export(
            &exporter,
            vec![
                span(7, 0xfeed, 0xca11, "call", 0, 40),
                span(7, 0xca11, ROOT, "client", 0, 50),
            ],
        )
        .unwrap();
        let text = printed(&buffer);
        assert_eq!(headers(&text).len(), 1, "{text}");
        assert!(
            line_of(&text, "client").starts_with("  ◆ client "),
            "{text}"
        );
        assert!(line_of(&text, "call").starts_with("    ◆ call "), "{text}");
        assert!(
            line_of(&text, "server").starts_with("      ◆ server "),
            "{text}"
        );
    }

    #[test]
    fn each_trace_of_a_batch_is_printed_when_its_root_arrives() {
        let (exporter, buffer) = buffered();
        export(
            &exporter,
            vec![
                span(0xa, 2, 1, "a_child", 1, 2),
                span(0xb, 2, 1, "b_child", 1, 2),
                span(0xb, 1, ROOT, "b_root", 0, 3),
                span(0xc, 2, 1, "c_child", 1, 2),
                span(0xa, 1, ROOT, "a_root", 0, 3),
            ],
        )
        .unwrap();
        let text = printed(&buffer);
        let traces: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(traces.len(), 2, "{text}");
        assert!(
            traces[0]
                .starts_with("trace 0000000000000000000000000000000b · b_root · 3.00ms · 2 spans"),
            "{text}"
        );
        assert!(traces[0].contains("    ◆ b_child "), "{text}");
        assert!(
            traces[1]
                .starts_with("trace 0000000000000000000000000000000a · a_root · 3.00ms · 2 spans"),
            "{text}"
        );
        assert!(traces[1].contains("    ◆ a_child "), "{text}");
        assert!(!text.contains("c_child"), "{text}");
    }

    #[test]
    fn shutdown_prints_partial_traces_and_ends_exporting() {
        let (exporter, buffer) = buffered();
        export(
            &exporter,
            vec![
                span(3, 2, 1, "orphan", 0, 5),
                span(3, 3, 2, "grandchild", 1, 2),
            ],
        )
        .unwrap();
        assert_eq!(printed(&buffer), "");
        exporter.shutdown().unwrap();
        let text = printed(&buffer);
        assert!(
            headers(&text)[0].ends_with(
                " · orphan · 5.00ms · 2 spans · 0 errors · partial: root span not received"
            ),
            "{text}"
        );
        assert!(
            line_of(&text, "grandchild").starts_with("      grandchild "),
            "{text}"
        );
        assert!(matches!(
            export(&exporter, vec![span(4, 1, ROOT, "late", 0, 1)]),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(matches!(
            exporter.shutdown(),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert_eq!(printed(&buffer), text);
    }

    #[test]
    fn too_many_waiting_traces_print_the_oldest_as_partial() {
        let (exporter, buffer) = buffered();
        let batch = (1..=MAX_HELD_TRACES as u128 + 1)
            .map(|trace| span(trace, 2, 1, "waiting", 0, 1))
            .collect();
        export(&exporter, batch).unwrap();
        let text = printed(&buffer);
        assert_eq!(headers(&text).len(), 1, "{text}");
        assert!(
            text.starts_with("trace 00000000000000000000000000000001 · waiting"),
            "{text}"
        );
        assert!(text.contains("partial"), "{text}");
    }

    #[test]
    fn odd_input_is_rendered_without_looping_or_panicking() {
        let spans = [
            span(1, 1, ROOT, "zero_root", 10, 10),
            span(1, 2, 1, "backwards", 10, 5),
            span(1, 2, 1, "duplicate", 10, 10),
            span(1, 3, 4, "cycle_a", 10, 10),
            span(1, 4, 3, "cycle_b", 10, 10),
            span(1, 5, 5, "own_parent", 10, 10),
        ];
        let text = render_trace(&spans, 8, false);
        assert_eq!(text.lines().count(), 1 + spans.len() + 1, "{text}");
        for name in [
            "zero_root",
            "backwards",
            "duplicate",
            "own_parent",
            "cycle_a",
        ] {
            assert!(line_of(&text, name).ends_with(&bar(0, 8, 0)), "{text}");
        }
        assert!(line_of(&text, "backwards").contains("  0ns │"), "{text}");
        assert!(
            line_of(&text, "cycle_b").starts_with("      cycle_b "),
            "{text}"
        );
        assert!(
            headers(&text)[0].contains(" · zero_root · 0ns · 6 spans"),
            "{text}"
        );
        assert_eq!(render_trace(&[], 40, false), "");
    }

    #[test]
    fn control_characters_cannot_break_lines_or_inject_escapes() {
        let mut root = span(1, 1, ROOT, "root\nname", 0, 1);
        root.status = Status::error("line one\nline two \x1b[2J");
        let text = render_trace(&[root], 0, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.contains("error: line one line two  [2J"), "{text}");
    }

    #[test]
    fn format_characters_cannot_reorder_or_hide_text() {
        // "Trojan Source": a right-to-left override makes `check_exe.png_done` read as
        // something else; isolates and zero-width characters hide or reorder text too.
        let mut root = span(1, 1, ROOT, "check_\u{202E}gnp.exe\u{202C}_done", 0, 1);
        root.status = Status::error("in \u{2067}evil\u{2069} ad\u{200B}min\u{FEFF}\u{2028}x");
        let text = render_trace(&[root], 0, false);
        assert!(
            text.lines().all(|line| line.chars().all(shows_as_itself)),
            "{text:?}"
        );
        assert!(text.contains("check_ gnp.exe _done"), "{text}");
        assert!(text.contains("error: in  evil  ad min  x"), "{text}");
        // Other scripts and emoji are shown as they are.
        assert_eq!(clean_line("naïve 東京 🦀", 40), "naïve 東京 🦀");
        assert_eq!(clean_line("a\u{AD}b\u{E0041}c\u{2060}", 40), "a b c ");
    }

    #[test]
    fn embedding_tokens_saturate_in_the_header() {
        let embed = |id| {
            with_attributes(
                span(1, id, 1, "embed", 0, 1),
                vec![
                    KeyValue::new(EVENT_TYPE_KEY, "embedding"),
                    KeyValue::new(INPUT_TOKENS_KEY, i64::MAX),
                ],
            )
        };
        let spans = [embed(2), embed(3), span(1, 1, ROOT, "root", 0, 1)];
        let text = render_trace(&spans, 0, false);
        assert!(
            headers(&text)[0].ends_with(&format!(" · embedding tokens {}", i64::MAX)),
            "{text}"
        );
    }

    #[test]
    fn durations_keep_three_significant_digits() {
        let cases = [
            (Duration::from_nanos(850), "850ns"),
            (Duration::from_nanos(12_300), "12.3µs"),
            (Duration::from_nanos(999_700), "1.00ms"),
            (Duration::from_micros(4_560), "4.56ms"),
            (Duration::from_millis(120), "120ms"),
            (Duration::from_millis(1_200), "1.20s"),
            (Duration::from_hours(1), "3600s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
        }
        assert_eq!(format_cost(0.000_03), "$0.000030");
        assert_eq!(format_cost(1.5), "$1.5000");
    }

    #[test]
    fn spans_from_the_sdk_are_printed_when_the_root_ends() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let exporter = ConsoleExporter::new(ConsoleTarget::Buffer(buffer.clone()));
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let tracer = provider.tracer("console-test");
        tracer.in_span("handle_request", |_| {
            tracer.in_span("retrieve", |_| {});
            assert_eq!(printed(&buffer), "");
        });
        let text = printed(&buffer);
        assert!(headers(&text)[0].contains(" · handle_request · "), "{text}");
        assert!(
            line_of(&text, "retrieve").starts_with("    ◆ retrieve "),
            "{text}"
        );
        provider.shutdown().unwrap();
    }
}
