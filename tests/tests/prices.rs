//! Prices from the built-in genai-prices snapshot, on real finished spans: the expected costs are
//! computed here from the snapshot file's own numbers, read with `serde_json`, not from our table.

use honeyhive_runtime::llm::{gen_ai, openinference as oi, totals};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{LlmCall, trace};
use serde_json::Value;

const SNAPSHOT: &str = include_str!("../../honeyhive-runtime/data/genai-prices.json");

/// What a call used.
#[derive(Clone, Copy, Debug, Default)]
struct Tokens {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
}

#[trace(event_type = "model", name = "llm")]
fn call(provider: &'static str, model: &'static str, t: Tokens) {
    let mut call = LlmCall::new(model)
        .provider(provider)
        .usage(t.input, t.output);
    if t.cache_read > 0 {
        call = call.cache_read_input_tokens(t.cache_read);
    }
    if t.cache_write > 0 {
        call = call.cache_creation_input_tokens(t.cache_write);
    }
    if t.reasoning > 0 {
        call = call.reasoning_tokens(t.reasoning);
    }
    call.record();
}

#[trace(event_type = "chain")]
fn agent(calls: &[(&'static str, &'static str, Tokens)]) {
    for (provider, model, tokens) in calls {
        call(provider, model, *tokens);
    }
}

/// The snapshot's entry for `model_id` of `provider_id`, read straight from the file.
fn entry(provider_id: &str, model_id: &str) -> Value {
    let snapshot: Value = serde_json::from_str(SNAPSHOT).expect("the snapshot is JSON");
    let provider = snapshot["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == provider_id)
        .unwrap_or_else(|| panic!("no provider {provider_id}"));
    let model = provider["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == model_id)
        .unwrap_or_else(|| panic!("no model {model_id} in {provider_id}"));
    model["prices"].clone()
}

/// A price of `prices` (USD per million), for a prompt of `input` tokens: a number, or a base
/// with tiers, of which the highest below `input` applies.
fn rate(prices: &Value, key: &str, input: u64) -> Option<f64> {
    let price = prices.get(key)?;
    if let Some(p) = price.as_f64() {
        return Some(p);
    }
    let tier = price["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| input > t["start"].as_u64().unwrap());
    Some(
        tier.map_or(&price["base"], |t| &t["price"])
            .as_f64()
            .unwrap(),
    )
}

/// The cost genai-prices defines: uncached input, cache reads and writes, output less reasoning,
/// reasoning, each at its own price when it has one, else at the input or output price.
#[allow(clippy::cast_precision_loss)]
fn expected(prices: &Value, t: Tokens) -> f64 {
    let r = |key| rate(prices, key, t.input);
    let input = r("input_mtok").unwrap_or(0.0);
    let output = r("output_mtok").unwrap_or(0.0);
    let uncached = t.input - t.cache_read - t.cache_write;
    (uncached as f64 * input
        + t.cache_read as f64 * r("cache_read_mtok").unwrap_or(input)
        + t.cache_write as f64 * r("cache_write_mtok").unwrap_or(input)
        + (t.output - t.reasoning) as f64 * output
        + t.reasoning as f64 * r("output_reasoning_mtok").unwrap_or(output))
        / 1e6
}

fn cost(span: &FinishedSpan) -> f64 {
    span.f64(oi::LLM_COST_TOTAL)
        .unwrap_or_else(|| panic!("no cost on {:?}", span.str(gen_ai::REQUEST_MODEL)))
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(expected > 0.0, "{what}: the snapshot prices it at zero");
    assert!(
        (actual - expected).abs() <= 1e-12 + expected * 1e-9,
        "{what}: {actual} != {expected}"
    );
}

#[test]
fn current_models_cost_what_the_snapshot_says() {
    let plain = Tokens {
        input: 12_000,
        output: 800,
        ..Tokens::default()
    };
    let cached = Tokens {
        input: 12_000,
        output: 800,
        cache_read: 9_000,
        cache_write: 2_000,
        ..Tokens::default()
    };
    let reasoning = Tokens {
        input: 3_000,
        output: 5_000,
        reasoning: 4_200,
        ..Tokens::default()
    };
    let long = Tokens {
        input: 250_000,
        output: 2_000,
        ..Tokens::default()
    };
    // (provider given, model sent, snapshot provider, snapshot model id, tokens)
    let cases = [
        ("openai", "gpt-4o", "openai", "gpt-4o", plain),
        ("openai", "gpt-4o-2024-08-06", "openai", "gpt-4o", cached),
        ("openai", "gpt-4.1-mini", "openai", "gpt-4.1-mini", cached),
        ("openai", "o3", "openai", "o3", reasoning),
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            "anthropic",
            "claude-sonnet-4-5",
            cached,
        ),
        (
            "gcp.gemini",
            "gemini-2.5-pro",
            "google",
            "gemini-2.5-pro",
            plain,
        ),
        (
            "gcp.gemini",
            "gemini-2.5-pro",
            "google",
            "gemini-2.5-pro",
            long,
        ),
        (
            "gcp.vertex_ai",
            "gemini-2.5-flash",
            "google",
            "gemini-2.5-flash",
            cached,
        ),
    ];
    let rec = Recorder::start();
    agent(&cases.map(|(provider, model, _, _, t)| (provider, model, t)));
    let spans = rec.spans();
    let calls: Vec<_> = spans.all("llm").collect();
    assert_eq!(calls.len(), cases.len());
    let mut total = 0.0;
    for (span, (_, model, provider_id, model_id, t)) in calls.iter().zip(cases) {
        let want = expected(&entry(provider_id, model_id), t);
        assert_close(cost(span), want, model);
        total += want;
    }
    // The tier is what makes the long Gemini prompt dearer per token than the short one.
    let per_token = |i: usize, t: Tokens| {
        #[allow(clippy::cast_precision_loss)]
        let n = (t.input + t.output) as f64;
        cost(calls[i]) / n
    };
    assert!(per_token(6, long) > per_token(5, plain));
    // o3 bills reasoning as output: the snapshot has no separate reasoning price for it.
    assert!(entry("openai", "o3").get("output_reasoning_mtok").is_none());
    let root = spans.get("agent");
    assert_close(
        root.f64(totals::COST_USD).unwrap(),
        total,
        "the root's total",
    );
    assert_eq!(root.attr(totals::UNPRICED_CALLS), None);
}

#[test]
fn an_unknown_model_has_no_cost_and_is_counted() {
    let t = Tokens {
        input: 500,
        output: 50,
        ..Tokens::default()
    };
    let rec = Recorder::start();
    agent(&[
        ("openai", "gpt-4o", t),
        ("vllm", "my-own-llama-3.1-8b", t),
        // A provider the dataset knows, but not the model: no other provider's price.
        ("aws.bedrock", "gpt-4o", t),
    ]);
    let spans = rec.spans();
    let calls: Vec<_> = spans.all("llm").collect();
    assert!(calls[0].f64(oi::LLM_COST_TOTAL).is_some());
    for unpriced in &calls[1..] {
        assert_eq!(unpriced.i64(gen_ai::USAGE_INPUT_TOKENS), Some(500));
        assert_eq!(unpriced.attr(oi::LLM_COST_TOTAL), None);
        assert_eq!(unpriced.attr(oi::LLM_COST_PROMPT), None);
    }
    let root = spans.get("agent");
    assert_eq!(root.i64(totals::UNPRICED_CALLS), Some(2));
    assert_eq!(root.i64(totals::LLM_CALLS), Some(3));
    // The total is the priced call's alone.
    assert_close(
        root.f64(totals::COST_USD).unwrap(),
        cost(calls[0]),
        "the root's total",
    );
}

#[test]
fn a_newer_genai_prices_file_wins_over_the_snapshot() {
    // genai-prices' own data.json shape: an array of providers.
    let path = std::env::temp_dir().join(format!("hh-genai-prices-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"id": "openai", "name": "OpenAI", "model_match": {"starts_with": "gpt-"},
             "models": [{"id": "gpt-4o", "match": {"equals": "gpt-4o"},
                         "prices": {"input_mtok": 100, "output_mtok": 1000}},
                        {"id": "gpt-9", "match": {"starts_with": "gpt-9"},
                         "prices": {"input_mtok": 1, "output_mtok": 2}}]}]"#,
    )
    .unwrap();
    let t = Tokens {
        input: 1_000,
        output: 100,
        ..Tokens::default()
    };
    let rec = Recorder::with(|b| b.price_file(&path));
    agent(&[
        ("openai", "gpt-4o", t),
        ("openai", "gpt-9-preview", t),
        ("openai", "gpt-4.1-mini", t),
    ]);
    let spans = rec.spans();
    let calls: Vec<_> = spans.all("llm").collect();
    assert_close(
        cost(calls[0]),
        (1_000.0 * 100.0 + 100.0 * 1000.0) / 1e6,
        "gpt-4o",
    );
    assert_close(cost(calls[1]), (1_000.0 + 200.0) / 1e6, "gpt-9");
    // Models the file does not have keep the snapshot's price.
    let mini = expected(&entry("openai", "gpt-4.1-mini"), t);
    assert_close(cost(calls[2]), mini, "gpt-4.1-mini");
    drop(rec);
    std::fs::remove_file(&path).unwrap();
}
