//! The per-model summary: calls, errors, tokens, cost and latency of the LLM calls in some
//! traces, by model and provider.
//!
//! An LLM call is a span with a model: `gen_ai.request.model` (what [`LlmCall`] writes under
//! the GenAI conventions), else `gen_ai.response.model`, else OpenInference's
//! `llm.model_name`. Tokens are read from `gen_ai.usage.*` or `llm.token_count.*`, the cost
//! from `llm.cost.total` (the export thread prices calls under either convention), so the
//! summary reads what our pipeline writes with any [`Conventions`] and what other
//! instrumentations write.
//!
//! [`LlmCall`]: crate::LlmCall
//! [`Conventions`]: crate::Conventions

use std::collections::HashMap;
use std::time::Duration;

use super::{Span, Trace, percentile};
use crate::enrich::Value;
use crate::llm::{gen_ai, openinference};

/// The older GenAI key for the provider, still written by many instrumentations.
const GEN_AI_SYSTEM: &str = "gen_ai.system";

impl Span {
    /// The model this span called, if it is an LLM call: `gen_ai.request.model`, else
    /// `gen_ai.response.model`, else `llm.model_name`.
    pub fn model(&self) -> Option<&str> {
        self.str(gen_ai::REQUEST_MODEL)
            .or_else(|| self.str(gen_ai::RESPONSE_MODEL))
            .or_else(|| self.str(openinference::LLM_MODEL_NAME))
    }

    /// The provider of the call: `gen_ai.provider.name`, else `llm.provider`, else the older
    /// `gen_ai.system` or `llm.system`.
    pub fn provider(&self) -> Option<&str> {
        self.str(gen_ai::PROVIDER_NAME)
            .or_else(|| self.str(openinference::LLM_PROVIDER))
            .or_else(|| self.str(GEN_AI_SYSTEM))
            .or_else(|| self.str(openinference::LLM_SYSTEM))
    }

    /// Input (prompt) tokens: `gen_ai.usage.input_tokens`, else `llm.token_count.prompt`.
    pub fn input_tokens(&self) -> Option<u64> {
        self.tokens(gen_ai::USAGE_INPUT_TOKENS)
            .or_else(|| self.tokens(openinference::LLM_TOKEN_COUNT_PROMPT))
    }

    /// Output (completion) tokens: `gen_ai.usage.output_tokens`, else
    /// `llm.token_count.completion`.
    pub fn output_tokens(&self) -> Option<u64> {
        self.tokens(gen_ai::USAGE_OUTPUT_TOKENS)
            .or_else(|| self.tokens(openinference::LLM_TOKEN_COUNT_COMPLETION))
    }

    /// A count in attribute `key`: an integer exactly, a float (as some instrumentations
    /// write counts) cut to one; nothing for a negative or non-numeric value.
    fn tokens(&self, key: &str) -> Option<u64> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // saturates
        match self.attr(key)? {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::Float(n) if *n >= 0.0 => Some(*n as u64),
            _ => None,
        }
    }

    /// The call's own cost in USD (`llm.cost.total`), if it was priced. Totals rolled up to
    /// a root (`honeyhive.total.cost_usd`) are not read, so sums over spans count each call
    /// once.
    pub fn cost_usd(&self) -> Option<f64> {
        self.f64(openinference::LLM_COST_TOTAL)
    }
}

/// The LLM calls of one model (and provider).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ModelSummary {
    /// The model.
    pub model: String,
    /// The provider, when the calls name one.
    pub provider: Option<String>,
    /// Calls.
    pub calls: usize,
    /// Calls that failed.
    pub errors: usize,
    /// Input tokens, summed (at most `u64::MAX`).
    pub input_tokens: u64,
    /// Output tokens, summed (at most `u64::MAX`).
    pub output_tokens: u64,
    /// Cost in USD, summed over the priced calls.
    pub cost_usd: f64,
    /// Calls with tokens but no cost (no known price).
    pub unpriced_calls: usize,
    /// Median latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
    /// The slowest call.
    pub max: Duration,
}

impl ModelSummary {
    /// Errors over calls, 0 to 1.
    #[allow(clippy::cast_precision_loss)] // counts
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }
}

/// The per-model summary of the LLM calls in `traces`, the most called model first (then by
/// name).
pub fn summarize<'a>(traces: impl IntoIterator<Item = &'a Trace>) -> Vec<ModelSummary> {
    summarize_spans(traces.into_iter().flat_map(|t| &t.spans))
}

/// [`summarize`] over spans of any traces.
pub fn summarize_spans<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Vec<ModelSummary> {
    type Rows<'a> = HashMap<(&'a str, Option<&'a str>), (ModelSummary, Vec<u64>)>;
    let mut rows: Rows<'_> = HashMap::new();
    for span in spans {
        let Some(model) = span.model() else { continue };
        let provider = span.provider();
        let (row, durations) = rows.entry((model, provider)).or_insert_with(|| {
            (
                ModelSummary {
                    model: model.to_owned(),
                    provider: provider.map(str::to_owned),
                    ..ModelSummary::default()
                },
                Vec::new(),
            )
        });
        row.calls += 1;
        row.errors += usize::from(span.status.is_error());
        let (input, output) = (span.input_tokens(), span.output_tokens());
        // Saturating: a corrupt count (a file's, or `u64::MAX` recorded) must not wrap the
        // total or panic.
        row.input_tokens = row.input_tokens.saturating_add(input.unwrap_or(0));
        row.output_tokens = row.output_tokens.saturating_add(output.unwrap_or(0));
        match span.cost_usd() {
            Some(cost) => row.cost_usd += cost,
            None => row.unpriced_calls += usize::from(input.is_some() || output.is_some()),
        }
        durations.push(span.duration_nanos());
    }
    let mut rows: Vec<ModelSummary> = rows
        .into_values()
        .map(|(mut row, mut durations)| {
            durations.sort_unstable();
            row.p50 = Duration::from_nanos(percentile(&durations, 50.0));
            row.p95 = Duration::from_nanos(percentile(&durations, 95.0));
            row.max = Duration::from_nanos(durations.last().copied().unwrap_or(0));
            row
        })
        .collect();
    rows.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.model.cmp(&b.model))
            .then_with(|| a.provider.cmp(&b.provider))
    });
    rows
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Span, Status, Trace};
    use super::summarize;
    use crate::enrich::Value;
    use crate::record::SpanKind;

    fn call(id: u64, model: &str, ms: u64, attrs: &[(&str, Value)], error: bool) -> Span {
        let mut attributes = vec![("gen_ai.request.model".to_owned(), Value::from(model))];
        attributes.extend(attrs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        Span {
            trace_id: 1,
            span_id: id,
            parent_span_id: 100,
            parent_remote: false,
            name: format!("chat {model}"),
            kind: SpanKind::Client,
            start_unix_nanos: 0,
            end_unix_nanos: ms * 1_000_000,
            status: if error {
                Status::Error("429".into())
            } else {
                Status::Unset
            },
            attributes,
            events: Vec::new(),
        }
    }

    #[test]
    fn calls_tokens_cost_and_latency_by_model_and_provider() {
        let openai = || ("gen_ai.provider.name", Value::from("openai"));
        let mut spans: Vec<Span> = (1..=20)
            .map(|i| {
                call(
                    i,
                    "gpt-4o-mini",
                    i * 10,
                    &[
                        openai(),
                        ("gen_ai.usage.input_tokens", Value::from(100)),
                        ("gen_ai.usage.output_tokens", Value::from(10)),
                        ("llm.cost.total", Value::from(0.001)),
                    ],
                    i == 20,
                )
            })
            .collect();
        // Another convention's keys, and a call without a price.
        spans.push(call(
            30,
            "claude-x",
            500,
            &[
                ("llm.provider", Value::from("anthropic")),
                ("llm.token_count.prompt", Value::from(7)),
            ],
            false,
        ));
        // Not an LLM call; a root with rolled-up totals is not counted again.
        spans.push(Span {
            attributes: vec![("honeyhive.total.cost_usd".into(), Value::from(0.02))],
            ..call(100, "x", 1, &[], false)
        });
        let rows = summarize(&[Trace::new(spans)]);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let gpt = &rows[0];
        assert_eq!(
            (gpt.model.as_str(), gpt.provider.as_deref()),
            ("gpt-4o-mini", Some("openai"))
        );
        assert_eq!((gpt.calls, gpt.errors), (20, 1));
        assert!((gpt.error_rate() - 0.05).abs() < 1e-12);
        assert_eq!((gpt.input_tokens, gpt.output_tokens), (2000, 200));
        assert!((gpt.cost_usd - 0.02).abs() < 1e-12);
        assert_eq!(gpt.p50, Duration::from_millis(100));
        assert_eq!(gpt.p95, Duration::from_millis(190));
        assert_eq!(gpt.max, Duration::from_millis(200));
        let claude = &rows[1];
        assert_eq!(claude.provider.as_deref(), Some("anthropic"));
        assert_eq!((claude.input_tokens, claude.unpriced_calls), (7, 1));
        assert!(claude.cost_usd.abs() < f64::EPSILON);
    }

    #[test]
    fn token_totals_saturate_and_counts_read_exactly() {
        // `LlmCall::usage(u64::MAX, ..)` is recorded as `i64::MAX`, and a file may hold any
        // float: together they exceed a u64. A count above 2^53 is read as the integer it
        // is, not through an f64.
        let huge = || ("gen_ai.usage.input_tokens", Value::from(i64::MAX));
        let exact = ("gen_ai.usage.output_tokens", Value::from((1_i64 << 53) + 1));
        let rows = summarize(&[Trace::new(vec![
            call(1, "m", 1, &[huge(), exact], false),
            call(2, "m", 1, &[huge()], false),
            call(
                3,
                "m",
                1,
                &[("llm.token_count.prompt", Value::from(1e19))],
                false,
            ),
        ])]);
        assert_eq!(rows[0].input_tokens, u64::MAX);
        assert_eq!(rows[0].output_tokens, (1 << 53) + 1);
    }
}
