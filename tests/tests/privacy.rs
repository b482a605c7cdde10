//! Redaction, key lists and the per-span budget, asserted on real exported spans.

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Builder, Scope, enrich_span, trace};
use opentelemetry::Value;

const CORE: &[(&str, &str)] = &[
    ("honeyhive_event_type", "tool"),
    ("honeyhive_event_name", "ingest"),
    ("honeyhive.session_id", "session-1"),
    ("session.id", "session-1"),
    ("user.id", "user-1"),
    ("honeyhive.request_id", "req-1"),
];

#[trace(event_type = "tool")]
fn ingest(document: String, items: Vec<u64>) -> usize {
    // A big enrichment on top of the big arguments.
    enrich_span()
        .metadata("items", items.clone())
        .metadata("document", document.clone());
    document.len() + items.len()
}

fn bytes_of(span: &FinishedSpan) -> usize {
    span.attributes
        .iter()
        .map(|kv| {
            kv.key.as_str().len()
                + match &kv.value {
                    Value::String(s) => s.as_str().len(),
                    _ => 8,
                }
        })
        .sum()
}

fn assert_core_keys(span: &FinishedSpan) {
    for (key, value) in CORE {
        assert_eq!(span.str(key), Some(*value), "core key {key}");
    }
}

fn run_ingest() -> usize {
    let document = "lorem ipsum ".repeat(2 * 1024 * 1024 / 12);
    let items: Vec<u64> = (0..1500).map(|i| i * 1_000_000).collect();
    Scope::session("session-1")
        .user("user-1")
        .request_id("req-1")
        .run(|| ingest(document, items))
}

#[test]
fn a_2mb_argument_and_a_1500_item_list_are_exported_bounded_with_core_keys() {
    let rec = Recorder::start();
    assert_eq!(run_ingest(), 2 * 1024 * 1024 / 12 * 12 + 1500);
    let spans = rec.spans();
    let span = spans.get("ingest");
    assert_core_keys(span);
    let cap = 8 * 1024 + 64; // the capture cap and its marker
    for kv in &span.attributes {
        if let Value::String(s) = &kv.value {
            assert!(
                s.as_str().len() <= cap,
                "{} is {} bytes",
                kv.key,
                s.as_str().len()
            );
        }
    }
    let document = span.str("honeyhive_inputs.document").unwrap();
    assert!(document.ends_with("bytes]") && document.contains("…[truncated "));
    let items = span.str("honeyhive_inputs.items").unwrap();
    assert!(items.starts_with("[0, 1000000, ") && items.contains("…[truncated "));
    assert!(bytes_of(span) <= 256 * 1024, "{} bytes", bytes_of(span));
    assert!(span.attributes.len() <= 256 + 1);
}

#[test]
fn a_tight_budget_evicts_content_but_never_core_keys() {
    let rec = Recorder::with(|b| b.max_span_attributes(12).max_span_bytes(4 * 1024));
    run_ingest();
    let spans = rec.spans();
    let span = spans.get("ingest");
    assert_core_keys(span);
    assert!(span.attributes.len() <= 12 + CORE.len() + 1);
    assert!(bytes_of(span) <= 4 * 1024 + 512, "{} bytes", bytes_of(span));
    let dropped = span.i64("honeyhive.dropped_attributes").unwrap();
    assert!(dropped > 90, "{dropped}");
    assert_eq!(
        span.dropped_attributes_count,
        u32::try_from(dropped).unwrap()
    );
    // Small keys that describe the span outlive captured content.
    assert!(span.f64("honeyhive_duration_ms").is_some());
    assert_eq!(span.str("openinference.span.kind"), Some("TOOL"));
}

#[derive(Debug)]
struct ApiError(String);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[trace(event_type = "model")]
fn call_api(api_key: &str, header: &str, note: &str) -> Result<String, ApiError> {
    let _ = header;
    Err(ApiError(format!("401: invalid key {api_key} for {note}")))
}

#[test]
fn secrets_are_redacted_everywhere_before_export() {
    let rec = Recorder::with(|b| b.redact_pattern(r"\b\d{3}-\d{2}-\d{4}\b"));
    let _ = call_api(
        "sk-proj-0123456789abcdefghijklmnop",
        "Authorization: Bearer eyJhbGciOi.abcdefghijkl",
        "customer 123-45-6789 with AIzaSyA0123456789abcdefghijklmnopqrstu",
    );
    let spans = rec.spans();
    let span = spans.get("call_api");
    // A secret-named argument is redacted whole, whatever it looks like.
    assert_eq!(span.str("honeyhive_inputs.api_key"), Some("[REDACTED]"));
    assert_eq!(
        span.str("honeyhive_inputs.header"),
        Some("Authorization: Bearer [REDACTED]")
    );
    assert_eq!(
        span.str("honeyhive_inputs.note"),
        Some("customer [REDACTED] with [REDACTED]")
    );
    let message = "401: invalid key [REDACTED] for customer [REDACTED] with [REDACTED]";
    assert_eq!(span.error_message(), Some(message));
    assert_eq!(span.str("honeyhive_error"), Some(message));
    let event = span.events_named("exception").next().unwrap();
    assert_eq!(
        FinishedSpan::event_attr(event, "exception.message"),
        Some(&Value::from(message))
    );
    for kv in &span.attributes {
        if let Value::String(s) = &kv.value {
            assert!(
                !s.as_str().contains("sk-proj"),
                "{}: {}",
                kv.key,
                s.as_str()
            );
        }
    }
}

#[test]
fn redaction_of_secrets_can_be_turned_off() {
    let rec = Recorder::with(|b| b.redact_secrets(false));
    let _ = call_api("sk-proj-0123456789abcdefghijklmnop", "", "");
    let spans = rec.spans();
    assert_eq!(
        spans.get("call_api").str("honeyhive_inputs.api_key"),
        Some("sk-proj-0123456789abcdefghijklmnop")
    );
}

#[trace(event_type = "tool")]
fn checkout(card: &str, city: &str) -> u32 {
    let _ = (card, city);
    enrich_span().metadata("plan", "pro").metrics("items", 3);
    7
}

#[test]
fn deny_and_allow_lists_filter_keys_but_keep_core_keys() {
    let rec = Recorder::with(|b| b.deny_keys(["honeyhive_inputs.card", "input.*"]));
    checkout("4111 1111 1111 1111", "Paris");
    let spans = rec.spans();
    let span = spans.get("checkout");
    assert_eq!(span.attr("honeyhive_inputs.card"), None);
    assert_eq!(span.attr("input.value"), None);
    assert_eq!(span.str("honeyhive_inputs.city"), Some("Paris"));
    drop(rec);

    let rec = Recorder::with(|b| {
        b.allow_keys(["honeyhive_metrics.*", "honeyhive_outputs.result"])
            .deny_keys(["honeyhive_event_name"])
    });
    Scope::session("s-2").run(|| checkout("4111", "Paris"));
    let spans = rec.spans();
    let span = spans.get("checkout");
    let mut keys: Vec<&str> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "honeyhive.session_id",
            "honeyhive_event_name",
            "honeyhive_event_type",
            "honeyhive_metrics.items",
            "honeyhive_outputs.result",
            "openinference.span.kind",
            "session.id",
        ]
    );
}

#[test]
fn privacy_settings_resolve_and_bad_patterns_fail_install() {
    let settings = Builder::new()
        .env(|_| None)
        .redact_pattern("x+")
        .deny_keys(["a"])
        .max_span_attributes(10)
        .resolve();
    assert_eq!(settings.privacy.redact_patterns, ["x+"]);
    assert_eq!(settings.privacy.deny_keys, ["a"]);
    assert_eq!(settings.privacy.max_attributes, 10);
    assert!(settings.privacy.redact_secrets);
    let err = Builder::new()
        .env(|_| None)
        .redact_pattern("(unclosed")
        .install()
        .unwrap_err();
    assert!(err.to_string().contains("redaction pattern"), "{err}");
}
