//! Trace analysis in the process: simulated requests (a prefetch running alongside the
//! retrieval and the model call, three models, some rate limits) kept in a `TraceStore`,
//! an error-rate alert, then on the console: the per-model summary, latency by model, and
//! the critical path of the slowest request with its waterfall. No network.
//!
//! ```text
//! cargo run -p honeyhive-examples --example analysis
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use honeyhive_runtime::analysis::alerts::{AlertRule, AlertState};
use honeyhive_runtime::analysis::{self, GroupBy, Query, Trace, TraceStore};
use honeyhive_runtime::export::console::ConsoleTarget;
use honeyhive_runtime::{Builder, LlmCall, bind_current, trace};

const MODELS: [(&str, &str, u64); 3] = [
    ("gpt-4o-mini", "openai", 8),
    ("gpt-4o", "openai", 22),
    ("claude-3-5-haiku-latest", "anthropic", 14),
];

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Warms a cache the answer does not wait for: it runs alongside the rest.
#[trace(event_type = "tool")]
fn prefetch_profile(user: &str) -> usize {
    pause(18);
    user.len()
}

#[trace(event_type = "retriever")]
fn retrieve(question: &str) -> Vec<String> {
    pause(5);
    vec![format!("a document about {question}")]
}

#[trace(event_type = "model", name = "chat")]
fn chat(i: u64, question: &str, docs: &[String]) -> Result<String, String> {
    let (model, provider, ms) = MODELS[usize::try_from(i % 3).unwrap_or(0)];
    pause(ms + i * 7 % 5);
    let call = LlmCall::new(model)
        .provider(provider)
        .usage(400 + 20 * docs.len() as u64, 60 + i % 4 * 10);
    if model == "gpt-4o" && i % 4 == 1 {
        call.usage(400, 0).record();
        return Err("429 Too Many Requests".to_owned());
    }
    call.record();
    Ok(format!("{model}: an answer to {question}"))
}

#[trace(event_type = "chain")]
fn handle_request(i: u64, question: &str) -> Result<String, String> {
    let prefetch = std::thread::spawn(bind_current(|| prefetch_profile("ada")));
    let docs = retrieve(question);
    let answer = chat(i, question, &docs);
    let _ = prefetch.join();
    answer
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}

fn bar(value: Duration, max: Duration, width: usize) -> usize {
    if max.is_zero() {
        return 0;
    }
    let cells = (value.as_nanos() * width as u128 + max.as_nanos() / 2) / max.as_nanos();
    usize::try_from(cells).unwrap_or(width).min(width)
}

fn print_summary(traces: &[Trace]) {
    println!("\nPer-model summary");
    println!(
        "  {:<24} {:<10} {:>5} {:>6} {:>10} {:>10} {:>10}",
        "model", "provider", "calls", "errors", "tokens in", "tokens out", "cost USD"
    );
    for row in analysis::summarize(traces) {
        println!(
            "  {:<24} {:<10} {:>5} {:>6} {:>10} {:>10} {:>10.6}",
            row.model,
            row.provider.as_deref().unwrap_or("-"),
            row.calls,
            row.errors,
            row.input_tokens,
            row.output_tokens,
            row.cost_usd
        );
    }
}

fn print_latency_by_model(traces: &[Trace]) {
    println!("\nLatency by model (█ up to p50, ▒ up to p95)");
    let groups = Query::over(traces).group_by(GroupBy::Model);
    let widest = groups.iter().map(|g| g.stats.p95).max().unwrap_or_default();
    for group in &groups {
        let p50 = bar(group.stats.p50, widest, 40);
        let p95 = bar(group.stats.p95, widest, 40).max(p50);
        println!(
            "  {:<24} │{}{}{}│ p50 {:>7}  p95 {:>7}  errors {:.0}%",
            group.key,
            "█".repeat(p50),
            "▒".repeat(p95 - p50),
            " ".repeat(40 - p95),
            ms(group.stats.p50),
            ms(group.stats.p95),
            group.stats.error_rate() * 100.0
        );
    }
}

fn print_critical_path(trace: &Trace) {
    let Some(root) = trace.root() else { return };
    println!(
        "\nCritical path of the slowest request ({}, {}): what it waited for",
        root.name,
        ms(Duration::from_nanos(root.duration_nanos()))
    );
    let path = trace.critical_path();
    for step in &path {
        println!(
            "  {:indent$}◆ {:<w$} {:>8}  own time on the path {:>8}",
            "",
            step.span.name,
            ms(Duration::from_nanos(step.span.duration_nanos())),
            ms(Duration::from_nanos(step.self_nanos)),
            indent = step.depth * 2,
            w = 20usize.saturating_sub(step.depth * 2),
        );
    }
    let off: Vec<&str> = trace
        .spans
        .iter()
        .filter(|s| !path.iter().any(|p| p.span.span_id == s.span_id))
        .map(|s| s.name.as_str())
        .collect();
    println!("  off the path (ran alongside): {}", off.join(", "));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = TraceStore::new(1 << 20);
    let waterfalls = Arc::new(Mutex::new(Vec::new()));
    let alert =
        AlertRule::error_rate("request errors", 0.05, Duration::from_mins(15)).min_samples(5);
    let guard = Builder::new()
        .env(|_| None)
        // The waterfalls go to a buffer: the slowest request's is printed below.
        .with_console_target(ConsoleTarget::Buffer(Arc::clone(&waterfalls)))
        .trace_store(store.clone())
        .alert(alert.clone(), |event| {
            let what = match event.state {
                AlertState::Breached => "breached",
                _ => "recovered",
            };
            println!(
                "ALERT {} {what}: {:.1}% of {} requests failed (threshold {:.1}%)",
                event.rule,
                event.value * 100.0,
                event.samples,
                event.threshold * 100.0
            );
        })
        .install()?;

    for i in 0..18 {
        let _ = handle_request(i, "what is a critical path?");
    }
    guard.force_flush();

    let traces = store.traces();
    let stats = store.stats();
    println!(
        "\nstore: {} traces, {} spans, {} KiB of {} KiB, {} evicted",
        stats.traces,
        stats.spans,
        stats.bytes / 1024,
        stats.max_bytes / 1024,
        stats.evicted
    );
    print_summary(&traces);
    print_latency_by_model(&traces);
    let slowest: &Trace = traces
        .iter()
        .max_by_key(|t| t.root().map_or(0, analysis::Span::duration_nanos))
        .ok_or("no traces")?;
    print_critical_path(slowest);

    // The same trace on the console waterfall, ◆ marking the path.
    let text = String::from_utf8(waterfalls.lock().map_err(|_| "poisoned")?.clone())?;
    let header = format!("trace {:032x} ", slowest.trace_id);
    if let Some(block) = text.split("\n\n").find(|b| b.starts_with(&header)) {
        println!("\n{block}");
    }
    println!("\nalert stats: {:?}", alert.stats());
    drop(guard);
    Ok(())
}
