//! Redaction, key lists and the per-span budget, asserted on real exported spans.

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Builder, Scope, enrich_span, trace};
use opentelemetry::Value;

const CORE: &[(&str, &str)] = &[
    ("honeyhive_event_type", "tool"),
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
            .deny_keys(["honeyhive_event_type"])
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

mod secret_cases;

use secret_cases::{PLACES, exported_text, leaks, run, secrets, text_in};

/// Runs every (secret, place) case on real spans and returns the cases that leaked.
fn leaked_cases(rec: &Recorder) -> Vec<String> {
    let mut leaked = Vec::new();
    let mut seen = 0;
    for secret in secrets() {
        for place in PLACES {
            run(place, &text_in(place, &secret));
            let spans = rec.spans();
            let new = &spans[seen..];
            assert!(!new.is_empty(), "{place:?} recorded no span");
            seen = spans.len();
            let exported: String = new.iter().map(exported_text).collect();
            if leaks(&secret.secret, &exported) {
                leaked.push(format!("{} in {place:?}: {exported}", secret.format));
            }
        }
    }
    leaked
}

#[test]
fn fifty_nine_secret_formats_in_eight_places_never_leak() {
    let rec = Recorder::start();
    let cases = secrets();
    let total = cases.len() * PLACES.len();
    assert_eq!(total, 472);
    let leaked = leaked_cases(&rec);
    println!("recall: {}/{total}", total - leaked.len());
    assert!(
        leaked.is_empty(),
        "{} leaked:\n{}",
        leaked.len(),
        leaked.join("\n\n")
    );
}

#[test]
fn the_cases_leak_without_redaction() {
    // The leak check itself can fail: with redaction off, every case leaks.
    let rec = Recorder::with(|b| b.redact_secrets(false));
    assert_eq!(leaked_cases(&rec).len(), secrets().len() * PLACES.len());
}

/// Ordinary text that must come out exactly as it went in.
const ORDINARY: &[&str] = &[
    "550e8400-e29b-41d4-a716-446655440000",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the retry loop",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "The capital of France is Paris. Tokens are counted per request.",
    "max_tokens: 4096, temperature: 0.7, total_tokens: 1234567",
    "We use Bearer authentication for the public API.",
    "Basic information about the customer is in the CRM.",
    "password: ${DB_PASSWORD}",
    "https://docs.example.com:8443/guide?page=2&lang=en",
    "Config { retries: 3, timeout_ms: 2500, endpoint: \"https://api.example.com/v1\" }",
    "the tokenizer is cl100k_base and the secret sauce is caching",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "order #A1B2C3D4E5F6G7H8 shipped to Berlin",
    "ask-me-anything-session-2024 starts at noon",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01'",
    "a key-value store with key-rotation every 90 days",
    "git clone ssh://git@github.com/rust-lang/rust.git and https://github.com/tokio-rs/tokio",
    "Cookie consent: accepted (3 cookies set)",
    r#"{"id":"chatcmpl-9pQXyZaBcDeFgHiJkLmNoPqRsTuV","system_fingerprint":"fp_44709d6fcb"}"#,
    r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
    r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","tool_call_id":"call_Ab3dEf6hIj9kLm2nOp5q"}"#,
    "opened /home/user/projects/MyApp2/src/Main/Lib1 and /usr/lib/python3.11/site-packages",
    r#"encoded: "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=""#,
    "PWD=/home/app/current OLDPWD=/home/app; passenger: Jane Doe; compass: north-east",
    "Internationalization/localization of the CustomerRelationshipManagement1 module",
];

#[trace(event_type = "tool")]
fn echo(text: &str) -> String {
    text.to_owned()
}

#[test]
fn ordinary_text_is_not_redacted() {
    let rec = Recorder::start();
    for text in ORDINARY {
        echo(text);
    }
    let spans = rec.spans();
    let mut changed = Vec::new();
    for (span, text) in spans.all("echo").zip(ORDINARY) {
        for key in ["honeyhive_inputs.text", "honeyhive_outputs.result"] {
            if span.str(key) != Some(*text) {
                changed.push(format!("{text}\n  -> {:?}", span.str(key)));
            }
        }
    }
    assert_eq!(spans.all("echo").count(), ORDINARY.len());
    assert!(
        changed.is_empty(),
        "false positives:\n{}",
        changed.join("\n")
    );
}

/// Secrets followed by the text around them: only the secret is replaced, so what closes or
/// follows it (a bracket, a `:`, a sentence's `.`, a fragment) is exported as it was.
const AROUND: &[(&str, &str)] = &[
    (
        "fetch(https://api.example.com/v1/data?token=tok-999abcdef): x",
        "fetch(https://api.example.com/v1/data?token=[REDACTED]): x",
    ),
    (
        "Config { password=Hunter2Hunter2 } (dev)",
        "Config { password=[REDACTED] } (dev)",
    ),
    ("[api_key: abcd1234efgh] next", "[api_key: [REDACTED]] next"),
    (
        "The key is api_key=abc123def456.",
        "The key is api_key=[REDACTED].",
    ),
    (
        "Use Authorization: Bearer abcdefgh12345678.",
        "Use Authorization: Bearer [REDACTED].",
    ),
    (
        "GET /geocode?key=Zx81kLmq02PaBc#results",
        "GET /geocode?key=[REDACTED]#results",
    ),
    (
        "https://maps.example.com/api?KEY=abcd1234efgh5678&q=paris",
        "https://maps.example.com/api?KEY=[REDACTED]&q=paris",
    ),
    ("(password=P@ss!w0rd#2024$) ok", "(password=[REDACTED]) ok"),
];

#[test]
fn only_the_secret_is_replaced_not_the_text_after_it() {
    let rec = Recorder::start();
    for (text, _) in AROUND {
        echo(text);
    }
    let spans = rec.spans();
    let mut wrong = Vec::new();
    for (span, (text, expected)) in spans.all("echo").zip(AROUND) {
        for key in ["honeyhive_inputs.text", "honeyhive_outputs.result"] {
            if span.str(key) != Some(*expected) {
                wrong.push(format!("{text}\n  -> {:?}", span.str(key)));
            }
        }
    }
    assert_eq!(spans.all("echo").count(), AROUND.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A `key` that names no credential outside a query stays.
    let rec = {
        drop(rec);
        Recorder::start()
    };
    echo("sort_key=created_at and monkey=bananas123");
    assert_eq!(
        rec.spans().get("echo").str("honeyhive_outputs.result"),
        Some("sort_key=created_at and monkey=bananas123")
    );
}

#[test]
fn a_value_cut_at_the_cap_keeps_no_piece_of_a_secret() {
    let cap = 1024;
    let rec = Recorder::with(|b| b.capture_max_bytes(cap));
    let mut cases = 0;
    for secret in secrets() {
        let at = secret.text.find(secret.secret.as_str()).unwrap();
        // Cuts 1, 5, 11 bytes and half-way into the secret.
        for into in [1, 5, 11, secret.secret.len() / 2] {
            // The note is the third argument: only its own bytes count against the cap.
            let pad = "x ".repeat(cap);
            let lead = cap - at - into;
            // Words in front, then a space, then the secret's text.
            let text = format!("{} {}", &pad[..lead - 1], secret.text);
            call_api("", "", &text).unwrap_err();
            cases += 1;
        }
    }
    let spans = rec.spans();
    let mut leaked = Vec::new();
    for (span, (i, secret)) in spans.all("call_api").zip(
        secrets()
            .iter()
            .flat_map(|s| std::iter::repeat_n(s, 4))
            .enumerate(),
    ) {
        let note = span.str("honeyhive_inputs.note").unwrap();
        assert!(note.contains("…[truncated "), "{note}");
        if leaks(&secret.secret, note) {
            leaked.push(format!("{} (case {i}): {note}", secret.format));
        }
    }
    assert_eq!(spans.all("call_api").count(), cases);
    assert!(leaked.is_empty(), "{}", leaked.join("\n"));
}

#[test]
fn a_mask_callback_sees_every_captured_string_with_its_key() {
    let rec = Recorder::with(|b| {
        b.mask(|key, value| {
            if key == "honeyhive_inputs.card" {
                Some("[CARD]".to_owned())
            } else {
                value
                    .contains("ACME-")
                    .then(|| value.replace("ACME-", "[CUSTOMER]-"))
            }
        })
    });
    checkout("4111 1111 1111 1111", "ACME-42 HQ");
    let _ = call_api("", "", "customer ACME-7 failed");
    let spans = rec.spans();
    let span = spans.get("checkout");
    assert_eq!(span.str("honeyhive_inputs.card"), Some("[CARD]"));
    assert_eq!(span.str("honeyhive_inputs.city"), Some("[CUSTOMER]-42 HQ"));
    assert_eq!(
        span.str("honeyhive_metadata.plan"),
        Some("pro"),
        "None keeps the value"
    );
    let failed = spans.get("call_api");
    let message = "401: invalid key  for customer [CUSTOMER]-7 failed";
    assert_eq!(failed.str("honeyhive_error"), Some(message));
    assert_eq!(failed.error_message(), Some(message));
    let event = failed.events_named("exception").next().unwrap();
    assert_eq!(
        FinishedSpan::event_attr(event, "exception.message"),
        Some(&Value::from(message))
    );
}

#[test]
fn a_mask_callback_that_panics_redacts_the_value() {
    let rec = Recorder::with(|b| {
        b.mask(|key, _| {
            assert!(key != "honeyhive_inputs.city", "mask bug");
            None
        })
    });
    checkout("4111", "Paris");
    let spans = rec.spans();
    let span = spans.get("checkout");
    assert_eq!(span.str("honeyhive_inputs.city"), Some("[REDACTED]"));
    assert_eq!(span.str("honeyhive_inputs.card"), Some("4111"));
}

#[trace(event_type = "tool")]
#[allow(clippy::too_many_arguments)]
fn connect(
    db_password: &str,
    pwd: &str,
    openai_api_key: &str,
    x_api_key: &str,
    github_token: &str,
    max_tokens: u32,
    sort_key: &str,
    passage: &str,
) -> usize {
    enrich_span()
        .metadata(
            "api_key",
            honeyhive_runtime::Value::map([("value", "s2-plain")]),
        )
        .metadata("password", vec!["s3-plain"])
        .config(
            "credentials",
            honeyhive_runtime::Value::map([("user", "bob"), ("pass", "s4-plain")]),
        )
        .metadata("input_tokens", 12)
        .metadata("token_count", 5);
    db_password.len()
        + pwd.len()
        + openai_api_key.len()
        + x_api_key.len()
        + github_token.len()
        + max_tokens as usize
        + sort_key.len()
        + passage.len()
}

#[test]
fn values_under_secret_names_are_redacted_whole_maps_and_lists_too() {
    let rec = Recorder::start();
    connect(
        "hunter2",
        "pw-plain",
        "k1-plain",
        "k2-plain",
        "k3-plain",
        256,
        "by-date",
        "Call me Ishmael",
    );
    let spans = rec.spans();
    let span = spans.get("connect");
    for key in [
        "honeyhive_inputs.db_password",
        "honeyhive_inputs.pwd",
        "honeyhive_inputs.openai_api_key",
        "honeyhive_inputs.x_api_key",
        "honeyhive_inputs.github_token",
    ] {
        assert_eq!(span.str(key), Some("[REDACTED]"), "{key}");
    }
    for (key, plain) in [
        ("honeyhive_metadata.api_key.value", "s2-plain"),
        ("honeyhive_metadata.password.0", "s3-plain"),
        ("honeyhive_config.credentials.pass", "s4-plain"),
    ] {
        assert_ne!(span.str(key), Some(plain), "{key}");
    }
    let exported: Vec<String> = span
        .attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    let exported = exported.join(" ");
    for plain in [
        "hunter2", "pw-plain", "k1-plain", "k2-plain", "k3-plain", "s2-plain", "s3-plain",
        "s4-plain",
    ] {
        assert!(!exported.contains(plain), "{plain} leaked: {exported}");
    }
    // Counts and ordinary names that merely contain a word of the list stay.
    assert_eq!(
        span.attr("honeyhive_inputs.max_tokens")
            .map(ToString::to_string)
            .as_deref(),
        Some("256")
    );
    assert_eq!(span.str("honeyhive_inputs.sort_key"), Some("by-date"));
    assert_eq!(
        span.str("honeyhive_inputs.passage"),
        Some("Call me Ishmael")
    );
    assert_eq!(span.i64("honeyhive_metadata.input_tokens"), Some(12));
    assert_eq!(span.i64("honeyhive_metadata.token_count"), Some(5));
    assert_eq!(
        span.str("honeyhive_config.credentials.user"),
        Some("[REDACTED]")
    );
}
