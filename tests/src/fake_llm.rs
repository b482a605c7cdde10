//! Fake OpenAI- and Anthropic-compatible servers on 127.0.0.1, answering with the response
//! shapes of the public API references (chat completions, responses, embeddings, Anthropic
//! Messages), streams included, and with scripted errors.
//!
//! One server answers every API by path: `/v1/chat/completions`, `/v1/responses`,
//! `/v1/embeddings`, `/v1/messages`. A request whose last user message mentions "weather" gets a
//! tool call (`get_weather`) instead of text. `stream: true` gets server-sent events, one event
//! per HTTP chunk, written as they would be generated.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

/// The answer every text completion gives.
pub const ANSWER: &str = "Paris is the capital of France.";
/// The pieces [`ANSWER`] is streamed in.
pub const ANSWER_PIECES: [&str; 4] = ["Paris", " is the capital", " of", " France."];
/// The arguments of the scripted tool call.
pub const WEATHER_ARGS: &str = r#"{"city":"Paris"}"#;

/// Usage the OpenAI-compatible answers report: prompt, completion, cached, reasoning.
pub const OPENAI_USAGE: (u64, u64, u64, u64) = (19, 10, 4, 2);
/// Usage the Anthropic answers report: input (without cache), output, cache read, cache write.
pub const ANTHROPIC_USAGE: (u64, u64, u64, u64) = (25, 15, 100, 7);

/// A scripted failure for the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `retry-after: <secs>` and the API's rate-limit error body.
    RateLimited {
        /// The `retry-after` header, in seconds.
        retry_after: u32,
    },
    /// 500 with the API's server error body.
    ServerError,
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request path, with its query.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    faults: VecDeque<Fault>,
    received: Vec<Received>,
    /// The next stream stops after its first event until this is signalled.
    hold: Option<mpsc::Receiver<()>>,
    /// The next stream's content type, in place of `text/event-stream` (empty: none).
    stream_content_type: Option<&'static str>,
}

/// A running fake LLM server; it lives as long as the test process.
#[derive(Clone)]
pub struct FakeLlm {
    base: String,
    state: Arc<Mutex<State>>,
}

impl FakeLlm {
    /// Starts a server on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound.
    pub fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("a bound address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(&stream, &state));
            }
        });
        FakeLlm { base, state }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The URL of `path` (e.g. `/v1/chat/completions`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next request fails with `fault` (faults queue up in order).
    pub fn fail_next(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// The next stream is sent with this content type (empty: without one), as servers that
    /// stream with `text/plain` or no content type do.
    pub fn next_stream_content_type(&self, content_type: &'static str) {
        self.lock().stream_content_type = Some(content_type);
    }

    /// The next stream sends its first event and then waits until the returned sender is used
    /// (or dropped): a client that shows the first event before the rest exists proves the
    /// stream is not buffered.
    pub fn hold_next_stream(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        self.lock().hold = Some(rx);
        tx
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn serve(stream: &TcpStream, state: &Mutex<State>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    while let Some(crate::http1::Request {
        path,
        headers,
        body,
        ..
    }) = crate::http1::read_request(&mut reader)
    {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (fault, hold, content_type) = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.received.push(Received {
                path: path.clone(),
                headers,
                body,
            });
            let fault = state.faults.pop_front();
            let hold = if fault.is_none() && request["stream"] == true {
                state.hold.take()
            } else {
                None
            };
            let content_type = if fault.is_none() && request["stream"] == true {
                state.stream_content_type.take()
            } else {
                None
            };
            (fault, hold, content_type)
        };
        let route = path.split('?').next().unwrap_or_default();
        let anthropic = route.ends_with("/messages");
        let written = if let Some(fault) = fault {
            write_fault(stream, &fault, anthropic)
        } else if request["stream"] == true {
            let events = match route {
                r if r.ends_with("/chat/completions") => chat_stream(&request),
                r if r.ends_with("/responses") => responses_stream(&request),
                _ => anthropic_stream(&request),
            };
            let content_type = content_type.unwrap_or("text/event-stream; charset=utf-8");
            write_stream(stream, &events, hold.as_ref(), content_type)
        } else {
            let body = match route {
                r if r.ends_with("/chat/completions") => chat(&request),
                r if r.ends_with("/responses") => responses(&request),
                r if r.ends_with("/embeddings") => embeddings(&request),
                r if r.ends_with("/messages") => anthropic_message(&request),
                _ => {
                    let _ =
                        write_json(stream, 404, "Not Found", &[], &json!({"error": "no route"}));
                    continue;
                }
            };
            write_json(stream, 200, "OK", &[], &body)
        };
        if written.is_err() {
            return;
        }
    }
}

fn write_json(
    mut w: &TcpStream,
    status: u16,
    reason: &str,
    extra: &[(&str, String)],
    body: &Value,
) -> std::io::Result<()> {
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    w.flush()
}

fn write_fault(w: &TcpStream, fault: &Fault, anthropic: bool) -> std::io::Result<()> {
    match (fault, anthropic) {
        (Fault::RateLimited { retry_after }, false) => write_json(
            w,
            429,
            "Too Many Requests",
            &[("retry-after", retry_after.to_string())],
            &json!({"error": {
                "message": "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                "type": "requests",
                "param": null,
                "code": "rate_limit_exceeded"
            }}),
        ),
        (Fault::RateLimited { retry_after }, true) => write_json(
            w,
            429,
            "Too Many Requests",
            &[("retry-after", retry_after.to_string())],
            &json!({"type": "error", "error": {
                "type": "rate_limit_error",
                "message": "Number of request tokens has exceeded your per-minute rate limit"
            }}),
        ),
        (Fault::ServerError, false) => write_json(
            w,
            500,
            "Internal Server Error",
            &[],
            &json!({"error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error",
                "param": null,
                "code": null
            }}),
        ),
        (Fault::ServerError, true) => write_json(
            w,
            500,
            "Internal Server Error",
            &[],
            &json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
        ),
    }
}

/// An event stream, one event per chunk, flushed one by one.
fn write_stream(
    mut w: &TcpStream,
    events: &[(Option<&str>, Value)],
    hold: Option<&mpsc::Receiver<()>>,
    content_type: &str,
) -> std::io::Result<()> {
    let content_type = if content_type.is_empty() {
        String::new()
    } else {
        format!("content-type: {content_type}\r\n")
    };
    write!(
        w,
        "HTTP/1.1 200 OK\r\n{content_type}cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
    )?;
    w.flush()?;
    for (i, (name, data)) in events.iter().enumerate() {
        let data = match data {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let event = match name {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        };
        write!(w, "{:x}\r\n{event}\r\n", event.len())?;
        w.flush()?;
        if i == 0
            && let Some(hold) = hold
        {
            // Signalled, or the test dropped its sender: either way go on.
            let _ = hold.recv();
        }
    }
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

fn model_of(request: &Value, default: &str) -> String {
    request["model"].as_str().unwrap_or(default).to_owned()
}

/// Whether the last user message asks about the weather (the scripted tool call).
fn wants_tool(request: &Value) -> bool {
    let last_user = |items: &Value| {
        items
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| m["content"].to_string())
    };
    let text = last_user(&request["messages"])
        .or_else(|| last_user(&request["input"]))
        .unwrap_or_else(|| request["input"].to_string());
    text.contains("weather") && request["tools"].is_array()
}

fn chat(request: &Value) -> Value {
    let (prompt, completion, cached, reasoning) = OPENAI_USAGE;
    let tool = wants_tool(request);
    let message = if tool {
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_abc123",
            "type": "function",
            "function": {"name": "get_weather", "arguments": WEATHER_ARGS}
        }], "refusal": null, "annotations": []})
    } else {
        json!({"role": "assistant", "content": ANSWER, "refusal": null, "annotations": []})
    };
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": model_of(request, "gpt-4o-mini"),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": if tool { "tool_calls" } else { "stop" }
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake"
    })
}

fn chat_stream(request: &Value) -> Vec<(Option<&'static str>, Value)> {
    let model = model_of(request, "gpt-4o-mini");
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-stream-1",
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null
        })
    };
    let mut events = vec![(
        None,
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ),
    )];
    let finish = if wants_tool(request) {
        events.push((
            None,
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_abc123", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
        ));
        for piece in [r#"{"ci"#, r#"ty":"#, r#""Paris"}"#] {
            events.push((
                None,
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ),
            ));
        }
        "tool_calls"
    } else {
        for piece in ANSWER_PIECES {
            events.push((None, chunk(json!({"content": piece}), Value::Null)));
        }
        "stop"
    };
    events.push((None, chunk(json!({}), json!(finish))));
    if request["stream_options"]["include_usage"] == true {
        let (prompt, completion, cached, reasoning) = OPENAI_USAGE;
        events.push((
            None,
            json!({
                "id": "chatcmpl-stream-1",
                "object": "chat.completion.chunk",
                "created": 1_741_569_952,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                    "completion_tokens_details": {"reasoning_tokens": reasoning}
                }
            }),
        ));
    }
    events.push((None, json!("[DONE]")));
    events
}

fn response_object(request: &Value, status: &str, output: &Value) -> Value {
    let (prompt, completion, cached, reasoning) = OPENAI_USAGE;
    json!({
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1_741_476_542,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": request["instructions"],
        "max_output_tokens": request["max_output_tokens"],
        "model": model_of(request, "gpt-4.1"),
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion
        },
        "user": null,
        "metadata": {}
    })
}

fn responses_output(request: &Value) -> Value {
    if wants_tool(request) {
        json!([{
            "type": "function_call",
            "id": "fc_12345xyz",
            "call_id": "call_12345xyz",
            "name": "get_weather",
            "arguments": WEATHER_ARGS,
            "status": "completed"
        }])
    } else {
        json!([{
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]
        }])
    }
}

fn responses(request: &Value) -> Value {
    response_object(request, "completed", &responses_output(request))
}

fn responses_stream(request: &Value) -> Vec<(Option<&'static str>, Value)> {
    let created = response_object(request, "in_progress", &json!([]));
    let mut events = vec![
        (
            Some("response.created"),
            json!({"type": "response.created", "sequence_number": 0, "response": created}),
        ),
        (
            Some("response.in_progress"),
            json!({"type": "response.in_progress", "sequence_number": 1, "response": created}),
        ),
    ];
    let item_id = "msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654";
    events.push((
        Some("response.output_item.added"),
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
            "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
    ));
    for (i, piece) in ANSWER_PIECES.iter().enumerate() {
        events.push((
            Some("response.output_text.delta"),
            json!({"type": "response.output_text.delta", "sequence_number": 3 + i,
                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece}),
        ));
    }
    events.push((
        Some("response.output_text.done"),
        json!({"type": "response.output_text.done", "sequence_number": 7, "item_id": item_id,
            "output_index": 0, "content_index": 0, "text": ANSWER}),
    ));
    events.push((
        Some("response.completed"),
        json!({"type": "response.completed", "sequence_number": 8,
            "response": response_object(request, "completed", &responses_output(request))}),
    ));
    events
}

fn embeddings(request: &Value) -> Value {
    let inputs = match &request["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| {
            json!({"object": "embedding", "index": i,
                "embedding": [0.002_306_425_5, -0.009_327_292, 0.015_797_347, -0.007_840_222_4]})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model_of(request, "text-embedding-3-small"),
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    })
}

fn anthropic_usage() -> Value {
    let (input, output, read, write) = ANTHROPIC_USAGE;
    json!({
        "input_tokens": input,
        "output_tokens": output,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read
    })
}

fn anthropic_message(request: &Value) -> Value {
    let tool = wants_tool(request);
    let content = if tool {
        json!([
            {"type": "text", "text": "Let me check the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"city": "Paris"}}
        ])
    } else {
        json!([{"type": "text", "text": ANSWER}])
    };
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": model_of(request, "claude-sonnet-4-5"),
        "content": content,
        "stop_reason": if tool { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
        "usage": anthropic_usage()
    })
}

fn anthropic_stream(request: &Value) -> Vec<(Option<&'static str>, Value)> {
    let (input, _, read, write) = ANTHROPIC_USAGE;
    let mut events = vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {
                "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model_of(request, "claude-sonnet-4-5"),
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": 1,
                    "cache_creation_input_tokens": write, "cache_read_input_tokens": read}
            }}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        (Some("ping"), json!({"type": "ping"})),
    ];
    let tool = wants_tool(request);
    let pieces: &[&str] = if tool {
        &["Let me check", " the weather."]
    } else {
        &ANSWER_PIECES
    };
    for piece in pieces {
        events.push((
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 0}),
    ));
    if tool {
        events.push((
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
        ));
        for piece in ["", r#"{"city":"#, r#" "Paris"}"#] {
            events.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        events.push((
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    events.push((
        Some("message_delta"),
        json!({"type": "message_delta",
            "delta": {"stop_reason": if tool { "tool_use" } else { "end_turn" }, "stop_sequence": null},
            "usage": {"output_tokens": ANTHROPIC_USAGE.1}}),
    ));
    events.push((Some("message_stop"), json!({"type": "message_stop"})));
    events
}
