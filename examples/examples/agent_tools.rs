//! An agent with retrieval and a tool call, simulated (no network): retrieved documents, the
//! tools offered to the model, the call it asks for, the tool's execution, tags and metadata,
//! all through typed APIs. Sent to Phoenix (`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:6006
//! HH_CONVENTIONS=openinference`)
//! the retriever span shows its documents, the tool span its name and parameters, the agent its
//! tags and metadata. `--genai-names` names the spans as the GenAI conventions do.
//!
//! ```text
//! cargo run -p honeyhive-examples --example agent_tools [-- --genai-names]
//! ```

use honeyhive_runtime::{Builder, Scope, enrich_span, record_documents, record_tool_call, trace};
use honeyhive_runtime::{Document, LlmCall, ToolCall, ToolDefinition, Value};
use serde_json::json;

/// What the vector store returns.
struct Hit {
    id: &'static str,
    text: &'static str,
    score: f64,
}

#[trace(event_type = "retriever")]
fn retrieve(query: &str) -> usize {
    let hits = [
        Hit {
            id: "d1",
            text: "Paris is the capital of France.",
            score: 0.92,
        },
        Hit {
            id: "d2",
            text: "Paris has an oceanic climate.",
            score: 0.81,
        },
    ];
    record_documents(hits.iter().map(|h| {
        Document::new(h.text)
            .id(h.id)
            .score(h.score)
            .metadata(Value::map([("source", "wiki")]))
    }));
    enrich_span().tags(["rag"]).metadata("query", query);
    hits.len()
}

#[trace(event_type = "model")]
fn plan(question: &str) -> (String, String) {
    // What the model answered: a call of one of the tools it was offered.
    let (call_id, arguments) = ("call_1".to_owned(), r#"{"city":"Paris"}"#.to_owned());
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .message("user", question)
        .tools([ToolDefinition::new("get_weather")
            .description("Current weather of a city")
            .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}))])
        .tool_call(
            ToolCall::new("get_weather")
                .call_id(&call_id)
                .arguments_json(&arguments),
        )
        .finish_reason("tool_calls")
        .usage(412, 18)
        .record();
    (call_id, arguments)
}

#[trace(event_type = "tool")]
fn get_weather(call_id: &str, city: &str) -> String {
    let forecast = format!("rainy, 14°C in {city}");
    record_tool_call(
        ToolCall::new("get_weather")
            .call_id(call_id)
            .arguments(json!({"city": city}))
            .result(forecast.clone()),
    );
    forecast
}

#[trace(event_type = "embedding")]
fn embed(text: &str) -> usize {
    LlmCall::new("text-embedding-3-small")
        .provider("openai")
        .input_tokens(12)
        .record();
    text.len()
}

#[trace(event_type = "agent")]
fn weather_agent(question: &str) -> String {
    enrich_span().tags(["beta"]).metadata("release", "2026.12");
    embed(question);
    retrieve(question);
    let (call_id, _arguments) = plan(question);
    get_weather(&call_id, "Paris")
}

fn main() {
    let genai_names = std::env::args().any(|arg| arg == "--genai-names");
    let guard = Builder::new()
        .genai_span_names(genai_names)
        .install()
        .expect("the pipeline starts");
    let answer = Scope::session("session-1").run(|| weather_agent("Weather in Paris?"));
    println!("answer: {answer}\n");
    drop(guard);
}
