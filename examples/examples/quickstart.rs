//! Traces a simulated RAG request and prints its waterfall on the console. No network.
//!
//! ```text
//! cargo run -p honeyhive-examples --example quickstart
//! ```

use honeyhive_examples::answer_question;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Console waterfall by default; OTEL_EXPORTER_OTLP_ENDPOINT or HH_API_KEY send spans elsewhere.
    let guard = honeyhive_runtime::init();
    match answer_question("What is the capital of France?").await {
        Ok(answer) => println!("answer: {answer}\n"),
        Err(e) => println!("failed: {e}\n"),
    }
    // Dropping the guard flushes: the waterfall is printed before the program exits.
    drop(guard);
}
