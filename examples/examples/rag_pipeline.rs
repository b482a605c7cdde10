//! A RAG chat session with LLM semantics, simulated (no network): model calls with tokens and
//! cost, a streamed answer, and enrichment with metrics and feedback. The console waterfall
//! shows tokens and cost per span and the trace totals.
//!
//! ```text
//! cargo run -p honeyhive-examples --example rag_pipeline
//! ```

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use honeyhive_examples::simulated_tokens;
use honeyhive_runtime::{LlmCall, Value, enrich_session, enrich_span, record_llm, trace};

/// What a failed API call returns.
#[derive(Debug)]
struct ApiError(String);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[trace(event_type = "model", name = "anthropic.rewrite_query")]
async fn rewrite_query(question: &str) -> String {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let rewritten = format!("{question} (capital city, France, geography)");
    LlmCall::new("claude-haiku-4-5")
        .provider("anthropic")
        .max_tokens(64)
        .message("system", "Rewrite the question for search.")
        .message("user", question)
        .completion(rewritten.clone())
        .usage(120, simulated_tokens(&rewritten))
        .finish_reason("end_turn")
        .record();
    rewritten
}

#[trace(event_type = "embedding", name = "openai.embed")]
fn embed(text: &str) -> Vec<f32> {
    std::thread::sleep(Duration::from_millis(3));
    LlmCall::new("text-embedding-3-small")
        .provider("openai")
        .operation("embeddings")
        .input_tokens(simulated_tokens(text))
        .record();
    text.bytes().take(8).map(|b| f32::from(b) / 255.0).collect()
}

#[trace(event_type = "retriever")]
fn retrieve(query: &str) -> Vec<String> {
    let embedding = embed(query);
    std::thread::sleep(Duration::from_millis(6));
    let docs = vec![
        "Paris is the capital and largest city of France.".to_owned(),
        "France is a country in Western Europe.".to_owned(),
    ];
    enrich_span()
        .metrics("top_score", f64::from(embedding[0]))
        .metadata("index", Value::map([("name", "wiki-fr"), ("shard", "3")]));
    docs
}

/// A model's token stream, as a streaming chat API would deliver it.
struct SimulatedTokens {
    tokens: VecDeque<&'static str>,
    delay: Pin<Box<tokio::time::Sleep>>,
    text: String,
    /// The request, recorded with the usage once the stream ends (as with OpenAI's
    /// `stream_options.include_usage`, usage comes in the last chunk).
    request: Option<LlmCall>,
    prompt_tokens: u64,
}

impl Stream for SimulatedTokens {
    type Item = Result<String, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.delay.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let Some(token) = self.tokens.pop_front() else {
            if let Some(request) = self.request.take() {
                let (text, prompt_tokens) = (self.text.clone(), self.prompt_tokens);
                record_llm(move || {
                    request
                        .usage(prompt_tokens, simulated_tokens(&text))
                        .completion(text)
                        .finish_reason("stop")
                });
            }
            return Poll::Ready(None);
        };
        self.text.push_str(token);
        let next = tokio::time::Instant::now() + Duration::from_millis(4);
        self.delay.as_mut().reset(next);
        Poll::Ready(Some(Ok(token.to_owned())))
    }
}

/// The span stays open while the answer streams: it records the tokens, the time to the first
/// one and the joined answer.
#[trace(event_type = "model", name = "openai.chat.stream")]
fn stream_answer(prompt: &str) -> impl Stream<Item = Result<String, ApiError>> {
    SimulatedTokens {
        tokens: ["Paris ", "is ", "the ", "capital ", "of ", "France."].into(),
        delay: Box::pin(tokio::time::sleep(Duration::from_millis(30))),
        text: String::new(),
        request: Some(
            LlmCall::new("gpt-4o")
                .provider("openai")
                .temperature(0.2)
                .message("system", "Answer from the context only.")
                .message("user", prompt),
        ),
        prompt_tokens: simulated_tokens(prompt) + 12,
    }
}

#[trace(event_type = "evaluator")]
fn grade(answer: &str, docs: &[String]) -> f64 {
    let grounded = docs.iter().any(|d| d.contains("Paris")) && answer.contains("Paris");
    let score = if grounded { 0.94 } else { 0.2 };
    enrich_span()
        .metrics("groundedness", score)
        .metrics("answer_chars", answer.len());
    score
}

#[trace(event_type = "chain")]
async fn answer(question: &str) -> Result<String, ApiError> {
    let query = rewrite_query(question).await;
    let docs = retrieve(&query);
    let prompt = format!("Context:\n{}\n\nQuestion: {question}", docs.join("\n"));
    let mut tokens = pin!(stream_answer(&prompt));
    let mut text = String::new();
    while let Some(token) = poll_fn(|cx| tokens.as_mut().poll_next(cx)).await {
        text.push_str(&token?);
    }
    let score = grade(&text, &docs);
    // The user clicked thumbs up in the UI.
    enrich_span().feedback(
        "user",
        Value::map([
            ("thumbs_up", Value::from(true)),
            ("comment", "concise".into()),
        ]),
    );
    enrich_session()
        .metrics("last_groundedness", score)
        .user_properties("plan", "pro");
    Ok(text)
}

#[trace(event_type = "session", name = "chat_session")]
async fn chat_session(questions: &[&str]) -> usize {
    let mut answered = 0;
    for q in questions {
        match answer(q).await {
            Ok(text) => {
                println!("Q: {q}\nA: {text}\n");
                answered += 1;
            }
            Err(e) => println!("Q: {q}\nfailed: {e}\n"),
        }
    }
    answered
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Console waterfall by default; OTEL_EXPORTER_OTLP_ENDPOINT or HH_API_KEY send spans elsewhere.
    let guard = honeyhive_runtime::init();
    chat_session(&["What is the capital of France?"]).await;
    drop(guard);
}
