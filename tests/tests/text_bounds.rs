//! Every text a span carries is bounded by the capture cap, wherever it comes from: not only
//! what `#[trace]` captures (cut on the caller's thread, see `trace.rs`), but texts handed to
//! us whole: a panic's message, a dynamic span's name, attributes, events and error,
//! enrichment, `LlmCall` fields, evaluations. A long text is cut with the truncation marker;
//! one within the cap is left whole.

// Evaluators take the output by reference, whatever its type.
#![allow(clippy::trivially_copy_pass_by_ref)]

use honeyhive_runtime::evaluate::{self, EvalInput, Evaluation};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{LlmCall, SpanBuilder, enrich_span, trace};
use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, Value};

const CAP: usize = 64;
/// A cut text is the cap's worth of text and the marker (`…[truncated N bytes]`).
const MARKER_ROOM: usize = 40;

fn long(c: char) -> String {
    c.to_string().repeat(20_000)
}

/// Every text of the span: its name, attribute keys and values, event names, event
/// attribute keys and values, and the status's description, each with where it was.
fn texts(span: &FinishedSpan) -> Vec<(String, String)> {
    let mut out = vec![("name".to_owned(), span.name.to_string())];
    let mut attrs = |place: &str, kvs: &[KeyValue]| {
        for kv in kvs {
            out.push((format!("{place} key"), kv.key.as_str().to_owned()));
            let values = match &kv.value {
                Value::String(s) => vec![s.as_str().to_owned()],
                Value::Array(Array::String(items)) => {
                    items.iter().map(|s| s.as_str().to_owned()).collect()
                }
                _ => Vec::new(),
            };
            for v in values {
                out.push((format!("{place} {}", short(kv.key.as_str())), v));
            }
        }
    };
    attrs("attribute", &span.attributes);
    for event in span.events.iter() {
        attrs(&format!("event {}", short(&event.name)), &event.attributes);
    }
    for event in span.events.iter() {
        out.push(("event name".to_owned(), event.name.to_string()));
    }
    if let Status::Error { description } = &span.status {
        out.push(("status".to_owned(), description.to_string()));
    }
    out
}

fn short(s: &str) -> &str {
    &s[..s.len().min(40)]
}

/// Asserts that every text of every span is within the cap and its marker's room, that the
/// long ones were cut with the marker, and returns how many were cut.
fn assert_bounded(spans: &[FinishedSpan]) -> usize {
    let mut cut = 0;
    for span in spans {
        for (place, text) in texts(span) {
            assert!(
                text.len() <= CAP + MARKER_ROOM,
                "{} bytes at {place} of span {}",
                text.len(),
                short(&span.name)
            );
            // A text cut: the cap's worth of it, then the marker; or JSON we rendered, cut
            // inside its strings and still JSON.
            if let Some(at) = text.find("…[truncated ") {
                cut += 1;
                if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                    continue;
                }
                assert!(
                    text.ends_with(" bytes]") && (CAP - 4..=CAP).contains(&at),
                    "{place}: {text}"
                );
            }
        }
    }
    cut
}

#[trace]
fn panics_long() -> u32 {
    panic!("{}", long('p'))
}

#[trace(event_type = "model")]
fn llm_and_enrichment() -> u32 {
    let m = long('m');
    LlmCall::new(m.clone())
        .provider(m.clone())
        .response_model(m.clone())
        .response_id(m.clone())
        .finish_reason(m.clone())
        .stop_sequences([m.clone()])
        .message(m.clone(), "hello")
        .completion("hi")
        .record();
    enrich_span()
        .metadata("note", long('n').as_str())
        .tags([long('t')])
        .feedback("comment", long('f').as_str());
    1
}

fn labels_long(_: &EvalInput, _: &u32) -> Evaluation {
    Evaluation::score(1.0)
        .with_label(long('l'))
        .with_explanation(long('x'))
}

fn named_long(_: &EvalInput, _: &u32) -> Evaluation {
    Evaluation::score(0.5).named(long('k'))
}

fn judge_panics(_: &EvalInput, _: &u32) -> f64 {
    panic!("{}", long('j'))
}

#[trace(evaluate(labels_long, named_long, judge_panics))]
fn evaluated(n: u32) -> u32 {
    n + 1
}

#[test]
fn texts_handed_in_whole_are_cut_at_the_capture_cap() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP));
    assert!(std::panic::catch_unwind(panics_long).is_err());
    assert_eq!(llm_and_enrichment(), 1);
    assert_eq!(evaluated(1), 2);
    let mut span = SpanBuilder::new(long('d'))
        .attribute(long('a'), long('v'))
        .start();
    span.set_error(&long('e'), &long('r'));
    span.add_event(
        long('w'),
        [("detail", honeyhive_runtime::Value::from(long('i')))],
    );
    drop(span);

    let spans = rec.spans();
    assert_eq!(spans.len(), 4);
    let cut = assert_bounded(&spans);
    // The panic's message (event, status, error), the LLM fields and enrichment, the
    // evaluations, the dynamic span's name, attribute, error, event: each one cut.
    assert!(cut >= 20, "only {cut} texts were cut");

    let panicked = spans.get("panics_long");
    assert!(panicked.is_error());
    let message = panicked.str("honeyhive_error").unwrap();
    assert!(message.starts_with(&"p".repeat(CAP - 4)), "{message}");
    assert!(message.ends_with(" bytes]"), "{message}");

    // What is within the cap is whole.
    let llm = spans.get("llm_and_enrichment");
    assert_eq!(llm.str("honeyhive_event_type"), Some("model"));
    let evaluated = spans.get("evaluated");
    assert_eq!(evaluated.f64("honeyhive_metrics.labels_long"), Some(1.0));
    let e = evaluated
        .events_named(evaluate::EVENT)
        .find(|e| {
            FinishedSpan::event_attr(e, evaluate::NAME).map(Value::as_str)
                == Some("labels_long".into())
        })
        .expect("the evaluation's event");
    let label = FinishedSpan::event_attr(e, evaluate::LABEL)
        .unwrap()
        .as_str();
    assert!(label.starts_with(&"l".repeat(CAP - 4)), "{label}");
}

#[test]
fn texts_within_the_cap_are_left_whole() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP));
    let text = "w".repeat(CAP);
    let mut span = SpanBuilder::new(text.clone())
        .attribute("k", text.clone())
        .start();
    span.set_error("Oops", &text);
    drop(span);
    let spans = rec.spans();
    let span = &spans[0];
    assert_eq!(span.name, text);
    assert_eq!(span.str("k"), Some(text.as_str()));
    assert_eq!(assert_bounded(&spans), 0);
}

#[test]
fn a_span_keeps_its_first_events_and_its_last_up_to_the_set_limit() {
    let rec = Recorder::with(|b| b.capture_max_bytes(CAP).max_span_events(3));
    let mut span = SpanBuilder::new("noisy").start();
    for i in 0..10 {
        span.add_event(format!("e{i}"), []);
    }
    drop(span);
    let spans = rec.spans();
    let noisy = spans.get("noisy");
    let names: Vec<&str> = noisy.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names, ["e0", "e1", "e9"]);
    assert_eq!(noisy.events.dropped_count, 7);
}
