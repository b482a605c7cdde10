//! Anthropic Messages (`POST /v1/messages`): the request, the message response and its stream
//! (`message_start`, `content_block_start`, `content_block_delta`, `message_delta`, `error`).
//!
//! Anthropic counts cached prompt tokens apart from `input_tokens`; they are added to the input
//! tokens here, as GenAI counts them (and as [`LlmCall`] expects).

use serde_json::Value as Json;

use super::openai::{content_text, parameters, tools};
use super::{Accum, RequestInfo, ToolCall};
use crate::llm::{LlmCall, Message};

/// The text of Anthropic content: a string, or blocks (`text`, `tool_use` shown as its JSON,
/// `tool_result` as its content, others by their type).
fn blocks_text(content: &Json) -> String {
    let Json::Array(blocks) = content else {
        return content_text(content);
    };
    let mut out = String::new();
    for block in blocks {
        let text = match block["type"].as_str() {
            Some("text") => block["text"].as_str().unwrap_or_default().to_owned(),
            Some("tool_use") => block.to_string(),
            Some("tool_result") => blocks_text(&block["content"]),
            Some("thinking") => continue,
            other => format!("[{}]", other.unwrap_or("block")),
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&text);
    }
    out
}

/// `POST /v1/messages`: parameters, `system`, messages, tools.
pub(crate) fn request(mut call: LlmCall, body: &Json, request: &mut RequestInfo) -> LlmCall {
    call = tools(parameters(call, body), body);
    request.stream = body["stream"].as_bool().unwrap_or(false);
    if !body["system"].is_null() {
        call = call.message("system", blocks_text(&body["system"]));
    }
    if let Some(messages) = body["messages"].as_array() {
        call = call.messages(messages.iter().map(|m| {
            Message::new(
                m["role"].as_str().unwrap_or("user").to_owned(),
                blocks_text(&m["content"]),
            )
        }));
    }
    call
}

fn usage(acc: &mut Accum, usage: &Json) {
    if !usage.is_object() {
        return;
    }
    let read = usage["cache_read_input_tokens"].as_u64();
    let write = usage["cache_creation_input_tokens"].as_u64();
    if let Some(input) = usage["input_tokens"].as_u64() {
        acc.input_tokens = Some(input + read.unwrap_or(0) + write.unwrap_or(0));
    }
    if read.is_some() {
        acc.cache_read = read;
    }
    if write.is_some() {
        acc.cache_write = write;
    }
    // `message_delta` carries the cumulative output count.
    if let Some(output) = usage["output_tokens"].as_u64() {
        acc.output_tokens = Some(output);
    }
}

/// A message response: content blocks (text, tool use), stop reason, usage, id, model.
pub(crate) fn response(acc: &mut Accum, body: &Json) {
    message_head(acc, body);
    let mut text = String::new();
    for block in body["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => acc.push_tool_call(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"].as_str().unwrap_or_default().to_owned(),
                arguments: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    if let Some(slot) = acc.text(0) {
        *slot = text;
    }
    if let Some(reason) = body["stop_reason"].as_str() {
        acc.finish_reason_at(0, reason);
    }
}

fn message_head(acc: &mut Accum, message: &Json) {
    if let Some(id) = message["id"].as_str() {
        acc.id = Some(id.to_owned());
    }
    if let Some(model) = message["model"].as_str() {
        acc.model = Some(model.to_owned());
    }
    usage(acc, &message["usage"]);
}

/// One event of a message stream; returns whether it carried generated content.
pub(crate) fn stream_event(acc: &mut Accum, name: &str, data: &Json) -> bool {
    let kind = data["type"].as_str().unwrap_or(name);
    match kind {
        "message_start" => {
            message_head(acc, &data["message"]);
            false
        }
        "content_block_start" => {
            let block = &data["content_block"];
            let slot = data["index"].as_u64().unwrap_or(0);
            match block["type"].as_str() {
                Some("tool_use") => {
                    if let Some(tc) = acc.tool_slot(slot) {
                        block["id"]
                            .as_str()
                            .unwrap_or_default()
                            .clone_into(&mut tc.id);
                        block["name"]
                            .as_str()
                            .unwrap_or_default()
                            .clone_into(&mut tc.name);
                    }
                    true
                }
                Some("text") => {
                    let text = block["text"].as_str().unwrap_or_default();
                    if let Some(slot) = acc.text(0) {
                        Accum::append(slot, text);
                    }
                    !text.is_empty()
                }
                _ => false,
            }
        }
        "content_block_delta" => {
            let delta = &data["delta"];
            match delta["type"].as_str() {
                Some("text_delta") => {
                    if let Some(slot) = acc.text(0) {
                        Accum::append(slot, delta["text"].as_str().unwrap_or_default());
                    }
                    true
                }
                Some("input_json_delta") => {
                    let slot = data["index"].as_u64().unwrap_or(0);
                    if let Some(tc) = acc.tool_slot(slot) {
                        Accum::append(
                            &mut tc.arguments,
                            delta["partial_json"].as_str().unwrap_or_default(),
                        );
                    }
                    true
                }
                Some("thinking_delta") => true,
                _ => false,
            }
        }
        "message_delta" => {
            if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                acc.finish_reason_at(0, reason);
            }
            usage(acc, &data["usage"]);
            false
        }
        "error" => {
            super::error_body(acc, data);
            false
        }
        "message_stop" => {
            acc.stream_ended = true;
            false
        }
        _ => false,
    }
}
