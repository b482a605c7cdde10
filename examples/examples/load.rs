//! One simulated service for the scale simulation (`scripts/scale_sim.py`): handles `REQUESTS`
//! requests, each one trace of a root and `CHILDREN` children (a retrieval, a model call with
//! tokens, tools), paced at `RATE` requests per second (0: as fast as it can), exporting to
//! `OTEL_EXPORTER_OTLP_ENDPOINT`. Prints one JSON line: spans made, and what its pipeline
//! reported at shutdown.
//!
//! ```text
//! cargo run -p honeyhive-examples --example load -- REQUESTS CHILDREN RATE
//! ```

use std::time::{Duration, Instant};

use honeyhive_runtime::{LlmCall, trace};

#[trace(event_type = "tool")]
fn tool(i: u64) -> u64 {
    i.wrapping_mul(31)
}

#[trace(event_type = "model")]
fn generate(question: &str) -> usize {
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .usage(120, 40)
        .message("user", question)
        .completion("an answer")
        .record();
    question.len()
}

#[trace(event_type = "chain")]
fn handle_request(id: u64, children: u64) -> u64 {
    let mut sum = generate("what is the weather?") as u64;
    for i in 1..children {
        sum += tool(id + i);
    }
    sum
}

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (requests, children, rate) = (
        arg(&args, 0, 1000),
        arg(&args, 1, 4).max(1),
        arg(&args, 2, 0),
    );
    let guard = honeyhive_runtime::init();
    let start = Instant::now();
    for id in 0..requests {
        // When request `id` is due (rate 0: now).
        if let Some(nanos) = id.saturating_mul(1_000_000_000).checked_div(rate) {
            let due = start + Duration::from_nanos(nanos);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        std::hint::black_box(handle_request(id, children));
    }
    let made = requests * (children + 1);
    let report = guard.shutdown();
    println!(
        "{{\"spans\": {made}, \"exported\": {}, \"dropped\": {}, \"lost\": {}, \"seconds\": {:.3}}}",
        report.exported,
        report.dropped,
        report.lost_at_deadline + report.lost_buffered,
        start.elapsed().as_secs_f64()
    );
}
