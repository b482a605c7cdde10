//! Exports the simulated RAG request over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (e.g. Phoenix at `http://127.0.0.1:6006`, Jaeger or a collector at `http://127.0.0.1:4318`).
//! An OTLP endpoint gets GenAI keys; Phoenix reads OpenInference ones, hence `HH_CONVENTIONS`:
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:6006 HH_PROJECT=quickstart \
//!     HH_CONVENTIONS=openinference cargo run -p honeyhive-examples --example otlp
//! ```

use honeyhive_examples::answer_question;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        eprintln!("set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:6006");
        std::process::exit(2);
    };
    let guard = honeyhive_runtime::init();
    let answer = answer_question("What is the capital of France?").await;
    println!("answer: {answer:?}");
    let report = guard.shutdown();
    println!(
        "exported {} spans to {endpoint} ({} dropped)",
        report.exported, report.dropped
    );
    if !report.completed || report.exported == 0 {
        std::process::exit(1);
    }
}
