//! Retries a flaky (simulated) LLM API and prints the waterfall with every attempt. No network.
//!
//! ```text
//! cargo run -p honeyhive-examples --example retry
//! ```
//!
//! The chat call is rate limited, then overloaded, then answers: one `llm.chat` span shows
//! `(3 attempts)`, with a `retry` event per failure. The embedding call stacks the macros the
//! other way round, so each of its attempts is a span of its own.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use honeyhive_runtime::retry::{self as retries, HttpFailure};
use honeyhive_runtime::{retry, trace};

/// A failed call to the (simulated) LLM API.
#[derive(Debug)]
struct ApiError {
    status: u16,
    /// The `retry-after-ms` header a rate-limited response carries.
    retry_after_ms: Option<&'static str>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            429 => f.write_str("429 Too Many Requests: rate limit reached for gpt-4o-mini"),
            503 => f.write_str("503 Service Unavailable: the model is overloaded"),
            status => write!(f, "HTTP {status}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// What `classify_http` needs to decide: the status, and the server's requested wait.
impl HttpFailure for ApiError {
    fn status(&self) -> Option<u16> {
        Some(self.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        (name == "retry-after-ms").then_some(self.retry_after_ms?)
    }
}

/// A chat endpoint that is rate limited on the first call and overloaded on the second.
struct FlakyLlm {
    calls: AtomicU32,
}

impl FlakyLlm {
    /// One span for the whole call, with an event per failed attempt (`#[trace]` on top).
    #[trace(event_type = "model", name = "llm.chat")]
    #[retry(
        max_attempts = 4,
        backoff = exponential(initial = 20ms, max = 200ms),
        classify = retries::classify_http
    )]
    async fn complete(&self, prompt: &str) -> Result<String, ApiError> {
        // The round trip to the API.
        tokio::time::sleep(Duration::from_millis(15)).await;
        match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => Err(ApiError {
                status: 429,
                retry_after_ms: Some("40"),
            }),
            1 => Err(ApiError {
                status: 503,
                retry_after_ms: None,
            }),
            _ => Ok(format!(
                "Paris is the capital of France. ({} prompt chars)",
                prompt.len()
            )),
        }
    }
}

/// A span per attempt, each with `retry.attempt` (`#[retry]` on top).
#[retry(max_attempts = 3, backoff = constant(10ms), jitter = none)]
#[trace(event_type = "embedding", skip(calls))]
async fn embed(text: &str, calls: &AtomicU32) -> Result<Vec<f32>, ApiError> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(ApiError {
            status: 502,
            retry_after_ms: None,
        });
    }
    Ok(text.bytes().take(4).map(|b| f32::from(b) / 255.0).collect())
}

#[trace(event_type = "chain", skip(llm))]
async fn answer(llm: &FlakyLlm, question: &str) -> Result<String, ApiError> {
    let embed_calls = AtomicU32::new(0);
    let embedding = embed(question, &embed_calls).await?;
    let prompt = format!("{question}\n(context from {} dims)", embedding.len());
    llm.complete(&prompt).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Console waterfall by default; OTEL_EXPORTER_OTLP_ENDPOINT or HH_API_KEY send spans elsewhere.
    let guard = honeyhive_runtime::init();
    let llm = FlakyLlm {
        calls: AtomicU32::new(0),
    };
    match answer(&llm, "What is the capital of France?").await {
        Ok(answer) => println!("answer: {answer}\n"),
        Err(e) => println!("failed: {e}\n"),
    }
    // Dropping the guard flushes: the waterfall is printed before the program exits.
    drop(guard);
}
