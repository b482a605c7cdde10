//! GenAI metrics from traces, over OTLP/HTTP to a real receiver on 127.0.0.1, decoded with
//! `opentelemetry-proto`: names, units, attributes, token sums, cost per model, errors by type,
//! the export schedule, failures counted, and unbiased estimates at 1% sampling.

// Counts and token sums here are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use honeyhive_runtime::integrations::LlmMiddleware;
use honeyhive_runtime::integrations::TIME_TO_FIRST_TOKEN_MS;
use honeyhive_runtime::llm::{gen_ai, openinference};
use honeyhive_runtime::metrics::{self, Metrics, names};
use honeyhive_runtime::sampling::{self, RootSampler, Sampler, TailSampling};
use honeyhive_runtime::testing::{Recorder, Spans};
use honeyhive_runtime::{Conventions, EventType, LlmCall, Parent, SpanBuilder, record_llm, trace};
use honeyhive_tests::fake_llm::{FakeLlm, Fault, OPENAI_USAGE};
use honeyhive_tests::metrics_receiver::{
    Answer, MetricsRequest, has_attrs, histogram_points, metrics_receiver, point_attrs, sum_points,
    value,
};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric};

/// Long enough for any request on a loaded machine; the tests never wait this long when
/// things work.
const PATIENCE: Duration = Duration::from_secs(30);

/// `metrics::stats()` reads the exporter installed last: each test holds this turn past its
/// pipeline's shutdown, so the next test's install cannot come between.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last request of those that arrived by the time the receiver is quiet for a moment,
/// waiting for the first one.
fn latest(rx: &mpsc::Receiver<MetricsRequest>) -> MetricsRequest {
    let mut last = rx.recv_timeout(PATIENCE).expect("a metrics request");
    while let Ok(next) = rx.recv_timeout(Duration::from_millis(200)) {
        last = next;
    }
    last
}

#[trace(event_type = "model")]
fn chat(model: &'static str, provider: &'static str, tokens: (u64, u64)) -> String {
    LlmCall::new(model)
        .provider(provider)
        .response_model(format!("{model}-2024-07-18"))
        .usage(tokens.0, tokens.1)
        .record();
    "ok".to_owned()
}

#[trace(event_type = "tool")]
fn lookup() -> u32 {
    7
}

#[trace(event_type = "chain")]
fn agent() {
    for _ in 0..3 {
        chat("gpt-4o-mini", "openai", (100, 20));
    }
    lookup();
    // A streaming call whose integration measured the first token at 250 ms, with a cost
    // the provider reported.
    let mut stream = SpanBuilder::new("claude.stream")
        .event_type(EventType::Model)
        .parent(Parent::Current)
        .attribute(TIME_TO_FIRST_TOKEN_MS, 250.0)
        .start();
    stream.in_scope(|| {
        LlmCall::new("claude-sonnet-4")
            .provider("anthropic")
            .usage(50, 10)
            .cost_usd(0.5)
            .record();
    });
    stream.end();
    // Two failures: one with the API's error.type, one with only an exception.
    let mut limited = SpanBuilder::new("openai.chat")
        .event_type(EventType::Model)
        .parent(Parent::Current)
        .start();
    limited.in_scope(|| LlmCall::new("gpt-4o-mini").provider("openai").record());
    limited.set_attribute("error.type", "rate_limit_exceeded");
    limited.set_error("RateLimitError", "429 Too Many Requests");
    limited.end();
    let mut broken = SpanBuilder::new("openai.chat")
        .event_type(EventType::Model)
        .parent(Parent::Current)
        .start();
    broken.in_scope(|| LlmCall::new("gpt-4o-mini").provider("openai").record());
    broken.set_error("ConnectionReset", "connection reset by peer");
    broken.end();
}

fn cost_of(spans: &Spans, model: &str) -> f64 {
    spans
        .iter()
        .filter(|s| s.str(gen_ai::REQUEST_MODEL) == Some(model))
        .filter_map(|s| s.f64(openinference::LLM_COST_TOTAL))
        .sum()
}

const MINI: [(&str, &str); 3] = [
    (gen_ai::OPERATION_NAME, "chat"),
    (gen_ai::PROVIDER_NAME, "openai"),
    (gen_ai::REQUEST_MODEL, "gpt-4o-mini"),
];
const CLAUDE: [(&str, &str); 1] = [(gen_ai::REQUEST_MODEL, "claude-sonnet-4")];

/// Runs [`agent`] once with metrics to a fresh receiver: the last request after the flush,
/// the spans, and the metrics stats after shutdown.
fn agent_metrics() -> (MetricsRequest, Spans, metrics::MetricsStats) {
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| {
        b.service_name("metrics-test")
            .metrics(Metrics::new().endpoint(&url))
    });
    agent();
    let spans = rec.spans();
    let req = latest(&rx);
    rec.shutdown();
    (req, spans, metrics::stats())
}

#[test]
fn metrics_go_to_v1_metrics_with_the_traces_resource() {
    let _turn = turn();
    let (req, _, stats) = agent_metrics();
    assert_eq!(req.path, "/v1/metrics");
    assert_eq!(req.resource_attr("service.name"), Some("metrics-test"));
    assert_eq!(
        req.resource_attr("telemetry.sdk.name"),
        Some("honeyhive-rs")
    );
    assert_eq!(stats.calls, 6, "model calls, not the tool or the chain");
    assert!(stats.exported >= 1, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
}

#[test]
fn token_usage_is_a_histogram_of_tokens_by_type_and_model() {
    let _turn = turn();
    let (req, _, _) = agent_metrics();
    let mini = MINI;
    // Token usage: a histogram of {token}, split by gen_ai.token.type.
    let tokens = req.metric(names::TOKEN_USAGE);
    assert_eq!(tokens.unit, "{token}");
    let Some(metric::Data::Histogram(h)) = &tokens.data else {
        panic!("token usage is a histogram")
    };
    assert_eq!(
        h.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let point = |kind: &str, model: &[(&str, &str)]| {
        histogram_points(tokens)
            .iter()
            .find(|p| {
                has_attrs(&p.attributes, model)
                    && has_attrs(&p.attributes, &[("gen_ai.token.type", kind)])
            })
            .unwrap_or_else(|| panic!("a {kind} token point for {model:?}"))
            .clone()
    };
    let input = point("input", &mini);
    assert_eq!(
        point_attrs(&input.attributes),
        [
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o-mini"),
            ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            ("gen_ai.token.type", "input"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!((input.count, input.sum), (3, Some(300.0)));
    assert_eq!(
        input.explicit_bounds,
        [
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
            67_108_864.0
        ]
    );
    // 100 tokens: the (64, 256] bucket.
    assert_eq!(input.bucket_counts[4], 3);
    assert_eq!(input.bucket_counts.iter().sum::<u64>(), input.count);
    let output = point("output", &mini);
    assert_eq!((output.count, output.sum), (3, Some(60.0)));
    let claude = CLAUDE;
    assert_eq!(point("input", &claude).sum, Some(50.0));
    assert_eq!(point("output", &claude).sum, Some(10.0));
}

#[test]
fn operation_duration_counts_every_model_call_with_error_type_on_failures() {
    let _turn = turn();
    let (req, _, _) = agent_metrics();
    let mini = MINI;
    // Operation duration: seconds, one observation per model call (not the tool, not the
    // chain), failures apart with their error.type.
    let duration = req.metric(names::OPERATION_DURATION);
    assert_eq!(duration.unit, "s");
    let points = histogram_points(duration);
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 6);
    assert_eq!(
        points[0].explicit_bounds,
        [
            0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92
        ]
    );
    let by_error = |kind: &str| {
        points
            .iter()
            .filter(|p| has_attrs(&p.attributes, &[("error.type", kind)]))
            .map(|p| p.count)
            .sum::<u64>()
    };
    assert_eq!(by_error("rate_limit_exceeded"), 1);
    assert_eq!(by_error("ConnectionReset"), 1);
    let ok_mini: u64 = points
        .iter()
        .filter(|p| has_attrs(&p.attributes, &mini))
        .filter(|p| {
            !point_attrs(&p.attributes)
                .iter()
                .any(|(k, _)| k == "error.type")
        })
        .map(|p| p.count)
        .sum();
    assert_eq!(ok_mini, 3);
}

#[test]
fn time_to_first_chunk_is_recorded_for_the_streaming_call_only() {
    let _turn = turn();
    let (req, _, _) = agent_metrics();
    let claude = CLAUDE;
    // Time to first chunk: only the streaming call, in seconds.
    let ttfc = req.metric(names::TIME_TO_FIRST_CHUNK);
    assert_eq!(ttfc.unit, "s");
    let points = histogram_points(ttfc);
    assert_eq!(points.len(), 1);
    assert!(has_attrs(&points[0].attributes, &claude));
    assert_eq!((points[0].count, points[0].sum), (1, Some(0.25)));
}

#[test]
fn cost_is_a_monotonic_sum_in_usd_per_model() {
    let _turn = turn();
    let (req, spans, _) = agent_metrics();
    // Cost by model: what the spans carry, summed per model.
    let cost = req.metric(names::COST);
    assert_eq!(cost.unit, "USD");
    let Some(metric::Data::Sum(s)) = &cost.data else {
        panic!("cost is a sum")
    };
    assert!(s.is_monotonic);
    assert_eq!(
        s.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let usd = |model: &str| -> f64 {
        sum_points(cost)
            .iter()
            .filter(|p| has_attrs(&p.attributes, &[(gen_ai::REQUEST_MODEL, model)]))
            .map(value)
            .sum()
    };
    let mini_usd = cost_of(&spans, "gpt-4o-mini");
    assert!(mini_usd > 0.0, "gpt-4o-mini has a built-in price");
    assert!((usd("gpt-4o-mini") - mini_usd).abs() < 1e-12);
    assert!((usd("claude-sonnet-4") - 0.5).abs() < 1e-12);
}

#[test]
fn errors_are_counted_by_type_and_model() {
    let _turn = turn();
    let (req, _, _) = agent_metrics();
    // Errors by type.
    let errors = req.metric(names::ERRORS);
    assert_eq!(errors.unit, "{error}");
    let mut by_type: Vec<(String, f64)> = sum_points(errors)
        .iter()
        .map(|p| {
            let kind = point_attrs(&p.attributes)
                .into_iter()
                .find(|(k, _)| k == "error.type")
                .map(|(_, v)| v)
                .expect("error.type");
            (kind, value(p))
        })
        .collect();
    by_type.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_type,
        [
            ("ConnectionReset".to_owned(), 1.0),
            ("rate_limit_exceeded".to_owned(), 1.0)
        ]
    );
    assert!(
        sum_points(errors)
            .iter()
            .all(|p| has_attrs(&p.attributes, &MINI))
    );
}

#[test]
fn metrics_are_cumulative_and_sent_every_interval_without_a_flush() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| {
        b.scheduled_delay(Duration::from_millis(20)).metrics(
            Metrics::new()
                .endpoint(&url)
                .interval(Duration::from_millis(50)),
        )
    });
    chat("gpt-4o-mini", "openai", (100, 20));
    assert!(rec.guard().force_flush());
    let first = rx.recv_timeout(PATIENCE).expect("a request at the flush");
    // No call and no flush since: the interval alone sends the same cumulative values again,
    // and later ones add to them.
    let second = rx
        .recv_timeout(PATIENCE)
        .expect("a request at the interval");
    chat("gpt-4o-mini", "openai", (100, 20));
    assert!(rec.guard().force_flush());

    let input = |req: &MetricsRequest| {
        histogram_points(req.metric(names::TOKEN_USAGE))
            .iter()
            .find(|p| has_attrs(&p.attributes, &[("gen_ai.token.type", "input")]))
            .expect("an input point")
            .clone()
    };
    // Requests keep coming every 50 ms: the first with the second call in it.
    let third = std::iter::from_fn(|| rx.recv_timeout(PATIENCE).ok())
        .find(|req| input(req).count == 2)
        .expect("a request with both calls");
    let (a, b, c) = (input(&first), input(&second), input(&third));
    assert_eq!((a.count, a.sum), (1, Some(100.0)));
    assert_eq!((b.count, b.sum), (1, Some(100.0)));
    assert_eq!((c.count, c.sum), (2, Some(200.0)));
    assert_eq!(a.start_time_unix_nano, c.start_time_unix_nano);
    assert!(b.time_unix_nano > a.time_unix_nano);
    assert!(c.time_unix_nano > b.time_unix_nano);
    assert!(a.start_time_unix_nano <= a.time_unix_nano);
}

#[test]
fn a_backend_that_refuses_metrics_is_counted_and_spans_still_go_out() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Status(500));
    let rec = Recorder::with(|b| b.metrics(Metrics::new().endpoint(&url)));
    agent();
    assert_eq!(rec.spans().len(), 8, "every span exported");
    rx.recv_timeout(PATIENCE).expect("the request was sent");
    rec.shutdown();
    let stats = metrics::stats();
    assert_eq!(stats.exported, 0);
    assert!(stats.failed >= 1, "{stats:?}");
}

#[test]
fn an_unreachable_metrics_backend_never_holds_up_span_export() {
    let _turn = turn();
    // A port nothing listens on: every connection is refused and retried until the export
    // timeout, on the metrics thread, while spans flush.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let rec = Recorder::with(|b| {
        b.export_timeout(Duration::from_millis(300))
            .metrics(Metrics::new().endpoint(url))
    });
    for _ in 0..3 {
        agent();
        assert!(rec.guard().force_flush());
    }
    assert_eq!(rec.spans().len(), 24);
    rec.shutdown();
    let stats = metrics::stats();
    assert_eq!(stats.exported, 0);
    assert!(stats.failed >= 1, "{stats:?}");
    // Three requests queued while the first was still being retried: only the newest of those
    // waiting was kept, and it carried the rest (cumulative).
    assert_eq!(stats.failed + stats.replaced, 3, "{stats:?}");
}

#[test]
fn the_metrics_endpoint_defaults_to_the_traces_endpoint_and_honours_the_variable() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let traces = format!("{url}/v1/traces");
    let rec = Recorder::with(|b| {
        b.with_otlp_http(traces)
            .metrics(Metrics::new().header("x-tenant", "t1"))
    });
    chat("gpt-4o-mini", "openai", (100, 20));
    drop(rec);
    // The receiver gets the spans too; only the metrics request decodes with metrics in it.
    let mut paths = Vec::new();
    while let Ok(req) = rx.recv_timeout(Duration::from_secs(1)) {
        if req.find(names::TOKEN_USAGE).is_some() {
            paths.push(req.path);
        }
    }
    assert_eq!(paths, ["/v1/metrics"]);

    let (url, rx) = metrics_receiver(Answer::Ok);
    let custom = format!("{url}/custom/metrics");
    let rec = Recorder::with(|b| {
        b.env(move |k| (k == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").then(|| custom.clone()))
            .metrics(Metrics::new())
    });
    chat("gpt-4o-mini", "openai", (100, 20));
    drop(rec);
    assert_eq!(latest(&rx).path, "/custom/metrics");
}

/// One model call of a simulated workload: tokens and cost vary from call to call, and one
/// call in ten fails.
fn model_call(i: u64) -> Result<(), std::io::Error> {
    record_llm(|| {
        LlmCall::new("gpt-4o-mini")
            .provider("openai")
            .usage(input_tokens(i), 1 + i % 50)
            .cost_usd(cost(i))
    });
    if i.is_multiple_of(10) {
        return Err(std::io::Error::other("upstream failed"));
    }
    Ok(())
}

/// Kept at 1% by the function's own rate.
#[trace(event_type = "model", skip_all, sample_rate = 0.01)]
fn one_percent_call(i: u64) -> Result<(), std::io::Error> {
    model_call(i)
}

/// Kept as the global sampler says.
#[trace(event_type = "model", skip_all)]
fn call(i: u64) -> Result<(), std::io::Error> {
    model_call(i)
}

fn input_tokens(i: u64) -> u64 {
    10 + (i * 7919) % 2000
}

fn cost(i: u64) -> f64 {
    input_tokens(i) as f64 * 1e-6
}

/// Within 5 standard deviations of the true total: `values` are every call's `(x, p)`, its
/// value and the probability it was kept with, and the estimator (each kept `x` weighted by
/// `1/p`, Horvitz-Thompson) has variance `sum((1-p)/p * x^2)`.
fn assert_unbiased(what: &str, estimate: f64, values: impl Iterator<Item = (f64, f64)>) {
    let (mut total, mut variance) = (0.0, 0.0);
    for (x, p) in values {
        total += x;
        variance += (1.0 - p) / p * x * x;
    }
    let sigma = variance.sqrt();
    let off = (estimate - total).abs();
    assert!(
        off <= 5.0 * sigma,
        "{what}: estimate {estimate} vs true {total}: {:.2} sigma off (sigma {sigma})",
        off / sigma
    );
    // And the test can tell: the estimate is not the unweighted sum of the kept calls.
    assert!(estimate > total * 0.5, "{what}: {estimate} vs {total}");
}

const N: u64 = 100_000;
const P: f64 = 0.01;

fn one_percent_workload(
    call: fn(u64) -> Result<(), std::io::Error>,
    configure: impl FnOnce(honeyhive_runtime::Builder) -> honeyhive_runtime::Builder,
) {
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| configure(b.metrics(Metrics::new().endpoint(&url))));
    sampling::seed_thread_rng(2026);
    for i in 0..N {
        let _ = call(i);
    }
    let kept = rec.spans().len() as u64;
    let req = latest(&rx);
    // About 1000 calls kept, each standing for 100.
    assert!((800..1200).contains(&kept), "kept {kept}");
    assert_eq!(metrics::stats().calls, kept);

    let tokens = req.metric(names::TOKEN_USAGE);
    let input = histogram_points(tokens)
        .iter()
        .find(|p| has_attrs(&p.attributes, &[("gen_ai.token.type", "input")]))
        .expect("an input point");
    assert_unbiased(
        "input tokens",
        input.sum.expect("a sum"),
        (0..N).map(|i| (input_tokens(i) as f64, P)),
    );
    // Each bucket is its rounded weight, so the count is within a bucket-rounding of N's
    // estimate.
    assert_unbiased("calls", input.count as f64, (0..N).map(|_| (1.0, P)));
    let calls: u64 = histogram_points(req.metric(names::OPERATION_DURATION))
        .iter()
        .map(|p| p.count)
        .sum();
    assert_unbiased("operation count", calls as f64, (0..N).map(|_| (1.0, P)));

    let usd: f64 = sum_points(req.metric(names::COST)).iter().map(value).sum();
    assert_unbiased("cost", usd, (0..N).map(|i| (cost(i), P)));
    let errors: f64 = sum_points(req.metric(names::ERRORS))
        .iter()
        .map(value)
        .sum();
    assert_unbiased(
        "errors",
        errors,
        (0..N).map(|i| (if i.is_multiple_of(10) { 1.0 } else { 0.0 }, P)),
    );
}

#[test]
fn estimates_at_one_percent_sample_rate_are_within_five_sigma_of_the_true_totals() {
    let _turn = turn();
    one_percent_workload(one_percent_call, |b| b);
}

#[test]
fn estimates_at_one_percent_by_consistent_threshold_are_within_five_sigma() {
    let _turn = turn();
    // A global 1% ratio sampler (an `ot=th:` threshold on the spans) instead of the
    // function's rate: the probability comes from the threshold.
    one_percent_workload(call, |b| {
        b.sampler(Sampler::ParentBased(RootSampler::Ratio(P)))
    });
}

#[test]
fn estimates_under_tail_sampling_count_kept_errors_once_and_the_rest_by_the_keep_rate() {
    const CALLS: u64 = 20_000;
    const KEEP: f64 = 0.05;
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| {
        b.queue_capacity(1 << 20)
            .tail_sampling(TailSampling::new(KEEP))
            .metrics(Metrics::new().endpoint(&url))
    });
    sampling::seed_thread_rng(7);
    for i in 0..CALLS {
        let _ = call(i);
    }
    let kept = rec.spans().len() as u64;
    let req = latest(&rx);
    assert_eq!(rec.guard().export_stats().dropped, 0);
    // Every failed call (one in ten) is kept, and about 5% of the others.
    assert!((2_700..3_200).contains(&kept), "kept {kept}");

    // Failed calls were kept for sure: each counts once, exactly.
    let errors: f64 = sum_points(req.metric(names::ERRORS))
        .iter()
        .map(value)
        .sum();
    assert!((errors - (CALLS / 10) as f64).abs() < 1e-9, "{errors}");
    let p = |i: u64| if i.is_multiple_of(10) { 1.0 } else { KEEP };
    let input = histogram_points(req.metric(names::TOKEN_USAGE))
        .iter()
        .find(|p| has_attrs(&p.attributes, &[("gen_ai.token.type", "input")]))
        .expect("an input point")
        .clone();
    assert_unbiased(
        "input tokens",
        input.sum.expect("a sum"),
        (0..CALLS).map(|i| (input_tokens(i) as f64, p(i))),
    );
    assert_unbiased("calls", input.count as f64, (0..CALLS).map(|i| (1.0, p(i))));
}

#[test]
fn only_openinference_keys_still_give_the_call_attributes() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| {
        b.conventions(Conventions::OpenInference)
            .metrics(Metrics::new().endpoint(&url))
    });
    chat("gpt-4o-mini", "openai", (100, 20));
    let spans = rec.spans();
    let req = latest(&rx);
    let span = spans.get("chat");
    assert_eq!(span.str(gen_ai::REQUEST_MODEL), None, "no GenAI keys");
    let model = span
        .str(openinference::LLM_MODEL_NAME)
        .expect("llm.model_name");
    let input = histogram_points(req.metric(names::TOKEN_USAGE))
        .iter()
        .find(|p| has_attrs(&p.attributes, &[("gen_ai.token.type", "input")]))
        .expect("an input point")
        .clone();
    assert!(has_attrs(
        &input.attributes,
        &[
            (gen_ai::OPERATION_NAME, "chat"),
            (gen_ai::PROVIDER_NAME, "openai"),
            (gen_ai::REQUEST_MODEL, model),
        ]
    ));
    assert_eq!(input.sum, Some(100.0));
}

fn llm_client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::new().provider_for_host("127.0.0.1", "openai"))
        .build()
}

#[test]
fn llm_client_calls_traced_from_the_wire_give_time_to_first_chunk_and_error_types() {
    let _turn = turn();
    let fake = FakeLlm::start();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| b.metrics(Metrics::new().endpoint(&url)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let post = |stream: bool| {
            let body = serde_json::json!({
                "model": "gpt-4o-mini",
                "stream": stream,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Capital of France?"}]
            });
            llm_client()
                .post(fake.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        for stream in [true, false] {
            let response = post(stream).await.expect("an answer");
            assert_eq!(response.status(), 200);
            response.text().await.expect("a body");
        }
        fake.fail_next(Fault::RateLimited { retry_after: 1 });
        let response = post(false).await.expect("an answer");
        assert_eq!(response.status(), 429);
        response.text().await.expect("a body");
    });
    let spans = rec.spans();
    let req = latest(&rx);

    let streamed: Vec<f64> = spans
        .iter()
        .filter_map(|s| s.f64(TIME_TO_FIRST_TOKEN_MS))
        .collect();
    assert_eq!(streamed.len(), 1, "one streaming call");
    let ttfc = histogram_points(req.metric(names::TIME_TO_FIRST_CHUNK));
    assert_eq!(ttfc.len(), 1);
    assert_eq!(ttfc[0].count, 1);
    assert!((ttfc[0].sum.expect("a sum") - streamed[0] / 1000.0).abs() < 1e-12);

    let errors = sum_points(req.metric(names::ERRORS));
    assert_eq!(errors.len(), 1);
    assert!(has_attrs(
        &errors[0].attributes,
        &[
            ("error.type", "rate_limit_exceeded"),
            (gen_ai::REQUEST_MODEL, "gpt-4o-mini"),
            ("server.address", "127.0.0.1"),
        ]
    ));
    assert!((value(&errors[0]) - 1.0).abs() < 1e-12);

    let input: f64 = histogram_points(req.metric(names::TOKEN_USAGE))
        .iter()
        .filter(|p| has_attrs(&p.attributes, &[("gen_ai.token.type", "input")]))
        .filter_map(|p| p.sum)
        .sum();
    assert!(
        (input - 2.0 * OPENAI_USAGE.0 as f64).abs() < 1e-9,
        "{input}"
    );
}

/// A token stream on a model span: `#[trace]` records when its first item came.
#[trace(event_type = "model")]
fn stream_tokens(prompt: &str) -> impl Iterator<Item = String> {
    LlmCall::new("llama-3.1-8b")
        .provider("ollama")
        .usage(5, 4)
        .record();
    let words: Vec<String> = prompt.split(' ').map(str::to_owned).collect();
    words.into_iter()
}

#[test]
fn a_traced_token_stream_gives_time_to_first_chunk() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| b.metrics(Metrics::new().endpoint(&url)));
    assert_eq!(stream_tokens("the capital is Paris").count(), 4);
    chat("gpt-4o-mini", "openai", (100, 20));
    let spans = rec.spans();
    let req = latest(&rx);
    let first_ms = spans
        .get("stream_tokens")
        .f64("honeyhive.stream.time_to_first_item_ms")
        .expect("a first item time");
    let points = histogram_points(req.metric(names::TIME_TO_FIRST_CHUNK));
    assert_eq!(points.len(), 1, "the stream only, not the plain call");
    assert!(has_attrs(
        &points[0].attributes,
        &[
            (gen_ai::REQUEST_MODEL, "llama-3.1-8b"),
            (gen_ai::PROVIDER_NAME, "ollama")
        ]
    ));
    assert_eq!(points[0].count, 1);
    assert!((points[0].sum.expect("a sum") - first_ms / 1000.0).abs() < 1e-12);
}

#[trace(event_type = "model", skip_all)]
fn call_model(model: String) {
    LlmCall::new(model).provider("openai").usage(1, 1).record();
}

#[test]
fn attribute_sets_past_the_limit_go_to_one_overflow_series() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| b.metrics(Metrics::new().endpoint(&url)));
    for i in 0..1_010 {
        call_model(format!("model-{i}"));
    }
    rec.guard().force_flush();
    let req = latest(&rx);
    let points = histogram_points(req.metric(names::OPERATION_DURATION));
    assert_eq!(points.len(), 1_001, "1000 series and the overflow one");
    let overflow: Vec<_> = points
        .iter()
        .filter(|p| has_attrs(&p.attributes, &[("otel.metric.overflow", "true")]))
        .collect();
    assert_eq!(overflow.len(), 1);
    assert_eq!(overflow[0].count, 10);
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 1_010);
}

/// A model call whose values were set by hand, as an integration of one's own might.
fn hand_set_call(model: &str, cost: f64, input_tokens: f64, output_tokens: f64) {
    let mut span = SpanBuilder::new("chat")
        .event_type(EventType::Model)
        .parent(Parent::Root)
        .start();
    span.set_attribute(gen_ai::REQUEST_MODEL, model.to_owned());
    span.set_attribute(openinference::LLM_COST_TOTAL, cost);
    span.set_attribute(gen_ai::USAGE_INPUT_TOKENS, input_tokens);
    span.set_attribute(gen_ai::USAGE_OUTPUT_TOKENS, output_tokens);
    span.end();
}

#[test]
fn values_no_instrument_measures_are_left_out_and_counted_and_the_sums_stay_valid() {
    let _turn = turn();
    let (url, rx) = metrics_receiver(Answer::Ok);
    let rec = Recorder::with(|b| b.metrics(Metrics::new().endpoint(&url)));
    hand_set_call("m", 1.0, 10.0, 2.0);
    let _ = rec.spans();
    let first = latest(&rx);
    // A refund as a negative cost, an overflowed and a NaN token count; then a valid call.
    hand_set_call("m", -3.0, f64::INFINITY, f64::NAN);
    hand_set_call("m", 0.5, 5.0, 1.0);
    let _ = rec.spans();
    let second = latest(&rx);
    rec.shutdown();
    let stats = metrics::stats();

    let cost = |req: &MetricsRequest| sum_points(req.metric(names::COST)).iter().map(value).sum();
    let (before, after): (f64, f64) = (cost(&first), cost(&second));
    assert!((before - 1.0).abs() < 1e-12, "{before}");
    assert!(
        (after - 1.5).abs() < 1e-12,
        "the monotonic cost sum went from {before} to {after}"
    );
    let tokens = |kind: &str| {
        let point = histogram_points(second.metric(names::TOKEN_USAGE))
            .iter()
            .find(|p| has_attrs(&p.attributes, &[("gen_ai.token.type", kind)]))
            .unwrap_or_else(|| panic!("a {kind} token point"));
        (point.count, point.sum)
    };
    assert_eq!(
        tokens("input"),
        (2, Some(15.0)),
        "the infinite count is left out"
    );
    assert_eq!(
        tokens("output"),
        (2, Some(3.0)),
        "the NaN count is left out"
    );
    // Every call still counts as an operation.
    let calls: u64 = histogram_points(second.metric(names::OPERATION_DURATION))
        .iter()
        .map(|p| p.count)
        .sum();
    assert_eq!(calls, 3);
    assert_eq!(stats.calls, 3);
    assert_eq!(stats.rejected, 3, "{stats:?}");
}

#[trace(event_type = "model")]
fn priced_call(reported_cost: Option<f64>) {
    let call = LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .usage(1000, 100);
    match reported_cost {
        Some(usd) => call.cost_usd(usd),
        None => call,
    }
    .record();
}

#[test]
fn a_reported_cost_that_is_negative_or_not_finite_is_ignored_for_the_price_tables() {
    let _turn = turn();
    let rec = Recorder::start();
    priced_call(None);
    priced_call(Some(-3.0));
    priced_call(Some(f64::NAN));
    priced_call(Some(f64::INFINITY));
    priced_call(Some(0.25));
    let spans = rec.spans();
    let costs: Vec<Option<f64>> = spans
        .all("priced_call")
        .map(|s| s.f64(openinference::LLM_COST_TOTAL))
        .collect();
    let table = costs[0].expect("gpt-4o-mini has a built-in price");
    assert!(table > 0.0);
    assert_eq!(
        costs,
        [
            Some(table),
            Some(table),
            Some(table),
            Some(table),
            Some(0.25)
        ]
    );
}
