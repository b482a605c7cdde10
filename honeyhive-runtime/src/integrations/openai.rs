//! OpenAI-compatible wire shapes: chat completions (`/chat/completions`, with `stream: true`
//! and `stream_options.include_usage`), the responses API (`/responses`) and embeddings
//! (`/embeddings`), as OpenAI, Azure OpenAI, Ollama, vLLM and mistral.rs serve them.

use serde_json::Value as Json;

use super::{Accum, RequestInfo, ToolCall};
use crate::llm::{LlmCall, Message, ToolDefinition};

/// Request parameters every API shares (under their OpenAI names).
pub(crate) fn parameters(mut call: LlmCall, body: &Json) -> LlmCall {
    if let Some(t) = body["temperature"].as_f64() {
        call = call.temperature(t);
    }
    if let Some(p) = body["top_p"].as_f64() {
        call = call.top_p(p);
    }
    if let Some(k) = body["top_k"].as_f64() {
        call = call.top_k(k);
    }
    if let Some(p) = body["frequency_penalty"].as_f64() {
        call = call.frequency_penalty(p);
    }
    if let Some(p) = body["presence_penalty"].as_f64() {
        call = call.presence_penalty(p);
    }
    if let Some(seed) = body["seed"].as_i64() {
        call = call.seed(seed);
    }
    let max_tokens = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body[k].as_u64());
    if let Some(n) = max_tokens {
        call = call.max_tokens(n);
    }
    for key in ["stop", "stop_sequences"] {
        match &body[key] {
            Json::String(s) => call = call.stop_sequences([s.clone()]),
            Json::Array(items) => {
                call =
                    call.stop_sequences(items.iter().filter_map(|s| s.as_str()).map(str::to_owned));
            }
            _ => {}
        }
    }
    call
}

/// The text of a message's `content`: a string, or the text of its parts (`text`, `input_text`,
/// `output_text`), other parts shown by their type (`[image_url]`).
pub(crate) fn content_text(content: &Json) -> String {
    match content {
        Json::String(s) => s.clone(),
        Json::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                let text = part["text"].as_str().map_or_else(
                    || format!("[{}]", part["type"].as_str().unwrap_or("part")),
                    str::to_owned,
                );
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&text);
            }
            out
        }
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// The tools a request offers, as the typed API's definitions (so they are written in both
/// conventions): chat completions nest them under `function`, the responses API and Anthropic
/// do not (Anthropic names the schema `input_schema`); a built-in tool without a name (the
/// responses API's `web_search`) goes by its type.
pub(crate) fn tools(mut call: LlmCall, body: &Json) -> LlmCall {
    let Some(tools) = body["tools"].as_array() else {
        return call;
    };
    call = call.tools(tools.iter().filter_map(|tool| {
        let function = if tool["function"].is_object() {
            &tool["function"]
        } else {
            tool
        };
        let name = function["name"]
            .as_str()
            .or_else(|| tool["type"].as_str())?;
        let mut definition = ToolDefinition::new(name.to_owned());
        if let Some(description) = function["description"].as_str() {
            definition = definition.description(description);
        }
        let schema = [&function["parameters"], &function["input_schema"]]
            .into_iter()
            .find(|schema| !schema.is_null());
        if let Some(schema) = schema {
            definition = definition.parameters(schema.clone());
        }
        Some(definition)
    }));
    call
}

fn stream_flag(body: &Json, request: &mut RequestInfo) {
    request.stream = body["stream"].as_bool().unwrap_or(false);
}

/// `POST /chat/completions`: parameters, messages (a tool call in the history is shown as its
/// JSON), tools.
pub(crate) fn chat_request(mut call: LlmCall, body: &Json, request: &mut RequestInfo) -> LlmCall {
    call = tools(parameters(call, body), body);
    stream_flag(body, request);
    if let Some(messages) = body["messages"].as_array() {
        call = call.messages(messages.iter().map(|m| {
            let role = m["role"].as_str().unwrap_or("user").to_owned();
            let mut content = content_text(&m["content"]);
            if content.is_empty() && m["tool_calls"].is_array() {
                content = m["tool_calls"].to_string();
            }
            Message::new(role, content)
        }));
    }
    call
}

/// `POST /responses`: `instructions` as the system message, `input` as a string or as items
/// (messages, function calls and their outputs).
pub(crate) fn responses_request(
    mut call: LlmCall,
    body: &Json,
    request: &mut RequestInfo,
) -> LlmCall {
    call = tools(parameters(call, body), body);
    stream_flag(body, request);
    if let Some(instructions) = body["instructions"].as_str() {
        call = call.message("system", instructions.to_owned());
    }
    match &body["input"] {
        Json::String(s) => call = call.message("user", s.clone()),
        Json::Array(items) => {
            call = call.messages(items.iter().map(|item| match item["type"].as_str() {
                Some("function_call") => Message::new("assistant", item.to_string()),
                Some("function_call_output") => Message::new("tool", content_text(&item["output"])),
                _ => Message::new(
                    item["role"].as_str().unwrap_or("user").to_owned(),
                    content_text(&item["content"]),
                ),
            }));
        }
        _ => {}
    }
    call
}

fn usage(acc: &mut Accum, usage: &Json) {
    if !usage.is_object() {
        return;
    }
    acc.input_tokens = usage["prompt_tokens"]
        .as_u64()
        .or_else(|| usage["input_tokens"].as_u64())
        .or(acc.input_tokens);
    acc.output_tokens = usage["completion_tokens"]
        .as_u64()
        .or_else(|| usage["output_tokens"].as_u64())
        .or(acc.output_tokens);
    let input_details = if usage["prompt_tokens_details"].is_object() {
        &usage["prompt_tokens_details"]
    } else {
        &usage["input_tokens_details"]
    };
    let output_details = if usage["completion_tokens_details"].is_object() {
        &usage["completion_tokens_details"]
    } else {
        &usage["output_tokens_details"]
    };
    acc.cache_read = input_details["cached_tokens"].as_u64().or(acc.cache_read);
    acc.reasoning = output_details["reasoning_tokens"]
        .as_u64()
        .or(acc.reasoning);
    // mistral.rs reports its own speed in the usage object.
    if usage.get("avg_tok_per_sec").is_some() {
        acc.provider_hint = Some("mistral_rs");
    }
}

fn ids(acc: &mut Accum, body: &Json) {
    if let Some(id) = body["id"].as_str() {
        acc.id = Some(id.to_owned());
    }
    if let Some(model) = body["model"].as_str() {
        acc.model = Some(model.to_owned());
    }
}

fn tool_call(json: &Json) -> ToolCall {
    ToolCall {
        id: json["id"]
            .as_str()
            .or_else(|| json["call_id"].as_str())
            .unwrap_or_default()
            .to_owned(),
        name: json["function"]["name"]
            .as_str()
            .or_else(|| json["name"].as_str())
            .unwrap_or_default()
            .to_owned(),
        arguments: match (&json["function"]["arguments"], &json["arguments"]) {
            (Json::String(s), _) | (Json::Null, Json::String(s)) => s.clone(),
            // Ollama's native shape gives arguments as an object.
            (Json::Null, other) | (other, _) => other.to_string(),
        },
    }
}

/// A chat completion: choices (message, tool calls, finish reason), usage, id, model.
pub(crate) fn chat_response(acc: &mut Accum, body: &Json) {
    ids(acc, body);
    usage(acc, &body["usage"]);
    if body.get("prompt_logprobs").is_some() || body.get("kv_transfer_params").is_some() {
        acc.provider_hint = Some("vllm");
    }
    for choice in body["choices"].as_array().into_iter().flatten() {
        let index = usize::try_from(choice["index"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        let message = &choice["message"];
        let mut text = content_text(&message["content"]);
        if text.is_empty()
            && let Some(refusal) = message["refusal"].as_str()
        {
            refusal.clone_into(&mut text);
        }
        if let Some(slot) = acc.text(index) {
            *slot = text;
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            acc.push_tool_call(tool_call(call));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            acc.finish_reason_at(index, reason);
        }
    }
}

/// One `chat.completion.chunk`: content and tool-call deltas, the finish reason, and usage in
/// the last chunk when the request set `stream_options.include_usage`. Returns whether it
/// carried generated content.
pub(crate) fn chat_stream_chunk(acc: &mut Accum, chunk: &Json) -> bool {
    if chunk["error"].is_object() {
        super::error_body(acc, chunk);
        return false;
    }
    ids(acc, chunk);
    usage(acc, &chunk["usage"]);
    let mut content = false;
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        let index = usize::try_from(choice["index"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        let delta = &choice["delta"];
        // A refusal streams in its own field, and is the answer as the plain response's is.
        let text = delta["content"]
            .as_str()
            .filter(|t| !t.is_empty())
            .or_else(|| delta["refusal"].as_str().filter(|t| !t.is_empty()));
        if let Some(text) = text
            && let Some(slot) = acc.text(index)
        {
            Accum::append(slot, text);
            content = true;
        }
        // A reasoning model's first tokens are its reasoning (DeepSeek's and vLLM's
        // `reasoning_content`, OpenRouter's `reasoning`), as Anthropic's thinking is.
        if ["reasoning_content", "reasoning"]
            .iter()
            .any(|k| delta[*k].as_str().is_some_and(|t| !t.is_empty()))
        {
            content = true;
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            content = true;
            // A call by its choice and its position in that choice's calls.
            let position = call["index"].as_u64().unwrap_or(0) & u64::from(u32::MAX);
            let slot = (u64::try_from(index).unwrap_or(u64::MAX) << 32) | position;
            let id = call["id"].as_str().filter(|id| !id.is_empty());
            // Another id at the same position: a new call from a server that numbers none.
            let another = acc
                .tool_slot(slot)
                .is_some_and(|tc| id.is_some_and(|id| !tc.id.is_empty() && tc.id != id));
            let tc = if another {
                acc.new_tool_slot(slot)
            } else {
                acc.tool_slot(slot)
            };
            let Some(tc) = tc else {
                continue;
            };
            if let Some(id) = id {
                id.clone_into(&mut tc.id);
            }
            // The name comes whole in the first delta; some servers repeat it in each.
            if let Some(name) = call["function"]["name"].as_str()
                && tc.name != name
            {
                tc.name.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                Accum::append(&mut tc.arguments, args);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            acc.finish_reason_at(index, reason);
        }
    }
    content
}

/// A response object: output items (messages and function calls), usage (with cached and
/// reasoning tokens), status as the finish reason (`incomplete` gives its reason).
pub(crate) fn responses_response(acc: &mut Accum, body: &Json) {
    ids(acc, body);
    usage(acc, &body["usage"]);
    let mut text = String::new();
    for item in body["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    let piece = part["text"].as_str().or_else(|| part["refusal"].as_str());
                    if let Some(piece) = piece {
                        text.push_str(piece);
                    }
                }
            }
            Some("function_call") => acc.push_tool_call(tool_call(item)),
            _ => {}
        }
    }
    // The whole text, in place of the deltas a stream gave (kept when a failed response
    // carries none).
    if let Some(slot) = acc.text(0)
        && (!text.is_empty() || slot.is_empty())
    {
        *slot = text;
    }
    let reason = match body["status"].as_str() {
        Some("incomplete") => body["incomplete_details"]["reason"].as_str(),
        Some("completed") if acc.tool_calls.is_empty() => Some("stop"),
        Some("completed") => Some("tool_calls"),
        other => other,
    };
    if let Some(reason) = reason {
        acc.finish_reason_at(0, reason);
    }
    if body["error"].is_object() {
        super::error_body(acc, body);
    }
}

/// One event of a responses stream: text deltas count as content; `response.completed` (or
/// `response.incomplete` / `response.failed`) carries the whole response.
pub(crate) fn responses_stream_event(acc: &mut Accum, event: &Json) -> bool {
    match event["type"].as_str() {
        // The text as it streams, so that a stream dropped before its end keeps what came.
        Some("response.output_text.delta" | "response.refusal.delta") => {
            if let Some(delta) = event["delta"].as_str()
                && let Some(slot) = acc.text(0)
            {
                Accum::append(slot, delta);
            }
            true
        }
        Some("response.function_call_arguments.delta") => true,
        Some("response.completed" | "response.incomplete" | "response.failed") => {
            responses_response(acc, &event["response"]);
            acc.stream_ended = true;
            false
        }
        Some("error") => {
            acc.error = Some((
                event["code"].as_str().unwrap_or("error").to_owned(),
                event["message"].as_str().unwrap_or_default().to_owned(),
            ));
            false
        }
        _ => false,
    }
}

/// An embeddings response: model and prompt tokens (the vectors themselves are not recorded).
pub(crate) fn embeddings_response(acc: &mut Accum, body: &Json) {
    ids(acc, body);
    acc.input_tokens = body["usage"]["prompt_tokens"].as_u64();
}
