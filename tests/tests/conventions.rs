//! GenAI and OpenInference conventions through the typed APIs (documents, tool calls, tool
//! definitions, tags, metadata, agents, sessions), on real finished spans and on the OTLP wire;
//! and root token totals that count what Phoenix counts. No opentelemetry type is named here:
//! users should not have to.

use std::collections::HashMap;
use std::time::Duration;

use honeyhive_runtime::llm::{gen_ai, openinference as oi, totals};
use honeyhive_runtime::testing::{FinishedSpan, Recorder, Spans};
use honeyhive_runtime::{
    Conventions, Document, LlmCall, Scope, SpanKind, ToolCall, ToolDefinition, Value, enrich_span,
    record_documents, record_tool_call, trace,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as WireValue;
use serde_json::json;

#[trace(event_type = "retriever")]
fn retrieve(query: &str) -> usize {
    let hits = [
        ("d1", "Paris is the capital of France.", 0.92),
        ("d2", "France is in Europe.", 0.71),
    ];
    record_documents(hits.iter().map(|&(id, text, score)| {
        Document::new(text)
            .id(id)
            .score(score)
            .metadata(Value::map([("source", "wiki")]))
    }));
    record_documents([Document::new(format!("no id, no score: {query}"))]);
    hits.len() + 1
}

#[trace(event_type = "tool")]
fn get_weather(city: &str) -> String {
    let forecast = format!("rainy in {city}");
    record_tool_call(
        ToolCall::new("get_weather")
            .call_id("call_1")
            .description("Current weather of a city")
            .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}))
            .arguments(json!({"city": city}))
            .result(forecast.clone()),
    );
    forecast
}

#[trace(event_type = "model")]
fn plan(question: &str) -> String {
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .message("user", question)
        .tools([ToolDefinition::new("get_weather")
            .description("Current weather of a city")
            .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}))])
        .completion("Let me check.")
        .tool_call(
            ToolCall::new("get_weather")
                .call_id("call_1")
                .arguments_json(r#"{"city":"Paris"}"#),
        )
        .finish_reason("tool_calls")
        .usage(1_000, 200)
        .record();
    "Paris".to_owned()
}

#[trace(event_type = "embedding")]
fn embed(text: &str) -> usize {
    LlmCall::new("text-embedding-3-small")
        .provider("openai")
        .input_tokens(24)
        .record();
    text.len()
}

#[trace(event_type = "agent", metadata(release = "2026.12"))]
fn planner(question: &str) -> String {
    enrich_span()
        .metadata("user", "ada")
        .metadata(
            "doc",
            Value::map([("page", Value::from(3)), ("lang", "fr".into())]),
        )
        .metadata("flags", vec!["a", "b"])
        .tags(["beta", "rag"])
        .tags(["rag", "eu"]);
    embed(question);
    retrieve(question);
    let city = plan(question);
    get_weather(&city)
}

fn run(question: &str) -> String {
    Scope::session("sess-42").run(|| planner(question))
}

fn wire_text(v: &WireValue) -> String {
    match v {
        WireValue::StringValue(s) => s.clone(),
        WireValue::DoubleValue(f) => f.to_string(),
        WireValue::IntValue(i) => i.to_string(),
        WireValue::ArrayValue(a) => a
            .values
            .iter()
            .filter_map(|v| v.value.as_ref().map(wire_text))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    }
}

fn no_raw_keys(spans: &Spans) {
    for span in spans.iter() {
        for kv in &span.attributes {
            assert!(
                !kv.key.as_str().starts_with('\0'),
                "{}: internal key {:?} reached the exporter",
                span.name,
                kv.key
            );
        }
    }
}

#[test]
fn a_retriever_span_shows_its_documents() {
    let rec = Recorder::start();
    run("Weather in Paris?");
    let spans = rec.spans();
    let r = spans.get("retrieve");
    let doc = |i: usize, field: &str| format!("retrieval.documents.{i}.document.{field}");
    assert_eq!(r.str(&doc(0, "id")), Some("d1"));
    assert_eq!(
        r.str(&doc(0, "content")),
        Some("Paris is the capital of France.")
    );
    assert_eq!(r.f64(&doc(0, "score")), Some(0.92));
    assert_eq!(r.json(&doc(0, "metadata")), Some(json!({"source": "wiki"})));
    assert_eq!(r.str(&doc(1, "id")), Some("d2"));
    // A second call adds up; what was not given is not sent.
    assert_eq!(
        r.str(&doc(2, "content")),
        Some("no id, no score: Weather in Paris?")
    );
    assert_eq!(r.attr(&doc(2, "id")), None);
    assert_eq!(r.attr(&doc(2, "score")), None);
    assert_eq!(r.str(gen_ai::OPERATION_NAME), Some("retrieval"));
    // Both conventions: the documents are sent once, as OpenInference reads them.
    assert_eq!(r.attr(gen_ai::RETRIEVAL_DOCUMENTS), None);
    no_raw_keys(&spans);
}

#[test]
fn with_genai_only_documents_are_one_json_list() {
    let rec = Recorder::with(|b| b.conventions(Conventions::GenAi));
    run("Weather in Paris?");
    let spans = rec.spans();
    let r = spans.get("retrieve");
    assert_eq!(
        r.json(gen_ai::RETRIEVAL_DOCUMENTS),
        Some(json!([
            {"id": "d1", "score": 0.92, "content": "Paris is the capital of France.",
             "metadata": {"source": "wiki"}},
            {"id": "d2", "score": 0.71, "content": "France is in Europe.",
             "metadata": {"source": "wiki"}},
            {"id": "", "score": null, "content": "no id, no score: Weather in Paris?"},
        ]))
    );
    assert!(
        r.attributes
            .iter()
            .all(|kv| !kv.key.as_str().starts_with("retrieval."))
    );
}

#[test]
fn metadata_is_one_json_object_and_tags_one_list() {
    let rec = Recorder::start();
    run("Weather in Paris?");
    let spans = rec.spans();
    let agent = spans.get("planner");
    assert_eq!(
        agent.json(oi::METADATA),
        Some(json!({
            "release": "2026.12",
            "user": "ada",
            "doc": {"page": 3, "lang": "fr"},
            "flags": ["a", "b"],
        }))
    );
    assert_eq!(agent.strings(oi::TAG_TAGS), Some(vec!["beta", "rag", "eu"]));
    // HoneyHive's flattened keys stay.
    assert_eq!(agent.str("honeyhive_metadata.user"), Some("ada"));
    // A span without metadata gets no `metadata`.
    assert_eq!(spans.get("embed").attr(oi::METADATA), None);
}

#[test]
fn a_tool_span_is_execute_tool_and_an_openinference_tool() {
    let rec = Recorder::start();
    run("Weather in Paris?");
    let spans = rec.spans();
    let t = spans.get("get_weather");
    assert_eq!(t.str(gen_ai::OPERATION_NAME), Some("execute_tool"));
    assert_eq!(t.str(gen_ai::TOOL_NAME), Some("get_weather"));
    assert_eq!(t.str(gen_ai::TOOL_CALL_ID), Some("call_1"));
    assert_eq!(
        t.json(gen_ai::TOOL_CALL_ARGUMENTS),
        Some(json!({"city": "Paris"}))
    );
    assert_eq!(t.str(gen_ai::TOOL_CALL_RESULT), Some("rainy in Paris"));
    assert_eq!(t.str(oi::TOOL_NAME), Some("get_weather"));
    assert_eq!(t.str(oi::TOOL_ID), Some("call_1"));
    assert_eq!(
        t.str(oi::TOOL_DESCRIPTION),
        Some("Current weather of a city")
    );
    assert_eq!(
        t.json(oi::TOOL_PARAMETERS),
        Some(json!({"type": "object", "properties": {"city": {"type": "string"}}}))
    );
    // The tool's arguments and result are the span's input and output, each sent once.
    assert_eq!(t.json(oi::INPUT_VALUE), Some(json!({"city": "Paris"})));
    assert_eq!(t.str(oi::INPUT_MIME_TYPE), Some("application/json"));
    assert_eq!(t.str(oi::OUTPUT_VALUE), Some("rainy in Paris"));
    for key in [oi::INPUT_VALUE, oi::OUTPUT_VALUE, gen_ai::OPERATION_NAME] {
        let count = t
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == key)
            .count();
        assert_eq!(count, 1, "{key}");
    }
    // A plain `#[trace]` function (event type tool by default) is no `execute_tool`.
    let rec2 = {
        drop(rec);
        Recorder::start()
    };
    #[trace]
    fn helper(x: u32) -> u32 {
        x + 1
    }
    helper(1);
    let spans = rec2.spans();
    assert_eq!(spans.get("helper").attr(gen_ai::OPERATION_NAME), None);
    assert_eq!(spans.get("helper").attr(oi::TOOL_NAME), None);
}

#[test]
fn an_llm_span_carries_its_tools_and_the_calls_it_asked_for() {
    let rec = Recorder::start();
    run("Weather in Paris?");
    let spans = rec.spans();
    let m = spans.get("plan");
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    assert_eq!(
        m.json(gen_ai::TOOL_DEFINITIONS),
        Some(json!([{
            "type": "function", "name": "get_weather",
            "description": "Current weather of a city", "parameters": schema,
        }]))
    );
    assert_eq!(
        m.json("llm.tools.0.tool.json_schema"),
        Some(json!({"type": "function", "function": {
            "name": "get_weather", "description": "Current weather of a city", "parameters": schema,
        }}))
    );
    assert_eq!(
        m.json(gen_ai::OUTPUT_MESSAGES),
        Some(json!([{
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {"type": "tool_call", "id": "call_1", "name": "get_weather",
                 "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_calls",
        }]))
    );
    let call =
        |field: &str| format!("llm.output_messages.0.message.tool_calls.0.tool_call.{field}");
    assert_eq!(m.str(&call("id")), Some("call_1"));
    assert_eq!(m.str(&call("function.name")), Some("get_weather"));
    assert_eq!(
        m.str(&call("function.arguments")),
        Some(r#"{"city":"Paris"}"#)
    );
    let outputs = m
        .attributes
        .iter()
        .filter(|kv| kv.key.as_str() == gen_ai::OUTPUT_MESSAGES)
        .count();
    assert_eq!(outputs, 1, "the output messages are sent once");
}

#[trace(event_type = "model")]
fn only_calls() {
    LlmCall::new("claude-sonnet-4")
        .provider("anthropic")
        .tool_call(ToolCall::new("search").arguments_json("not json {"))
        .finish_reason("tool_use")
        .record();
}

#[test]
fn an_answer_of_tool_calls_only_is_an_assistant_message() {
    let rec = Recorder::start();
    only_calls();
    let spans = rec.spans();
    let m = spans.get("only_calls");
    assert_eq!(
        m.json(gen_ai::OUTPUT_MESSAGES),
        Some(json!([{
            "role": "assistant",
            "parts": [{"type": "tool_call", "name": "search", "arguments": "not json {"}],
            "finish_reason": "tool_use",
        }]))
    );
    assert_eq!(
        m.str("llm.output_messages.0.message.role"),
        Some("assistant")
    );
    assert_eq!(
        m.str("llm.output_messages.0.message.tool_calls.0.tool_call.function.name"),
        Some("search")
    );
}

#[test]
fn agents_invoke_and_sessions_are_conversations() {
    let rec = Recorder::start();
    run("Weather in Paris?");
    let spans = rec.spans();
    let agent = spans.get("planner");
    assert_eq!(agent.str(gen_ai::OPERATION_NAME), Some("invoke_agent"));
    assert_eq!(agent.str(gen_ai::AGENT_NAME), Some("planner"));
    assert_eq!(agent.str(oi::SPAN_KIND), Some("AGENT"));
    for name in ["planner", "plan", "embed", "get_weather", "retrieve"] {
        assert_eq!(
            spans.get(name).str(gen_ai::CONVERSATION_ID),
            Some("sess-42"),
            "{name}"
        );
    }
    let model = spans.get("plan");
    assert_eq!(model.str(gen_ai::OPERATION_NAME), Some("chat"));
    assert_eq!(
        spans.get("embed").str(gen_ai::OPERATION_NAME),
        Some("embeddings")
    );
    // GenAI: model calls are CLIENT spans; agents, tools and retrievers run in process.
    assert_eq!(model.kind(), SpanKind::Client);
    assert_eq!(spans.get("embed").kind(), SpanKind::Client);
    for name in ["planner", "get_weather", "retrieve"] {
        assert_eq!(spans.get(name).kind(), SpanKind::Internal, "{name}");
    }
}

#[test]
fn root_tokens_count_llm_calls_as_phoenix_does_and_embeddings_apart() {
    let rec = Recorder::start();
    run("Weather in Paris?");
    let spans = rec.spans();
    let root = spans.get("planner");
    // What Phoenix sums for the trace: the token counts of its LLM spans.
    let phoenix: i64 = spans
        .iter()
        .filter(|s| s.str(oi::SPAN_KIND) == Some("LLM"))
        .filter_map(|s| s.i64(oi::LLM_TOKEN_COUNT_TOTAL))
        .sum();
    assert_eq!(phoenix, 1_200);
    assert_eq!(root.i64(totals::TOKENS), Some(phoenix));
    assert_eq!(root.i64(totals::INPUT_TOKENS), Some(1_000));
    assert_eq!(root.i64(totals::LLM_CALLS), Some(1));
    assert_eq!(root.i64(totals::EMBEDDING_TOKENS), Some(24));
    assert_eq!(root.i64(totals::EMBEDDING_CALLS), Some(1));
    assert!(
        root.f64(totals::EMBEDDING_COST_USD)
            .is_some_and(|c| c > 0.0)
    );
    // The embedding span names its model as OpenInference does for embeddings.
    let e = spans.get("embed");
    assert_eq!(
        e.str(oi::EMBEDDING_MODEL_NAME),
        Some("text-embedding-3-small")
    );
    assert_eq!(e.attr(oi::LLM_MODEL_NAME), None);
    assert_eq!(e.attr(oi::LLM_PROVIDER), None);
    assert_eq!(e.i64(oi::LLM_TOKEN_COUNT_PROMPT), Some(24));
}

#[test]
fn genai_span_names_are_an_option() {
    let names = |spans: &Spans| {
        let mut names: Vec<String> = spans.iter().map(|s| s.name.to_string()).collect();
        names.sort();
        names
    };
    let rec = Recorder::start();
    run("Weather in Paris?");
    assert_eq!(
        names(&rec.spans()),
        ["embed", "get_weather", "plan", "planner", "retrieve"]
    );
    drop(rec);
    let rec = Recorder::with(|b| b.genai_span_names(true));
    run("Weather in Paris?");
    assert_eq!(
        names(&rec.spans()),
        [
            "chat gpt-4o-mini",
            "embeddings text-embedding-3-small",
            "execute_tool get_weather",
            "invoke_agent planner",
            "retrieve",
        ]
    );
}

#[test]
fn openinference_only_has_no_genai_keys_and_keeps_tags() {
    let rec = Recorder::with(|b| b.conventions(Conventions::OpenInference));
    run("Weather in Paris?");
    let spans = rec.spans();
    for span in spans.iter() {
        let genai: Vec<&str> = span
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .filter(|k| k.starts_with("gen_ai."))
            .collect();
        assert!(genai.is_empty(), "{}: {genai:?}", span.name);
    }
    assert_eq!(
        spans.get("get_weather").str(oi::TOOL_NAME),
        Some("get_weather")
    );
    assert_eq!(
        spans.get("planner").strings(oi::TAG_TAGS),
        Some(vec!["beta", "rag", "eu"])
    );
    no_raw_keys(&spans);
}

fn one(span: &FinishedSpan, key: &str) -> usize {
    span.attributes
        .iter()
        .filter(|kv| kv.key.as_str() == key)
        .count()
}

#[test]
fn the_conventions_reach_the_wire_once_each() {
    let (url, requests) = honeyhive_tests::otlp_receiver();
    let rec = Recorder::with(|b| b.with_otlp_http(url));
    run("Weather in Paris?");
    let ours = rec.spans();
    let mut wire = Vec::new();
    while wire.len() < ours.len() {
        let req = requests
            .recv_timeout(Duration::from_secs(20))
            .expect("the receiver got every span");
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                wire.extend(ss.spans.iter().cloned());
            }
        }
    }
    // OTLP's SPAN_KIND_CLIENT and SPAN_KIND_INTERNAL.
    let kind = |name: &str| wire.iter().find(|s| s.name == name).map(|s| s.kind);
    assert_eq!(kind("plan"), Some(3));
    assert_eq!(kind("embed"), Some(3));
    assert_eq!(kind("get_weather"), Some(1));
    let by_name: HashMap<&str, HashMap<String, Vec<String>>> = wire
        .iter()
        .map(|s| {
            let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
            for kv in &s.attributes {
                let text = kv
                    .value
                    .as_ref()
                    .and_then(|v| v.value.as_ref())
                    .map(wire_text)
                    .unwrap_or_default();
                attrs.entry(kv.key.clone()).or_default().push(text);
            }
            (s.name.as_str(), attrs)
        })
        .collect();
    let get = |span: &str, key: &str| -> String {
        let values = &by_name[span]
            .get(key)
            .unwrap_or_else(|| panic!("{span}: no {key}"));
        assert_eq!(values.len(), 1, "{span}: {key} sent {} times", values.len());
        values[0].clone()
    };
    assert_eq!(
        get("retrieve", "retrieval.documents.0.document.content"),
        "Paris is the capital of France."
    );
    assert_eq!(
        get("retrieve", "retrieval.documents.1.document.score"),
        "0.71"
    );
    assert_eq!(get("planner", "tag.tags"), "beta,rag,eu");
    let metadata: serde_json::Value = serde_json::from_str(&get("planner", "metadata")).unwrap();
    assert_eq!(metadata["user"], "ada");
    assert_eq!(get("planner", gen_ai::OPERATION_NAME), "invoke_agent");
    assert_eq!(get("get_weather", "tool.name"), "get_weather");
    assert_eq!(get("get_weather", gen_ai::TOOL_CALL_ID), "call_1");
    assert_eq!(get("plan", gen_ai::CONVERSATION_ID), "sess-42");
    assert!(get("plan", "llm.tools.0.tool.json_schema").contains("get_weather"));
    assert_eq!(get("planner", totals::TOKENS), "1200");
    // The exporter saw what the wire carries.
    for span in ours.iter() {
        for key in [
            "tag.tags",
            "metadata",
            gen_ai::OPERATION_NAME,
            oi::INPUT_VALUE,
        ] {
            assert!(one(span, key) <= 1, "{}: {key}", span.name);
        }
    }
}

#[trace(event_type = "retriever")]
fn leaky_retrieve() {
    record_documents([
        Document::new("the key is sk-proj-0123456789abcdefghijklmnop").metadata(Value::map([(
            "token",
            "sk-proj-0123456789abcdefghijklmnop",
        )])),
    ]);
}

#[trace(event_type = "tool")]
fn leaky_tool() {
    record_tool_call(
        ToolCall::new("call_api")
            .arguments(json!({"auth": "Bearer sk-proj-0123456789abcdefghijklmnop"}))
            .result("ok"),
    );
}

#[test]
fn documents_and_tool_arguments_are_redacted_like_captured_values() {
    let rec = Recorder::start();
    leaky_retrieve();
    leaky_tool();
    let spans = rec.spans();
    for span in spans.iter() {
        for kv in &span.attributes {
            assert!(
                !kv.value.as_str().contains("sk-proj"),
                "{}: {} leaks the key",
                span.name,
                kv.key
            );
        }
    }
    let r = spans.get("leaky_retrieve");
    assert_eq!(
        r.str("retrieval.documents.0.document.content"),
        Some("the key is [REDACTED]")
    );
    let t = spans.get("leaky_tool");
    assert!(
        t.str(gen_ai::TOOL_CALL_ARGUMENTS)
            .is_some_and(|a| a.contains("[REDACTED]")),
        "{t:?}"
    );
}

#[trace(event_type = "session")]
fn chat_session() {
    enrich_span().tags(["web"]).metadata("channel", "web");
    answer_turn();
}

#[trace(event_type = "chain")]
fn answer_turn() {
    honeyhive_runtime::enrich_session()
        .tags(["returning"])
        .metadata("plan", "pro");
}

#[test]
fn session_enrichment_joins_the_session_spans_tags_and_metadata() {
    let rec = Recorder::start();
    chat_session();
    let spans = rec.spans();
    let session = spans.get("chat_session");
    assert_eq!(
        session.strings(oi::TAG_TAGS),
        Some(vec!["web", "returning"])
    );
    assert_eq!(
        session.json(oi::METADATA),
        Some(json!({"channel": "web", "plan": "pro"}))
    );
    assert_eq!(one(session, oi::METADATA), 1);
    assert_eq!(spans.get("answer_turn").attr(oi::TAG_TAGS), None);
}

#[trace(event_type = "model")]
fn calls_with_ordered_arguments() {
    LlmCall::new("gpt-4o")
        .provider("openai")
        .completion("Searching.")
        .tool_call(
            ToolCall::new("search").call_id("call_9").arguments_json(
                r#"{"query":"rust","limit":5,"filters":{"lang":"en","after":2020}}"#,
            ),
        )
        .finish_reason("tool_calls")
        .record();
}

#[test]
fn a_tool_calls_arguments_keep_the_order_of_their_keys() {
    let rec = Recorder::start();
    calls_with_ordered_arguments();
    let spans = rec.spans();
    let text = spans
        .get("calls_with_ordered_arguments")
        .str(gen_ai::OUTPUT_MESSAGES)
        .unwrap()
        .to_owned();
    // As the model wrote them, inside our message in our order: not sorted.
    assert!(
        text.contains(
            r#""arguments":{"query":"rust","limit":5,"filters":{"lang":"en","after":2020}}"#
        ),
        "{text}"
    );
    assert!(
        text.starts_with(r#"[{"role":"assistant","parts":["#),
        "{text}"
    );
}
