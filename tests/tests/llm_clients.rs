//! LLM calls read from the wire: real HTTP exchanges with the fake OpenAI- and
//! Anthropic-compatible servers (`honeyhive_tests::fake_llm`), read by
//! `honeyhive_runtime::integrations` chunk by chunk as the caller receives them, and asserted on
//! the finished model spans.

use honeyhive_runtime::integrations::{Endpoint, LlmExchange, TIME_TO_FIRST_TOKEN_MS};
use honeyhive_runtime::llm::{gen_ai, openinference as oi};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::trace;
use honeyhive_tests::fake_llm::{
    ANSWER, ANTHROPIC_USAGE, FakeLlm, Fault, OPENAI_USAGE, WEATHER_ARGS,
};
use opentelemetry::Value as OtelValue;
use serde_json::{Value, json};

/// Sends `body` to the fake server at `path` as if to `host`, reading the exchange as a client
/// integration does; returns what the caller received.
#[trace(event_type = "model", name = "llm", skip_all)]
async fn call(fake: &FakeLlm, host: &str, path: &str, body: Value) -> (u16, String) {
    let mut headers = http::HeaderMap::new();
    if path.ends_with("/messages") {
        headers.insert("anthropic-version", "2023-06-01".parse().unwrap());
    }
    let endpoint = Endpoint::detect(host, None, path, &headers).expect("an LLM endpoint");
    let bytes = body.to_string().into_bytes();
    let mut exchange = LlmExchange::new(endpoint, &bytes);
    let mut response = reqwest::Client::new()
        .post(fake.url(path))
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .expect("the fake server answers");
    exchange.response_head(response.status().as_u16(), response.headers());
    let status = response.status().as_u16();
    let mut received = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("a body") {
        exchange.body_chunk(&chunk);
        received.extend_from_slice(&chunk);
    }
    exchange.finish().record();
    (status, String::from_utf8(received).expect("UTF-8"))
}

fn strings(span: &FinishedSpan, key: &str) -> Vec<String> {
    match span.attr(key) {
        Some(OtelValue::Array(opentelemetry::Array::String(items))) => {
            items.iter().map(|s| s.as_str().to_owned()).collect()
        }
        other => panic!("{key} is not a string array: {other:?}"),
    }
}

fn json_attr(span: &FinishedSpan, key: &str) -> Value {
    serde_json::from_str(span.str(key).unwrap_or_else(|| panic!("no {key}"))).expect("JSON")
}

fn assert_openai_usage(span: &FinishedSpan) {
    let (prompt, completion, cached, reasoning) = OPENAI_USAGE;
    let n = |v: u64| Some(i64::try_from(v).unwrap());
    assert_eq!(span.i64(gen_ai::USAGE_INPUT_TOKENS), n(prompt));
    assert_eq!(span.i64(gen_ai::USAGE_OUTPUT_TOKENS), n(completion));
    assert_eq!(span.i64(gen_ai::USAGE_CACHE_READ_INPUT_TOKENS), n(cached));
    assert_eq!(
        span.i64(gen_ai::USAGE_REASONING_OUTPUT_TOKENS),
        n(reasoning)
    );
    assert_eq!(span.i64(oi::LLM_TOKEN_COUNT_TOTAL), n(prompt + completion));
}

async fn one_span(fake: &FakeLlm, host: &str, path: &str, body: Value) -> (FinishedSpan, String) {
    let rec = Recorder::start();
    let (_, received) = call(fake, host, path, body).await;
    let spans = rec.spans();
    (spans.get("llm").clone(), received)
}

#[tokio::test]
async fn a_chat_completion_is_recorded_from_the_wire() {
    let fake = FakeLlm::start();
    let (span, received) = one_span(
        &fake,
        "api.openai.com",
        "/v1/chat/completions",
        json!({
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "max_completion_tokens": 256,
            "stop": ["\n\n"],
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}
            ]
        }),
    )
    .await;
    let body: Value = serde_json::from_str(&received).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"], ANSWER,
        "the caller's body"
    );
    assert_eq!(span.str(gen_ai::OPERATION_NAME), Some("chat"));
    assert_eq!(span.str(gen_ai::PROVIDER_NAME), Some("openai"));
    assert_eq!(span.str(gen_ai::REQUEST_MODEL), Some("gpt-4o-mini"));
    assert_eq!(span.str(gen_ai::RESPONSE_MODEL), Some("gpt-4o-mini"));
    assert_eq!(span.f64(gen_ai::REQUEST_TEMPERATURE), Some(0.2));
    assert_eq!(span.i64(gen_ai::REQUEST_MAX_TOKENS), Some(256));
    assert_eq!(strings(&span, gen_ai::REQUEST_STOP_SEQUENCES), ["\n\n"]);
    assert_eq!(
        span.str(gen_ai::RESPONSE_ID),
        Some("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT")
    );
    assert_eq!(strings(&span, gen_ai::RESPONSE_FINISH_REASONS), ["stop"]);
    assert_eq!(
        json_attr(&span, gen_ai::INPUT_MESSAGES),
        json!([
            {"role": "system", "parts": [{"type": "text", "content": "Answer briefly."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
        ])
    );
    assert_eq!(
        span.str("llm.output_messages.0.message.content"),
        Some(ANSWER)
    );
    assert_openai_usage(&span);
    assert!(
        span.f64(oi::LLM_COST_TOTAL).is_some_and(|c| c > 0.0),
        "priced"
    );
    assert_eq!(span.i64("http.response.status_code"), Some(200));
    assert!(!span.is_error());
}

#[tokio::test]
async fn a_chat_stream_is_recorded_with_usage_and_time_to_first_token() {
    let fake = FakeLlm::start();
    let (span, received) = one_span(
        &fake,
        "api.openai.com",
        "/v1/chat/completions",
        json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Capital of France?"}]
        }),
    )
    .await;
    assert!(received.starts_with("data: {") && received.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        span.str("llm.output_messages.0.message.content"),
        Some(ANSWER)
    );
    assert_eq!(strings(&span, gen_ai::RESPONSE_FINISH_REASONS), ["stop"]);
    assert_eq!(span.str(gen_ai::RESPONSE_ID), Some("chatcmpl-stream-1"));
    assert_openai_usage(&span);
    let ttft = span
        .f64(TIME_TO_FIRST_TOKEN_MS)
        .expect("time to first token");
    let duration_ms = span
        .end_time
        .duration_since(span.start_time)
        .unwrap()
        .as_secs_f64()
        * 1000.0;
    assert!(
        ttft >= 0.0 && ttft <= duration_ms,
        "{ttft} within {duration_ms}"
    );
}

#[tokio::test]
async fn tool_calls_and_tool_definitions_are_recorded_plain_and_streamed() {
    let fake = FakeLlm::start();
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
    }}]);
    for stream in [false, true] {
        let (span, _) = one_span(
            &fake,
            "api.openai.com",
            "/v1/chat/completions",
            json!({
                "model": "gpt-4o",
                "stream": stream,
                "tools": tools,
                "messages": [{"role": "user", "content": "What is the weather in Paris?"}]
            }),
        )
        .await;
        let call = "llm.output_messages.0.message.tool_calls.0.tool_call";
        assert_eq!(
            span.str(&format!("{call}.id")),
            Some("call_abc123"),
            "stream {stream}"
        );
        assert_eq!(
            span.str(&format!("{call}.function.name")),
            Some("get_weather")
        );
        assert_eq!(
            span.str(&format!("{call}.function.arguments")),
            Some(WEATHER_ARGS)
        );
        assert_eq!(
            strings(&span, gen_ai::RESPONSE_FINISH_REASONS),
            ["tool_calls"]
        );
        assert_eq!(json_attr(&span, "llm.tools.0.tool.json_schema"), tools[0]);
    }
}

#[tokio::test]
async fn the_responses_api_is_recorded_plain_and_streamed() {
    let fake = FakeLlm::start();
    for stream in [false, true] {
        let (span, _) = one_span(
            &fake,
            "api.openai.com",
            "/v1/responses",
            json!({
                "model": "gpt-4.1",
                "stream": stream,
                "instructions": "Answer briefly.",
                "input": "Capital of France?",
                "max_output_tokens": 100
            }),
        )
        .await;
        assert_eq!(span.str(gen_ai::REQUEST_MODEL), Some("gpt-4.1"));
        assert_eq!(span.i64(gen_ai::REQUEST_MAX_TOKENS), Some(100));
        assert_eq!(
            span.str("llm.input_messages.0.message.content"),
            Some("Answer briefly.")
        );
        assert_eq!(
            span.str("llm.input_messages.1.message.content"),
            Some("Capital of France?")
        );
        assert_eq!(
            span.str("llm.output_messages.0.message.content"),
            Some(ANSWER),
            "stream {stream}"
        );
        assert_eq!(
            span.str(gen_ai::RESPONSE_ID),
            Some("resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b")
        );
        assert_eq!(strings(&span, gen_ai::RESPONSE_FINISH_REASONS), ["stop"]);
        assert_openai_usage(&span);
        assert_eq!(span.f64(TIME_TO_FIRST_TOKEN_MS).is_some(), stream);
    }
}

#[tokio::test]
async fn embeddings_record_model_and_prompt_tokens() {
    let fake = FakeLlm::start();
    let (span, _) = one_span(
        &fake,
        "api.openai.com",
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(span.str(gen_ai::OPERATION_NAME), Some("embeddings"));
    assert_eq!(
        span.str(gen_ai::REQUEST_MODEL),
        Some("text-embedding-3-small")
    );
    assert_eq!(span.i64(gen_ai::USAGE_INPUT_TOKENS), Some(8));
    assert_eq!(span.str("llm.output_messages.0.message.content"), None);
}

#[tokio::test]
async fn anthropic_messages_are_recorded_plain_and_streamed() {
    let fake = FakeLlm::start();
    let (input, output, read, write) = ANTHROPIC_USAGE;
    for stream in [false, true] {
        let (span, _) = one_span(
            &fake,
            "api.anthropic.com",
            "/v1/messages",
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "stream": stream,
                "system": "Answer briefly.",
                "messages": [{"role": "user", "content": "Capital of France?"}]
            }),
        )
        .await;
        assert_eq!(span.str(gen_ai::PROVIDER_NAME), Some("anthropic"));
        assert_eq!(span.i64(gen_ai::REQUEST_MAX_TOKENS), Some(1024));
        assert_eq!(
            span.str("llm.input_messages.0.message.role"),
            Some("system")
        );
        assert_eq!(
            span.str("llm.output_messages.0.message.content"),
            Some(ANSWER),
            "stream {stream}"
        );
        assert_eq!(
            strings(&span, gen_ai::RESPONSE_FINISH_REASONS),
            ["end_turn"]
        );
        // GenAI counts cached prompt tokens as input tokens; Anthropic reports them apart.
        let n = |v: u64| Some(i64::try_from(v).unwrap());
        assert_eq!(
            span.i64(gen_ai::USAGE_INPUT_TOKENS),
            n(input + read + write)
        );
        assert_eq!(span.i64(gen_ai::USAGE_OUTPUT_TOKENS), n(output));
        assert_eq!(span.i64(gen_ai::USAGE_CACHE_READ_INPUT_TOKENS), n(read));
        assert_eq!(
            span.i64(gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS),
            n(write)
        );
        assert!(span.str(gen_ai::RESPONSE_ID).unwrap().starts_with("msg_"));
        assert_eq!(span.f64(TIME_TO_FIRST_TOKEN_MS).is_some(), stream);
    }
}

#[tokio::test]
async fn anthropic_tool_use_is_recorded_plain_and_streamed() {
    let fake = FakeLlm::start();
    for stream in [false, true] {
        let (span, _) = one_span(
            &fake,
            "api.anthropic.com",
            "/v1/messages",
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "stream": stream,
                "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                "messages": [{"role": "user", "content": "What is the weather in Paris?"}]
            }),
        )
        .await;
        let call = "llm.output_messages.0.message.tool_calls.0.tool_call";
        assert_eq!(
            span.str(&format!("{call}.function.name")),
            Some("get_weather")
        );
        assert!(
            span.str(&format!("{call}.id"))
                .unwrap()
                .starts_with("toolu_")
        );
        let args: Value =
            serde_json::from_str(span.str(&format!("{call}.function.arguments")).unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}), "stream {stream}");
        assert_eq!(
            strings(&span, gen_ai::RESPONSE_FINISH_REASONS),
            ["tool_use"]
        );
        assert_eq!(
            span.str("llm.output_messages.0.message.content"),
            Some("Let me check the weather.")
        );
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_mark_the_span_failed() {
    let fake = FakeLlm::start();
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let claude = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let cases = [
        (
            "api.openai.com",
            "/v1/chat/completions",
            &chat,
            Fault::RateLimited { retry_after: 2 },
            429,
            "rate_limit_exceeded",
        ),
        (
            "api.openai.com",
            "/v1/chat/completions",
            &chat,
            Fault::ServerError,
            500,
            "server_error",
        ),
        (
            "api.anthropic.com",
            "/v1/messages",
            &claude,
            Fault::RateLimited { retry_after: 7 },
            429,
            "rate_limit_error",
        ),
        (
            "api.anthropic.com",
            "/v1/messages",
            &claude,
            Fault::ServerError,
            500,
            "api_error",
        ),
    ];
    for (host, path, body, fault, status, kind) in cases {
        fake.fail_next(fault.clone());
        let rec = Recorder::start();
        let (got, received) = call(&fake, host, path, body.clone()).await;
        assert_eq!(got, status, "the caller sees the status");
        assert!(
            received.contains(kind),
            "the caller sees the body: {received}"
        );
        let spans = rec.spans();
        let span = spans.get("llm");
        assert!(span.is_error(), "{fault:?}");
        assert_eq!(
            span.i64("http.response.status_code"),
            Some(i64::from(status))
        );
        assert_eq!(span.str("error.type"), Some(kind));
        let message = span.error_message().unwrap();
        assert!(message.starts_with(&status.to_string()), "{message}");
        let retry_after = match fault {
            Fault::RateLimited { retry_after } => Some(vec![retry_after.to_string()]),
            Fault::ServerError => None,
        };
        assert_eq!(
            span.attr("http.response.header.retry-after")
                .map(|_| strings(span, "http.response.header.retry-after")),
            retry_after
        );
        assert_eq!(span.str(gen_ai::REQUEST_MODEL), body["model"].as_str());
    }
}

#[test]
fn providers_are_told_by_host_port_path_and_headers() {
    let none = http::HeaderMap::new();
    let mut azure_key = http::HeaderMap::new();
    azure_key.insert("api-key", "k".parse().unwrap());
    let provider = |host: &str, port: Option<u16>, path: &str, headers: &http::HeaderMap| {
        Endpoint::detect(host, port, path, headers).map(|e| e.provider)
    };
    assert_eq!(
        provider("api.openai.com", None, "/v1/chat/completions", &none),
        Some(Some("openai"))
    );
    assert_eq!(
        provider(
            "myres.openai.azure.com",
            None,
            "/openai/deployments/gpt4o/chat/completions",
            &none
        ),
        Some(Some("azure.ai.openai"))
    );
    assert_eq!(
        provider(
            "gateway.internal",
            None,
            "/openai/deployments/gpt4o/chat/completions",
            &azure_key
        ),
        Some(Some("azure.ai.openai"))
    );
    assert_eq!(
        provider("localhost", Some(11434), "/v1/chat/completions", &none),
        Some(Some("ollama"))
    );
    assert_eq!(
        provider("vllm.internal", None, "/v1/chat/completions", &none),
        Some(Some("vllm"))
    );
    assert_eq!(
        provider("localhost", Some(1234), "/v1/chat/completions", &none),
        Some(Some("mistral_rs"))
    );
    assert_eq!(
        provider("api.anthropic.com", None, "/v1/messages", &none),
        Some(Some("anthropic"))
    );
    assert_eq!(
        provider("example.com", None, "/v1/chat/completions", &none),
        Some(None)
    );
    assert_eq!(provider("api.openai.com", None, "/v1/models", &none), None);
    assert_eq!(
        provider(
            "api.anthropic.com",
            None,
            "/v1/messages/count_tokens",
            &none
        ),
        None
    );
    let azure = Endpoint::detect(
        "myres.openai.azure.com",
        None,
        "/openai/deployments/gpt4o/chat/completions",
        &none,
    )
    .unwrap();
    assert_eq!(azure.deployment.as_deref(), Some("gpt4o"));
}
