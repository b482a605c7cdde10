//! LLM records: GenAI and OpenInference keys, span kinds, cost and roll-ups, on real spans.

use std::sync::atomic::{AtomicUsize, Ordering};

use honeyhive_runtime::llm::{ModelPrice, PriceTable, gen_ai, openinference as oi, totals};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Builder, Conventions, LlmCall, record_llm, trace};

#[trace(event_type = "model", name = "openai.chat")]
fn chat(question: &str, model: &'static str, tokens: (u64, u64)) -> String {
    let answer = format!("About {question}: Paris.");
    LlmCall::new(model)
        .provider("openai")
        .response_model(format!("{model}-2024-07-18"))
        .temperature(0.2)
        .max_tokens(256)
        .top_p(0.9)
        .stop_sequences(["\n\n"])
        .message("system", "Answer briefly.")
        .message("user", question)
        .completion(answer.clone())
        .usage(tokens.0, tokens.1)
        .cache_read_input_tokens(tokens.0 / 2)
        .reasoning_tokens(3)
        .finish_reason("stop")
        .response_id("chatcmpl-123")
        .record();
    answer
}

#[trace(event_type = "retriever")]
fn retrieve(question: &str) -> Vec<String> {
    vec![format!("doc about {question}")]
}

#[trace(event_type = "tool")]
fn lookup(city: &str) -> u32 {
    u32::try_from(city.len()).unwrap_or(0)
}

#[trace(event_type = "chain")]
fn pipeline(question: &str) -> String {
    let docs = retrieve(question);
    lookup("Paris");
    let first = chat(question, "gpt-4o-mini", (1_000, 200));
    let second = chat(&docs[0], "gpt-4o-mini", (3_000, 400));
    format!("{first} {second}")
}

fn json(text: Option<&str>) -> serde_json::Value {
    serde_json::from_str(text.expect("a JSON attribute")).expect("valid JSON")
}

fn approx(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a cost");
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

/// gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per million tokens.
fn mini_cost(input: u64, output: u64) -> f64 {
    let cached = input / 2;
    #[allow(clippy::cast_precision_loss)]
    let (uncached, cached, output) = ((input - cached) as f64, cached as f64, output as f64);
    (uncached * 0.15 + cached * 0.075 + output * 0.60) / 1e6
}

#[test]
fn an_llm_call_is_written_in_both_conventions() {
    let rec = Recorder::start();
    pipeline("France");
    let spans = rec.spans();
    let call = spans.all("openai.chat").next().unwrap();
    // GenAI
    assert_eq!(call.str(gen_ai::OPERATION_NAME), Some("chat"));
    assert_eq!(call.str(gen_ai::PROVIDER_NAME), Some("openai"));
    assert_eq!(call.str(gen_ai::REQUEST_MODEL), Some("gpt-4o-mini"));
    assert_eq!(
        call.str(gen_ai::RESPONSE_MODEL),
        Some("gpt-4o-mini-2024-07-18")
    );
    assert_eq!(call.f64(gen_ai::REQUEST_TEMPERATURE), Some(0.2));
    assert_eq!(call.i64(gen_ai::REQUEST_MAX_TOKENS), Some(256));
    assert_eq!(call.i64(gen_ai::USAGE_INPUT_TOKENS), Some(1_000));
    assert_eq!(call.i64(gen_ai::USAGE_OUTPUT_TOKENS), Some(200));
    assert_eq!(call.i64(gen_ai::USAGE_CACHE_READ_INPUT_TOKENS), Some(500));
    assert_eq!(call.i64(gen_ai::USAGE_REASONING_OUTPUT_TOKENS), Some(3));
    assert_eq!(call.str(gen_ai::RESPONSE_ID), Some("chatcmpl-123"));
    assert_eq!(
        call.attr(gen_ai::RESPONSE_FINISH_REASONS).unwrap(),
        &opentelemetry::Value::Array(vec![opentelemetry::StringValue::from("stop")].into())
    );
    assert_eq!(
        json(call.str(gen_ai::INPUT_MESSAGES)),
        serde_json::json!([
            {"role": "system", "parts": [{"type": "text", "content": "Answer briefly."}]},
            {"role": "user", "parts": [{"type": "text", "content": "France"}]},
        ])
    );
    assert_eq!(
        json(call.str(gen_ai::OUTPUT_MESSAGES)),
        serde_json::json!([{
            "role": "assistant",
            "parts": [{"type": "text", "content": "About France: Paris."}],
            "finish_reason": "stop",
        }])
    );
    // OpenInference
    assert_eq!(call.str(oi::SPAN_KIND), Some("LLM"));
    assert_eq!(call.str(oi::LLM_MODEL_NAME), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(call.str(oi::LLM_PROVIDER), Some("openai"));
    assert_eq!(call.i64(oi::LLM_TOKEN_COUNT_PROMPT), Some(1_000));
    assert_eq!(call.i64(oi::LLM_TOKEN_COUNT_COMPLETION), Some(200));
    assert_eq!(call.i64(oi::LLM_TOKEN_COUNT_TOTAL), Some(1_200));
    assert_eq!(call.i64(oi::LLM_TOKEN_COUNT_CACHE_READ), Some(500));
    assert_eq!(call.i64(oi::LLM_TOKEN_COUNT_REASONING), Some(3));
    assert_eq!(
        call.str("llm.input_messages.0.message.role"),
        Some("system")
    );
    assert_eq!(
        call.str("llm.input_messages.1.message.content"),
        Some("France")
    );
    assert_eq!(
        call.str("llm.output_messages.0.message.content"),
        Some("About France: Paris.")
    );
    assert_eq!(call.str(oi::INPUT_MIME_TYPE), Some("application/json"));
    assert_eq!(call.str(oi::OUTPUT_VALUE), Some("About France: Paris."));
    // Plain text is OpenInference's default: no key repeats it.
    assert_eq!(call.str(oi::OUTPUT_MIME_TYPE), None);
    assert_eq!(
        json(call.str(oi::LLM_INVOCATION_PARAMETERS)),
        serde_json::json!({"temperature": 0.2, "max_tokens": 256, "top_p": 0.9, "stop": ["\n\n"]})
    );
    assert_eq!(
        json(call.str(oi::INPUT_VALUE)),
        serde_json::json!([
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "France"},
        ])
    );
    // Cost, from the built-in table (the dated response model falls back to its base name).
    approx(call.f64(oi::LLM_COST_TOTAL), mini_cost(1_000, 200));
    approx(call.f64(oi::LLM_COST_COMPLETION), 200.0 * 0.60 / 1e6);
}

#[test]
fn every_span_gets_its_openinference_kind_and_io() {
    let rec = Recorder::start();
    pipeline("France");
    let spans = rec.spans();
    assert_eq!(spans.get("pipeline").str(oi::SPAN_KIND), Some("CHAIN"));
    assert_eq!(spans.get("retrieve").str(oi::SPAN_KIND), Some("RETRIEVER"));
    let tool = spans.get("lookup");
    assert_eq!(tool.str(oi::SPAN_KIND), Some("TOOL"));
    assert_eq!(tool.str(oi::INPUT_VALUE), Some("Paris"));
    assert_eq!(tool.str(oi::INPUT_MIME_TYPE), None);
    assert_eq!(tool.str(oi::OUTPUT_VALUE), Some("5"));
    assert_eq!(tool.str(oi::OUTPUT_MIME_TYPE), Some("application/json"));
}

#[test]
fn tokens_and_cost_roll_up_to_the_root() {
    let rec = Recorder::start();
    pipeline("France");
    let spans = rec.spans();
    let root = spans.get("pipeline");
    assert_eq!(root.i64(totals::INPUT_TOKENS), Some(4_000));
    assert_eq!(root.i64(totals::OUTPUT_TOKENS), Some(600));
    assert_eq!(root.i64(totals::TOKENS), Some(4_600));
    assert_eq!(root.i64(totals::LLM_CALLS), Some(2));
    approx(
        root.f64(totals::COST_USD),
        mini_cost(1_000, 200) + mini_cost(3_000, 400),
    );
    // Per-call keys stay on the calls, so backends that sum them count each call once.
    assert_eq!(root.attr(gen_ai::USAGE_INPUT_TOKENS), None);
    assert_eq!(root.attr(oi::LLM_COST_TOTAL), None);
    assert_eq!(spans.get("lookup").attr(totals::TOKENS), None);
}

/// A chain of agent steps, each making a call of its own below the one before.
#[trace(event_type = "chain", skip(depth))]
fn step(depth: u32) {
    LlmCall::new("gpt-4o-mini").usage(10, 1).record();
    if depth > 1 {
        step(depth - 1);
    }
}

#[test]
fn every_call_of_a_deep_chain_rolls_up_to_its_root() {
    let rec = Recorder::start();
    step(500);
    let spans = rec.spans();
    let roots: Vec<_> = spans.iter().filter(|s| s.is_root()).collect();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].i64(totals::INPUT_TOKENS), Some(5_000));
    assert_eq!(roots[0].i64(totals::LLM_CALLS), Some(500));
    let below = spans
        .iter()
        .filter(|s| s.i64(totals::LLM_CALLS).is_some())
        .count();
    assert_eq!(below, 1, "only the root carries totals");
}

#[trace(event_type = "model")]
fn local_model() {
    LlmCall::new("my-finetuned-llama").usage(100, 20).record();
}

#[trace(event_type = "agent")]
fn agent() {
    local_model();
    chat("x", "gpt-4o-mini", (10, 10));
}

#[test]
fn unknown_models_record_tokens_and_no_cost() {
    let rec = Recorder::start();
    agent();
    let spans = rec.spans();
    let call = spans.get("local_model");
    assert_eq!(call.i64(gen_ai::USAGE_INPUT_TOKENS), Some(100));
    assert_eq!(call.attr(oi::LLM_COST_TOTAL), None);
    let root = spans.get("agent");
    assert_eq!(root.str(oi::SPAN_KIND), Some("AGENT"));
    assert_eq!(root.i64(totals::INPUT_TOKENS), Some(110));
    assert_eq!(root.i64(totals::UNPRICED_CALLS), Some(1));
    approx(root.f64(totals::COST_USD), mini_cost(10, 10));
}

#[trace(event_type = "model")]
fn call_without_usage() {
    // A priced model, but no token counts (a stream without usage, a failed call).
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .completion("Paris.")
        .record();
}

#[trace(event_type = "agent")]
fn agent_without_usage() {
    call_without_usage();
}

#[test]
fn a_call_without_token_counts_records_no_cost_not_zero() {
    let rec = Recorder::start();
    agent_without_usage();
    let spans = rec.spans();
    let call = spans.get("call_without_usage");
    assert_eq!(call.attr(oi::LLM_COST_TOTAL), None);
    let root = spans.get("agent_without_usage");
    assert_eq!(root.i64(totals::LLM_CALLS), Some(1));
    assert_eq!(root.attr(totals::COST_USD), None);
    assert_eq!(root.i64(totals::UNPRICED_CALLS), Some(1));
    // With one priced call beside it, the total is that call's alone.
    agent();
    let spans = rec.spans();
    approx(spans.get("agent").f64(totals::COST_USD), mini_cost(10, 10));
}

#[test]
fn a_price_file_and_custom_prices_price_other_models() {
    let path = std::env::temp_dir().join(format!("hh-prices-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"my-finetuned-llama": {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002},
            "sample_spec": {"input_cost_per_token": "docs"}}"#,
    )
    .unwrap();
    let rec = Recorder::with(|b| {
        b.price_file(&path)
            .model_price("gpt-4o-mini", ModelPrice::new(1.0, 1.0))
    });
    agent();
    let spans = rec.spans();
    approx(
        spans.get("local_model").f64(oi::LLM_COST_TOTAL),
        (100.0 + 40.0) / 1e6,
    );
    approx(spans.get("openai.chat").f64(oi::LLM_COST_TOTAL), 20.0 / 1e6);
    let root = spans.get("agent");
    assert_eq!(root.attr(totals::UNPRICED_CALLS), None);
    drop(rec);
    std::fs::remove_file(&path).unwrap();

    let rec = Recorder::with(|b| b.prices(PriceTable::empty()));
    agent();
    let spans = rec.spans();
    assert_eq!(spans.get("openai.chat").attr(oi::LLM_COST_TOTAL), None);
    assert_eq!(spans.get("agent").attr(totals::COST_USD), None);
}

#[test]
fn price_file_settings_and_errors() {
    let settings = Builder::new()
        .env(|k| (k == "HH_PRICE_FILE").then(|| "/etc/prices.json".to_owned()))
        .resolve();
    assert_eq!(
        settings.price_file.as_deref(),
        Some(std::path::Path::new("/etc/prices.json"))
    );
    assert_eq!(settings.conventions, Conventions::Both);
    let err = Builder::new()
        .env(|_| None)
        .price_file("/nonexistent/prices.json")
        .install()
        .unwrap_err();
    assert!(err.to_string().contains("price file"), "{err}");
}

#[test]
fn conventions_are_configurable() {
    let rec = Recorder::with(|b| b.conventions(Conventions::GenAi));
    pipeline("France");
    let spans = rec.spans();
    let call = spans.all("openai.chat").next().unwrap();
    assert_eq!(call.i64(gen_ai::USAGE_INPUT_TOKENS), Some(1_000));
    assert!(call.str(gen_ai::INPUT_MESSAGES).is_some());
    for s in spans.iter() {
        assert_eq!(s.attr(oi::SPAN_KIND), None);
        assert!(!has_prefix(s, "llm.token_count") && !has_prefix(s, "input."));
    }
    // Cost has no GenAI key: it keeps OpenInference's name under either convention.
    assert!(call.f64(oi::LLM_COST_TOTAL).is_some());
    drop(rec);

    let rec = Recorder::with(|b| b.conventions(Conventions::OpenInference));
    pipeline("France");
    let spans = rec.spans();
    let call = spans.all("openai.chat").next().unwrap();
    assert_eq!(call.i64(oi::LLM_TOKEN_COUNT_PROMPT), Some(1_000));
    for s in spans.iter() {
        assert!(!has_prefix(s, "gen_ai."), "{}", s.name);
    }
    assert_eq!(spans.get("pipeline").i64(totals::INPUT_TOKENS), Some(4_000));
}

fn has_prefix(span: &FinishedSpan, prefix: &str) -> bool {
    span.attributes
        .iter()
        .any(|kv| kv.key.as_str().starts_with(prefix))
}

static BUILT: AtomicUsize = AtomicUsize::new(0);

#[trace(event_type = "model", sample_rate = 0.0)]
fn unsampled_call() {
    record_llm(|| {
        BUILT.fetch_add(1, Ordering::SeqCst);
        LlmCall::new("gpt-4o").usage(1, 1)
    });
}

#[trace(event_type = "model")]
fn sampled_call() {
    record_llm(|| {
        BUILT.fetch_add(1, Ordering::SeqCst);
        LlmCall::new("gpt-4o").usage(1, 1)
    });
}

#[test]
fn record_llm_builds_only_for_recorded_spans() {
    let rec = Recorder::start();
    unsampled_call();
    record_llm(|| {
        BUILT.fetch_add(1, Ordering::SeqCst);
        LlmCall::new("outside")
    });
    assert_eq!(BUILT.load(Ordering::SeqCst), 0);
    sampled_call();
    assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    let spans = rec.spans();
    assert_eq!(
        spans.get("sampled_call").i64(gen_ai::USAGE_INPUT_TOKENS),
        Some(1)
    );
}
