//! async-openai traced without hand work: the client's HTTP service is wrapped in
//! `honeyhive_runtime::integrations::LlmLayer`, so every call it makes is a model span with the
//! model, messages, completion, tokens and cost, streams included. It talks to a fake
//! OpenAI-compatible server on 127.0.0.1 (from the tests crate), so it needs no API key:
//!
//! ```text
//! cargo run -p honeyhive-examples --example openai_client
//! ```
//!
//! Against OpenAI itself, drop `with_api_base` (and `provider_for_host`: `api.openai.com` is
//! known) and set `OPENAI_API_KEY`.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequestArgs,
};
use honeyhive_runtime::integrations::LlmLayer;
use honeyhive_runtime::trace;
use honeyhive_tests::fake_llm::FakeLlm;
use tower_layer::Layer as _;

/// Asks once, then streams a second answer; both calls are children of this span.
#[trace(event_type = "chain", skip(client))]
async fn ask_twice(client: &Client<OpenAIConfig>, question: &str) -> Result<String, OpenAIError> {
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .messages([ChatCompletionRequestUserMessage::from(question).into()])
        .build()?;
    let first = client.chat().create(request.clone()).await?;

    let mut streamed = request;
    streamed.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = client.chat().create_stream(streamed).await?;
    let mut second = String::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        for choice in chunk?.choices {
            second.push_str(choice.delta.content.as_deref().unwrap_or_default());
        }
    }
    let first = first.choices[0].message.content.clone().unwrap_or_default();
    Ok(format!("{first} / {second}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fake = FakeLlm::start();
    // Console waterfall by default; OTEL_EXPORTER_OTLP_ENDPOINT or HH_API_KEY send spans elsewhere.
    let guard = honeyhive_runtime::init();

    let service = LlmLayer::new()
        .provider_for_host("127.0.0.1", "openai")
        .layer(ReqwestService::new(reqwest::Client::new()));
    let config = OpenAIConfig::new()
        .with_api_base(fake.url("/v1"))
        .with_api_key("sk-fake");
    let client = Client::with_config(config).with_http_service(service);

    match ask_twice(&client, "What is the capital of France?").await {
        Ok(answer) => println!("answer: {answer}\n"),
        Err(e) => println!("failed: {e}\n"),
    }
    drop(guard);
}
