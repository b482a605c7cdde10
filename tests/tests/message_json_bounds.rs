//! A chat's messages rendered as JSON (`gen_ai.input.messages`, `gen_ai.output.messages`,
//! OpenInference's `input.value`) stay JSON that parses when they are longer than the capture
//! cap: the longest contents are cut, each with its marker, the short ones stay whole, and a
//! conversation too long for the cap keeps its first message and its latest ones. Cutting the
//! rendered text instead would send a value no reader can parse. Every other JSON value we
//! render (tool definitions, retrieved documents, an answer with tool calls, one tool's
//! schema) stays JSON the same way. And a value is said to be JSON (`input.mime_type`,
//! `output.mime_type`) only when it parses.

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{
    Conventions, Document, LlmCall, SpanBuilder, ToolCall, ToolDefinition, enrich_session,
    enrich_span, record_documents, record_tool_call, trace,
};
use serde_json::json;

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
    // Arguments a model wrote that do not parse, and a result too long to render whole (more
    // than eight caps), cut as text.
    assert_eq!(tool(r#"{"query": "rust"#, 5_000), 1);
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

#[trace(event_type = "model")]
fn many_tools() -> u32 {
    let tools = (0..40).map(|i| {
        ToolDefinition::new(format!("tool_{i}"))
            .description(format!("tool {i}: {}", "does things. ".repeat(25)))
            .parameters(json!({"type": "object", "properties": {"q": {"type": "string"}}}))
    });
    LlmCall::new("gpt-4o")
        .provider("openai")
        .message("user", "which tool?")
        .tools(tools)
        .completion("c".repeat(3_000))
        .tool_call(
            ToolCall::new("tool_1")
                .call_id("call_1")
                .arguments_json(json!({"q": "a".repeat(3_000)}).to_string()),
        )
        .finish_reason("tool_calls")
        .record();
    1
}

#[trace(event_type = "model")]
fn one_huge_schema() -> u32 {
    let properties: serde_json::Map<String, serde_json::Value> = (0..300)
        .map(|i| {
            (
                format!("field_{i}"),
                json!({"type": "string", "description": "a field"}),
            )
        })
        .collect();
    LlmCall::new("gpt-4o")
        .provider("openai")
        .message("user", "fill the form")
        .tools([ToolDefinition::new("form")
            .parameters(json!({"type": "object", "properties": properties}))])
        .completion("ok")
        .record();
    1
}

#[trace(event_type = "retriever")]
fn retrieve() -> u32 {
    record_documents((0..10).map(|i| {
        Document::new(format!("document {i}: {}", "text ".repeat(400)))
            .id(format!("d{i}"))
            .score(1.0 - f64::from(i) / 10.0)
    }));
    1
}

fn parsed(span: &FinishedSpan, key: &str) -> serde_json::Value {
    let text = span.str(key).unwrap_or_else(|| panic!("no {key}"));
    assert!(text.len() <= CAP, "{key} is {} bytes", text.len());
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{key} does not parse: {e}: {text}"))
}

#[test]
fn every_json_value_we_render_stays_json_within_the_cap() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).conventions(Conventions::GenAi));
    assert_eq!(many_tools(), 1);
    assert_eq!(retrieve(), 1);
    let spans = rec.spans();

    let tools = spans.get("many_tools");
    let definitions = parsed(tools, "gen_ai.tool.definitions");
    let definitions = definitions.as_array().unwrap();
    // The first and the latest definitions stay, and the list says how many it left out.
    let omitted = omitted(&definitions[1], "items");
    let names: Vec<&str> = definitions
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(names.len() > 1 && names.len() < 40, "{names:?}");
    assert_eq!(names.len() + omitted, 40, "{names:?}");
    assert_eq!(names[0], "tool_0");
    assert_eq!(names[1], format!("tool_{}", omitted + 1));
    assert_eq!(*names.last().unwrap(), "tool_39");
    let output = parsed(tools, "gen_ai.output.messages");
    let parts = output[0]["parts"].as_array().unwrap();
    let call = parts
        .iter()
        .find(|p| p["type"] == "tool_call")
        .expect("the tool call");
    assert_eq!(call["name"], "tool_1");

    let retrieved = spans.get("retrieve");
    let documents = parsed(retrieved, "gen_ai.retrieval.documents");
    let documents = documents.as_array().unwrap();
    // Ten documents, each cut to its share, none left out.
    assert_eq!(documents.len(), 10);
    for (i, d) in documents.iter().enumerate() {
        assert_eq!(d["id"], format!("d{i}"));
        let content = d["content"].as_str().unwrap();
        assert!(
            content.starts_with(&format!("document {i}: text")) && cut(content),
            "{content}"
        );
    }
    assert_eq!(documents[3]["score"], 0.7);
}

#[test]
fn one_tool_schema_longer_than_the_cap_stays_json() {
    let rec = Recorder::with(|b| {
        b.capture_max_bytes(CAP)
            .conventions(Conventions::OpenInference)
    });
    assert_eq!(one_huge_schema(), 1);
    let spans = rec.spans();
    let schema = parsed(spans.get("one_huge_schema"), "llm.tools.0.tool.json_schema");
    assert_eq!(schema["function"]["name"], "form");
    // Still a schema, with fewer properties, not a string.
    let parameters = &schema["function"]["parameters"];
    assert_eq!(parameters["type"], "object");
    let properties = parameters["properties"].as_object().unwrap();
    assert!(
        properties.len() > 2 && properties.len() < 300,
        "{}",
        properties.len()
    );
    assert_eq!(properties["field_0"]["type"], "string");
    // The object says how many keys it left out.
    let omitted = omitted(&properties["…"], "keys");
    assert_eq!(properties.len() - 1 + omitted, 300);
}

/// The count of a marker of entries left out (`"…[12 items omitted]"`, `"[12 keys omitted]"`).
fn omitted(marker: &serde_json::Value, noun: &str) -> usize {
    let text = marker
        .as_str()
        .unwrap_or_else(|| panic!("no marker: {marker}"));
    let count = text
        .trim_start_matches('…')
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(&format!(" {noun} omitted]")))
        .unwrap_or_else(|| panic!("not a marker: {text}"));
    count.parse().unwrap()
}

#[test]
fn json_cut_to_the_cap_keeps_the_order_of_its_keys() {
    let rec = Recorder::with(|b| {
        b.capture_max_bytes(CAP)
            .conventions(Conventions::OpenInference)
    });
    // Keys out of alphabetical order, as a model or an app writes them.
    let by_hand = r#"{"zeta":1,"question":"QQQQ","alpha":[1,2],"mid":{"y":true,"b":null}}"#
        .replace("QQQQ", &"w".repeat(5_000));
    drop(
        SpanBuilder::new("by hand")
            .attribute("input.value", by_hand)
            .start(),
    );
    let spans = rec.spans();
    let text = spans.get("by hand").str("input.value").unwrap();
    assert!(text.len() <= CAP, "{}", text.len());
    let keys: Vec<&str> = [
        "\"zeta\"",
        "\"question\"",
        "\"alpha\"",
        "\"mid\"",
        "\"y\"",
        "\"b\"",
    ]
    .iter()
    .map(|k| {
        let at = text
            .find(k)
            .unwrap_or_else(|| panic!("{k} is gone: {text}"));
        &text[at..]
    })
    .collect();
    assert!(
        keys.windows(2).all(|w| w[0].len() > w[1].len()),
        "keys reordered: {text}"
    );
    let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(parsed["mid"], json!({"y": true, "b": null}));
}

#[trace(event_type = "tool")]
fn tool_with_long_arguments() -> u32 {
    let arguments = json!({"query": "q".repeat(5_000), "filters": ["a", "b"]}).to_string();
    record_tool_call(
        ToolCall::new("search")
            .arguments_json(arguments)
            .result("ok"),
    );
    1
}

#[trace(event_type = "tool")]
fn tool_with_long_argument_values() -> u32 {
    let arguments: honeyhive_runtime::Value =
        json!({"query": "q".repeat(5_000), "filters": ["a", "b"]}).into();
    let result: honeyhive_runtime::Value = json!({"hits": ["h".repeat(3_000), "second"]}).into();
    record_tool_call(ToolCall::new("search").arguments(arguments).result(result));
    1
}

#[test]
fn json_handed_in_as_text_stays_json_when_cut() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).conventions(Conventions::Both));
    // A provider's arguments text, and an `input.value` set by hand on a dynamic span.
    assert_eq!(tool_with_long_arguments(), 1);
    assert_eq!(tool_with_long_argument_values(), 1);
    let by_hand = json!({"question": "w".repeat(5_000), "k": 3}).to_string();
    drop(
        SpanBuilder::new("by hand")
            .attribute("input.value", by_hand)
            .start(),
    );
    let spans = rec.spans();

    let tool = spans.get("tool_with_long_arguments");
    for key in ["gen_ai.tool.call.arguments", "input.value"] {
        let arguments = parsed(tool, key);
        assert!(cut(arguments["query"].as_str().unwrap()), "{key}");
        assert_eq!(arguments["filters"], json!(["a", "b"]), "{key}");
    }
    assert_eq!(tool.str("input.mime_type"), Some("application/json"));

    // The same given as values rather than text.
    let tool = spans.get("tool_with_long_argument_values");
    for key in ["gen_ai.tool.call.arguments", "input.value"] {
        let arguments = parsed(tool, key);
        assert!(cut(arguments["query"].as_str().unwrap()), "{key}");
        assert_eq!(arguments["filters"], json!(["a", "b"]), "{key}");
    }
    for key in ["gen_ai.tool.call.result", "output.value"] {
        let result = parsed(tool, key);
        assert!(cut(result["hits"][0].as_str().unwrap()), "{key}");
        assert_eq!(result["hits"][1], "second", "{key}");
    }
    assert_eq!(tool.str("input.mime_type"), Some("application/json"));
    assert_eq!(tool.str("output.mime_type"), Some("application/json"));

    let by_hand = parsed(spans.get("by hand"), "input.value");
    assert!(cut(by_hand["question"].as_str().unwrap()));
    assert_eq!(by_hand["k"], 3);

    // Past eight caps the caller's thread keeps none of it whole: cut as text there.
    let huge = json!({"question": "w".repeat(20 * CAP)}).to_string();
    drop(
        SpanBuilder::new("huge")
            .attribute("input.value", huge)
            .start(),
    );
    let spans = rec.spans();
    let huge = spans.get("huge").str("input.value").unwrap();
    assert!(huge.len() <= CAP + 64 && cut(huge), "{} bytes", huge.len());
}

#[trace(event_type = "session")]
fn session_with_metadata() -> u32 {
    inner_with_metadata();
    for i in 0..20 {
        enrich_session().metadata(&format!("session_{i}"), "s".repeat(500).as_str());
    }
    1
}

#[trace]
fn inner_with_metadata() {
    for i in 0..20 {
        enrich_span().metadata(&format!("span_{i}"), "m".repeat(500).as_str());
    }
}

#[test]
fn openinference_metadata_longer_than_the_cap_stays_json() {
    let rec = Recorder::with(|b| {
        b.capture_max_bytes(CAP)
            .conventions(Conventions::OpenInference)
    });
    assert_eq!(session_with_metadata(), 1);
    let spans = rec.spans();
    let inner = parsed(spans.get("inner_with_metadata"), "metadata");
    assert!(cut(inner["span_19"].as_str().unwrap()));
    let session = parsed(spans.get("session_with_metadata"), "metadata");
    assert!(cut(session["session_0"].as_str().unwrap()), "{session}");
}
