//! The integrations in one trace, for the Phoenix end-to-end check
//! (`scripts/phoenix_integrations_check.py`): an agent with tags and metadata, a retriever with
//! its documents, an LLM call traced by `LlmMiddleware` (against the tests crate's fake
//! OpenAI-compatible server on 127.0.0.1), a tool call with its name and parameters, and inside
//! the tool a `tracing` span and a `tracing` event bridged by `HoneyHiveLayer`.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:6006 HH_PROJECT=demo HH_CONVENTIONS=openinference \
//!     cargo run -p honeyhive-examples --example phoenix_integrations
//! ```

use honeyhive_runtime::integrations::LlmMiddleware;
use honeyhive_runtime::tracing::HoneyHiveLayer;
use honeyhive_runtime::{
    Document, ToolCall, Value, enrich_span, record_documents, record_tool_call, trace,
};
use honeyhive_tests::fake_llm::FakeLlm;
use serde_json::json;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[trace(event_type = "retriever")]
fn retrieve(query: &str) -> usize {
    record_documents([
        Document::new("Paris is the capital of France.")
            .id("d1")
            .score(0.92)
            .metadata(Value::map([("source", "wiki")])),
        Document::new("Paris has an oceanic climate.")
            .id("d2")
            .score(0.81),
    ]);
    query.len()
}

#[trace(event_type = "tool")]
fn get_weather(city: &str) -> String {
    let forecast = {
        let _lookup = tracing::info_span!("cache_lookup", cache.key = city).entered();
        tracing::info!(hit = false, "cache miss");
        format!("rainy, 14°C in {city}")
    };
    record_tool_call(
        ToolCall::new("get_weather")
            .call_id("call_1")
            .description("Current weather of a city")
            .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}))
            .arguments(json!({"city": city}))
            .result(forecast.clone()),
    );
    forecast
}

#[trace(event_type = "agent", skip(client, url))]
async fn weather_agent(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
    question: &str,
) -> String {
    enrich_span()
        .tags(["beta", "e2e"])
        .metadata("release", "2026.12");
    retrieve(question);
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": question}],
    });
    let request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    let answer = match request.send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    format!("{} / {}", get_weather("Paris"), answer.len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fake = FakeLlm::start();
    let guard = honeyhive_runtime::init();
    // INFO and above: the HTTP stack's own TRACE events are not span events of ours.
    let subscriber = tracing_subscriber::registry()
        .with(HoneyHiveLayer::new().with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    let _default = tracing::subscriber::set_default(subscriber);

    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::new().provider_for_host("127.0.0.1", "openai"))
        .build();
    let url = fake.url("/v1/chat/completions");
    let answer = weather_agent(&client, &url, "Weather in Paris?").await;
    println!("answer: {answer}\n");
    drop(guard);
}
