//! The instruments: what each model call adds to them, weighted by the inverse of the
//! probability it was recorded with, and the cumulative state they keep.

use std::collections::BTreeMap;

use opentelemetry::Value;
use opentelemetry::trace::Status;

use crate::export::observe::SpanView;
use crate::integrations::TIME_TO_FIRST_TOKEN_MS;
use crate::llm::{gen_ai, openinference};
use crate::span::EventType;

/// `gen_ai.client.token.usage` boundaries, from the GenAI metric conventions.
pub(super) const TOKEN_BOUNDS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// Boundaries of the client duration histograms (operation duration, time to first chunk),
/// seconds, from the GenAI metric conventions.
pub(super) const SECONDS_BOUNDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Series one instrument keeps; past this, new attribute sets go to one overflow series
/// (`otel.metric.overflow = true`, as the OpenTelemetry SDKs do), so a model name per request
/// cannot grow memory without bound.
pub(super) const MAX_SERIES: usize = 1000;

/// `error.type` when a failed call names no type.
const OTHER_ERROR: &str = "_OTHER";
/// Time to the first item of a `#[trace]` stream (`stream.rs`), used on model spans.
const STREAM_FIRST_ITEM_MS: &str = "honeyhive.stream.time_to_first_item_ms";
const TOKEN_TYPE: &str = "gen_ai.token.type";
const ERROR_TYPE: &str = "error.type";
const SERVER_ADDRESS: &str = "server.address";

/// A series' attributes, sorted by key: every value is a string.
pub(super) type Attrs = Vec<(&'static str, String)>;

/// Bucket weights, kept as `f64` so a call kept with probability `p` adds `1/p` exactly.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Hist {
    pub(super) bounds: &'static [f64],
    /// `bounds.len() + 1` buckets; bucket `i` holds values in `(bounds[i-1], bounds[i]]`.
    pub(super) weights: Vec<f64>,
    /// Weighted sum of the values.
    pub(super) sum: f64,
}

impl Hist {
    fn new(bounds: &'static [f64]) -> Hist {
        Hist {
            bounds,
            weights: vec![0.0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// Adds `value` with `weight`, if it is a measurement ([`weighted`]) that keeps the sum
    /// finite; returns whether it did.
    fn record(&mut self, value: f64, weight: f64) -> bool {
        let Some(sum) = weighted(value, weight)
            .map(|w| self.sum + w)
            .filter(|s| s.is_finite())
        else {
            return false;
        };
        let bucket = self.bounds.partition_point(|b| *b < value);
        self.weights[bucket] += weight;
        self.sum = sum;
        true
    }

    /// The bucket counts sent: each cumulative weight rounded to the nearest integer, so a
    /// bucket is never more than 0.5 off the unbiased estimate however long the process runs,
    /// and counts never decrease from one export to the next.
    pub(super) fn counts(&self) -> Vec<u64> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // >= 0, far below 2^64
        self.weights.iter().map(|w| w.round() as u64).collect()
    }
}

/// One instrument's series by attribute set.
#[derive(Debug)]
pub(super) struct Family<V> {
    pub(super) series: BTreeMap<Attrs, V>,
    /// What came past [`MAX_SERIES`].
    pub(super) overflow: Option<V>,
}

impl<V> Default for Family<V> {
    fn default() -> Self {
        Family {
            series: BTreeMap::new(),
            overflow: None,
        }
    }
}

impl<V> Family<V> {
    fn entry(&mut self, attrs: Attrs, new: impl FnOnce() -> V) -> &mut V {
        if self.series.len() >= MAX_SERIES && !self.series.contains_key(&attrs) {
            return self.overflow.get_or_insert_with(new);
        }
        self.series.entry(attrs).or_insert_with(new)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.series.is_empty() && self.overflow.is_none()
    }
}

/// Every instrument, cumulative since the pipeline started.
#[derive(Debug, Default)]
pub(super) struct Instruments {
    /// `gen_ai.client.token.usage`.
    pub(super) token_usage: Family<Hist>,
    /// `gen_ai.client.operation.duration`.
    pub(super) duration: Family<Hist>,
    /// `gen_ai.client.operation.time_to_first_chunk`.
    pub(super) time_to_first_chunk: Family<Hist>,
    /// `honeyhive.gen_ai.client.cost`, USD.
    pub(super) cost: Family<f64>,
    /// `honeyhive.gen_ai.client.errors`.
    pub(super) errors: Family<f64>,
    /// Values left out since the observer last took this count: not a measurement any
    /// instrument takes ([`weighted`]), or one that would make a cumulative sum infinite.
    pub(super) rejected: u64,
}

/// `value` times `weight`, when `value` is something these instruments measure: an amount
/// (tokens, seconds, dollars, errors), so finite and not negative, and finite once weighted.
/// Anything else (a negative cost, an infinite or NaN token count) would break what the
/// instruments promise (monotonic sums that never go down, finite histogram sums, for the
/// life of the process), so it is left out and counted, never clamped into a made-up value.
fn weighted(value: f64, weight: f64) -> Option<f64> {
    let w = value * weight;
    (value >= 0.0 && w.is_finite()).then_some(w)
}

/// Adds `value` to `family`'s histogram for `attrs`; false if it is no measurement. A rejected
/// value opens no series.
fn observe_hist(
    family: &mut Family<Hist>,
    attrs: Attrs,
    bounds: &'static [f64],
    value: f64,
    weight: f64,
) -> bool {
    weighted(value, weight).is_some()
        && family
            .entry(attrs, || Hist::new(bounds))
            .record(value, weight)
}

/// Adds `value` to `family`'s sum for `attrs`; false if it is no measurement or would make the
/// sum infinite. A rejected value opens no series.
fn observe_sum(family: &mut Family<f64>, attrs: Attrs, value: f64, weight: f64) -> bool {
    let Some(w) = weighted(value, weight) else {
        return false;
    };
    let total = family.entry(attrs, || 0.0);
    let next = *total + w;
    if !next.is_finite() {
        return false;
    }
    *total = next;
    true
}

impl Instruments {
    /// Adds what `span` tells, if it is a model call; returns whether it was one.
    pub(super) fn observe(&mut self, span: &SpanView<'_>) -> bool {
        if !is_model_call(span) {
            return false;
        }
        let weight = 1.0 / span.probability();
        let attrs = call_attributes(span);
        let error = error_type(span);

        let mut with_error = attrs.clone();
        if let Some(kind) = &error {
            insert(&mut with_error, ERROR_TYPE, kind.clone());
        }
        #[allow(clippy::cast_precision_loss)] // nanoseconds of one call: far below 2^52
        let seconds = span.duration_nanos() as f64 / 1e9;
        let taken = observe_hist(
            &mut self.duration,
            with_error.clone(),
            &SECONDS_BOUNDS,
            seconds,
            weight,
        );
        self.tally(taken);

        for (kind, keys) in [
            (
                "input",
                [
                    gen_ai::USAGE_INPUT_TOKENS,
                    openinference::LLM_TOKEN_COUNT_PROMPT,
                ],
            ),
            (
                "output",
                [
                    gen_ai::USAGE_OUTPUT_TOKENS,
                    openinference::LLM_TOKEN_COUNT_COMPLETION,
                ],
            ),
        ] {
            if let Some(tokens) = keys.iter().find_map(|k| number(span.attr(k))) {
                let mut typed = attrs.clone();
                insert(&mut typed, TOKEN_TYPE, kind.to_owned());
                let taken =
                    observe_hist(&mut self.token_usage, typed, &TOKEN_BOUNDS, tokens, weight);
                self.tally(taken);
            }
        }

        if let Some(ms) = [TIME_TO_FIRST_TOKEN_MS, STREAM_FIRST_ITEM_MS]
            .iter()
            .find_map(|k| number(span.attr(k)))
        {
            let taken = observe_hist(
                &mut self.time_to_first_chunk,
                attrs.clone(),
                &SECONDS_BOUNDS,
                ms / 1000.0,
                weight,
            );
            self.tally(taken);
        }

        if let Some(usd) = number(span.attr(openinference::LLM_COST_TOTAL)) {
            let taken = observe_sum(&mut self.cost, attrs, usd, weight);
            self.tally(taken);
        }

        if error.is_some() {
            let taken = observe_sum(&mut self.errors, with_error, 1.0, weight);
            self.tally(taken);
        }
        true
    }

    fn tally(&mut self, taken: bool) {
        self.rejected += u64::from(!taken);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.token_usage.is_empty()
            && self.duration.is_empty()
            && self.time_to_first_chunk.is_empty()
            && self.cost.is_empty()
            && self.errors.is_empty()
    }
}

/// A call to a model: a `model` or `embedding` span, or any span an [`LlmCall`](crate::LlmCall)
/// or an integration gave a model or token counts. Tool, agent and chain spans are not
/// operations these instruments count.
fn is_model_call(span: &SpanView<'_>) -> bool {
    matches!(span.event_type(), EventType::Model | EventType::Embedding)
        || [
            gen_ai::REQUEST_MODEL,
            gen_ai::RESPONSE_MODEL,
            openinference::LLM_MODEL_NAME,
            gen_ai::USAGE_INPUT_TOKENS,
            gen_ai::USAGE_OUTPUT_TOKENS,
            openinference::LLM_TOKEN_COUNT_PROMPT,
            openinference::LLM_TOKEN_COUNT_COMPLETION,
        ]
        .iter()
        .any(|k| span.attr(k).is_some())
}

/// `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model` and
/// `gen_ai.response.model`, read from the GenAI keys or, when only OpenInference keys were
/// written, from theirs; and `server.address` (the LLM client integrations record the host).
fn call_attributes(span: &SpanView<'_>) -> Attrs {
    let text = |keys: &[&str]| keys.iter().find_map(|k| string(span.attr(k)));
    let operation = text(&[gen_ai::OPERATION_NAME]).unwrap_or_else(|| {
        if span.event_type() == EventType::Embedding {
            "embeddings".to_owned()
        } else {
            "chat".to_owned()
        }
    });
    let mut attrs = vec![(gen_ai::OPERATION_NAME, operation)];
    if let Some(provider) = text(&[gen_ai::PROVIDER_NAME, openinference::LLM_PROVIDER]) {
        attrs.push((gen_ai::PROVIDER_NAME, provider));
    }
    if let Some(model) = text(&[
        gen_ai::REQUEST_MODEL,
        openinference::LLM_MODEL_NAME,
        openinference::EMBEDDING_MODEL_NAME,
    ]) {
        attrs.push((gen_ai::REQUEST_MODEL, model));
    }
    if let Some(model) = text(&[gen_ai::RESPONSE_MODEL]) {
        attrs.push((gen_ai::RESPONSE_MODEL, model));
    }
    if let Some(host) = text(&[SERVER_ADDRESS]) {
        attrs.push((SERVER_ADDRESS, host));
    }
    attrs.sort_unstable();
    attrs
}

/// The `error.type` of a failed call: the span's own, else its exception's type, else
/// `_OTHER`. `None` when the call did not fail.
fn error_type(span: &SpanView<'_>) -> Option<String> {
    if !matches!(span.status(), Status::Error { .. }) {
        return None;
    }
    let exception = || {
        span.events()
            .iter()
            .filter(|e| e.name == "exception")
            .flat_map(|e| &e.attributes)
            .find(|kv| kv.key.as_str() == "exception.type")
            .and_then(|kv| string(Some(&kv.value)))
    };
    Some(
        string(span.attr(ERROR_TYPE))
            .or_else(exception)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| OTHER_ERROR.to_owned()),
    )
}

fn insert(attrs: &mut Attrs, key: &'static str, value: String) {
    let at = attrs.partition_point(|(k, _)| *k < key);
    attrs.insert(at, (key, value));
}

fn string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.as_str().is_empty() => Some(s.as_str().to_owned()),
        Value::I64(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        #[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
        Value::I64(n) => Some(*n as f64),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Family, Hist, SECONDS_BOUNDS, TOKEN_BOUNDS, observe_hist, observe_sum};

    #[test]
    #[allow(clippy::float_cmp)] // sums of the exact values given
    fn a_value_that_would_make_a_cumulative_sum_infinite_is_left_out() {
        let mut cost = Family::default();
        assert!(observe_sum(&mut cost, Vec::new(), f64::MAX, 1.0));
        assert!(!observe_sum(&mut cost, Vec::new(), f64::MAX, 1.0));
        assert_eq!(cost.series.get(&Vec::new()), Some(&f64::MAX));
        // Finite, but not once weighted by 1 / a tiny probability.
        assert!(!observe_sum(
            &mut cost,
            vec![("k", "v".into())],
            1e300,
            1e10
        ));
        assert!(cost.series.len() == 1, "a rejected value opens no series");

        let mut tokens = Family::default();
        assert!(observe_hist(
            &mut tokens,
            Vec::new(),
            &TOKEN_BOUNDS,
            f64::MAX,
            1.0
        ));
        assert!(!observe_hist(
            &mut tokens,
            Vec::new(),
            &TOKEN_BOUNDS,
            f64::MAX,
            1.0
        ));
        let h = &tokens.series[&Vec::new()];
        assert_eq!((h.sum, h.counts().iter().sum::<u64>()), (f64::MAX, 1));
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!observe_hist(
                &mut tokens,
                Vec::new(),
                &TOKEN_BOUNDS,
                bad,
                1.0
            ));
            assert!(!observe_sum(&mut cost, Vec::new(), bad, 1.0));
        }
        assert_eq!(tokens.series[&Vec::new()].sum, f64::MAX);
    }

    #[test]
    fn values_land_in_the_bucket_whose_upper_bound_includes_them() {
        let mut h = Hist::new(&TOKEN_BOUNDS);
        for v in [0.0, 1.0, 1.5, 4.0, 67_108_864.0, 1e9] {
            h.record(v, 1.0);
        }
        let counts = h.counts();
        assert_eq!(counts.len(), TOKEN_BOUNDS.len() + 1);
        assert_eq!(&counts[..3], &[2, 2, 0]);
        assert_eq!(counts[TOKEN_BOUNDS.len() - 1], 1);
        assert_eq!(counts[TOKEN_BOUNDS.len()], 1);
    }

    #[test]
    fn weighted_counts_are_rounded_from_the_cumulative_weight_not_per_call() {
        let mut h = Hist::new(&SECONDS_BOUNDS);
        // 1/0.3 per call: rounding each call would give 3 per call, 30 for ten.
        for _ in 0..10 {
            h.record(0.5, 1.0 / 0.3);
        }
        assert_eq!(h.counts().iter().sum::<u64>(), 33);
        assert!((h.sum - 0.5 * 10.0 / 0.3).abs() < 1e-9);
    }
}
