//! A chat's messages rendered as JSON (`gen_ai.input.messages`, `gen_ai.output.messages`,
//! OpenInference's `input.value`) stay JSON that parses when they are longer than the capture
//! cap: the longest contents are cut, each with its marker, the short ones stay whole, and a
//! conversation too long for the cap keeps its first message and its latest ones. Cutting the
//! rendered text instead would send a value no reader can parse. And a value is said to be
//! JSON (`input.mime_type`, `output.mime_type`) only when it parses.

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Conventions, LlmCall, ToolCall, record_tool_call, trace};

const CAP: usize = 2048;

/// `(role, content)` of each message in a JSON list, read the way GenAI or OpenInference
/// writes it; panics if the value is not a list of messages.
fn messages(span: &FinishedSpan, key: &str) -> Vec<(String, String)> {
    let text = span.str(key).unwrap_or_else(|| panic!("no {key}"));
    assert!(text.len() <= CAP, "{key} is {} bytes", text.len());
    let json: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{key} does not parse: {e}"));
    json.as_array()
        .unwrap_or_else(|| panic!("{key} is not a list"))
        .iter()
        .map(|m| {
            let content = m
                .get("content")
                .or_else(|| m["parts"][0].get("content"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_else(|| panic!("a message of {key} has no content: {m}"));
            (m["role"].as_str().unwrap().to_owned(), content.to_owned())
        })
        .collect()
}

fn cut(content: &str) -> bool {
    content.contains("…[truncated ") && content.ends_with(" bytes]")
}

/// Text that needs escaping in JSON, for the cut to count escapes and not only bytes.
fn pasted_document() -> String {
    "line \"quoted\" \\ tab\t é\n".repeat(1_000)
}

const SYSTEM: &str = "You are a careful assistant. Answer in one sentence.";

#[trace(event_type = "model")]
fn long_chat() -> u32 {
    LlmCall::new("gpt-4o")
        .provider("openai")
        .message("system", SYSTEM)
        .message("user", pasted_document())
        .message("assistant", "a".repeat(5_000))
        .message("user", "and in short?")
        .completion("b".repeat(9_000))
        .finish_reason("stop")
        .usage(10, 5)
        .record();
    1
}

#[test]
fn a_long_chat_is_cut_message_by_message_and_still_parses() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).conventions(Conventions::Both));
    assert_eq!(long_chat(), 1);
    let spans = rec.spans();
    let span = spans.get("long_chat");

    for key in ["gen_ai.input.messages", "input.value"] {
        let got = messages(span, key);
        let roles: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"], "{key}");
        // The short messages are whole, the long ones cut where they began.
        assert_eq!(got[0].1, SYSTEM, "{key}");
        assert_eq!(got[3].1, "and in short?", "{key}");
        assert!(
            cut(&got[1].1) && pasted_document().starts_with(got[1].1.split('…').next().unwrap())
        );
        assert!(
            cut(&got[2].1) && got[2].1.starts_with("aaaa"),
            "{key}: {}",
            got[2].1
        );
        // What the cap leaves is shared out, not spent on the first long text.
        let kept = |c: &str| c.split('…').next().unwrap().len();
        assert!(kept(&got[2].1) > 200, "{key}: {}", got[2].1);
        // Most of the cap is used.
        assert!(span.str(key).unwrap().len() > CAP * 3 / 4, "{key}");
    }
    // Still JSON, so still said to be.
    assert_eq!(span.str("input.mime_type"), Some("application/json"));

    let output = messages(span, "gen_ai.output.messages");
    assert_eq!(output.len(), 1);
    assert_eq!(output[0].0, "assistant");
    assert!(cut(&output[0].1) && output[0].1.starts_with("bbbb"));
    let json = span.json("gen_ai.output.messages").unwrap();
    assert_eq!(json[0]["finish_reason"], "stop");
}

#[trace(event_type = "model")]
fn long_conversation(turns: usize) -> u32 {
    let mut call = LlmCall::new("gpt-4o")
        .provider("openai")
        .message("system", SYSTEM);
    for i in 0..turns {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        call = call.message(role, format!("turn {i}: {}", "x".repeat(40)));
    }
    call.completion("done").usage(10, 5).record();
    1
}

#[test]
fn a_conversation_too_long_for_the_cap_keeps_its_first_and_latest_messages() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).conventions(Conventions::Both));
    assert_eq!(long_conversation(400), 1);
    let spans = rec.spans();
    let span = spans.get("long_conversation");
    for key in ["gen_ai.input.messages", "input.value"] {
        let got = messages(span, key);
        assert!(
            got.len() > 5 && got.len() < 401,
            "{key}: {} messages",
            got.len()
        );
        assert_eq!(got[0], ("system".to_owned(), SYSTEM.to_owned()), "{key}");
        // The latest turns, in order, up to the last one.
        let last = got.last().unwrap();
        assert!(last.1.starts_with("turn 399: "), "{key}: {last:?}");
        let numbers: Vec<usize> = got[1..]
            .iter()
            .map(|(_, c)| {
                c["turn ".len()..]
                    .split(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let expected: Vec<usize> = (400 - numbers.len()..400).collect();
        assert_eq!(numbers, expected, "{key}");
    }
    assert_eq!(span.str("input.mime_type"), Some("application/json"));
    // 401 messages have 802 indexed copies (`llm.input_messages.N.message.*`), more than a
    // span's 256 attributes: the copies are what the budget gives up (and counts), not the
    // answer or the chat's JSON.
    assert_eq!(span.str("output.value"), Some("done"));
    assert_eq!(messages(span, "gen_ai.output.messages")[0].1, "done");
    assert!(span.i64("honeyhive.dropped_attributes").unwrap() > 500);
}

#[test]
fn a_chat_within_the_cap_is_left_whole() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).conventions(Conventions::Both));
    assert_eq!(long_conversation(6), 1);
    let spans = rec.spans();
    let span = spans.get("long_conversation");
    let got = messages(span, "gen_ai.input.messages");
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|(_, c)| !cut(c)));
    assert_eq!(got, messages(span, "input.value"));
}

#[trace(event_type = "tool")]
fn tool(arguments: &'static str, result_items: usize) -> u32 {
    let items: Vec<honeyhive_runtime::Value> = (0..result_items)
        .map(|i| format!("item {i}").into())
        .collect();
    record_tool_call(
        ToolCall::new("search")
            .arguments_json(arguments)
            .result(items),
    );
    1
}

#[test]
fn a_tool_span_says_json_only_of_what_parses() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).conventions(Conventions::Both));
    // Arguments a model wrote that do not parse, and a result cut at the cap.
    assert_eq!(tool(r#"{"query": "rust"#, 1_000), 1);
    // Both whole and valid.
    assert_eq!(tool(r#"{"query": "rust"}"#, 3), 1);
    let spans = rec.spans();
    let with_input = |input: &str| {
        spans
            .all("tool")
            .find(|s| s.str("input.value") == Some(input))
            .unwrap()
    };
    let (bad, good) = (
        with_input(r#"{"query": "rust"#),
        with_input(r#"{"query": "rust"}"#),
    );

    assert_eq!(bad.str("input.mime_type"), None);
    let result = bad.str("output.value").unwrap();
    assert!(result.starts_with(r#"["item 0","item 1""#) && result.contains("…[truncated"));
    assert_eq!(bad.str("output.mime_type"), None);

    assert_eq!(good.json("input.value").unwrap()["query"], "rust");
    assert_eq!(good.str("input.mime_type"), Some("application/json"));
    assert_eq!(good.json("output.value").unwrap()[2], "item 2");
    assert_eq!(good.str("output.mime_type"), Some("application/json"));
}
