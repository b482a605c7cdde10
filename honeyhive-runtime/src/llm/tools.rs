//! Tools: the definitions offered to a model ([`LlmCall::tools`](super::LlmCall::tools)), the
//! calls it asks for ([`LlmCall::tool_call`](super::LlmCall::tool_call)), and the execution of
//! one call on a tool span ([`record_tool_call`]).
//!
//! ```
//! use honeyhive_runtime::{trace, record_tool_call, LlmCall, ToolCall, ToolDefinition};
//! use serde_json::json;
//!
//! #[trace(event_type = "model")]
//! fn plan(question: &str) -> String {
//!     let args = r#"{"city":"Paris"}"#.to_owned(); // what the model answered
//!     LlmCall::new("gpt-4o-mini")
//!         .message("user", question)
//!         .tools([ToolDefinition::new("get_weather")
//!             .description("Current weather of a city")
//!             .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}))])
//!         .tool_call(ToolCall::new("get_weather").call_id("call_1").arguments_json(args.clone()))
//!         .finish_reason("tool_calls")
//!         .record();
//!     args
//! }
//!
//! #[trace(event_type = "tool")]
//! fn get_weather(city: &str) -> String {
//!     let forecast = format!("rainy in {city}");
//!     record_tool_call(
//!         ToolCall::new("get_weather")
//!             .call_id("call_1")
//!             .arguments(json!({"city": city}))
//!             .result(forecast.clone()),
//!     );
//!     forecast
//! }
//! # plan("Weather in Paris?");
//! # get_weather("Paris");
//! ```
//!
//! On the export thread a tool span gets GenAI's `execute_tool` keys (`gen_ai.tool.name`,
//! `gen_ai.tool.call.id`, `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`) and
//! OpenInference's (`tool.name`, `tool.id`, `tool.description`, `tool.parameters` for the
//! parameter schema, the arguments as `input.value` and the result as `output.value`). An LLM
//! span gets `gen_ai.tool.definitions` and `llm.tools.N.tool.json_schema`, and the calls the
//! model asked for as `tool_call` parts of `gen_ai.output.messages` and as
//! `llm.output_messages.N.message.tool_calls.M.tool_call.*`.

use crate::record::Attr;
use std::borrow::Cow;

use opentelemetry::{Array, KeyValue, StringValue, Value as OtelValue};

use super::json::{self, Json};
use super::{Conventions, gen_ai, openinference};
use crate::enrich::Value;
use crate::span::{self, Annotation};

/// The tool call of a tool span: `[name, call id, description, arguments, result, result kind,
/// parameters]`, "" for what is not known.
pub(super) const RAW_TOOL_CALL: &str = "\0tool.call";
/// Tools offered to the model: `[name, description, parameters, ...]`.
pub(super) const RAW_DEFINITIONS: &str = "\0llm.tools";
/// Calls the model asked for: `[call id, name, arguments, ...]`.
pub(super) const RAW_CALLS: &str = "\0llm.tool_calls";

/// A tool offered to a model, for [`LlmCall::tools`](super::LlmCall::tools).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct ToolDefinition {
    name: Cow<'static, str>,
    description: Option<String>,
    parameters: Option<Value>,
}

impl ToolDefinition {
    /// A tool named `name` (a function the model may call).
    pub fn new(name: impl Into<Cow<'static, str>>) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            description: None,
            parameters: None,
        }
    }

    /// What the tool does, as told to the model.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The JSON schema of its parameters (a `serde_json::Value` or a [`Value`]).
    pub fn parameters(mut self, schema: impl Into<Value>) -> Self {
        self.parameters = Some(schema.into());
        self
    }
}

/// JSON given as a value, or as text the caller already has (a provider's `arguments` string).
#[derive(Clone, Debug, PartialEq)]
enum GivenJson {
    Value(Value),
    Text(String),
}

impl GivenJson {
    fn text(&self, cap: usize) -> StringValue {
        match self {
            GivenJson::Value(v) => v.json_capped(cap.saturating_mul(super::json::JSON_ROOM)),
            // A provider's JSON text: whole up to the same room, shrunk as JSON on the export
            // thread; past it, cut as text here.
            GivenJson::Text(t) if t.len() > cap.saturating_mul(super::json::JSON_ROOM) => {
                crate::capture::truncated_text(t, cap)
            }
            GivenJson::Text(t) => StringValue::from(t.clone()),
        }
    }
}

/// One call of a tool: asked for by a model ([`LlmCall::tool_call`](super::LlmCall::tool_call))
/// or executed on a tool span ([`record_tool_call`]).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct ToolCall {
    name: Cow<'static, str>,
    call_id: Option<String>,
    description: Option<String>,
    arguments: Option<GivenJson>,
    result: Option<GivenJson>,
    parameters: Option<Value>,
}

impl ToolCall {
    /// A call of the tool `name`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> ToolCall {
        ToolCall {
            name: name.into(),
            call_id: None,
            description: None,
            arguments: None,
            result: None,
            parameters: None,
        }
    }

    /// The id the model gave the call (`call_...`, `toolu_...`), which ties the execution to
    /// the request.
    pub fn call_id(mut self, id: impl Into<String>) -> Self {
        self.call_id = Some(id.into());
        self
    }

    /// What the tool does.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The arguments, as a value (`serde_json::json!({...})`, a map, ...), written as JSON.
    pub fn arguments(mut self, arguments: impl Into<Value>) -> Self {
        self.arguments = Some(GivenJson::Value(arguments.into()));
        self
    }

    /// The arguments as the JSON text the model sent (OpenAI's `function.arguments`). Text that
    /// does not parse is sent as a string.
    pub fn arguments_json(mut self, text: impl Into<String>) -> Self {
        self.arguments = Some(GivenJson::Text(text.into()));
        self
    }

    /// What the tool returned: text stays text, anything else is written as JSON.
    pub fn result(mut self, result: impl Into<Value>) -> Self {
        self.result = Some(match result.into() {
            Value::Str(s) => GivenJson::Text(s.into_owned()),
            other => GivenJson::Value(other),
        });
        self
    }

    /// The JSON schema of the tool's parameters (OpenInference's `tool.parameters`).
    pub fn parameters(mut self, schema: impl Into<Value>) -> Self {
        self.parameters = Some(schema.into());
        self
    }

    /// The caller's side of a tool span: one flat list, texts cut at `cap`.
    fn into_attribute(self, cap: usize) -> KeyValue {
        let text = |s: Option<String>| s.map_or_else(|| StringValue::from(""), |s| cut(&s, cap));
        let (result, kind) = match &self.result {
            Some(GivenJson::Text(t)) => (cut(t, cap), "text"),
            Some(json @ GivenJson::Value(_)) => (json.text(cap), "json"),
            None => (StringValue::from(""), ""),
        };
        let flat = vec![
            StringValue::from(self.name),
            text(self.call_id),
            text(self.description),
            self.arguments
                .as_ref()
                .map_or_else(|| StringValue::from(""), |a| a.text(cap)),
            result,
            StringValue::from(kind),
            schema_text(self.parameters.as_ref(), cap),
        ];
        KeyValue::new(RAW_TOOL_CALL, OtelValue::Array(Array::String(flat)))
    }
}

/// Records the execution of a tool call on the current span (a tool span): nothing happens
/// when no recorded span is current. A second call on the same span replaces the first.
pub fn record_tool_call(call: ToolCall) {
    if !span::current_is_recording() {
        span::count_lost_under_remote();
        return;
    }
    let kv = call.into_attribute(crate::capture::capture_cap());
    span::annotate(|| Annotation::Attr(kv));
}

fn cut(s: &str, cap: usize) -> StringValue {
    crate::capture::truncated_text(s, cap)
}

/// A tool's parameter schema as JSON, whole up to [`JSON_ROOM`](super::json::JSON_ROOM) caps
/// (the export thread shrinks it as JSON).
fn schema_text(schema: Option<&Value>, cap: usize) -> StringValue {
    schema.map_or_else(
        || StringValue::from(""),
        |s| s.json_capped(cap.saturating_mul(super::json::JSON_ROOM)),
    )
}

/// The caller's side of [`LlmCall::tools`](super::LlmCall::tools) and
/// [`LlmCall::tool_call`](super::LlmCall::tool_call).
pub(super) fn llm_attributes(
    definitions: Vec<ToolDefinition>,
    calls: Vec<ToolCall>,
    cap: usize,
    out: &mut Vec<KeyValue>,
) {
    if !definitions.is_empty() {
        let mut flat = Vec::with_capacity(definitions.len() * 3);
        for d in definitions {
            flat.push(StringValue::from(d.name));
            flat.push(d.description.map_or_else(|| "".into(), |t| cut(&t, cap)));
            flat.push(schema_text(d.parameters.as_ref(), cap));
        }
        out.push(KeyValue::new(
            RAW_DEFINITIONS,
            OtelValue::Array(Array::String(flat)),
        ));
    }
    if !calls.is_empty() {
        let mut flat = Vec::with_capacity(calls.len() * 3);
        for c in calls {
            flat.push(c.call_id.map_or_else(|| "".into(), StringValue::from));
            flat.push(StringValue::from(c.name));
            flat.push(
                c.arguments
                    .as_ref()
                    .map_or_else(|| StringValue::from(""), |a| a.text(cap)),
            );
        }
        out.push(KeyValue::new(
            RAW_CALLS,
            OtelValue::Array(Array::String(flat)),
        ));
    }
}

/// Appends `text` as JSON when it parses, else as a JSON string (a cut or malformed value).
fn raw_json(out: &mut String, text: &str) {
    if parses(text) {
        out.push_str(text);
    } else {
        json::string(out, text);
    }
}

/// Whether `text` is JSON.
fn parses(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok()
}

fn strings(value: &OtelValue) -> &[StringValue] {
    match value {
        OtelValue::Array(Array::String(items)) => items,
        _ => &[],
    }
}

fn non_empty(s: &StringValue) -> Option<&str> {
    Some(s.as_str()).filter(|s| !s.is_empty())
}

/// A tool span: GenAI's `execute_tool` keys and OpenInference's tool keys, with the arguments
/// and result as the span's `input.value` / `output.value`. Returns the keys of `attrs` that
/// the added values replace.
pub(super) fn render_tool_span(
    raw: &OtelValue,
    conventions: Conventions,
    added: &mut Vec<KeyValue>,
) -> Vec<&'static str> {
    let [name, id, description, arguments, result, kind, parameters] = strings(raw) else {
        return Vec::new();
    };
    let mut replaced = Vec::new();
    let text = |s: &StringValue| OtelValue::String(s.clone());
    if conventions.gen_ai() {
        added.push(KeyValue::new(gen_ai::OPERATION_NAME, "execute_tool"));
        added.push(KeyValue::new(gen_ai::TOOL_NAME, text(name)));
        replaced.push(gen_ai::OPERATION_NAME);
        for (key, value) in [
            (gen_ai::TOOL_CALL_ID, id),
            (gen_ai::TOOL_DESCRIPTION, description),
            (gen_ai::TOOL_CALL_ARGUMENTS, arguments),
            (gen_ai::TOOL_CALL_RESULT, result),
        ] {
            if non_empty(value).is_some() {
                added.push(KeyValue::new(key, text(value)));
            }
        }
    }
    if conventions.openinference() {
        added.push(KeyValue::new(openinference::TOOL_NAME, text(name)));
        for (key, value) in [
            (openinference::TOOL_ID, id),
            (openinference::TOOL_DESCRIPTION, description),
            (openinference::TOOL_PARAMETERS, parameters),
        ] {
            if non_empty(value).is_some() {
                added.push(KeyValue::new(key, text(value)));
            }
        }
        // The tool's own input and output are what Phoenix shows for a tool span; they replace
        // what `#[trace]` captured of the function around it.
        // A mime type of JSON only for a text that parses: arguments a model wrote may not,
        // and a value cut at the cap does not.
        if let Some(arguments_text) = non_empty(arguments) {
            added.push(KeyValue::new(openinference::INPUT_VALUE, text(arguments)));
            if parses(arguments_text) {
                added.push(KeyValue::new(
                    openinference::INPUT_MIME_TYPE,
                    "application/json",
                ));
            }
            replaced.extend([openinference::INPUT_VALUE, openinference::INPUT_MIME_TYPE]);
        }
        if non_empty(result).is_some() {
            added.push(KeyValue::new(openinference::OUTPUT_VALUE, text(result)));
            replaced.extend([openinference::OUTPUT_VALUE, openinference::OUTPUT_MIME_TYPE]);
            if kind.as_str() == "json" && parses(result.as_str()) {
                added.push(KeyValue::new(
                    openinference::OUTPUT_MIME_TYPE,
                    "application/json",
                ));
            }
        }
    }
    replaced
}

/// An LLM span's tool definitions and requested tool calls. `attrs` is the span as rendered so
/// far; returns the keys the added values replace (`gen_ai.output.messages`).
pub(super) fn render_llm(
    attrs: &[Attr<'_>],
    definitions: Option<&OtelValue>,
    calls: Option<&OtelValue>,
    conventions: Conventions,
    added: &mut Vec<KeyValue>,
) -> Vec<&'static str> {
    let mut replaced = Vec::new();
    if let Some(definitions) = definitions {
        let defs: Vec<&[StringValue]> = strings(definitions).chunks_exact(3).collect();
        if conventions.gen_ai() {
            let mut text = String::new();
            json::list(&mut text, &defs, |out, d| {
                let mut o = json::Object::new(out);
                json::string(o.key("type"), "function");
                json::string(o.key("name"), d[0].as_str());
                if let Some(description) = non_empty(&d[1]) {
                    json::string(o.key("description"), description);
                }
                if let Some(schema) = non_empty(&d[2]) {
                    raw_json(o.key("parameters"), schema);
                }
                o.end();
            });
            added.push(KeyValue::new(gen_ai::TOOL_DEFINITIONS, text));
        }
        if conventions.openinference() {
            for (i, d) in defs.iter().enumerate() {
                // OpenAI's shape, which Phoenix's playground reads back.
                let mut text = String::new();
                let mut o = json::Object::new(&mut text);
                json::string(o.key("type"), "function");
                let mut function = json::Object::new(o.key("function"));
                json::string(function.key("name"), d[0].as_str());
                if let Some(description) = non_empty(&d[1]) {
                    json::string(function.key("description"), description);
                }
                if let Some(schema) = non_empty(&d[2]) {
                    raw_json(function.key("parameters"), schema);
                }
                function.end();
                o.end();
                added.push(KeyValue::new(
                    format!("llm.tools.{i}.tool.json_schema"),
                    text,
                ));
            }
        }
    }
    let Some(calls) = calls else {
        return replaced;
    };
    let calls: Vec<&[StringValue]> = strings(calls).chunks_exact(3).collect();
    if calls.is_empty() {
        return replaced;
    }
    if conventions.gen_ai() {
        added.push(KeyValue::new(
            gen_ai::OUTPUT_MESSAGES,
            output_messages_with_calls(attrs, added, &calls),
        ));
        replaced.push(gen_ai::OUTPUT_MESSAGES);
    }
    if conventions.openinference() {
        openinference_calls(attrs, added, &calls);
    }
    replaced
}

/// `gen_ai.output.messages` with the calls as `tool_call` parts of the last assistant message
/// (a new one when the model answered with calls only).
fn output_messages_with_calls(
    attrs: &[Attr<'_>],
    added: &[KeyValue],
    calls: &[&[StringValue]],
) -> String {
    // Parsed and rendered again in an order-keeping tree: the model's arguments and our
    // messages keep the order of their keys.
    let existing = added
        .iter()
        .chain(attrs.iter().map(|kv| &**kv))
        .find(|kv| kv.key.as_str() == gen_ai::OUTPUT_MESSAGES)
        .and_then(|kv| Json::parse(&kv.value.as_str()));
    let mut messages = match existing {
        Some(Json::Array(messages)) => messages,
        _ => Vec::new(),
    };
    let last_assistant = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Json::as_str) == Some("assistant"));
    let at = if let Some(i) = last_assistant {
        i
    } else {
        let mut message = Json::object([
            ("role", Json::string("assistant")),
            ("parts", Json::Array(Vec::new())),
        ]);
        if let Some(OtelValue::Array(Array::String(reasons))) = attrs
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == gen_ai::RESPONSE_FINISH_REASONS)
            .map(|kv| &kv.value)
            && let Some(reason) = reasons.first()
        {
            message.set("finish_reason", Json::string(reason.as_str()));
        }
        messages.push(message);
        messages.len() - 1
    };
    if let Some(Json::Array(parts)) = messages[at].get_mut("parts") {
        for call in calls {
            let mut part = Json::object([
                ("type", Json::string("tool_call")),
                ("name", Json::string(call[1].as_str())),
            ]);
            if let Some(id) = non_empty(&call[0]) {
                part.set("id", Json::string(id));
            }
            if let Some(arguments) = non_empty(&call[2]) {
                part.set(
                    "arguments",
                    Json::parse(arguments).unwrap_or_else(|| Json::string(arguments)),
                );
            }
            parts.push(part);
        }
    }
    Json::Array(messages).render()
}

/// `llm.output_messages.N.message.tool_calls.M.tool_call.*` on the last assistant message.
fn openinference_calls(attrs: &[Attr<'_>], added: &mut Vec<KeyValue>, calls: &[&[StringValue]]) {
    let mut count = 0;
    let mut last_assistant = None;
    for kv in added.iter().chain(attrs.iter().map(|kv| &**kv)) {
        if let Some(rest) = kv.key.as_str().strip_prefix("llm.output_messages.")
            && let Some(index) = rest.strip_suffix(".message.role")
            && let Ok(index) = index.parse::<usize>()
        {
            count = count.max(index + 1);
            if kv.value.as_str() == "assistant" {
                last_assistant = Some(last_assistant.map_or(index, |l: usize| l.max(index)));
            }
        }
    }
    let at = last_assistant.unwrap_or_else(|| {
        added.push(KeyValue::new(
            format!("llm.output_messages.{count}.message.role"),
            "assistant",
        ));
        count
    });
    let prefix = format!("llm.output_messages.{at}.message.tool_calls");
    for (j, call) in calls.iter().enumerate() {
        if let Some(id) = non_empty(&call[0]) {
            added.push(KeyValue::new(
                format!("{prefix}.{j}.tool_call.id"),
                id.to_owned(),
            ));
        }
        added.push(KeyValue::new(
            format!("{prefix}.{j}.tool_call.function.name"),
            OtelValue::String(call[1].clone()),
        ));
        if non_empty(&call[2]).is_some() {
            added.push(KeyValue::new(
                format!("{prefix}.{j}.tool_call.function.arguments"),
                OtelValue::String(call[2].clone()),
            ));
        }
    }
}
