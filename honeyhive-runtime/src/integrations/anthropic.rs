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

/// Reads a `usage` object. A stream reports usage twice: `message_start` with the prompt's counts
/// and a placeholder output count, `message_delta` with the cumulative counts, where a field left
/// out keeps what `message_start` said. `final_output` is false for `message_start`, whose output
/// count is not a count: a stream cut off after it records no output tokens rather than 1.
fn usage(acc: &mut Accum, usage: &Json, final_output: bool) {
    if !usage.is_object() {
        return;
    }
    let cached = |acc: &Accum| acc.cache_read.unwrap_or(0) + acc.cache_write.unwrap_or(0);
    // The prompt's own count, without the cached tokens added to it.
    let prompt = usage["input_tokens"]
        .as_u64()
        .or_else(|| acc.input_tokens.map(|n| n.saturating_sub(cached(acc))));
    if let Some(read) = usage["cache_read_input_tokens"].as_u64() {
        acc.cache_read = Some(read);
    }
    if let Some(write) = usage["cache_creation_input_tokens"].as_u64() {
        acc.cache_write = Some(write);
    }
    if let Some(prompt) = prompt {
        acc.input_tokens = Some(prompt + cached(acc));
    }
    if final_output && let Some(output) = usage["output_tokens"].as_u64() {
        acc.output_tokens = Some(output);
    }
}

/// A message response: content blocks (text, tool use), stop reason, usage, id, model.
pub(crate) fn response(acc: &mut Accum, body: &Json) {
    message_head(acc, body, true);
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

fn message_head(acc: &mut Accum, message: &Json, final_output: bool) {
    if let Some(id) = message["id"].as_str() {
        acc.id = Some(id.to_owned());
    }
    if let Some(model) = message["model"].as_str() {
        acc.model = Some(model.to_owned());
    }
    usage(acc, &message["usage"], final_output);
}

/// One event of a message stream; returns whether it carried generated content.
pub(crate) fn stream_event(acc: &mut Accum, name: &str, data: &Json) -> bool {
    let kind = data["type"].as_str().unwrap_or(name);
    match kind {
        "message_start" => {
            message_head(acc, &data["message"], false);
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
            usage(acc, &data["usage"], true);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn streamed(events: &[Json]) -> Accum {
        let mut acc = Accum::default();
        for event in events {
            stream_event(&mut acc, event["type"].as_str().unwrap(), event);
        }
        acc
    }

    #[test]
    fn a_later_usage_keeps_the_cache_counts_it_leaves_out() {
        let start = json!({"type": "message_start", "message": {"id": "msg_1", "usage": {
            "input_tokens": 12, "output_tokens": 1,
            "cache_creation_input_tokens": 30, "cache_read_input_tokens": 400}}});
        // A `message_delta` with the prompt's count again but no cache fields (as proxies send
        // it), and one with the cache fields but no prompt count.
        for delta_usage in [
            json!({"input_tokens": 12, "output_tokens": 57}),
            json!({"output_tokens": 57, "cache_read_input_tokens": 400}),
            json!({"output_tokens": 57}),
        ] {
            let delta = json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn"}, "usage": delta_usage});
            let acc = streamed(&[start.clone(), delta]);
            assert_eq!(acc.input_tokens, Some(12 + 30 + 400), "{delta_usage}");
            assert_eq!(acc.cache_read, Some(400));
            assert_eq!(acc.cache_write, Some(30));
            assert_eq!(acc.output_tokens, Some(57));
        }
        // A cache count that changes in `message_delta` replaces the earlier one in the input.
        let delta = json!({"type": "message_delta", "usage": {
            "output_tokens": 5, "cache_read_input_tokens": 100}});
        let acc = streamed(&[start.clone(), delta]);
        assert_eq!(acc.input_tokens, Some(12 + 30 + 100));
        // Cut off after `message_start`: the prompt is counted, the placeholder output is not.
        let acc = streamed(&[start]);
        assert_eq!(acc.input_tokens, Some(442));
        assert_eq!(acc.output_tokens, None);
    }
}
