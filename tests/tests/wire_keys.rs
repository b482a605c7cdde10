//! What each destination gets on the OTLP wire: the keys it reads, each value once.
//!
//! By default the conventions follow the exporters (`Builder::conventions` and
//! `HH_CONVENTIONS` override it): a generic OTLP endpoint gets GenAI keys, Phoenix
//! (`with_phoenix`) OpenInference keys, HoneyHive both. A plain span and an LLM span go to a
//! real OTLP/HTTP receiver on 127.0.0.1, and the exact set of keys each span carries is pinned,
//! so a key that comes back (a duplicate, or one no reader of that destination reads) fails.

use std::collections::BTreeSet;
use std::sync::Mutex;

use honeyhive_runtime::{Builder, Conventions, LlmCall, trace};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span as WireSpan;

/// The pipeline is global: one test at a time.
static TURN: Mutex<()> = Mutex::new(());

const USER_MESSAGE: &str = "I am planning a week in Portugal in late October: where can we swim?";
const COMPLETION: &str = "Try the Algarve, around Lagos, where the sea is calmer in October.";

#[trace(event_type = "tool")]
fn lookup(query: &str, n: u64) -> u64 {
    n + query.len() as u64
}

#[trace(event_type = "model", skip_all, skip_output)]
fn chat() {
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .message("system", "Be brief.")
        .message("user", USER_MESSAGE)
        .completion(COMPLETION)
        .usage(160, 70)
        .finish_reason("stop")
        .record();
}

#[trace(event_type = "chain", skip_output)]
fn answer() {
    chat();
    chat();
}

/// Installs `configure(builder, receiver_url)`, traces `lookup` and `chat` (two traces), shuts
/// down and returns the spans the receiver got.
fn sent(configure: impl FnOnce(Builder, &str) -> Builder) -> Vec<WireSpan> {
    sent_of(configure, 2, || {
        lookup("capital of France?", 3);
        chat();
    })
}

/// Installs `configure(builder, receiver_url)`, runs `work` (`n` spans), shuts down and returns
/// the spans the receiver got.
fn sent_of(
    configure: impl FnOnce(Builder, &str) -> Builder,
    n: usize,
    work: impl FnOnce(),
) -> Vec<WireSpan> {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (url, requests) = honeyhive_tests::otlp_receiver();
    let guard = configure(Builder::new().env(|_| None), &url)
        .install()
        .expect("the pipeline installs");
    work();
    let report = guard.shutdown();
    assert_eq!(report.exported, n as u64, "{report:?}");
    let mut spans = Vec::new();
    while spans.len() < n {
        let request = requests
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the receiver got both spans");
        for rs in request.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    spans
}

fn span<'a>(spans: &'a [WireSpan], name: &str) -> &'a WireSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

/// The span's keys; fails if one is sent twice.
fn keys(span: &WireSpan) -> BTreeSet<&str> {
    let mut set = BTreeSet::new();
    for kv in &span.attributes {
        assert!(
            set.insert(kv.key.as_str()),
            "{}: {} sent twice",
            span.name,
            kv.key
        );
    }
    set
}

/// The keys whose string value contains `text`.
fn keys_holding<'a>(span: &'a WireSpan, text: &str) -> Vec<&'a str> {
    span.attributes
        .iter()
        .filter(|kv| {
            matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(any_value::Value::StringValue(s)) if s.contains(text)
            )
        })
        .map(|kv| kv.key.as_str())
        .collect()
}

fn set<'a>(keys: &[&'a str]) -> BTreeSet<&'a str> {
    keys.iter().copied().collect()
}

/// A root's totals over the LLM calls below it.
const TOTALS: [&str; 5] = [
    "honeyhive.total.input_tokens",
    "honeyhive.total.output_tokens",
    "honeyhive.total.tokens",
    "honeyhive.total.llm_calls",
    "honeyhive.total.cost_usd",
];
/// OpenInference's cost keys.
const COST: [&str; 3] = ["llm.cost.prompt", "llm.cost.completion", "llm.cost.total"];

#[test]
fn a_generic_otlp_endpoint_gets_genai_keys_and_each_message_once() {
    let spans = sent(|b, url| b.with_otlp_http(url));
    assert_eq!(
        keys(span(&spans, "lookup")),
        set(&[
            "honeyhive_event_type",
            "honeyhive_inputs.query",
            "honeyhive_inputs.n",
            "honeyhive_outputs.result",
        ])
    );
    let chat = span(&spans, "chat");
    // A probability of 1 and totals equal to the root's own call are not repeated, and the
    // cost is one total (GenAI has no cost key; the parts are OpenInference's).
    let want = set(&[
        "honeyhive_event_type",
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.response.finish_reasons",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "llm.cost.total",
    ]);
    assert_eq!(keys(chat), want);
    assert_eq!(keys_holding(chat, USER_MESSAGE), ["gen_ai.input.messages"]);
    assert_eq!(keys_holding(chat, COMPLETION), ["gen_ai.output.messages"]);
}

#[test]
fn phoenix_gets_openinference_keys() {
    let spans = sent(|b, url| b.with_phoenix(url.trim_end_matches("/v1/traces")));
    assert_eq!(
        keys(span(&spans, "lookup")),
        set(&[
            "honeyhive_event_type",
            "honeyhive_inputs.query",
            "honeyhive_inputs.n",
            "honeyhive_outputs.result",
            "openinference.span.kind",
            "input.value",
            "input.mime_type",
            "output.value",
            "output.mime_type",
        ])
    );
    let chat = span(&spans, "chat");
    let mut want = set(&[
        "honeyhive_event_type",
        "openinference.span.kind",
        "llm.model_name",
        "llm.provider",
        "llm.system",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.input_messages.0.message.role",
        "llm.input_messages.0.message.content",
        "llm.input_messages.1.message.role",
        "llm.input_messages.1.message.content",
        "llm.output_messages.0.message.role",
        "llm.output_messages.0.message.content",
        "input.value",
        "input.mime_type",
        "output.value",
    ]);
    want.extend(COST);
    assert_eq!(keys(chat), want);
    // Phoenix shows the flattened messages in its LLM view and `input.value` as the span's
    // input: it reads both.
    assert_eq!(
        keys_holding(chat, USER_MESSAGE),
        ["llm.input_messages.1.message.content", "input.value"]
    );
}

#[test]
fn honeyhive_and_mixed_destinations_get_both_conventions() {
    let honeyhive = sent(|b, url| {
        b.api_key("hh-test")
            .server_url(url.trim_end_matches("/v1/traces"))
            .with_honeyhive()
    });
    // A generic endpoint and Phoenix (the same receiver, which takes any path, at another
    // path): one rendering serves both.
    let mixed = sent(|b, url| {
        let phoenix = format!("{}/phoenix", url.trim_end_matches("/v1/traces"));
        b.with_otlp_http(url).with_phoenix(phoenix)
    });
    for spans in [&honeyhive, &mixed] {
        let lookup = keys(span(spans, "lookup"));
        assert!(lookup.contains("honeyhive_duration_ms"), "{lookup:?}");
        assert!(lookup.contains("openinference.span.kind"), "{lookup:?}");
        let chat = span(spans, "chat");
        assert_eq!(
            keys_holding(chat, USER_MESSAGE),
            [
                "gen_ai.input.messages",
                "llm.input_messages.1.message.content",
                "input.value"
            ]
        );
    }
}

#[test]
fn the_conventions_asked_for_win_over_the_destinations() {
    let explicit = sent(|b, url| b.with_otlp_http(url).conventions(Conventions::Both));
    assert!(keys(span(&explicit, "chat")).contains("llm.input_messages.0.message.role"));
    let from_env = sent(|b, url| {
        b.with_otlp_http(url)
            .env(|k| (k == "HH_CONVENTIONS").then(|| "openinference".to_owned()))
    });
    let chat = keys(span(&from_env, "chat"));
    assert!(chat.iter().all(|k| !k.starts_with("gen_ai.")), "{chat:?}");
    assert!(chat.contains("llm.model_name"), "{chat:?}");
}

#[test]
fn settings_name_the_conventions_each_setup_gets() {
    let resolve = |b: Builder| b.env(|_| None).resolve().conventions;
    let otlp = "http://127.0.0.1:4318/v1/traces";
    assert_eq!(
        resolve(Builder::new().with_otlp_http(otlp)),
        Conventions::GenAi
    );
    assert_eq!(
        resolve(Builder::new().with_otlp_grpc("http://127.0.0.1:4317")),
        Conventions::GenAi
    );
    assert_eq!(
        resolve(Builder::new().with_phoenix("http://127.0.0.1:6006")),
        Conventions::OpenInference
    );
    assert_eq!(
        resolve(Builder::new().api_key("k").with_honeyhive()),
        Conventions::Both
    );
    assert_eq!(resolve(Builder::new()), Conventions::Both, "the console");
    assert_eq!(
        resolve(
            Builder::new()
                .with_otlp_http(otlp)
                .with_phoenix("http://127.0.0.1:6006")
        ),
        Conventions::Both
    );
    let env = Builder::new()
        .env(|k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4318".to_owned()))
        .resolve();
    assert_eq!(env.conventions, Conventions::GenAi);
    let bad = Builder::new()
        .with_otlp_http(otlp)
        .env(|k| (k == "HH_CONVENTIONS").then(|| "phoenix".to_owned()))
        .resolve();
    assert_eq!(bad.conventions, Conventions::GenAi);
    assert!(
        bad.warnings.iter().any(|w| w.contains("HH_CONVENTIONS")),
        "{:?}",
        bad.warnings
    );
}

#[test]
fn a_root_gets_totals_over_the_calls_below_it() {
    let spans = sent_of(|b, url| b.with_otlp_http(url), 3, answer);
    let root = keys(span(&spans, "answer"));
    assert!(TOTALS.iter().all(|k| root.contains(k)), "{root:?}");
    let total = span(&spans, "answer")
        .attributes
        .iter()
        .find(|kv| kv.key == "honeyhive.total.input_tokens")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(total, Some(any_value::Value::IntValue(320)));
}
