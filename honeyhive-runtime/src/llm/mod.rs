//! LLM calls: model, provider, parameters, tokens, messages and cost, written as OpenTelemetry
//! GenAI keys and as OpenInference keys so that HoneyHive, Phoenix and any GenAI-aware backend
//! render them.
//!
//! ```
//! use honeyhive_runtime::{trace, LlmCall};
//!
//! #[trace(event_type = "model")]
//! fn complete(question: &str) -> String {
//!     let answer = "Paris".to_owned(); // the API call
//!     LlmCall::new("gpt-4o-mini")
//!         .provider("openai")
//!         .temperature(0.2)
//!         .message("user", question)
//!         .completion(answer.clone())
//!         .usage(12, 3)
//!         .finish_reason("stop")
//!         .record();
//!     answer
//! }
//! # complete("Capital of France?");
//! ```
//!
//! [`LlmCall::record`] adds typed values to the current span (a cheap append, nothing when the
//! span is not recorded; [`record_llm`] also defers building the record). The export thread
//! then writes the conventions its destinations read ([`Conventions`]; GenAI for a generic
//! OTLP endpoint, OpenInference for Phoenix, both for HoneyHive, or what
//! [`Builder::conventions`](crate::Builder::conventions) says), prices the call from the
//! [`PriceTable`], and adds token and cost totals to the root span of the trace
//! (`honeyhive.total.*`).
//!
//! With OpenInference, every span also gets `openinference.span.kind` from its event type, and
//! `input.value` / `output.value` from what `#[trace]` captured, so Phoenix shows kinds and I/O
//! for all spans.
//!
//! Retrieved documents ([`record_documents`]), tool calls and tool definitions
//! ([`record_tool_call`], [`LlmCall::tools`], [`LlmCall::tool_call`]) and tags
//! ([`Enrich::tags`](crate::Enrich::tags)) have typed APIs too; the export thread writes them, the
//! GenAI operation names (`chat`, `embeddings`, `invoke_agent`, `execute_tool`, `retrieval`), the
//! session as `gen_ai.conversation.id` and the span's metadata as OpenInference's `metadata`
//! object, each in the chosen conventions. See [`documents`] and [`tools`].

pub mod documents;
pub(crate) mod json;
pub mod prices;
pub(crate) mod spans;
pub mod tools;

use crate::record::Attr;
use std::borrow::Cow;

use opentelemetry::{Array, KeyValue, StringValue, Value};

use crate::capture::truncated_text;
use crate::span::{self, EventType};

pub use documents::{Document, record_documents};
pub use prices::{Cost, ModelPrice, PriceError, PriceTable, PriceTier, TokenUsage};
pub use tools::{ToolCall, ToolDefinition, record_tool_call};

/// Which attribute conventions LLM spans are written in.
///
/// Unless [`Builder::conventions`](crate::Builder::conventions) or `HH_CONVENTIONS` says
/// otherwise, the pipeline writes what its destinations read: [`GenAi`](Conventions::GenAi)
/// for a generic OTLP endpoint (Jaeger, Logfire, Langfuse and collectors read `gen_ai.*`),
/// [`OpenInference`](Conventions::OpenInference) for
/// [`Builder::with_phoenix`](crate::Builder::with_phoenix), and [`Both`](Conventions::Both)
/// for HoneyHive, the console, trace files and your own exporters, or when destinations
/// differ.
///
/// Each value goes out once per convention. Keys that repeat others are HoneyHive's and come
/// with `Both` only: `honeyhive_duration_ms` (the span's start and end), a root's
/// `honeyhive.sample_rate` of 1 (what readers assume without one) and the totals of a root
/// whose only LLM call is its own (its call's keys). A root over other calls always gets its
/// totals, and a rate below 1 is always sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conventions {
    /// OpenTelemetry GenAI (`gen_ai.*`) only.
    GenAi,
    /// OpenInference (`openinference.span.kind`, `llm.*`, `input.value`, ...) only.
    OpenInference,
    /// Both, and HoneyHive's keys that repeat others (`Conventions::default()`).
    #[default]
    Both,
}

/// What reads an exporter's spans, for the conventions it is sent by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    /// A generic OTLP backend or collector: GenAI.
    Otlp,
    /// Arize Phoenix: OpenInference.
    Phoenix,
    /// HoneyHive cloud.
    HoneyHive,
    /// The console, files, custom exporters: everything.
    Other,
}

impl Conventions {
    /// `genai`, `openinference` or `both` (any case), as `HH_CONVENTIONS` names them.
    pub(crate) fn from_name(name: &str) -> Option<Conventions> {
        match name.trim().to_ascii_lowercase().as_str() {
            "genai" | "gen_ai" => Some(Conventions::GenAi),
            "openinference" => Some(Conventions::OpenInference),
            "both" => Some(Conventions::Both),
            _ => None,
        }
    }

    /// What every destination reads: one convention when they agree, else both.
    pub(crate) fn for_destinations(
        destinations: impl IntoIterator<Item = Destination>,
    ) -> Conventions {
        let (mut gen_ai, mut openinference) = (false, false);
        for d in destinations {
            match d {
                Destination::Otlp => gen_ai = true,
                Destination::Phoenix => openinference = true,
                Destination::HoneyHive | Destination::Other => return Conventions::Both,
            }
        }
        match (gen_ai, openinference) {
            (true, false) => Conventions::GenAi,
            (false, true) => Conventions::OpenInference,
            _ => Conventions::Both,
        }
    }

    /// Whether `gen_ai.*` keys are written.
    pub const fn gen_ai(self) -> bool {
        matches!(self, Conventions::GenAi | Conventions::Both)
    }

    /// Whether OpenInference keys are written.
    pub const fn openinference(self) -> bool {
        matches!(self, Conventions::OpenInference | Conventions::Both)
    }
}

/// OpenTelemetry GenAI attribute keys (semantic conventions 1.37+), as our own constants: the
/// semconv crate marks its GenAI constants deprecated while they move between repositories.
pub mod gen_ai {
    /// `chat`, `text_completion`, `embeddings`, `generate_content`, `execute_tool`, ...
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    /// `openai`, `anthropic`, `gcp.gemini`, `aws.bedrock`, `mistral_ai`, ...
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// The model asked for.
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// The model that answered.
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// Temperature.
    pub const REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
    /// Maximum output tokens.
    pub const REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
    /// Top p.
    pub const REQUEST_TOP_P: &str = "gen_ai.request.top_p";
    /// Top k.
    pub const REQUEST_TOP_K: &str = "gen_ai.request.top_k";
    /// Frequency penalty.
    pub const REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
    /// Presence penalty.
    pub const REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
    /// Seed.
    pub const REQUEST_SEED: &str = "gen_ai.request.seed";
    /// Stop sequences (string array).
    pub const REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
    /// Prompt tokens, cached ones included.
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Completion tokens, reasoning ones included.
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Prompt tokens served from the provider's cache.
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Prompt tokens written to the provider's cache.
    pub const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// Completion tokens spent on reasoning.
    pub const USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
    /// Why generation stopped (string array).
    pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// The provider's response id.
    pub const RESPONSE_ID: &str = "gen_ai.response.id";
    /// Prompt messages as JSON: `[{"role":"user","parts":[{"type":"text","content":"..."}]}]`.
    pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
    /// Completion messages as JSON, with `finish_reason`.
    pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
    /// The tools offered to the model, as JSON: `[{"type":"function","name":..,"parameters":..}]`.
    pub const TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";
    /// The tool an `execute_tool` span runs.
    pub const TOOL_NAME: &str = "gen_ai.tool.name";
    /// What the tool does.
    pub const TOOL_DESCRIPTION: &str = "gen_ai.tool.description";
    /// The id of the tool call the model made.
    pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    /// The tool call's arguments, as JSON.
    pub const TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
    /// What the tool returned.
    pub const TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
    /// The agent an `invoke_agent` span runs.
    pub const AGENT_NAME: &str = "gen_ai.agent.name";
    /// The conversation (our session id).
    pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
    /// Retrieved documents as JSON, when OpenInference keys are not written.
    pub const RETRIEVAL_DOCUMENTS: &str = "gen_ai.retrieval.documents";
}

/// OpenInference attribute keys.
pub mod openinference {
    /// `LLM`, `TOOL`, `CHAIN`, `RETRIEVER`, `EMBEDDING`, `AGENT`, `EVALUATOR`, `GUARDRAIL`.
    pub const SPAN_KIND: &str = "openinference.span.kind";
    /// The model.
    pub const LLM_MODEL_NAME: &str = "llm.model_name";
    /// The provider (`openai`, `anthropic`, `google`, `mistralai`, ...).
    pub const LLM_PROVIDER: &str = "llm.provider";
    /// The AI system (same vocabulary as the provider).
    pub const LLM_SYSTEM: &str = "llm.system";
    /// Request parameters as a JSON object.
    pub const LLM_INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
    /// Prompt tokens.
    pub const LLM_TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
    /// Completion tokens.
    pub const LLM_TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
    /// Prompt plus completion tokens.
    pub const LLM_TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
    /// Prompt tokens read from the cache.
    pub const LLM_TOKEN_COUNT_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
    /// Prompt tokens written to the cache.
    pub const LLM_TOKEN_COUNT_CACHE_WRITE: &str = "llm.token_count.prompt_details.cache_write";
    /// Reasoning tokens.
    pub const LLM_TOKEN_COUNT_REASONING: &str = "llm.token_count.completion_details.reasoning";
    /// Cost of the prompt, USD. Written under either convention: GenAI has no cost key.
    pub const LLM_COST_PROMPT: &str = "llm.cost.prompt";
    /// Cost of the completion, USD.
    pub const LLM_COST_COMPLETION: &str = "llm.cost.completion";
    /// Total cost, USD.
    pub const LLM_COST_TOTAL: &str = "llm.cost.total";
    /// Input, as text or JSON.
    pub const INPUT_VALUE: &str = "input.value";
    /// `text/plain` or `application/json`.
    pub const INPUT_MIME_TYPE: &str = "input.mime_type";
    /// Output, as text or JSON.
    pub const OUTPUT_VALUE: &str = "output.value";
    /// `text/plain` or `application/json`.
    pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
    /// The model of an embedding span.
    pub const EMBEDDING_MODEL_NAME: &str = "embedding.model_name";
    /// The span's metadata, one JSON object (from `enrich_span().metadata(..)`).
    pub const METADATA: &str = "metadata";
    /// The span's tags, a string list (from `enrich_span().tags(..)`).
    pub const TAG_TAGS: &str = crate::enrich::TAGS;
    /// The tool a tool span runs.
    pub const TOOL_NAME: &str = "tool.name";
    /// What the tool does.
    pub const TOOL_DESCRIPTION: &str = "tool.description";
    /// The JSON schema of the tool's parameters.
    pub const TOOL_PARAMETERS: &str = "tool.parameters";
    /// The id of the tool call the span executes.
    pub const TOOL_ID: &str = "tool.id";
}

/// Totals the export thread adds to the root span of a trace: the sums over its LLM spans.
///
/// Kept apart from the per-call keys so backends that sum `gen_ai.usage.*` or
/// `llm.token_count.*` over spans (Phoenix computes cumulative counts itself) count each call
/// once. The token and cost totals count LLM calls only (chat, completion), as Phoenix's trace
/// token count does; embedding calls (`event_type = "embedding"`, or an
/// [`LlmCall`] with operation `embeddings`) are summed apart, under
/// `honeyhive.total.embedding_*`, so the two numbers never blur.
pub mod totals {
    /// Prompt tokens of every LLM call in the trace.
    pub const INPUT_TOKENS: &str = "honeyhive.total.input_tokens";
    /// Completion tokens.
    pub const OUTPUT_TOKENS: &str = "honeyhive.total.output_tokens";
    /// Both.
    pub const TOKENS: &str = "honeyhive.total.tokens";
    /// USD, over the calls whose model has a price.
    pub const COST_USD: &str = "honeyhive.total.cost_usd";
    /// LLM calls (spans with a model or token counts).
    pub const LLM_CALLS: &str = "honeyhive.total.llm_calls";
    /// LLM calls with no known cost, not included in it: no price for the model, or no token
    /// counts to price (a stream without usage, a failed call).
    pub const UNPRICED_CALLS: &str = "honeyhive.total.unpriced_calls";
    /// Input tokens of the embedding calls in the trace (not in [`TOKENS`]).
    pub const EMBEDDING_TOKENS: &str = "honeyhive.total.embedding_tokens";
    /// USD of the priced embedding calls (not in [`COST_USD`]).
    pub const EMBEDDING_COST_USD: &str = "honeyhive.total.embedding_cost_usd";
    /// Embedding calls.
    pub const EMBEDDING_CALLS: &str = "honeyhive.total.embedding_calls";
}

/// Raw messages on the caller's side: `[role, content, role, content, ...]`. Turned into JSON and
/// flattened keys on the export thread.
const RAW_INPUT_MESSAGES: &str = "\0llm.input_messages";
const RAW_OUTPUT_MESSAGES: &str = "\0llm.output_messages";
/// A cost the caller knows (from the provider's response), which wins over the price table.
const RAW_COST: &str = "\0llm.cost";

/// The raw messages of a span, read where the span's record holds them: the export thread
/// renders them without copying them into the span's list first (see [`render`]). A side left
/// `None` is taken from the list instead.
#[derive(Debug, Default)]
pub(crate) struct RecordedMessages<'a> {
    input: Option<Cow<'a, [StringValue]>>,
    output: Option<Cow<'a, [StringValue]>>,
}

impl<'a> RecordedMessages<'a> {
    /// Where the messages recorded under `key` go, when it is a raw messages key.
    pub(crate) fn slot(&mut self, key: &str) -> Option<&mut Option<Cow<'a, [StringValue]>>> {
        match key {
            RAW_INPUT_MESSAGES => Some(&mut self.input),
            RAW_OUTPUT_MESSAGES => Some(&mut self.output),
            _ => None,
        }
    }
}

/// One message of a prompt or a completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`.
    pub role: Cow<'static, str>,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message.
    pub fn new(role: impl Into<Cow<'static, str>>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A typed record of one LLM call, written to the current span by [`LlmCall::record`].
///
/// Token counts follow GenAI: `input_tokens` includes cached prompt tokens (for Anthropic, add
/// `cache_read_input_tokens` and `cache_creation_input_tokens` to `input_tokens`) and
/// `output_tokens` includes reasoning tokens.
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "call `.record()` to write it to the current span"]
pub struct LlmCall {
    model: Option<Cow<'static, str>>,
    response_model: Option<Cow<'static, str>>,
    provider: Option<Cow<'static, str>>,
    operation: Option<Cow<'static, str>>,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
    top_p: Option<f64>,
    top_k: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    stop_sequences: Vec<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    finish_reasons: Vec<StringValue>,
    response_id: Option<String>,
    /// Role and text of each prompt message, in turn: the list the span records, built as the
    /// call is (no second list at `record`).
    input_messages: Vec<StringValue>,
    /// Role and text of each completion message, in turn.
    output_messages: Vec<StringValue>,
    cost_usd: Option<f64>,
    tools: Vec<ToolDefinition>,
    tool_calls: Vec<ToolCall>,
}

impl LlmCall {
    /// A call to `model` (the requested model, `gen_ai.request.model`).
    pub fn new(model: impl Into<Cow<'static, str>>) -> LlmCall {
        LlmCall {
            model: Some(model.into()),
            ..LlmCall::default()
        }
    }

    /// The provider, in GenAI's vocabulary: `openai`, `anthropic`, `gcp.gemini`,
    /// `gcp.vertex_ai`, `aws.bedrock`, `azure.ai.openai`, `mistral_ai`, `cohere`, `groq`,
    /// `deepseek`, `x_ai`, ...
    pub fn provider(mut self, provider: impl Into<Cow<'static, str>>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// The operation (`chat` by default, `embeddings` on embedding spans; `text_completion`,
    /// `generate_content`).
    pub fn operation(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// The model that answered, when it differs from the one asked for (e.g. a dated version).
    pub fn response_model(mut self, model: impl Into<Cow<'static, str>>) -> Self {
        self.response_model = Some(model.into());
        self
    }

    /// Temperature.
    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Maximum output tokens.
    pub fn max_tokens(mut self, n: u64) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Top p.
    pub fn top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Top k.
    pub fn top_k(mut self, k: f64) -> Self {
        self.top_k = Some(k);
        self
    }

    /// Frequency penalty.
    pub fn frequency_penalty(mut self, p: f64) -> Self {
        self.frequency_penalty = Some(p);
        self
    }

    /// Presence penalty.
    pub fn presence_penalty(mut self, p: f64) -> Self {
        self.presence_penalty = Some(p);
        self
    }

    /// Seed.
    pub fn seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Stop sequences.
    pub fn stop_sequences<S: Into<String>>(mut self, stop: impl IntoIterator<Item = S>) -> Self {
        self.stop_sequences = stop.into_iter().map(Into::into).collect();
        self
    }

    /// Prompt and completion tokens.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.input_tokens = Some(input_tokens);
        self.output_tokens = Some(output_tokens);
        self
    }

    /// Prompt tokens, cached ones included.
    pub fn input_tokens(mut self, n: u64) -> Self {
        self.input_tokens = Some(n);
        self
    }

    /// Completion tokens, reasoning ones included.
    pub fn output_tokens(mut self, n: u64) -> Self {
        self.output_tokens = Some(n);
        self
    }

    /// Prompt tokens read from the provider's cache (part of `input_tokens`).
    pub fn cache_read_input_tokens(mut self, n: u64) -> Self {
        self.cache_read_input_tokens = Some(n);
        self
    }

    /// Prompt tokens written to the provider's cache (part of `input_tokens`).
    pub fn cache_creation_input_tokens(mut self, n: u64) -> Self {
        self.cache_creation_input_tokens = Some(n);
        self
    }

    /// Completion tokens spent on reasoning (part of `output_tokens`).
    pub fn reasoning_tokens(mut self, n: u64) -> Self {
        self.reasoning_tokens = Some(n);
        self
    }

    /// Adds a finish reason (`stop`, `length`, `tool_calls`, `content_filter`, ...).
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reasons.push(StringValue::from(reason.into()));
        self
    }

    /// The provider's response id.
    pub fn response_id(mut self, id: impl Into<String>) -> Self {
        self.response_id = Some(id.into());
        self
    }

    /// Adds a prompt message.
    pub fn message(
        mut self,
        role: impl Into<Cow<'static, str>>,
        content: impl Into<String>,
    ) -> Self {
        push_message(&mut self.input_messages, role.into(), content.into());
        self
    }

    /// Adds prompt messages.
    pub fn messages(mut self, messages: impl IntoIterator<Item = Message>) -> Self {
        for m in messages {
            push_message(&mut self.input_messages, m.role, m.content);
        }
        self
    }

    /// Adds the assistant's completion.
    pub fn completion(mut self, content: impl Into<String>) -> Self {
        push_message(
            &mut self.output_messages,
            "assistant".into(),
            content.into(),
        );
        self
    }

    /// Adds a completion message with another role.
    pub fn output_message(
        mut self,
        role: impl Into<Cow<'static, str>>,
        content: impl Into<String>,
    ) -> Self {
        push_message(&mut self.output_messages, role.into(), content.into());
        self
    }

    /// The cost in USD, when the provider reports it; wins over the price table. A cost that
    /// is negative or not finite (NaN, infinite) is ignored, and the price table's is used: it
    /// is no call's cost, and it would make the cost roll-ups and metrics go backwards.
    pub fn cost_usd(mut self, usd: f64) -> Self {
        if usd.is_finite() && usd >= 0.0 {
            self.cost_usd = Some(usd);
        }
        self
    }

    /// Adds tools offered to the model (`gen_ai.tool.definitions`, `llm.tools`).
    pub fn tools(mut self, tools: impl IntoIterator<Item = ToolDefinition>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Adds a tool call the model asked for in its answer (a `tool_call` part of the output
    /// message).
    pub fn tool_call(mut self, call: ToolCall) -> Self {
        self.tool_calls.push(call);
        self
    }

    /// Writes the call to the current span; nothing happens when no recorded span is current.
    pub fn record(self) {
        if !span::current_is_recording() {
            return;
        }
        let cap = crate::capture::capture_cap();
        span::annotate_attrs_in(|out| self.write_attributes(cap, out));
    }

    /// The caller's side as a list of its own (tests).
    #[cfg(test)]
    fn into_attributes(self, cap: usize) -> Vec<KeyValue> {
        let mut out = Vec::new();
        self.write_attributes(cap, &mut out);
        out
    }

    /// The caller's side: typed values under GenAI keys and raw messages, added to `out`.
    /// Message texts are cut at `cap` here, so a huge prompt never waits in the export queue
    /// whole.
    fn write_attributes(self, cap: usize, out: &mut Vec<KeyValue>) {
        // Without one, the export thread picks it from the span's event type.
        if let Some(operation) = self.operation {
            out.push(KeyValue::new(gen_ai::OPERATION_NAME, operation));
        }
        let strings = [
            (gen_ai::REQUEST_MODEL, self.model),
            (gen_ai::RESPONSE_MODEL, self.response_model),
            (gen_ai::PROVIDER_NAME, self.provider),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                out.push(KeyValue::new(key, value));
            }
        }
        let floats = [
            (gen_ai::REQUEST_TEMPERATURE, self.temperature),
            (gen_ai::REQUEST_TOP_P, self.top_p),
            (gen_ai::REQUEST_TOP_K, self.top_k),
            (gen_ai::REQUEST_FREQUENCY_PENALTY, self.frequency_penalty),
            (gen_ai::REQUEST_PRESENCE_PENALTY, self.presence_penalty),
        ];
        for (key, value) in floats {
            if let Some(value) = value {
                out.push(KeyValue::new(key, value));
            }
        }
        let ints = [
            (gen_ai::REQUEST_MAX_TOKENS, self.max_tokens),
            (gen_ai::USAGE_INPUT_TOKENS, self.input_tokens),
            (gen_ai::USAGE_OUTPUT_TOKENS, self.output_tokens),
            (
                gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
                self.cache_read_input_tokens,
            ),
            (
                gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
                self.cache_creation_input_tokens,
            ),
            (gen_ai::USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_tokens),
        ];
        for (key, value) in ints {
            if let Some(value) = value {
                out.push(KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX)));
            }
        }
        if let Some(seed) = self.seed {
            out.push(KeyValue::new(gen_ai::REQUEST_SEED, seed));
        }
        if !self.stop_sequences.is_empty() {
            out.push(KeyValue::new(
                gen_ai::REQUEST_STOP_SEQUENCES,
                string_array(self.stop_sequences),
            ));
        }
        if !self.finish_reasons.is_empty() {
            out.push(KeyValue::new(
                gen_ai::RESPONSE_FINISH_REASONS,
                Value::Array(Array::String(self.finish_reasons)),
            ));
        }
        if let Some(id) = self.response_id {
            out.push(KeyValue::new(gen_ai::RESPONSE_ID, id));
        }
        for (key, messages) in [
            (RAW_INPUT_MESSAGES, self.input_messages),
            (RAW_OUTPUT_MESSAGES, self.output_messages),
        ] {
            let mut messages = messages;
            if messages.is_empty() {
                continue;
            }
            for text in messages.iter_mut().skip(1).step_by(2) {
                if text.as_str().len() > cap {
                    *text = truncated_text(text.as_str(), cap);
                }
            }
            out.push(KeyValue::new(key, Value::Array(Array::String(messages))));
        }
        if let Some(usd) = self.cost_usd {
            out.push(KeyValue::new(RAW_COST, usd));
        }
        tools::llm_attributes(self.tools, self.tool_calls, cap, out);
    }
}

/// Adds a message to a list of roles and texts.
fn push_message(list: &mut Vec<StringValue>, role: Cow<'static, str>, content: String) {
    list.push(StringValue::from(role));
    list.push(StringValue::from(content));
}

/// Records the LLM call `make` builds, only when a recorded span is current: nothing is built
/// or allocated otherwise.
pub fn record_llm(make: impl FnOnce() -> LlmCall) {
    if span::current_is_recording() {
        make().record();
    }
}

fn string_array(items: Vec<String>) -> Value {
    Value::Array(Array::String(
        items.into_iter().map(StringValue::from).collect(),
    ))
}

/// The OpenInference span kind of an event type.
pub const fn span_kind(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Model => "LLM",
        EventType::Tool => "TOOL",
        EventType::Chain | EventType::Session => "CHAIN",
        EventType::Retriever => "RETRIEVER",
        EventType::Embedding => "EMBEDDING",
        EventType::Agent => "AGENT",
        EventType::Evaluator => "EVALUATOR",
        EventType::Guardrail => "GUARDRAIL",
    }
}

/// OpenInference's provider vocabulary for a GenAI provider name, when it names it otherwise.
fn openinference_provider(gen_ai_provider: &str) -> Option<&'static str> {
    Some(match gen_ai_provider {
        "gcp.gemini" | "gcp.vertex_ai" | "gcp.gen_ai" => "google",
        "mistral_ai" => "mistralai",
        "azure.ai.openai" | "azure.ai.inference" => "azure",
        "aws.bedrock" => "aws",
        "x_ai" => "xai",
        _ => return None,
    })
}

/// Tokens and cost of one span, or summed over a subtree.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cost: f64,
    pub(crate) llm_calls: u32,
    pub(crate) unpriced_calls: u32,
    pub(crate) embedding_tokens: i64,
    pub(crate) embedding_cost: f64,
    pub(crate) embedding_calls: u32,
}

impl Usage {
    pub(crate) fn is_empty(&self) -> bool {
        self.llm_calls == 0 && self.embedding_calls == 0
    }

    /// The same call counted as an embedding call: apart from the LLM totals.
    pub(crate) fn as_embedding(self) -> Usage {
        Usage {
            embedding_tokens: self
                .embedding_tokens
                .saturating_add(self.input_tokens)
                .saturating_add(self.output_tokens),
            embedding_cost: self.embedding_cost + self.cost,
            embedding_calls: self.embedding_calls + self.llm_calls,
            ..Usage::default()
        }
    }

    pub(crate) fn add(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost += other.cost;
        self.llm_calls += other.llm_calls;
        self.unpriced_calls += other.unpriced_calls;
        self.embedding_tokens = self.embedding_tokens.saturating_add(other.embedding_tokens);
        self.embedding_cost += other.embedding_cost;
        self.embedding_calls += other.embedding_calls;
    }

    /// `honeyhive.total.*` for a root.
    pub(crate) fn totals(&self) -> Vec<KeyValue> {
        let mut out = Vec::new();
        if self.embedding_calls > 0 {
            out.push(KeyValue::new(
                totals::EMBEDDING_TOKENS,
                self.embedding_tokens,
            ));
            if self.embedding_cost > 0.0 {
                out.push(KeyValue::new(
                    totals::EMBEDDING_COST_USD,
                    self.embedding_cost,
                ));
            }
            out.push(KeyValue::new(
                totals::EMBEDDING_CALLS,
                i64::from(self.embedding_calls),
            ));
        }
        if self.llm_calls == 0 {
            return out;
        }
        out.extend([
            KeyValue::new(totals::INPUT_TOKENS, self.input_tokens),
            KeyValue::new(totals::OUTPUT_TOKENS, self.output_tokens),
            KeyValue::new(
                totals::TOKENS,
                self.input_tokens.saturating_add(self.output_tokens),
            ),
            KeyValue::new(totals::LLM_CALLS, i64::from(self.llm_calls)),
        ]);
        if self.unpriced_calls < self.llm_calls {
            out.push(KeyValue::new(totals::COST_USD, self.cost));
        }
        if self.unpriced_calls > 0 {
            out.push(KeyValue::new(
                totals::UNPRICED_CALLS,
                i64::from(self.unpriced_calls),
            ));
        }
        out
    }
}

/// The provider the call names, for its price.
fn provider_of<'a>(attrs: &'a [Attr<'_>]) -> Option<&'a str> {
    match find(attrs, gen_ai::PROVIDER_NAME) {
        Some(Value::String(provider)) => Some(provider.as_str()),
        _ => None,
    }
}

/// The call's tokens, for its price (a negative count is none).
fn tokens_of(attrs: &[Attr<'_>], input: Option<i64>, output: Option<i64>) -> TokenUsage {
    let n = |tokens: Option<i64>| tokens.map_or(0, |n| u64::try_from(n).unwrap_or(0));
    let int = |key: &str| match find(attrs, key) {
        Some(Value::I64(n)) => Some(*n),
        _ => None,
    };
    TokenUsage {
        input: n(input),
        output: n(output),
        cache_read: n(int(gen_ai::USAGE_CACHE_READ_INPUT_TOKENS)),
        cache_write: n(int(gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS)),
        reasoning: n(int(gen_ai::USAGE_REASONING_OUTPUT_TOKENS)),
    }
}

/// The export thread's side: turns what [`LlmCall::record`] wrote into the chosen conventions,
/// prices the call, and adds OpenInference's kind and I/O to every span. Returns the span's own
/// usage for the roll-up. Values built here are cut at `cap` bytes like captured ones; JSON
/// stays JSON ([`json::cut_rendered`]), and a value that could only be cut as text is sent as
/// plain text (no mime type: the default).
/// Messages in `messages` are rendered as if they were in `attrs` under their raw keys.
pub(crate) fn render(
    attrs: &mut Vec<Attr<'_>>,
    messages: RecordedMessages<'_>,
    event_type: EventType,
    conventions: Conventions,
    prices: &PriceTable,
    cap: usize,
) -> Usage {
    // Most spans are not LLM calls: one look at the keys spares them every lookup below.
    let llm_keys = messages.input.is_some()
        || messages.output.is_some()
        || attrs.iter().any(|kv| {
            let key = kv.key.as_str();
            key.starts_with('\0') || key.starts_with("gen_ai.") || key.starts_with("llm.")
        });
    let Call {
        input_messages,
        output_messages,
        known_cost,
        model,
        input_tokens,
        output_tokens,
    } = if llm_keys {
        Call::take(attrs, messages)
    } else {
        Call::default()
    };
    let is_llm_call = model.is_some() || input_tokens.is_some() || output_tokens.is_some();

    // Room for the keys an LLM call adds, so the list grows once; nothing allocated for a
    // span that gets no keys (any other span under GenAI's conventions).
    let mut added = if is_llm_call {
        Vec::with_capacity(32)
    } else {
        Vec::new()
    };
    let mut usage = Usage::default();
    if is_llm_call {
        let cost = match known_cost {
            Some(total) => Some(Cost {
                prompt: None,
                completion: None,
                total,
            }),
            // No token counts (a stream without usage, a failed or dropped call): nothing to
            // price, not a cost of 0.
            None if input_tokens.is_none() && output_tokens.is_none() => None,
            None => model.as_ref().and_then(|m| {
                prices.cost(
                    provider_of(attrs),
                    m.as_str(),
                    &tokens_of(attrs, input_tokens, output_tokens),
                )
            }),
        };
        // Tokens without a price record no cost at all, never a guessed one.
        if let Some(cost) = cost {
            // The total is written under either convention (GenAI has no cost key); its parts
            // are OpenInference's.
            if let Some(prompt) = cost.prompt.filter(|_| conventions.openinference()) {
                added.push(KeyValue::new(openinference::LLM_COST_PROMPT, prompt));
            }
            if let Some(completion) = cost.completion.filter(|_| conventions.openinference()) {
                added.push(KeyValue::new(
                    openinference::LLM_COST_COMPLETION,
                    completion,
                ));
            }
            added.push(KeyValue::new(openinference::LLM_COST_TOTAL, cost.total));
        }
        usage = Usage {
            input_tokens: input_tokens.unwrap_or(0),
            output_tokens: output_tokens.unwrap_or(0),
            cost: cost.map_or(0.0, |c| c.total),
            llm_calls: 1,
            unpriced_calls: u32::from(cost.is_none()),
            ..Usage::default()
        };
    }

    if conventions.gen_ai() {
        gen_ai_message_keys(attrs, &mut added, &input_messages, &output_messages, cap);
    }

    if conventions.openinference() {
        added.push(KeyValue::new(
            openinference::SPAN_KIND,
            span_kind(event_type),
        ));
        if is_llm_call {
            openinference_llm(attrs, &mut added, model, input_tokens, output_tokens);
        }
        openinference_io(attrs, &mut added, &input_messages, &output_messages, cap);
    }

    if llm_keys && !conventions.gen_ai() {
        attrs.retain(|kv| !kv.key.as_str().starts_with("gen_ai."));
    }
    cut_added(&mut added, cap);
    attrs.extend(added.into_iter().map(Attr::Owned));
    usage
}

/// Cuts the values the export thread built at `cap` bytes: JSON stays JSON that parses
/// ([`json::cut_rendered`]); an `input.value` or `output.value` that only text can hold
/// loses its mime type (plain text is the default).
fn cut_added(added: &mut Vec<KeyValue>, cap: usize) {
    let mut lost_mime = Vec::new();
    for kv in added.iter_mut() {
        if let Value::String(s) = &kv.value
            && s.as_str().len() > cap
        {
            let (text, still_json) = json::cut_rendered(s.as_str(), cap);
            kv.value = Value::String(text);
            if !still_json {
                lost_mime.extend(json::mime_key_of(kv.key.as_str()));
            }
        }
    }
    if !lost_mime.is_empty() {
        added.retain(|kv| !lost_mime.contains(&kv.key.as_str()));
    }
}

/// What a span's list says about an LLM call.
#[derive(Default)]
struct Call<'a> {
    /// `[role, content, role, content, ...]`, borrowed from the record or moved out of the
    /// span's list: the JSON forms read them, and only the flattened OpenInference keys copy
    /// them.
    input_messages: Cow<'a, [StringValue]>,
    output_messages: Cow<'a, [StringValue]>,
    /// The cost the caller gave.
    known_cost: Option<f64>,
    model: Option<StringValue>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

impl<'a> Call<'a> {
    /// Takes the raw values out of `attrs` (the messages given apart are not looked for there)
    /// and reads the rest.
    fn take(attrs: &mut Vec<Attr<'_>>, messages: RecordedMessages<'a>) -> Call<'a> {
        let known_cost = match take(attrs, RAW_COST) {
            Some(Value::F64(usd)) => Some(usd),
            _ => None,
        };
        let mut raw = |given: Option<Cow<'a, [StringValue]>>, key: &str| {
            given.unwrap_or_else(|| Cow::Owned(messages_of(take(attrs, key))))
        };
        let input_messages = raw(messages.input, RAW_INPUT_MESSAGES);
        let output_messages = raw(messages.output, RAW_OUTPUT_MESSAGES);
        let int = |key: &str| match find(attrs, key) {
            Some(Value::I64(n)) => Some(*n),
            _ => None,
        };
        let text = |key: &str| match find(attrs, key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        Call {
            input_messages,
            output_messages,
            known_cost,
            model: text(gen_ai::RESPONSE_MODEL).or_else(|| text(gen_ai::REQUEST_MODEL)),
            input_tokens: int(gen_ai::USAGE_INPUT_TOKENS)
                .or_else(|| int(openinference::LLM_TOKEN_COUNT_PROMPT)),
            output_tokens: int(gen_ai::USAGE_OUTPUT_TOKENS)
                .or_else(|| int(openinference::LLM_TOKEN_COUNT_COMPLETION)),
        }
    }
}

/// `gen_ai.input.messages` and `gen_ai.output.messages`.
fn gen_ai_message_keys(
    attrs: &[Attr<'_>],
    added: &mut Vec<KeyValue>,
    input_messages: &[StringValue],
    output_messages: &[StringValue],
    cap: usize,
) {
    if !input_messages.is_empty() {
        added.push(KeyValue::new(
            gen_ai::INPUT_MESSAGES,
            gen_ai_messages(input_messages, &[], cap),
        ));
    }
    if !output_messages.is_empty() {
        let reasons = match find(attrs, gen_ai::RESPONSE_FINISH_REASONS) {
            Some(Value::Array(Array::String(r))) => r.as_slice(),
            _ => &[],
        };
        added.push(KeyValue::new(
            gen_ai::OUTPUT_MESSAGES,
            gen_ai_messages(output_messages, reasons, cap),
        ));
    }
}

/// A mime type, unless it is OpenInference's default (`text/plain`, which readers assume when
/// none is sent): every span would otherwise repeat it.
fn push_mime(added: &mut Vec<KeyValue>, key: &'static str, mime: &'static str) {
    if mime != "text/plain" {
        added.push(KeyValue::new(key, mime));
    }
}

/// OpenInference's flattened messages, and `input.value` / `output.value` with their mime
/// types: the messages of an LLM call, else what `#[trace]` captured.
fn openinference_io(
    attrs: &[Attr<'_>],
    added: &mut Vec<KeyValue>,
    input_messages: &[StringValue],
    output_messages: &[StringValue],
    cap: usize,
) {
    let input = if find(attrs, openinference::INPUT_VALUE).is_some() {
        None
    } else if input_messages.is_empty() {
        captured_input(attrs)
    } else {
        Some((messages_json(input_messages, cap), "application/json"))
    };
    let output = if find(attrs, openinference::OUTPUT_VALUE).is_some() {
        None
    } else if output_messages.is_empty() {
        captured_output(attrs)
    } else {
        let mut text = String::new();
        for (i, pair) in output_messages.chunks_exact(2).enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(pair[1].as_str());
        }
        Some((Value::from(text), "text/plain"))
    };
    for (prefix, messages) in [
        ("llm.input_messages", input_messages),
        ("llm.output_messages", output_messages),
    ] {
        for (i, pair) in messages.chunks_exact(2).enumerate() {
            let (role_key, content_key) = message_keys(prefix, i);
            added.push(KeyValue::new(role_key, pair[0].clone()));
            added.push(KeyValue::new(content_key, pair[1].clone()));
        }
    }
    if let Some((value, mime)) = input {
        added.push(KeyValue::new(openinference::INPUT_VALUE, value));
        push_mime(added, openinference::INPUT_MIME_TYPE, mime);
    }
    if let Some((value, mime)) = output {
        added.push(KeyValue::new(openinference::OUTPUT_VALUE, value));
        push_mime(added, openinference::OUTPUT_MIME_TYPE, mime);
    }
}

/// `{prefix}.{i}.message.role` and `.content`: static for the first messages of a chat, so
/// that most calls format no key.
fn message_keys(prefix: &'static str, i: usize) -> (opentelemetry::Key, opentelemetry::Key) {
    macro_rules! keys {
        ($p:literal: $($i:literal)*) => {
            [$((concat!($p, ".", $i, ".message.role"), concat!($p, ".", $i, ".message.content"))),*]
        };
    }
    const INPUT: [(&str, &str); 8] = keys!("llm.input_messages": 0 1 2 3 4 5 6 7);
    const OUTPUT: [(&str, &str); 8] = keys!("llm.output_messages": 0 1 2 3 4 5 6 7);
    let table = if prefix == "llm.input_messages" {
        &INPUT
    } else {
        &OUTPUT
    };
    match table.get(i) {
        Some(&(role, content)) => (
            opentelemetry::Key::from_static_str(role),
            opentelemetry::Key::from_static_str(content),
        ),
        None => (
            opentelemetry::Key::from(format!("{prefix}.{i}.message.role")),
            opentelemetry::Key::from(format!("{prefix}.{i}.message.content")),
        ),
    }
}

/// OpenInference's LLM keys, mirrored from the GenAI ones.
fn openinference_llm(
    attrs: &[Attr<'_>],
    added: &mut Vec<KeyValue>,
    model: Option<StringValue>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
) {
    use openinference as oi;
    if let Some(model) = model {
        added.push(KeyValue::new(oi::LLM_MODEL_NAME, model));
    }
    if let Some(Value::String(provider)) = find(attrs, gen_ai::PROVIDER_NAME) {
        let provider = openinference_provider(provider.as_str())
            .map_or_else(|| provider.clone(), StringValue::from);
        added.push(KeyValue::new(oi::LLM_PROVIDER, provider.clone()));
        added.push(KeyValue::new(oi::LLM_SYSTEM, provider));
    }
    let mirrored = [
        (gen_ai::USAGE_INPUT_TOKENS, oi::LLM_TOKEN_COUNT_PROMPT),
        (gen_ai::USAGE_OUTPUT_TOKENS, oi::LLM_TOKEN_COUNT_COMPLETION),
        (
            gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
            oi::LLM_TOKEN_COUNT_CACHE_READ,
        ),
        (
            gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
            oi::LLM_TOKEN_COUNT_CACHE_WRITE,
        ),
        (
            gen_ai::USAGE_REASONING_OUTPUT_TOKENS,
            oi::LLM_TOKEN_COUNT_REASONING,
        ),
    ];
    for (from, to) in mirrored {
        if let Some(value @ Value::I64(_)) = find(attrs, from)
            && find(attrs, to).is_none()
        {
            added.push(KeyValue::new(to, value.clone()));
        }
    }
    if (input_tokens.is_some() || output_tokens.is_some())
        && find(attrs, oi::LLM_TOKEN_COUNT_TOTAL).is_none()
    {
        let total = input_tokens
            .unwrap_or(0)
            .saturating_add(output_tokens.unwrap_or(0));
        added.push(KeyValue::new(oi::LLM_TOKEN_COUNT_TOTAL, total));
    }
    let params = [
        ("temperature", gen_ai::REQUEST_TEMPERATURE),
        ("max_tokens", gen_ai::REQUEST_MAX_TOKENS),
        ("top_p", gen_ai::REQUEST_TOP_P),
        ("top_k", gen_ai::REQUEST_TOP_K),
        ("frequency_penalty", gen_ai::REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", gen_ai::REQUEST_PRESENCE_PENALTY),
        ("seed", gen_ai::REQUEST_SEED),
        ("stop", gen_ai::REQUEST_STOP_SEQUENCES),
    ];
    if params.iter().any(|(_, key)| find(attrs, key).is_some()) {
        let mut text = String::new();
        let mut object = json::Object::new(&mut text);
        for (name, key) in params {
            if let Some(value) = find(attrs, key) {
                json::value(object.key(name), value);
            }
        }
        object.end();
        added.push(KeyValue::new(oi::LLM_INVOCATION_PARAMETERS, text));
    }
}

/// `input.value` from `honeyhive_inputs.*`: one text argument as text, anything else as a JSON
/// object of the arguments.
fn captured_input(attrs: &[Attr<'_>]) -> Option<(Value, &'static str)> {
    let inputs: Vec<(&str, &Value)> = attrs
        .iter()
        .filter_map(|kv| {
            kv.key
                .as_str()
                .strip_prefix("honeyhive_inputs.")
                .map(|name| (name, &kv.value))
        })
        .collect();
    match inputs.as_slice() {
        [] => None,
        [(_, Value::String(s))] => Some((Value::String(s.clone()), "text/plain")),
        _ => {
            let mut text = String::with_capacity(64);
            let mut object = json::Object::new(&mut text);
            for (name, value) in &inputs {
                json::value(object.key(name), value);
            }
            object.end();
            Some((Value::from(text), "application/json"))
        }
    }
}

/// `output.value` from `honeyhive_outputs.result`.
fn captured_output(attrs: &[Attr<'_>]) -> Option<(Value, &'static str)> {
    match find(attrs, "honeyhive_outputs.result")? {
        Value::String(s) => Some((Value::String(s.clone()), "text/plain")),
        other => {
            let mut text = String::new();
            json::value(&mut text, other);
            Some((Value::from(text), "application/json"))
        }
    }
}

/// The raw messages, `[role, content, role, content, ...]`, as recorded.
fn messages_of(raw: Option<Value>) -> Vec<StringValue> {
    match raw {
        Some(Value::Array(Array::String(flat))) => flat,
        _ => Vec::new(),
    }
}

/// OpenInference's `input.value` for a chat: `[{"role":..,"content":..}]`, fitted in `cap`
/// bytes as JSON that still parses (see [`json::fitted`]).
fn messages_json(messages: &[StringValue], cap: usize) -> Value {
    fitted(messages, cap, json::chat)
}

/// GenAI's message JSON: `[{"role":..,"parts":[{"type":"text","content":..}]}]`, fitted in
/// `cap` bytes like [`messages_json`].
fn gen_ai_messages(messages: &[StringValue], finish_reasons: &[StringValue], cap: usize) -> Value {
    fitted(messages, cap, |m| json::gen_ai_messages(m, finish_reasons))
}

/// A message list's JSON in `cap` bytes, else the whole of it (cut as text afterwards).
fn fitted(
    messages: &[StringValue],
    cap: usize,
    render: impl Fn(&[StringValue]) -> String,
) -> Value {
    let fits = json::fitted(messages, cap, &render);
    Value::from(fits.unwrap_or_else(|| render(messages)))
}

/// In the rendered list or in a list of added keys.
fn find<'a, A: std::borrow::Borrow<KeyValue>>(attrs: &'a [A], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .map(A::borrow)
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Removes every attribute named `key` and returns the last value (moved, not copied).
fn take(attrs: &mut Vec<Attr<'_>>, key: &str) -> Option<Value> {
    attrs
        .extract_if(.., |kv| kv.key.as_str() == key)
        .last()
        .map(|kv| kv.into_owned().value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(call: LlmCall, conventions: Conventions) -> (Vec<KeyValue>, Usage) {
        let mut attrs: Vec<Attr<'_>> = call
            .into_attributes(1024)
            .into_iter()
            .map(Attr::Owned)
            .collect();
        let usage = render(
            &mut attrs,
            RecordedMessages::default(),
            EventType::Model,
            conventions,
            &PriceTable::builtin(),
            1024,
        );
        (attrs.into_iter().map(Attr::into_owned).collect(), usage)
    }

    /// `render` on a list of owned attributes.
    fn render_list(
        attrs: &mut Vec<KeyValue>,
        messages: RecordedMessages<'_>,
        event_type: EventType,
        conventions: Conventions,
        prices: &PriceTable,
        cap: usize,
    ) -> Usage {
        let mut list: Vec<Attr<'_>> = std::mem::take(attrs).into_iter().map(Attr::Owned).collect();
        let usage = render(&mut list, messages, event_type, conventions, prices, cap);
        *attrs = list.into_iter().map(Attr::into_owned).collect();
        usage
    }

    fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        find(attrs, key)
    }

    fn json(attrs: &[KeyValue], key: &str) -> serde_json::Value {
        let text = get(attrs, key).unwrap_or_else(|| panic!("no {key}: {attrs:?}"));
        serde_json::from_str(&text.as_str()).unwrap()
    }

    #[test]
    fn both_conventions_are_written_and_priced() {
        let call = LlmCall::new("gpt-4o-mini")
            .provider("openai")
            .temperature(0.5)
            .max_tokens(100)
            .message("system", "be brief")
            .message("user", "hi")
            .completion("hello")
            .finish_reason("stop")
            .usage(1_000_000, 1_000_000);
        let (attrs, usage) = rendered(call, Conventions::Both);
        assert_eq!(
            json(&attrs, gen_ai::INPUT_MESSAGES),
            serde_json::json!([
                {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
            ])
        );
        assert_eq!(
            json(&attrs, gen_ai::OUTPUT_MESSAGES),
            serde_json::json!([{
                "role": "assistant",
                "parts": [{"type": "text", "content": "hello"}],
                "finish_reason": "stop",
            }])
        );
        assert_eq!(
            get(&attrs, "llm.input_messages.1.message.content"),
            Some(&Value::from("hi"))
        );
        assert_eq!(
            get(&attrs, openinference::LLM_TOKEN_COUNT_TOTAL),
            Some(&Value::I64(2_000_000))
        );
        assert_eq!(
            json(&attrs, openinference::LLM_INVOCATION_PARAMETERS),
            serde_json::json!({"max_tokens": 100, "temperature": 0.5})
        );
        let Some(Value::F64(total)) = get(&attrs, openinference::LLM_COST_TOTAL) else {
            panic!("no cost: {attrs:?}");
        };
        assert!((total - 0.75).abs() < 1e-9, "{total}");
        assert_eq!(usage.llm_calls, 1);
        assert!(attrs.iter().all(|kv| !kv.key.as_str().starts_with('\0')));
    }

    #[test]
    fn one_convention_leaves_out_the_other() {
        let call = || LlmCall::new("gpt-4o").usage(10, 5).completion("x");
        let (gen_ai_only, _) = rendered(call(), Conventions::GenAi);
        assert!(get(&gen_ai_only, openinference::SPAN_KIND).is_none());
        assert!(get(&gen_ai_only, openinference::LLM_TOKEN_COUNT_PROMPT).is_none());
        assert!(get(&gen_ai_only, gen_ai::USAGE_INPUT_TOKENS).is_some());
        // Cost has no GenAI key: it is written under either convention.
        assert!(get(&gen_ai_only, openinference::LLM_COST_TOTAL).is_some());
        let (oi_only, _) = rendered(call(), Conventions::OpenInference);
        assert!(
            oi_only
                .iter()
                .all(|kv| !kv.key.as_str().starts_with("gen_ai."))
        );
        assert_eq!(
            get(&oi_only, openinference::LLM_TOKEN_COUNT_PROMPT),
            Some(&Value::I64(10))
        );
    }

    #[test]
    fn unknown_models_get_tokens_but_no_cost() {
        let (attrs, usage) = rendered(LlmCall::new("my-own-model").usage(10, 5), Conventions::Both);
        assert!(get(&attrs, openinference::LLM_COST_TOTAL).is_none());
        assert_eq!(usage.unpriced_calls, 1);
        assert!(
            !usage
                .totals()
                .iter()
                .any(|kv| kv.key.as_str() == totals::COST_USD)
        );
    }

    #[test]
    fn a_reported_cost_wins_over_the_table() {
        let (attrs, _) = rendered(
            LlmCall::new("gpt-4o").usage(10, 5).cost_usd(0.5),
            Conventions::Both,
        );
        assert_eq!(
            get(&attrs, openinference::LLM_COST_TOTAL),
            Some(&Value::F64(0.5))
        );
    }

    #[test]
    fn captured_io_becomes_input_and_output_values() {
        let mut attrs = vec![
            KeyValue::new("honeyhive_inputs.q", "hi"),
            KeyValue::new("honeyhive_outputs.result", 3),
        ];
        render_list(
            &mut attrs,
            RecordedMessages::default(),
            EventType::Tool,
            Conventions::Both,
            &PriceTable::empty(),
            1024,
        );
        assert_eq!(
            get(&attrs, openinference::SPAN_KIND),
            Some(&Value::from("TOOL"))
        );
        assert_eq!(
            get(&attrs, openinference::INPUT_VALUE),
            Some(&Value::from("hi"))
        );
        assert_eq!(
            get(&attrs, openinference::OUTPUT_MIME_TYPE),
            Some(&Value::from("application/json"))
        );
        let mut two = vec![
            KeyValue::new("honeyhive_inputs.a", "x"),
            KeyValue::new("honeyhive_inputs.b", 2),
        ];
        render_list(
            &mut two,
            RecordedMessages::default(),
            EventType::Chain,
            Conventions::Both,
            &PriceTable::empty(),
            1024,
        );
        assert_eq!(
            json(&two, openinference::INPUT_VALUE),
            serde_json::json!({"a": "x", "b": 2})
        );
        let mut big = vec![
            KeyValue::new("honeyhive_inputs.a", "x".repeat(600)),
            KeyValue::new("honeyhive_inputs.b", "y".repeat(600)),
        ];
        render_list(
            &mut big,
            RecordedMessages::default(),
            EventType::Chain,
            Conventions::Both,
            &PriceTable::empty(),
            1024,
        );
        // Longer than the cap, the object is still JSON: each argument cut to its share.
        let value = json(&big, openinference::INPUT_VALUE);
        assert!(
            get(&big, openinference::INPUT_VALUE)
                .unwrap()
                .as_str()
                .len()
                <= 1024
        );
        for (key, letter) in [("a", "x"), ("b", "y")] {
            let text = value[key].as_str().unwrap();
            assert!(
                text.starts_with(&letter.repeat(300)) && text.ends_with("bytes]"),
                "{text}"
            );
        }
        assert_eq!(
            get(&big, openinference::INPUT_MIME_TYPE).map(Value::as_str),
            Some("application/json".into())
        );
    }

    #[test]
    fn message_texts_are_cut_on_the_callers_side() {
        let attrs = LlmCall::new("m")
            .message("user", "x".repeat(100))
            .into_attributes(10);
        let raw = find(&attrs, RAW_INPUT_MESSAGES).unwrap();
        assert_eq!(
            messages_of(Some(raw.clone()))[1].as_str(),
            "xxxxxxxxxx…[truncated 90 bytes]"
        );
    }

    static CHAT: crate::record::Meta = crate::record::Meta {
        name: "alloc_chat",
        event_type: EventType::Model,
        sample_rate: None,
        attr_capacity: 0,
        root: crate::record::RootState::new(),
    };

    #[test]
    fn recording_a_call_allocates_nothing_beyond_what_building_it_did() {
        let recorder = crate::testing::Recorder::start();
        // This thread's allocations in `record` alone, with the call built beforehand.
        let chat = || {
            let _span = crate::span::Span::enter(&CHAT);
            let call = LlmCall::new("gpt-4o")
                .provider("openai")
                .message("system", "Answer briefly.")
                .message("user", "What is the capital of France?")
                .completion("Paris.")
                .usage(12, 3)
                .finish_reason("stop");
            let before = crate::sink::tests::allocations();
            call.record();
            crate::sink::tests::allocations() - before
        };
        let allocations = crate::sink::tests::counted_after_warm_up(&recorder, chat);
        // A list per call for the attributes, or a second list per message kind, shows here.
        assert_eq!(
            allocations, 0,
            "32 recorded calls allocated {allocations} times"
        );
        let spans = recorder.spans();
        let last = spans.all("alloc_chat").last().expect("a chat span");
        assert_eq!(last.i64(gen_ai::USAGE_INPUT_TOKENS), Some(12));
        let input = last.json(gen_ai::INPUT_MESSAGES).expect("the prompt");
        assert_eq!(
            input[1]["parts"][0]["content"],
            "What is the capital of France?"
        );
        let output = last.json(gen_ai::OUTPUT_MESSAGES).expect("the completion");
        assert_eq!(output[0]["parts"][0]["content"], "Paris.");
        assert_eq!(output[0]["finish_reason"], "stop");
    }
}
