//! A `Debug`, `Display` or `Into<Value>` impl that panics while its value is captured never
//! makes the traced call panic: every capture site records a marker instead, and the program
//! behaves as it does untraced.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{Value, enrich_span, retry, trace};

/// Panics whenever it is formatted.
struct Grenade(u32);

impl fmt::Debug for Grenade {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("debug of grenade {}", self.0)
    }
}

impl fmt::Display for Grenade {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("display of grenade {}", self.0)
    }
}

impl From<Grenade> for Value {
    fn from(g: Grenade) -> Value {
        panic!("into value of grenade {}", g.0)
    }
}

fn marker(what: &str, n: u32) -> String {
    format!("<panicked while formatting: {what} of grenade {n}>")
}

static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[trace]
fn takes(grenade: Grenade, n: u32) -> u32 {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    grenade.0 + n
}

#[trace]
fn returns(n: u32) -> Grenade {
    Grenade(n)
}

#[trace]
fn returns_ok(n: u32) -> Result<Grenade, std::io::Error> {
    Ok(Grenade(n))
}

#[trace]
fn fails_with_display(n: u32) -> Result<u32, Grenade> {
    Err(Grenade(n))
}

#[derive(Debug)]
struct OnlyDebug(Grenade);

#[trace]
fn fails_with_debug(n: u32) -> Result<u32, OnlyDebug> {
    Err(OnlyDebug(Grenade(n)))
}

#[trace(metadata(thing = Grenade(n)))]
fn with_metadata(n: u32) -> u32 {
    n
}

fn pull_pin(n: u32) -> u32 {
    panic!("pin {n} pulled")
}

/// The metadata expression itself panics: it runs only when the span is sampled, so the call
/// must go on as it does unsampled.
#[trace(metadata(pin = pull_pin(n), after = n + 1))]
fn with_panicking_metadata(n: u32) -> u32 {
    n
}

#[trace(metadata(pin = pull_pin(n)))]
async fn with_panicking_metadata_async(n: u32) -> u32 {
    n
}

#[trace]
fn enriches(n: u32) -> u32 {
    enrich_span()
        .metadata("grenade", Grenade(n))
        .metadata("after", "still recorded");
    n
}

#[trace]
fn display_items(n: u32) -> impl Iterator<Item = Result<String, Grenade>> {
    vec![Ok("a".to_owned()), Err(Grenade(n)), Ok("b".to_owned())].into_iter()
}

#[trace]
fn debug_items(n: u32) -> impl Iterator<Item = Result<u32, OnlyDebug>> {
    vec![Ok(1), Err(OnlyDebug(Grenade(n)))].into_iter()
}

#[trace]
#[retry(max_attempts = 2, backoff = constant(0ms), jitter = none)]
fn retried(n: u32) -> Result<u32, Grenade> {
    Err(Grenade(n))
}

fn exception_message(span: &FinishedSpan) -> Option<String> {
    let event = span.events_named("exception").next()?;
    FinishedSpan::event_attr(event, "exception.message").map(|v| v.as_str().into_owned())
}

#[test]
fn an_argument_that_panics_in_debug_is_a_marker_and_the_body_runs() {
    let rec = Recorder::start();
    let before = BODY_RUNS.load(Ordering::SeqCst);
    assert_eq!(takes(Grenade(1), 2), 3);
    assert_eq!(BODY_RUNS.load(Ordering::SeqCst), before + 1);
    let spans = rec.spans();
    let span = spans.get("takes");
    assert_eq!(
        span.str("honeyhive_inputs.grenade"),
        Some(&*marker("debug", 1))
    );
    assert_eq!(span.i64("honeyhive_inputs.n"), Some(2));
    assert!(
        !span.is_error(),
        "a formatting panic is not the call's failure"
    );
}

#[test]
fn outputs_that_panic_in_debug_are_markers_and_are_returned_unchanged() {
    let rec = Recorder::start();
    assert_eq!(returns(4).0, 4);
    assert_eq!(returns_ok(5).unwrap().0, 5);
    let spans = rec.spans();
    assert_eq!(
        spans.get("returns").str("honeyhive_outputs.result"),
        Some(&*marker("debug", 4))
    );
    assert_eq!(
        spans.get("returns_ok").str("honeyhive_outputs.result"),
        Some(&*marker("debug", 5))
    );
}

#[test]
fn errors_that_panic_in_display_or_debug_are_markers_with_their_short_type() {
    let rec = Recorder::start();
    assert_eq!(fails_with_display(6).unwrap_err().0, 6);
    assert_eq!(fails_with_debug(7).unwrap_err().0.0, 7);
    let spans = rec.spans();
    let display = spans.get("fails_with_display");
    assert!(display.is_error());
    assert_eq!(display.error_message(), Some(&*marker("display", 6)));
    assert_eq!(display.str("honeyhive_error"), Some(&*marker("display", 6)));
    let event = display.events_named("exception").next().unwrap();
    assert_eq!(
        FinishedSpan::event_attr(event, "exception.type"),
        Some(&opentelemetry::Value::from("Grenade"))
    );
    let debug = spans.get("fails_with_debug");
    assert_eq!(exception_message(debug), Some(marker("debug", 7)));
}

#[test]
fn metadata_and_enrichment_that_panic_are_markers() {
    let rec = Recorder::start();
    assert_eq!(with_metadata(8), 8);
    assert_eq!(enriches(9), 9);
    let spans = rec.spans();
    assert_eq!(
        spans.get("with_metadata").str("honeyhive_metadata.thing"),
        Some(&*marker("debug", 8))
    );
    let enriched = spans.get("enriches");
    assert_eq!(
        enriched.str("honeyhive_metadata.grenade"),
        Some(&*marker("into value", 9))
    );
    assert_eq!(
        enriched.str("honeyhive_metadata.after"),
        Some("still recorded")
    );
}

#[test]
fn stream_items_that_panic_are_markers_and_every_item_is_delivered() {
    let rec = Recorder::start();
    let items: Vec<_> = display_items(10).collect();
    assert_eq!(items.len(), 3);
    assert!(matches!(&items[1], Err(g) if g.0 == 10));
    assert_eq!(debug_items(11).count(), 2);
    let spans = rec.spans();
    let display = spans.get("display_items");
    assert_eq!(display.i64("honeyhive.stream.items"), Some(3));
    assert_eq!(display.str("honeyhive_outputs.result"), Some("ab"));
    assert_eq!(display.error_message(), Some(&*marker("display", 10)));
    assert_eq!(
        spans.get("debug_items").error_message(),
        Some(&*marker("debug", 11))
    );
}

#[test]
fn retry_events_of_errors_that_panic_in_display_are_markers() {
    let rec = Recorder::start();
    assert_eq!(retried(12).unwrap_err().0, 12);
    let spans = rec.spans();
    let span = spans.get("retried");
    let event = span.events_named("retry").next().expect("a retry event");
    assert_eq!(
        FinishedSpan::event_attr(event, "exception.message"),
        Some(&opentelemetry::Value::from(marker("display", 12)))
    );
}

#[trace(sample_rate = 0.0)]
fn unsampled_child() -> u32 {
    panic!("below an unsampled child")
}

#[trace]
fn sampled_parent() -> u32 {
    unsampled_child()
}

#[test]
fn a_caught_formatting_panic_leaves_no_message_for_a_later_panic() {
    let rec = Recorder::start();
    let _ = takes(Grenade(13), 0);
    // Our hook keeps no message for a panic under an unsampled span, so a message left over
    // from the caught formatting panic would be the one the sampled parent shows.
    let caught = std::panic::catch_unwind(sampled_parent);
    assert!(caught.is_err(), "the real panic still unwinds");
    let spans = rec.spans();
    let span = spans.get("sampled_parent");
    assert!(span.is_error());
    let message = span.error_message().unwrap_or_default();
    assert!(!message.contains("grenade"), "{message}");
}

/// Run as a child process by the next test, so that its stderr can be read.
#[test]
fn child_formats_grenades() {
    if std::env::var_os("HH_CAPTURE_PANICS_CHILD").is_none() {
        return;
    }
    let _rec = Recorder::start();
    let _ = takes(Grenade(14), 0);
    let _ = fails_with_display(15);
    eprintln!("child done");
}

#[test]
fn a_caught_formatting_panic_prints_nothing_on_stderr() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_formats_grenades",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HH_CAPTURE_PANICS_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("child done"), "the child ran: {stderr}");
    assert!(!stderr.contains("grenade"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_metadata_expression_that_panics_is_a_marker_and_the_call_goes_on() {
    let rec = Recorder::start();
    assert_eq!(with_panicking_metadata(4), 4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(with_panicking_metadata_async(5)), 5);
    let spans = rec.spans();
    let sync = spans.get("with_panicking_metadata");
    assert_eq!(
        sync.str("honeyhive_metadata.pin"),
        Some("<panicked while evaluating: pin 4 pulled>")
    );
    assert_eq!(sync.i64("honeyhive_metadata.after"), Some(5));
    assert!(!sync.is_error(), "the call itself did not panic");
    let async_span = spans.get("with_panicking_metadata_async");
    assert_eq!(
        async_span.str("honeyhive_metadata.pin"),
        Some("<panicked while evaluating: pin 5 pulled>")
    );
    assert!(!async_span.is_error());
}
