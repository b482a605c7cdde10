//! Middleware for the crates Rust services are built on, each behind its cargo feature:
//! `tower` (servers: axum, tonic, hyper; feature `tower`, `axum` for route names) and
//! `reqwest` (a CLIENT span per request for reqwest-middleware clients; feature `reqwest`).
//!
//! And LLM clients traced without hand work: the HTTP exchanges of OpenAI-compatible APIs (chat
//! completions, responses, embeddings; OpenAI, Azure OpenAI, Ollama, vLLM, mistral.rs and other
//! servers that speak it) and Anthropic Messages, read from the wire into an [`LlmCall`].
//!
//! [`Endpoint::detect`] tells from a request's host, port, path and headers whether it goes to
//! a known LLM API. An [`LlmExchange`] then reads the request body, the response head and the
//! response body chunk by chunk as it passes on to the caller (a JSON body or a server-sent event
//! stream, told by the content type or, when that names neither, by the first bytes; never held
//! back), and [`LlmExchange::finish`] gives the [`LlmRecord`] to write on the
//! model span: model, provider, parameters, messages, completion, tool calls, tokens (cached
//! and reasoning ones too), finish reasons, response id, time to first token for streams, and
//! the error of a failed call (status, the API's error type and message, `retry-after`).
//!
//! The HTTP client integrations build on this; it also serves any other client:
//!
//! ```
//! use honeyhive_runtime::integrations::{Endpoint, LlmExchange};
//! use honeyhive_runtime::trace;
//!
//! #[trace(event_type = "model", name = "openai.chat")]
//! fn chat(request: &[u8], status: u16, response: &[u8]) {
//!     let headers = http::HeaderMap::new();
//!     let endpoint = Endpoint::detect("api.openai.com", None, "/v1/chat/completions", &headers)
//!         .expect("an LLM API");
//!     let mut exchange = LlmExchange::new(endpoint, request);
//!     exchange.response_head(status, &headers);
//!     exchange.body_chunk(response);
//!     exchange.finish().record(); // on the current span
//! }
//! # chat(br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#, 200,
//! #      br#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":2}}"#);
//! ```

pub mod anthropic;
#[cfg(feature = "reqwest")]
mod middleware;
pub mod openai;
#[cfg(feature = "async-openai")]
mod openai_layer;
#[cfg(feature = "reqwest")]
pub mod reqwest;
pub mod sse;
#[cfg(feature = "tower")]
pub mod tower;

#[cfg(feature = "reqwest")]
pub use middleware::LlmMiddleware;
#[cfg(feature = "async-openai")]
pub use openai_layer::{LlmLayer, LlmService};

use std::time::{Duration, Instant};

use opentelemetry::{KeyValue, StringValue, Value};

use crate::llm::LlmCall;
use crate::span;

use sse::{SseEvent, SseParser};

/// The wire API of an LLM endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Api {
    /// OpenAI-compatible `POST .../chat/completions`.
    ChatCompletions,
    /// OpenAI `POST .../responses`.
    Responses,
    /// OpenAI-compatible `POST .../embeddings`.
    Embeddings,
    /// Anthropic `POST .../v1/messages`.
    AnthropicMessages,
}

impl Api {
    /// `gen_ai.operation.name` of calls to this API.
    pub const fn operation(self) -> &'static str {
        match self {
            Api::ChatCompletions | Api::Responses | Api::AnthropicMessages => "chat",
            Api::Embeddings => "embeddings",
        }
    }
}

/// A known LLM endpoint: which API, and who serves it; from [`Endpoint::detect`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// The wire API.
    pub api: Api,
    /// The provider in GenAI's vocabulary (`openai`, `azure.ai.openai`, `anthropic`, `ollama`,
    /// `vllm`, `mistral_rs`, ...), when the host or the headers tell; an unknown
    /// OpenAI-compatible server may still be recognised from its response
    /// ([`LlmExchange::finish`]).
    pub provider: Option<&'static str>,
    /// The Azure deployment named in the path (`/openai/deployments/{name}/...`), which stands
    /// for the model when the body names none.
    pub deployment: Option<String>,
}

/// Hosts of hosted APIs and the provider each stands for.
const HOSTS: &[(&str, &str)] = &[
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
];

/// Default ports of local servers; a guess, since any server may listen there.
const PORTS: &[(u16, &str)] = &[(11434, "ollama"), (1234, "mistral_rs"), (8000, "vllm")];

impl Endpoint {
    /// The endpoint a request goes to, or `None` when it is not a known LLM API call (a model
    /// listing, a file upload, any other host's other paths). `path` is without the query.
    pub fn detect(
        host: &str,
        port: Option<u16>,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<Endpoint> {
        let path = path.trim_end_matches('/');
        let anthropic = host == "api.anthropic.com" || headers.contains_key("anthropic-version");
        let api = if path.ends_with("/chat/completions") {
            Api::ChatCompletions
        } else if path.ends_with("/responses") {
            Api::Responses
        } else if path.ends_with("/embeddings") {
            Api::Embeddings
        } else if path.ends_with("/v1/messages") || (anthropic && path.ends_with("/messages")) {
            Api::AnthropicMessages
        } else {
            return None;
        };
        let host = host.to_ascii_lowercase();
        let azure = [
            ".openai.azure.com",
            ".cognitiveservices.azure.com",
            ".services.ai.azure.com",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix))
            || (headers.contains_key("api-key") && path.contains("/openai/"));
        let provider = if api == Api::AnthropicMessages || anthropic {
            Some("anthropic")
        } else if azure {
            Some("azure.ai.openai")
        } else if let Some((_, p)) = HOSTS.iter().find(|(h, _)| *h == host) {
            Some(*p)
        } else if host.contains("ollama") {
            Some("ollama")
        } else if host.contains("vllm") {
            Some("vllm")
        } else {
            port.and_then(|port| PORTS.iter().find(|(p, _)| *p == port).map(|(_, n)| *n))
        };
        let deployment = path
            .split_once("/openai/deployments/")
            .and_then(|(_, rest)| rest.split('/').next())
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        Some(Endpoint {
            api,
            provider,
            deployment,
        })
    }
}

/// The most of a JSON response body kept to parse it at the end (embeddings answers are the
/// largest: a few KiB per vector). Past it the call is recorded without its response.
pub const MAX_JSON_BODY: usize = 16 << 20;
/// The most of one streamed text (a choice's content, a tool call's arguments) kept for the
/// span; more is still passed on to the caller, only not recorded.
pub const MAX_STREAMED_TEXT: usize = 1 << 20;
/// The most choices or tool calls recorded per response.
const MAX_PARTS: usize = 64;

/// A tool call the model made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolCall {
    /// The call id (`call_...`, `toolu_...`).
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, as the JSON text the model wrote.
    pub arguments: String,
}

/// What a response tells, gathered from a JSON body or from the events of a stream.
#[derive(Debug, Default)]
pub(crate) struct Accum {
    pub(crate) id: Option<String>,
    pub(crate) model: Option<String>,
    /// The completion of each choice, by index.
    pub(crate) texts: Vec<String>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) finish_reasons: Vec<String>,
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) cache_read: Option<u64>,
    pub(crate) cache_write: Option<u64>,
    pub(crate) reasoning: Option<u64>,
    /// The API's own error (`type`, `message`), from an error body or a stream's error event.
    pub(crate) error: Option<(String, String)>,
    /// A server recognised from its response (mistral.rs, vLLM), for an unknown host.
    pub(crate) provider_hint: Option<&'static str>,
    /// Streamed tool calls by their position in the stream (`index`), to append arguments.
    pub(crate) tool_slots: Vec<(u64, usize)>,
    /// The stream's last event arrived (`[DONE]`, `message_stop`, `response.completed`): a
    /// caller that stops reading there has read it all.
    pub(crate) stream_ended: bool,
}

impl Accum {
    /// The text of choice `index`, created when first seen.
    pub(crate) fn text(&mut self, index: usize) -> Option<&mut String> {
        if index >= MAX_PARTS {
            return None;
        }
        if self.texts.len() <= index {
            self.texts.resize_with(index + 1, String::new);
        }
        self.texts.get_mut(index)
    }

    /// Appends to a streamed text, up to [`MAX_STREAMED_TEXT`].
    pub(crate) fn append(text: &mut String, more: &str) {
        let room = MAX_STREAMED_TEXT.saturating_sub(text.len());
        if more.len() <= room {
            text.push_str(more);
        } else {
            let mut cut = room;
            while cut > 0 && !more.is_char_boundary(cut) {
                cut -= 1;
            }
            text.push_str(&more[..cut]);
        }
    }

    /// The streamed tool call at stream position `slot`, created when first seen.
    pub(crate) fn tool_slot(&mut self, slot: u64) -> Option<&mut ToolCall> {
        let at = if let Some((_, at)) = self.tool_slots.iter().find(|(s, _)| *s == slot) {
            *at
        } else {
            return self.new_tool_slot(slot);
        };
        self.tool_calls.get_mut(at)
    }

    /// A new streamed tool call at `slot`, which from now on names it (a server that numbers
    /// no calls sends each at the same position, told apart by its id).
    pub(crate) fn new_tool_slot(&mut self, slot: u64) -> Option<&mut ToolCall> {
        if self.tool_calls.len() >= MAX_PARTS {
            return None;
        }
        self.tool_calls.push(ToolCall::default());
        let at = self.tool_calls.len() - 1;
        self.tool_slots.retain(|(s, _)| *s != slot);
        self.tool_slots.push((slot, at));
        self.tool_calls.get_mut(at)
    }

    /// The finish reason of choice `index` (0 for the APIs with one answer): reasons are kept
    /// in the choices' order, as `gen_ai.response.finish_reasons` lists them, whatever order
    /// they arrive in.
    pub(crate) fn finish_reason_at(&mut self, index: usize, reason: &str) {
        if index >= MAX_PARTS {
            return;
        }
        if self.finish_reasons.len() <= index {
            self.finish_reasons.resize_with(index + 1, String::new);
        }
        reason.clone_into(&mut self.finish_reasons[index]);
    }

    pub(crate) fn push_tool_call(&mut self, call: ToolCall) {
        if self.tool_calls.len() < MAX_PARTS {
            self.tool_calls.push(call);
        }
    }
}

/// What a request tells besides the [`LlmCall`] fields: whether it streams.
#[derive(Debug, Default)]
pub(crate) struct RequestInfo {
    pub(crate) stream: bool,
}

/// One LLM call over HTTP, read as it happens: the request, then the response head, then the
/// body chunk by chunk.
#[derive(Debug)]
pub struct LlmExchange {
    endpoint: Endpoint,
    call: LlmCall,
    request: RequestInfo,
    acc: Accum,
    started: Instant,
    first_token: Option<Duration>,
    status: Option<u16>,
    /// The `retry-after` headers of the response, by name.
    retry_after: Vec<(&'static str, String)>,
    /// Set when the response is an event stream.
    sse: Option<SseParser>,
    /// A successful response whose content type names neither JSON nor an event stream: its
    /// first bytes tell which it is (servers that stream with `text/plain` or no content type).
    sniff: bool,
    body: Vec<u8>,
    body_too_big: bool,
}

impl LlmExchange {
    /// Starts reading a call from its request body (JSON; anything else leaves only what the
    /// endpoint tells). Time to first token counts from here.
    pub fn new(endpoint: Endpoint, request_body: &[u8]) -> LlmExchange {
        let body = serde_json::from_slice::<serde_json::Value>(request_body).ok();
        // Every API names the model in the body; Azure's older paths name a deployment instead.
        let model = body
            .as_ref()
            .and_then(|b| b["model"].as_str())
            .map(str::to_owned)
            .or_else(|| endpoint.deployment.clone());
        let mut call = match model {
            Some(model) => LlmCall::new(model),
            None => LlmCall::default(),
        }
        .operation(endpoint.api.operation());
        if let Some(provider) = endpoint.provider {
            call = call.provider(provider);
        }
        let mut request = RequestInfo::default();
        if let Some(body) = &body {
            call = match endpoint.api {
                Api::ChatCompletions => openai::chat_request(call, body, &mut request),
                Api::Responses => openai::responses_request(call, body, &mut request),
                Api::Embeddings => call,
                Api::AnthropicMessages => anthropic::request(call, body, &mut request),
            };
        }
        LlmExchange {
            endpoint,
            call,
            request,
            acc: Accum::default(),
            started: Instant::now(),
            first_token: None,
            status: None,
            retry_after: Vec::new(),
            sse: None,
            sniff: false,
            body: Vec::new(),
            body_too_big: false,
        }
    }

    /// Whether the request asked for a stream.
    pub fn is_stream_request(&self) -> bool {
        self.request.stream
    }

    /// The response's status and headers arrived.
    pub fn response_head(&mut self, status: u16, headers: &http::HeaderMap) {
        self.status = Some(status);
        // Each under its own name: `retry-after` (seconds or a date) and the `retry-after-ms`
        // OpenAI's and Anthropic's APIs send beside it.
        self.retry_after = ["retry-after", "retry-after-ms"]
            .into_iter()
            .filter_map(|name| {
                let value = headers.get(name)?.to_str().ok()?;
                Some((name, value.to_owned()))
            })
            .collect();
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if status < 400 {
            if content_type.starts_with("text/event-stream") {
                self.sse = Some(SseParser::new());
            } else {
                self.sniff = !content_type.contains("json");
            }
        }
    }

    /// Decides, once enough of a sniffed body has arrived (or it ended), whether it is an
    /// event stream, and replays what was held into the stream parser.
    fn sniffed(&mut self, ended: bool) {
        let start = self.body.trim_ascii_start();
        // The longest field name of an event line (`event:`, `retry:`), or a JSON opening.
        if !ended && start.len() < 6 && !start.starts_with(b"{") && !start.starts_with(b"[") {
            return;
        }
        self.sniff = false;
        let sse = [&b"data:"[..], b"event:", b"id:", b"retry:", b":"]
            .iter()
            .any(|field| start.starts_with(field));
        let held = std::mem::take(&mut self.body);
        if sse {
            self.sse = Some(SseParser::new());
        }
        self.body_chunk(&held);
    }

    /// A chunk of the response body, as the caller receives it.
    pub fn body_chunk(&mut self, chunk: &[u8]) {
        if let Some(parser) = &mut self.sse {
            let api = self.endpoint.api;
            let acc = &mut self.acc;
            let mut content = false;
            parser.feed(chunk, |event| content |= stream_event(api, acc, &event));
            if content && self.first_token.is_none() {
                self.first_token = Some(self.started.elapsed());
            }
        } else if self.sniff {
            // Undecided for at most a few bytes: each chunk decides unless it is tiny.
            self.body.extend_from_slice(chunk);
            self.sniffed(false);
        } else if !self.body_too_big {
            if self.body.len() + chunk.len() > MAX_JSON_BODY {
                self.body_too_big = true;
                self.body = Vec::new();
            } else {
                self.body.extend_from_slice(chunk);
            }
        }
    }

    /// Whether the stream's last event has arrived: a body dropped after it was read whole
    /// (a client may stop reading there, before the body's own end).
    pub fn stream_ended(&self) -> bool {
        self.acc.stream_ended
    }

    /// The call is over (the body ended, failed or was dropped): what to record.
    pub fn finish(mut self) -> LlmRecord {
        let api = self.endpoint.api;
        if self.sniff {
            self.sniffed(true);
        }
        if let Some(parser) = &mut self.sse {
            let acc = &mut self.acc;
            parser.finish(|event| {
                stream_event(api, acc, &event);
            });
        } else if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            let failed = self.status.is_some_and(|s| s >= 400);
            if failed {
                error_body(&mut self.acc, &body);
            } else {
                match api {
                    Api::ChatCompletions => openai::chat_response(&mut self.acc, &body),
                    Api::Responses => openai::responses_response(&mut self.acc, &body),
                    Api::Embeddings => openai::embeddings_response(&mut self.acc, &body),
                    Api::AnthropicMessages => anthropic::response(&mut self.acc, &body),
                }
            }
        }
        self.record()
    }

    fn record(self) -> LlmRecord {
        let acc = self.acc;
        let mut call = self.call;
        if self.endpoint.provider.is_none()
            && let Some(hint) = acc.provider_hint
        {
            call = call.provider(hint);
        }
        if let Some(model) = acc.model {
            call = call.response_model(model);
        }
        if let Some(id) = acc.id {
            call = call.response_id(id);
        }
        let calls_only = acc.texts.iter().all(String::is_empty) && !acc.tool_calls.is_empty();
        if !calls_only {
            for text in acc.texts {
                call = call.completion(text);
            }
        }
        // The typed API's calls: `tool_call` parts of the output messages and OpenInference's
        // `tool_calls` of the last assistant message (one made for a reply of calls only).
        for tc in acc.tool_calls {
            let mut typed = crate::llm::ToolCall::new(tc.name).arguments_json(tc.arguments);
            if !tc.id.is_empty() {
                typed = typed.call_id(tc.id);
            }
            call = call.tool_call(typed);
        }
        for reason in acc.finish_reasons {
            call = call.finish_reason(reason);
        }
        if let Some(n) = acc.input_tokens {
            call = call.input_tokens(n);
        }
        if let Some(n) = acc.output_tokens {
            call = call.output_tokens(n);
        }
        if let Some(n) = acc.cache_read {
            call = call.cache_read_input_tokens(n);
        }
        if let Some(n) = acc.cache_write {
            call = call.cache_creation_input_tokens(n);
        }
        if let Some(n) = acc.reasoning {
            call = call.reasoning_tokens(n);
        }

        let mut attributes = Vec::new();
        if let Some(ttft) = self.first_token {
            attributes.push(KeyValue::new(
                TIME_TO_FIRST_TOKEN_MS,
                ttft.as_secs_f64() * 1000.0,
            ));
        }
        if let Some(status) = self.status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        let error = failure(self.status, self.retry_after, acc.error, &mut attributes);
        LlmRecord {
            call,
            attributes,
            error,
        }
    }
}

/// The error of a failed call (an HTTP error status, or an error event in a stream): its
/// `error.type` (the API's own, else the status code) and message, with `retry-after`.
fn failure(
    status: Option<u16>,
    retry_after: Vec<(&'static str, String)>,
    api_error: Option<(String, String)>,
    attributes: &mut Vec<KeyValue>,
) -> Option<(String, String)> {
    let failed = status.is_some_and(|s| s >= 400);
    if !failed && api_error.is_none() {
        return None;
    }
    let status = status.unwrap_or(0);
    let (kind, message) = api_error.unwrap_or_default();
    let kind = if kind.is_empty() {
        status.to_string()
    } else {
        kind
    };
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    let mut text = match reason {
        Some(reason) if failed => format!("{status} {reason}"),
        _ if failed => status.to_string(),
        _ => String::from("stream error"),
    };
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(&message);
    }
    attributes.push(KeyValue::new("error.type", kind.clone()));
    for (name, value) in retry_after {
        attributes.push(KeyValue::new(
            format!("http.response.header.{name}"),
            Value::Array(vec![StringValue::from(value)].into()),
        ));
    }
    Some((kind, text))
}

/// Time from sending the request to the first streamed token, in milliseconds (a HoneyHive
/// metric, so it can be charted).
pub const TIME_TO_FIRST_TOKEN_MS: &str = "honeyhive_metrics.time_to_first_token_ms";

/// One event of a stream; whether it carried generated content (for time to first token).
fn stream_event(api: Api, acc: &mut Accum, event: &SseEvent) -> bool {
    if event.data == "[DONE]" {
        acc.stream_ended = true;
        return false;
    }
    let Ok(data) = serde_json::from_str::<serde_json::Value>(&event.data) else {
        return false;
    };
    match api {
        Api::AnthropicMessages => anthropic::stream_event(acc, &event.event, &data),
        Api::Responses => openai::responses_stream_event(acc, &data),
        Api::ChatCompletions | Api::Embeddings => openai::chat_stream_chunk(acc, &data),
    }
}

/// The error body of a failed call: OpenAI's `{"error": {"type", "code", "message"}}` or
/// Anthropic's `{"type": "error", "error": {"type", "message"}}`.
pub(crate) fn error_body(acc: &mut Accum, body: &serde_json::Value) {
    // vLLM and other OpenAI-compatible servers put the error at the top level:
    // `{"object": "error", "message", "type", "code"}`.
    let error = if body["error"].is_null() && body["message"].is_string() {
        body
    } else {
        &body["error"]
    };
    // OpenAI's `code` (`rate_limit_exceeded`) says more than its `type` (`requests`).
    let kind = error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .unwrap_or_default();
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or_default();
    acc.error = Some((kind.to_owned(), message.to_owned()));
}

/// What an [`LlmExchange`] found, to write on the model span.
#[derive(Debug)]
#[must_use = "call `.record()` to write it to the current span"]
pub struct LlmRecord {
    call: LlmCall,
    attributes: Vec<KeyValue>,
    error: Option<(String, String)>,
}

impl LlmRecord {
    /// The call, as the [`LlmCall`] that [`record`](LlmRecord::record) writes.
    pub fn call(&self) -> &LlmCall {
        &self.call
    }

    /// The error (`error.type`, message) of a failed call.
    pub fn error(&self) -> Option<(&str, &str)> {
        self.error.as_ref().map(|(t, m)| (t.as_str(), m.as_str()))
    }

    /// Writes the call to the current span, and marks the span failed when the call failed;
    /// nothing happens when no recorded span is current.
    pub fn record(self) {
        if !span::current_is_recording() {
            return;
        }
        self.call.record();
        span::annotate_attrs(self.attributes);
        if let Some((kind, message)) = self.error {
            span::current_set_error(&kind, &message);
        }
    }
}
