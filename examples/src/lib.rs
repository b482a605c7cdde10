//! A simulated RAG request shared by the examples: no network, realistic shape and timing.
//!
//! `answer_question` retrieves documents (embedding + vector search), assembles a prompt,
//! calls a (simulated) LLM API, and calls a weather tool that fails, all traced.

use std::time::Duration;

use honeyhive_runtime::{LlmCall, trace};

/// A retrieved document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Document id.
    pub id: u32,
    /// Its text.
    pub text: String,
}

/// Why the weather tool failed.
#[derive(Debug)]
pub struct ToolError(pub String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

#[trace(event_type = "embedding")]
fn embed_query(query: &str) -> Vec<f32> {
    std::thread::sleep(Duration::from_millis(4));
    query
        .bytes()
        .take(8)
        .map(|b| f32::from(b) / 255.0)
        .collect()
}

#[trace(event_type = "tool", skip(embedding))]
fn vector_search(embedding: &[f32], top_k: usize) -> Vec<Doc> {
    std::thread::sleep(Duration::from_millis(7));
    (0..u32::try_from(top_k).unwrap_or(0))
        .map(|id| Doc {
            id,
            text: format!(
                "passage {id} (score {:.2})",
                embedding.first().unwrap_or(&0.0)
            ),
        })
        .collect()
}

#[trace(event_type = "retriever")]
fn retrieve(question: &str, top_k: usize) -> Vec<Doc> {
    let embedding = embed_query(question);
    vector_search(&embedding, top_k)
}

#[trace(event_type = "tool", skip(docs))]
fn build_prompt(question: &str, docs: &[Doc]) -> String {
    let context: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    format!(
        "Answer using:\n{}\n\nQuestion: {question}",
        context.join("\n")
    )
}

#[trace(
    event_type = "model",
    name = "openai.chat",
    metadata(model = "gpt-4o-mini")
)]
async fn call_llm_api(prompt: &str, temperature: f64) -> Result<String, ToolError> {
    tokio::time::sleep(Duration::from_millis(25)).await;
    let answer = format!(
        "Paris is the capital of France. ({} prompt chars)",
        prompt.len()
    );
    // What a real client reads from the API's response: usage, finish reason, response id.
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .temperature(temperature)
        .message("user", prompt)
        .completion(answer.clone())
        .usage(simulated_tokens(prompt), simulated_tokens(&answer))
        .finish_reason("stop")
        .response_id("chatcmpl-simulated")
        .record();
    Ok(answer)
}

/// About four characters per token, as OpenAI's tokenizers average on English text.
pub fn simulated_tokens(text: &str) -> u64 {
    u64::try_from(text.len().div_ceil(4)).unwrap_or(u64::MAX)
}

#[trace(event_type = "model")]
async fn generate_answer(question: &str, docs: &[Doc]) -> Result<String, ToolError> {
    let prompt = build_prompt(question, docs);
    call_llm_api(&prompt, 0.2).await
}

#[trace(event_type = "tool")]
fn get_weather(city: &str) -> Result<String, ToolError> {
    std::thread::sleep(Duration::from_millis(2));
    Err(ToolError(format!("weather service unavailable for {city}")))
}

/// The whole request: one trace with eight spans, one of them failed.
#[trace(event_type = "chain")]
pub async fn answer_question(question: &str) -> Result<String, ToolError> {
    let docs = retrieve(question, 3);
    let answer = generate_answer(question, &docs).await?;
    // A failing tool call does not fail the request: the span shows the error.
    let weather = get_weather("Paris").unwrap_or_else(|e| format!("(no weather: {e})"));
    Ok(format!("{answer} {weather}"))
}
