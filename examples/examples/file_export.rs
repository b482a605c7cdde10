//! Writes simulated RAG requests to a trace file (OTLP JSON lines, as the OpenTelemetry
//! Collector's `file` exporter writes), then reads the file back and prints a per-model
//! summary. No network.
//!
//! ```text
//! cargo run -p honeyhive-examples --example file_export -- traces.jsonl
//! cargo run -p honeyhive-runtime --features cli --bin honeyhive-traces -- summary traces.jsonl
//! ```

use honeyhive_examples::answer_question;
use honeyhive_runtime::Builder;
use honeyhive_runtime::analysis::TraceFile;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "traces.jsonl".to_owned());
    // Only the file: no console waterfall, nothing sent anywhere.
    let guard = Builder::new().file(&path).install()?;
    for question in [
        "What is the capital of France?",
        "How tall is the Eiffel Tower?",
        "When was the Louvre opened?",
    ] {
        let _ = answer_question(question).await;
    }
    let report = guard.shutdown();
    println!("wrote {} spans to {path}", report.exported);

    // The same file, offline: whole traces as plain data.
    let file = TraceFile::open(&path)?;
    println!("read {} traces, {} spans", file.traces.len(), file.spans);
    for trace in &file.traces {
        let root = trace.root().map_or("?", |r| r.name.as_str());
        let models: Vec<&str> = trace
            .spans
            .iter()
            .filter_map(|s| s.str("gen_ai.request.model"))
            .collect();
        println!(
            "  {:032x} {root}: {} spans, models {models:?}",
            trace.trace_id,
            trace.spans.len()
        );
    }
    Ok(())
}
