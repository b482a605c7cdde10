//! Sends traces and GenAI metrics (token usage, operation duration, time to first chunk, cost
//! and errors by model) over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`: spans to
//! `/v1/traces`, metrics to `/v1/metrics`, from the same export thread.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p honeyhive-examples --example metrics
//! ```
//!
//! A tenth of the requests are traced (`sample_rate = 0.1`); the metrics still estimate every
//! request's tokens and cost, since each traced call counts for ten.

// The simulated numbers are small integers.
#![allow(clippy::cast_precision_loss)]

use std::time::Duration;

use honeyhive_runtime::metrics::{self, Metrics};
use honeyhive_runtime::{LlmCall, enrich_span, trace};

/// A model call, simulated: tokens grow with the question, one call in seven is rate limited.
#[trace(event_type = "model")]
fn complete(model: &'static str, question: &str, i: u64) -> Result<String, std::io::Error> {
    LlmCall::new(model)
        .provider(if model.starts_with("claude") {
            "anthropic"
        } else {
            "openai"
        })
        .message("user", question)
        .usage(40 + 3 * i, 12 + i % 9)
        .record();
    // What an LLM client integration records for a stream: its first token's arrival.
    enrich_span().metrics("time_to_first_token_ms", 180.0 + 10.0 * (i % 5) as f64);
    if i % 7 == 3 {
        return Err(std::io::Error::other("429 Too Many Requests"));
    }
    Ok(format!("answer {i}"))
}

#[trace(event_type = "chain", sample_rate = 0.1)]
fn handle(i: u64) -> String {
    let model = if i.is_multiple_of(3) {
        "claude-3-5-haiku"
    } else {
        "gpt-4o-mini"
    };
    complete(model, "What is the capital of France?", i).unwrap_or_else(|e| e.to_string())
}

fn main() {
    let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        eprintln!("set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318");
        std::process::exit(2);
    };
    // The metrics endpoint follows the traces one: {endpoint}/v1/metrics.
    let guard = honeyhive_runtime::Builder::new()
        .metrics(Metrics::new().interval(Duration::from_secs(1)))
        .install()
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        });
    for i in 0..500 {
        handle(i);
    }
    let report = guard.shutdown();
    let stats = metrics::stats();
    println!(
        "exported {} spans to {endpoint}/v1/traces ({} dropped)",
        report.exported, report.dropped
    );
    println!(
        "metrics: {} model calls observed; requests to {endpoint}/v1/metrics: {} accepted, {} failed",
        stats.calls, stats.exported, stats.failed
    );
    if !report.completed || report.exported == 0 || stats.exported == 0 {
        std::process::exit(1);
    }
}
