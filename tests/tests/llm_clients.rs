//! LLM calls read from the wire: real HTTP exchanges with the fake OpenAI- and
//! Anthropic-compatible servers (`honeyhive_tests::fake_llm`), read by
//! `honeyhive_runtime::integrations` chunk by chunk as the caller receives them, and asserted on
//! the finished model spans.

use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs,
};
use honeyhive_runtime::SpanKind;
use honeyhive_runtime::integrations::{
    Endpoint, LlmExchange, LlmLayer, LlmMiddleware, TIME_TO_FIRST_TOKEN_MS,
};
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
async fn a_stream_sent_without_its_content_type_is_read_as_a_stream() {
    let fake = FakeLlm::start();
    for content_type in ["text/plain; charset=utf-8", "", "application/octet-stream"] {
        for (host, path, body) in [
            (
                "api.openai.com",
                "/v1/chat/completions",
                json!({"model": "gpt-4o-mini", "stream": true,
                    "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "Capital of France?"}]}),
            ),
            (
                "api.anthropic.com",
                "/v1/messages",
                json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
                    "messages": [{"role": "user", "content": "Capital of France?"}]}),
            ),
        ] {
            fake.next_stream_content_type(content_type);
            let (span, received) = one_span(&fake, host, path, body).await;
            assert!(received.contains("data: "), "{received}");
            assert_eq!(
                span.str("llm.output_messages.0.message.content"),
                Some(ANSWER),
                "{path} sent as {content_type:?}"
            );
            assert!(span.i64(gen_ai::USAGE_OUTPUT_TOKENS).is_some());
            assert!(span.f64(TIME_TO_FIRST_TOKEN_MS).is_some());
        }
    }
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
        // The GenAI keys too, written by the typed API's path (`LlmCall::tools` / `tool_call`).
        assert_eq!(
            json_attr(&span, gen_ai::TOOL_DEFINITIONS),
            json!([{"type": "function", "name": "get_weather",
                "description": "The weather in a city",
                "parameters": tools[0]["function"]["parameters"]}]),
            "stream {stream}"
        );
        assert_eq!(
            json_attr(&span, gen_ai::OUTPUT_MESSAGES),
            json!([{"role": "assistant", "finish_reason": "tool_calls", "parts": [
                {"type": "tool_call", "id": "call_abc123", "name": "get_weather",
                 "arguments": {"city": "Paris"}}]}]),
            "stream {stream}"
        );
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
        assert_eq!(
            json_attr(&span, gen_ai::TOOL_DEFINITIONS),
            json!([{"type": "function", "name": "get_weather",
                "parameters": {"type": "object"}}]),
            "stream {stream}"
        );
        let output = json_attr(&span, gen_ai::OUTPUT_MESSAGES);
        let parts = &output[0]["parts"];
        assert_eq!(
            parts[0],
            json!({"type": "text", "content": "Let me check the weather."})
        );
        assert_eq!(parts[1]["type"], "tool_call", "stream {stream}");
        assert_eq!(parts[1]["name"], "get_weather");
        assert_eq!(parts[1]["arguments"], json!({"city": "Paris"}));
        assert!(parts[1]["id"].as_str().unwrap().starts_with("toolu_"));
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

// ---------------------------------------------------------------------------------------------
// The reqwest-middleware integration: the same calls, traced without hand work.

fn traced_client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::new().provider_for_host("127.0.0.1", "openai"))
        .build()
}

#[trace(event_type = "chain", name = "app", skip(fake))]
async fn app_post(fake: &FakeLlm, path: &str, body: Value) -> (u16, Vec<(String, String)>, String) {
    let response = traced_client()
        .post(fake.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the fake server answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    (status, headers, response.text().await.expect("a body"))
}

/// What the caller gets without the middleware, for comparison.
async fn plain_post(fake: &FakeLlm, path: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(fake.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_middleware_opens_a_client_model_span_under_the_callers_span() {
    let fake = FakeLlm::start();
    let body = json!({
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "Capital of France?"}]
    });
    let rec = Recorder::start();
    let (status, _, text) = app_post(&fake, "/v1/chat/completions", body.clone()).await;
    let spans = rec.spans();
    assert_eq!(
        (status, text),
        plain_post(&fake, "/v1/chat/completions", &body).await
    );
    let app = spans.get("app");
    let llm = spans.get("openai.chat");
    assert_eq!(
        spans.parent_of(llm).map(FinishedSpan::span_id),
        Some(app.span_id())
    );
    assert_eq!(llm.kind(), SpanKind::Client);
    assert_eq!(llm.str("honeyhive_event_type"), Some("model"));
    assert_eq!(llm.str(oi::SPAN_KIND), Some("LLM"));
    assert_eq!(llm.str(gen_ai::PROVIDER_NAME), Some("openai"));
    assert_eq!(llm.str(gen_ai::REQUEST_MODEL), Some("gpt-4o-mini"));
    assert_eq!(llm.f64(gen_ai::REQUEST_TEMPERATURE), Some(0.2));
    assert_eq!(
        llm.str("llm.output_messages.0.message.content"),
        Some(ANSWER)
    );
    assert_openai_usage(llm);
    assert_eq!(llm.str("http.request.method"), Some("POST"));
    assert_eq!(
        llm.str("url.full").map(str::to_owned),
        Some(fake.url("/v1/chat/completions"))
    );
    // W3C trace context went out, naming the model span as the parent (sampled, and the
    // trace id marked random: flags 03).
    let sent = &fake.received()[0];
    let traceparent = sent.header("traceparent").expect("traceparent sent");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-03", llm.trace_id(), llm.span_id())
    );
}

#[tokio::test]
async fn a_stream_reaches_the_caller_event_by_event_and_is_recorded() {
    let fake = FakeLlm::start();
    let rec = Recorder::start();
    let release = fake.hold_next_stream();
    let mut response = traced_client()
        .post(fake.url("/v1/chat/completions"))
        .body(
            json!({
                "model": "gpt-4o-mini",
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Capital of France?"}]
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    // The server holds the rest of the stream until the caller has the first event: a
    // middleware that buffered the body would never hand it over. The timeout only turns such
    // a hang into a failure.
    let first = tokio::time::timeout(std::time::Duration::from_mins(1), response.chunk())
        .await
        .expect("the first event before the rest of the stream exists")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    // The first event only names the role; the first token comes after the hold.
    let held = std::time::Duration::from_millis(100);
    tokio::time::sleep(held).await;
    release.send(()).unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert!(rest.ends_with(b"data: [DONE]\n\n"));
    let spans = rec.spans();
    let llm = spans.get("openai.chat");
    assert_eq!(
        llm.str("llm.output_messages.0.message.content"),
        Some(ANSWER)
    );
    assert_openai_usage(llm);
    // Time to the first token, not to the first event: at least the hold.
    let ttft = llm
        .f64(TIME_TO_FIRST_TOKEN_MS)
        .expect("time to first token");
    #[allow(clippy::cast_precision_loss)] // 100 ms
    let held_ms = held.as_millis() as f64;
    assert!(
        ttft >= held_ms,
        "{ttft} ms, the first token came after {held_ms} ms"
    );
    assert_eq!(llm.bool("honeyhive.cancelled"), None);
}

/// A stream through the middleware, its headers received.
async fn stream_from(fake: &FakeLlm, path: &str, body: Value) -> reqwest::Response {
    let mut request = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::new())
        .build()
        .post(fake.url(path));
    if path.ends_with("/messages") {
        request = request.header("anthropic-version", "2023-06-01");
    }
    request.body(body.to_string()).send().await.unwrap()
}

/// An Anthropic stream through the middleware, its headers received.
async fn anthropic_stream(fake: &FakeLlm) -> reqwest::Response {
    stream_from(
        fake,
        "/v1/messages",
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

#[tokio::test]
async fn a_stream_read_to_its_last_event_is_not_cancelled_when_dropped_there() {
    let fake = FakeLlm::start();
    let hi = json!([{"role": "user", "content": "hi"}]);
    // Each API's last event: Anthropic's `message_stop`, the Responses API's
    // `response.completed`, chat completions' `[DONE]`.
    for (path, name, body, last) in [
        (
            "/v1/messages",
            "anthropic.messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true, "messages": hi}),
            "message_stop",
        ),
        (
            "/v1/responses",
            "llm.responses",
            json!({"model": "gpt-4o-mini", "stream": true, "input": "hi"}),
            "response.completed",
        ),
        (
            "/v1/chat/completions",
            "llm.chat",
            json!({"model": "gpt-4o-mini", "stream": true, "messages": hi}),
            "[DONE]",
        ),
    ] {
        let rec = Recorder::start();
        let mut response = stream_from(&fake, path, body).await;
        // As an SSE client does: stop at the last event, without polling for the body's end.
        let mut read = Vec::new();
        while !String::from_utf8_lossy(&read).contains(last) {
            read.extend_from_slice(&response.chunk().await.unwrap().expect(last));
        }
        drop(response);
        let spans = rec.spans();
        let llm = spans.get(name);
        assert_eq!(llm.bool("honeyhive.cancelled"), None, "{path}");
        assert!(llm.str("llm.output_messages.0.message.content").is_some());
    }
}

#[tokio::test]
async fn a_stream_dropped_by_the_caller_ends_its_span_with_what_was_read() {
    let fake = FakeLlm::start();
    let rec = Recorder::start();
    let release = fake.hold_next_stream();
    let mut response = anthropic_stream(&fake).await;
    response.chunk().await.unwrap().expect("message_start");
    drop(response);
    drop(release);
    let spans = rec.spans();
    let llm = spans.get("anthropic.messages");
    assert_eq!(llm.bool("honeyhive.cancelled"), Some(true));
    assert_eq!(
        llm.str(gen_ai::RESPONSE_ID),
        Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY")
    );
    assert_eq!(llm.str("llm.output_messages.0.message.content"), None);
    // `message_start` counts the prompt; its output count (1) is a placeholder, not a count.
    let (input, _, read, write) = ANTHROPIC_USAGE;
    assert_eq!(
        llm.i64(gen_ai::USAGE_INPUT_TOKENS),
        Some(i64::try_from(input + read + write).unwrap())
    );
    assert_eq!(llm.i64(gen_ai::USAGE_OUTPUT_TOKENS), None);
}

#[tokio::test]
async fn errors_reach_the_caller_unchanged_and_mark_the_span() {
    let fake = FakeLlm::start();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    fake.fail_next(Fault::RateLimited { retry_after: 3 });
    let rec = Recorder::start();
    let (status, headers, text) = app_post(&fake, "/v1/chat/completions", body.clone()).await;
    let spans = rec.spans();
    fake.fail_next(Fault::RateLimited { retry_after: 3 });
    assert_eq!(
        (status, text),
        plain_post(&fake, "/v1/chat/completions", &body).await
    );
    assert!(headers.contains(&("retry-after".to_owned(), "3".to_owned())));
    let llm = spans.get("openai.chat");
    assert!(llm.is_error());
    assert_eq!(llm.str("error.type"), Some("rate_limit_exceeded"));
    assert_eq!(strings(llm, "http.response.header.retry-after"), ["3"]);
    assert!(
        !spans.get("app").is_error(),
        "the caller decides what a 429 means to it"
    );
}

#[tokio::test]
async fn requests_that_are_not_llm_calls_pass_untraced() {
    let fake = FakeLlm::start();
    let rec = Recorder::start();
    let response = traced_client()
        .get(fake.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    drop(response);
    // A GET of a model call's path lists stored completions: every model call is a POST.
    traced_client()
        .get(fake.url("/v1/chat/completions?limit=10"))
        .send()
        .await
        .unwrap();
    assert!(rec.spans().is_empty());
    assert_eq!(fake.received()[0].header("traceparent"), None);
    assert_eq!(fake.received()[1].header("traceparent"), None);
}

// ---------------------------------------------------------------------------------------------
// async-openai, through its HTTP-service hook.

fn openai_client(fake: &FakeLlm) -> async_openai::Client<async_openai::config::OpenAIConfig> {
    use tower_layer::Layer as _;
    let service = LlmLayer::new()
        .provider_for_host("127.0.0.1", "openai")
        .layer(ReqwestService::new(reqwest::Client::new()));
    let config = async_openai::config::OpenAIConfig::new()
        .with_api_base(fake.url("/v1"))
        .with_api_key("sk-test");
    async_openai::Client::with_config(config).with_http_service(service)
}

fn question() -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .messages([ChatCompletionRequestUserMessage::from("Capital of France?").into()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn async_openai_calls_are_traced_through_its_http_service() {
    let fake = FakeLlm::start();
    let rec = Recorder::start();
    let answer = openai_client(&fake)
        .chat()
        .create(question())
        .await
        .unwrap();
    assert_eq!(answer.choices[0].message.content.as_deref(), Some(ANSWER));
    let spans = rec.spans();
    let llm = spans.get("openai.chat");
    assert_eq!(llm.kind(), SpanKind::Client);
    assert_eq!(llm.str(gen_ai::REQUEST_MODEL), Some("gpt-4o-mini"));
    assert_eq!(
        llm.str("llm.input_messages.0.message.content"),
        Some("Capital of France?")
    );
    assert_eq!(
        llm.str("llm.output_messages.0.message.content"),
        Some(ANSWER)
    );
    assert_openai_usage(llm);
    let traceparent = fake.received()[0].header("traceparent").unwrap().to_owned();
    assert!(
        traceparent.contains(&llm.span_id().to_string()),
        "{traceparent}"
    );
}

#[tokio::test]
async fn async_openai_streams_are_traced_as_they_are_read() {
    let fake = FakeLlm::start();
    let rec = Recorder::start();
    let mut request = question();
    request.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = openai_client(&fake)
        .chat()
        .create_stream(request)
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        for choice in chunk.unwrap().choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or_default());
        }
    }
    assert_eq!(text, ANSWER);
    drop(stream);
    let spans = rec.spans();
    let llm = spans.get("openai.chat");
    assert_eq!(
        llm.str("llm.output_messages.0.message.content"),
        Some(ANSWER)
    );
    assert_openai_usage(llm);
    assert!(llm.f64(TIME_TO_FIRST_TOKEN_MS).is_some());
    // async-openai stops reading at `[DONE]`, before the body's end: a stream read to its
    // end is not a cancelled one.
    assert_eq!(llm.bool("honeyhive.cancelled"), None);
}

/// Reads a response into an exchange as a client integration does, and records it on the
/// current span: the request to `host` and `path`, then the status, the headers and the body's
/// chunks.
fn exchange(
    (host, port, path): (&str, Option<u16>, &str),
    request: &Value,
    (status, headers): (u16, &[(&str, &str)]),
    chunks: impl IntoIterator<Item = String>,
) {
    let endpoint =
        Endpoint::detect(host, port, path, &http::HeaderMap::new()).expect("an LLM endpoint");
    let mut exchange = LlmExchange::new(endpoint, request.to_string().as_bytes());
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    exchange.response_head(status, &map);
    for chunk in chunks {
        exchange.body_chunk(chunk.as_bytes());
    }
    exchange.finish().record();
}

const EVENT_STREAM: (u16, &[(&str, &str)]) = (200, &[("content-type", "text/event-stream")]);

/// A chat completions stream of `events`, then `[DONE]`.
#[trace(event_type = "model", name = "streamed", skip_all)]
fn streamed(events: &[Value]) {
    let request = json!({"model": "gpt-4o-mini", "stream": true, "n": 2,
        "messages": [{"role": "user", "content": "hi"}]});
    let chunks = events
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .chain(["data: [DONE]\n\n".to_owned()]);
    exchange(
        ("api.openai.com", None, "/v1/chat/completions"),
        &request,
        EVENT_STREAM,
        chunks,
    );
}

fn tool_delta(choice: u32, call: Value) -> Value {
    let mut chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": choice, "delta": {"tool_calls": []}, "finish_reason": null}]});
    chunk["choices"][0]["delta"]["tool_calls"] = Value::Array(vec![call]);
    chunk
}

fn finish(choice: u32, reason: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
        "choices": [{"index": choice, "delta": {}, "finish_reason": reason}]})
}

/// (name, arguments, id) of each tool call on the span, from `gen_ai.output.messages`.
fn tool_calls_of(span: &FinishedSpan) -> Vec<(String, String, String)> {
    let messages = json_attr(span, gen_ai::OUTPUT_MESSAGES);
    messages
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["parts"].as_array().unwrap().clone())
        .filter(|p| p["type"] == "tool_call")
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["arguments"].to_string(),
                p["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn streamed_tool_calls_are_kept_apart_by_choice_by_id_and_named_once() {
    let rec = Recorder::start();
    // Two choices whose calls share index 0, their arguments interleaved.
    streamed(&[
        tool_delta(
            0,
            json!({"index": 0, "id": "call_A", "function": {"name": "fa", "arguments": ""}}),
        ),
        tool_delta(
            1,
            json!({"index": 0, "id": "call_B", "function": {"name": "fb", "arguments": ""}}),
        ),
        tool_delta(0, json!({"index": 0, "function": {"arguments": "{\"a\":"}})),
        tool_delta(1, json!({"index": 0, "function": {"arguments": "{\"b\":"}})),
        tool_delta(0, json!({"index": 0, "function": {"arguments": "1}"}})),
        tool_delta(1, json!({"index": 0, "function": {"arguments": "2}"}})),
        finish(1, "length"),
        finish(0, "tool_calls"),
    ]);
    // A server that numbers no calls, repeats the name in every delta and sends an empty id.
    streamed(&[
        tool_delta(
            0,
            json!({"id": "call_1", "function": {"name": "get_weather", "arguments": "{\"city\":"}}),
        ),
        tool_delta(
            0,
            json!({"id": "", "function": {"name": "get_weather", "arguments": "\"Paris\"}"}}),
        ),
        tool_delta(
            0,
            json!({"id": "call_2", "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}}),
        ),
        finish(0, "tool_calls"),
    ]);
    let spans = rec.spans();
    let [apart, unnumbered] = [0, 1].map(|i| spans.all("streamed").nth(i).unwrap().clone());
    let mut calls = tool_calls_of(&apart);
    calls.sort();
    assert_eq!(
        calls,
        [
            (
                "fa".to_owned(),
                json!({"a": 1}).to_string(),
                "call_A".to_owned()
            ),
            (
                "fb".to_owned(),
                json!({"b": 2}).to_string(),
                "call_B".to_owned()
            ),
        ]
    );
    // In the choices' order, not the order they finished in.
    assert_eq!(
        strings(&apart, gen_ai::RESPONSE_FINISH_REASONS),
        ["tool_calls", "length"]
    );
    assert_eq!(
        tool_calls_of(&unnumbered),
        [
            (
                "get_weather".to_owned(),
                json!({"city": "Paris"}).to_string(),
                "call_1".to_owned()
            ),
            (
                "get_time".to_owned(),
                json!({"tz": "CET"}).to_string(),
                "call_2".to_owned()
            ),
        ]
    );
}

#[test]
fn each_choice_gets_its_own_finish_reason() {
    let rec = Recorder::start();
    let text = |choice: u32, text: &str| {
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": choice, "delta": {"content": text}, "finish_reason": null}]})
    };
    streamed(&[
        text(0, "Paris is"),
        text(1, "Lyon"),
        finish(1, "length"),
        text(0, " the capital."),
        finish(0, "stop"),
    ]);
    let spans = rec.spans();
    let span = spans.get("streamed");
    assert_eq!(
        strings(span, gen_ai::RESPONSE_FINISH_REASONS),
        ["stop", "length"]
    );
    let messages = json_attr(span, gen_ai::OUTPUT_MESSAGES);
    let reasons: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["finish_reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["stop", "length"]);
}

#[tokio::test]
async fn a_call_that_never_gets_a_response_is_recorded_from_its_request() {
    let rec = Recorder::start();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::new())
        .build();
    let request = json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Capital of France?"}]})
    .to_string();
    // Refused: nothing listens on the port any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!(
        "http://{}/v1/chat/completions",
        closed.local_addr().unwrap()
    );
    drop(closed);
    assert!(
        client
            .post(&refused)
            .body(request.clone())
            .send()
            .await
            .is_err()
    );
    // Given up: a server that takes the request and never answers, and a caller's timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        silent.local_addr().unwrap()
    );
    let held = tokio::spawn(async move {
        let (socket, _) = silent.accept().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(socket);
    });
    let waited = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        client.post(&url).body(request).send(),
    )
    .await;
    assert!(waited.is_err(), "the caller gave up");
    held.abort();
    let spans = rec.spans();
    let [failed, dropped] = [0, 1].map(|i| spans.all("llm.chat").nth(i).unwrap().clone());
    for span in [&failed, &dropped] {
        assert_eq!(span.str(gen_ai::REQUEST_MODEL), Some("gpt-4o-mini"));
        assert!(
            span.str(gen_ai::INPUT_MESSAGES)
                .is_some_and(|m| m.contains("Capital of France?"))
        );
    }
    assert!(failed.is_error());
    assert_eq!(failed.str("error.type"), Some("HttpError"));
    // A priced model, but no tokens were counted: no cost, not a cost of 0.
    assert_eq!(failed.attr(oi::LLM_COST_TOTAL), None);
    assert_eq!(dropped.bool("honeyhive.cancelled"), Some(true));
    assert!(!dropped.is_error());
}

/// A plain (not streamed) chat completions response.
#[trace(event_type = "model", name = "answered", skip_all)]
fn answered(status: u16, headers: &[(&str, &str)], body: &Value) {
    let request = json!({"model": "foo", "messages": [{"role": "user", "content": "hi"}]});
    exchange(
        ("localhost", Some(8000), "/v1/chat/completions"),
        &request,
        (status, headers),
        [body.to_string()],
    );
}

#[test]
fn errors_keep_each_retry_after_header_and_top_level_error_bodies() {
    let rec = Recorder::start();
    answered(
        429,
        &[("retry-after", "2"), ("retry-after-ms", "1500")],
        &json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    );
    // vLLM's shape: the error at the top level.
    answered(
        404,
        &[],
        &json!({"object": "error", "message": "The model `foo` does not exist.", "type": "NotFoundError", "code": 404}),
    );
    let spans = rec.spans();
    let [limited, missing] = [0, 1].map(|i| spans.all("answered").nth(i).unwrap().clone());
    assert_eq!(strings(&limited, "http.response.header.retry-after"), ["2"]);
    assert_eq!(
        strings(&limited, "http.response.header.retry-after-ms"),
        ["1500"]
    );
    assert_eq!(missing.str("error.type"), Some("NotFoundError"));
    assert!(
        missing
            .error_message()
            .is_some_and(|m| m.contains("The model `foo` does not exist.")),
        "{:?}",
        missing.error_message()
    );
}

#[test]
fn a_streamed_refusal_is_the_answer_and_reasoning_is_a_first_token() {
    let rec = Recorder::start();
    let delta = |delta: Value| {
        let mut chunk = json!({"id": "chatcmpl-3", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {}, "finish_reason": null}]});
        chunk["choices"][0]["delta"] = delta;
        chunk
    };
    streamed(&[
        delta(json!({"refusal": "I can't help"})),
        delta(json!({"refusal": " with that."})),
        finish(0, "stop"),
    ]);
    streamed(&[
        delta(json!({"reasoning_content": "Let me think."})),
        finish(0, "length"),
    ]);
    let spans = rec.spans();
    let [refused, reasoning] = [0, 1].map(|i| spans.all("streamed").nth(i).unwrap().clone());
    assert_eq!(
        refused.str("llm.output_messages.0.message.content"),
        Some("I can't help with that.")
    );
    assert!(refused.f64(TIME_TO_FIRST_TOKEN_MS).is_some());
    assert!(
        reasoning.f64(TIME_TO_FIRST_TOKEN_MS).is_some(),
        "reasoning tokens are tokens"
    );
}

/// A Responses API stream of `events`, each under its `type`.
#[trace(event_type = "model", name = "responses_streamed", skip_all)]
fn responses_streamed(events: &[Value]) {
    let request = json!({"model": "gpt-4o-mini", "stream": true, "input": "Capital of France?"});
    let chunks = events.iter().map(|event| {
        let kind = event["type"].as_str().unwrap();
        format!("event: {kind}\ndata: {event}\n\n")
    });
    exchange(
        ("api.openai.com", None, "/v1/responses"),
        &request,
        EVENT_STREAM,
        chunks,
    );
}

#[test]
fn a_responses_stream_keeps_its_text_as_it_streams() {
    let rec = Recorder::start();
    let delta = |text: &str| {
        json!({"type": "response.output_text.delta", "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "delta": text})
    };
    // Dropped before `response.completed`.
    responses_streamed(&[delta("Par"), delta("is")]);
    // Read to its end: the completed response's text, once.
    responses_streamed(&[
        delta("Par"),
        delta("is"),
        json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
            "model": "gpt-4o-mini",
            "output": [{"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Paris"}]}],
            "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}}}),
    ]);
    let spans = rec.spans();
    let [dropped, whole] = [0, 1].map(|i| spans.all("responses_streamed").nth(i).unwrap().clone());
    assert_eq!(
        dropped.str("llm.output_messages.0.message.content"),
        Some("Paris")
    );
    assert_eq!(
        whole.str("llm.output_messages.0.message.content"),
        Some("Paris")
    );
    assert_eq!(whole.i64(gen_ai::USAGE_OUTPUT_TOKENS), Some(1));
}
