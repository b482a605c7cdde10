//! Feedback after the fact: `current_span_ref()` gives a string a frontend can hold; later,
//! from any thread (or a process that has only the string), `feedback(&span_ref)` records a
//! `gen_ai.evaluation.result` on a child span of the referenced span, and sends it to Phoenix
//! as a span annotation and to HoneyHive as event feedback when those are configured.

use std::process::Command;
use std::time::Duration;

use honeyhive_runtime::evaluate;
use honeyhive_runtime::feedback::{self, ParseSpanRefError};
use honeyhive_runtime::sampling::Sampler;
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{SpanRef, current_span_ref, trace};
use honeyhive_tests::fake_backends::{Answer, FakeBackend, Request};
use opentelemetry::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

const WAIT: Duration = Duration::from_secs(30);

#[trace(event_type = "chain")]
fn answer(question: &str) -> (String, Option<SpanRef>) {
    (format!("Sunny, to {question}"), current_span_ref())
}

#[trace(event_type = "chain", sample_rate = 0.0)]
fn never_sampled() -> Option<SpanRef> {
    current_span_ref()
}

/// Traces one request and returns its reference as the string a frontend would keep.
fn request_ref() -> String {
    let (_, span_ref) = answer("weather in Paris?");
    span_ref
        .expect("a sampled span has a reference")
        .to_string()
}

fn event_str(span: &FinishedSpan, key: &str) -> Option<String> {
    let event = span.events_named(evaluate::EVENT).next()?;
    FinishedSpan::event_attr(event, key).map(|v| v.as_str().into_owned())
}

fn event_f64(span: &FinishedSpan, key: &str) -> Option<f64> {
    let event = span.events_named(evaluate::EVENT).next()?;
    match FinishedSpan::event_attr(event, key)? {
        opentelemetry::Value::F64(f) => Some(*f),
        _ => None,
    }
}

// --- the reference ---------------------------------------------------------------------

#[test]
fn a_span_ref_round_trips_through_its_string() {
    let r = SpanRef::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
        SpanId::from(0xb7ad_6b71_6920_3331),
    )
    .expect("valid ids");
    let text = r.to_string();
    assert_eq!(
        text,
        "hh1.0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331"
    );
    assert_eq!(text.parse::<SpanRef>(), Ok(r));
    // Surrounding whitespace (a form field) and upper-case hex are read too.
    assert_eq!(
        " hh1.0AF7651916CD43DD8448EB211C80319C.B7AD6B7169203331\n".parse::<SpanRef>(),
        Ok(r)
    );
    assert_eq!(
        r.trace_id(),
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c)
    );
    assert_eq!(r.span_id(), SpanId::from(0xb7ad_6b71_6920_3331));
    assert_eq!(
        r.honeyhive_event_id(),
        "00000000-0000-0000-b7ad-6b7169203331"
    );
    assert_eq!(SpanRef::new(TraceId::INVALID, SpanId::from(1)), None);
    assert_eq!(SpanRef::new(TraceId::from(1), SpanId::INVALID), None);
}

#[test]
fn a_bad_span_ref_string_says_what_is_wrong() {
    let span = "b7ad6b7169203331";
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let cases = [
        (String::new(), ParseSpanRefError::Malformed),
        ("thumbs up".to_owned(), ParseSpanRefError::Malformed),
        (format!("hh1.{trace}"), ParseSpanRefError::Malformed),
        (
            format!("hh1.{trace}.{span}.extra"),
            ParseSpanRefError::Malformed,
        ),
        (
            format!("00-{trace}-{span}-01"),
            ParseSpanRefError::Malformed,
        ),
        (
            format!("hh2.{trace}.{span}"),
            ParseSpanRefError::UnknownVersion("hh2".to_owned()),
        ),
        (
            format!("hh1.{}.{span}", &trace[1..]),
            ParseSpanRefError::TraceId,
        ),
        (
            format!("hh1.{}g.{span}", &trace[1..]),
            ParseSpanRefError::TraceId,
        ),
        (
            format!("hh1.{}.{span}", "0".repeat(32)),
            ParseSpanRefError::TraceId,
        ),
        (
            format!("hh1.+{}.{span}", &trace[1..]),
            ParseSpanRefError::TraceId,
        ),
        (
            format!("hh1.{trace}.{}", &span[1..]),
            ParseSpanRefError::SpanId,
        ),
        (
            format!("hh1.{trace}.{}", "0".repeat(16)),
            ParseSpanRefError::SpanId,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<SpanRef>(), Err(expected), "{text:?}");
    }
    let message = "nonsense".parse::<SpanRef>().unwrap_err().to_string();
    assert!(
        message.contains("hh1.<32 hex digits>.<16 hex digits>"),
        "{message}"
    );
    let message = format!("hh9.{trace}.{span}")
        .parse::<SpanRef>()
        .unwrap_err()
        .to_string();
    assert!(message.contains("`hh9` is not supported"), "{message}");
    let message = format!("hh1.{trace}.xyz")
        .parse::<SpanRef>()
        .unwrap_err()
        .to_string();
    assert!(message.contains("span id"), "{message}");
}

#[test]
fn current_span_ref_names_the_current_sampled_span() {
    let recorder = Recorder::start();
    assert_eq!(current_span_ref(), None, "outside traced code");
    let (_, span_ref) = answer("q");
    assert_eq!(
        never_sampled(),
        None,
        "an unsampled call has nothing to refer to"
    );
    let spans = recorder.spans();
    let span = spans.get("answer");
    let span_ref = span_ref.expect("a reference");
    assert_eq!(span_ref.trace_id(), span.trace_id());
    assert_eq!(span_ref.span_id(), span.span_id());
}

// --- what is recorded --------------------------------------------------------------------

#[test]
fn feedback_from_another_thread_lands_on_a_child_of_a_trace_that_ended() {
    let recorder = Recorder::start();
    let text = request_ref();
    // The request's trace has ended and is exported before any feedback arrives.
    let spans = recorder.spans();
    let request = spans.get("answer").clone();
    assert!(spans.all("feedback helpfulness").next().is_none());

    std::thread::spawn(move || {
        let span_ref: SpanRef = text.parse().expect("the string the frontend held");
        feedback::feedback(&span_ref)
            .name("helpfulness")
            .score(0.0)
            .label("thumbs_down")
            .comment("wrong city")
            .attribute("user", "u-42")
            .attribute("stars", 1)
            .send();
    })
    .join()
    .expect("the feedback thread");

    let spans = recorder.spans();
    let fb = spans.get("feedback helpfulness");
    assert_eq!(fb.trace_id(), request.trace_id(), "same trace");
    assert_eq!(
        fb.parent_span_id,
        request.span_id(),
        "a child of the request"
    );
    assert_eq!(spans.parent_of(fb).map(|p| p.name.as_ref()), Some("answer"));
    assert_eq!(fb.str("honeyhive_event_type"), Some("evaluator"));
    // The evaluation event, with the keys evaluators write.
    assert_eq!(
        event_str(fb, evaluate::NAME).as_deref(),
        Some("helpfulness")
    );
    assert_eq!(event_f64(fb, evaluate::SCORE), Some(0.0));
    assert_eq!(
        event_str(fb, evaluate::LABEL).as_deref(),
        Some("thumbs_down")
    );
    assert_eq!(
        event_str(fb, evaluate::EXPLANATION).as_deref(),
        Some("wrong city")
    );
    // HoneyHive's keys.
    assert_eq!(fb.f64("honeyhive_feedback.helpfulness"), Some(0.0));
    assert_eq!(fb.str("honeyhive_feedback.label"), Some("thumbs_down"));
    assert_eq!(fb.str("honeyhive_feedback.comment"), Some("wrong city"));
    assert_eq!(fb.str("honeyhive_feedback.user"), Some("u-42"));
    assert_eq!(fb.i64("honeyhive_feedback.stars"), Some(1));
    assert_eq!(fb.f64("honeyhive_metrics.helpfulness"), Some(0.0));
}

#[test]
fn a_label_alone_is_the_value_and_the_default_name_is_user_feedback() {
    let recorder = Recorder::start();
    let span_ref: SpanRef = request_ref().parse().expect("a reference");
    feedback::feedback(&span_ref).label("helpful").send();
    let spans = recorder.spans();
    let fb = spans.get("feedback user_feedback");
    assert_eq!(
        event_str(fb, evaluate::NAME).as_deref(),
        Some(feedback::DEFAULT_NAME)
    );
    assert_eq!(event_f64(fb, evaluate::SCORE), None);
    assert_eq!(fb.str("honeyhive_feedback.user_feedback"), Some("helpful"));
    assert_eq!(fb.str("honeyhive_metrics.user_feedback"), Some("helpful"));
    assert_eq!(fb.attr("honeyhive_feedback.label"), None);
}

#[test]
fn feedback_needs_only_the_string_and_is_kept_whatever_the_sampler() {
    // Another process: it never saw the span, and samples none of its own roots.
    let recorder = Recorder::with(|b| b.sampler(Sampler::AlwaysOff));
    let span_ref: SpanRef = "hh1.4bf92f3577b34da6a3ce929d0e0e4736.00f067aa0ba902b7"
        .parse()
        .expect("a reference");
    feedback::feedback(&span_ref).score(1.0).send();
    let spans = recorder.spans();
    let fb = spans.get("feedback user_feedback");
    assert_eq!(fb.trace_id(), span_ref.trace_id());
    assert_eq!(fb.parent_span_id, span_ref.span_id());
    assert_eq!(event_f64(fb, evaluate::SCORE), Some(1.0));
}

// --- the backends ------------------------------------------------------------------------

fn is_annotation(r: &Request) -> bool {
    r.method == "POST" && r.path.starts_with("/v1/span_annotations")
}

fn is_event_update(r: &Request) -> bool {
    r.method == "PUT" && r.path == "/events"
}

#[test]
fn feedback_reaches_phoenix_and_honeyhive_as_their_apis_take_it() {
    let phoenix = FakeBackend::phoenix();
    let honeyhive = FakeBackend::honeyhive();
    let before = feedback::stats();
    let recorder = Recorder::with(|b| {
        // An OTLP URL works too: Phoenix serves both at one base.
        b.phoenix_annotations(format!("{}/v1/traces", phoenix.url))
            .with_honeyhive()
            .api_key("hh-test-key")
            .server_url(&honeyhive.url)
    });
    let span_ref: SpanRef = request_ref().parse().expect("a reference");
    feedback::feedback(&span_ref)
        .name("helpfulness")
        .score(1.0)
        .label("thumbs_up")
        .comment("spot on")
        .attribute("user", "u-7")
        .send();
    // Dropping the guard waits for feedback still being sent.
    recorder.shutdown();

    let span_hex = format!("{:016x}", u64::from_be_bytes(span_ref.span_id().to_bytes()));
    let annotations: Vec<Request> = phoenix
        .requests()
        .into_iter()
        .filter(is_annotation)
        .collect();
    assert_eq!(annotations.len(), 1, "one annotation: {annotations:?}");
    let annotation = &annotations[0];
    assert_eq!(annotation.path, "/v1/span_annotations?sync=true");
    assert_eq!(annotation.header("content-type"), Some("application/json"));
    assert_eq!(
        annotation.json(),
        serde_json::json!({
            "data": [{
                "span_id": span_hex,
                "name": "helpfulness",
                "annotator_kind": "HUMAN",
                "result": {"score": 1.0, "label": "thumbs_up", "explanation": "spot on"},
                "metadata": {"user": "u-7"},
            }]
        })
    );

    let updates: Vec<Request> = honeyhive
        .requests()
        .into_iter()
        .filter(is_event_update)
        .collect();
    assert_eq!(updates.len(), 1, "one event update: {updates:?}");
    let update = &updates[0];
    assert_eq!(update.header("authorization"), Some("Bearer hh-test-key"));
    assert_eq!(update.header("content-type"), Some("application/json"));
    assert_eq!(
        update.json(),
        serde_json::json!({
            "event_id": span_ref.honeyhive_event_id(),
            "feedback": {
                "helpfulness": 1.0,
                "label": "thumbs_up",
                "comment": "spot on",
                "user": "u-7",
            },
            "metrics": {"helpfulness": 1.0},
        })
    );
    // The spans went to HoneyHive too, over OTLP with the same key.
    let otlp = honeyhive
        .wait_for(WAIT, |r| r.path == "/opentelemetry/v1/traces")
        .expect("spans exported to HoneyHive");
    assert_eq!(otlp.header("authorization"), Some("Bearer hh-test-key"));
    assert!(feedback::stats().delivered >= before.delivered + 2);
}

#[test]
fn without_backends_nothing_is_sent() {
    let phoenix = FakeBackend::phoenix();
    let recorder = Recorder::start();
    let span_ref: SpanRef = request_ref().parse().expect("a reference");
    feedback::feedback(&span_ref).score(1.0).send();
    assert!(feedback::flush(WAIT));
    let spans = recorder.spans();
    spans.get("feedback user_feedback");
    recorder.shutdown();
    assert!(phoenix.requests().is_empty(), "Phoenix is off by default");
}

#[test]
fn failing_backends_never_block_the_caller_and_are_counted() {
    // Phoenix takes the request and never answers (until released); HoneyHive refuses.
    let phoenix = FakeBackend::start(Answer::Hang);
    let honeyhive = FakeBackend::start(Answer::Status(500));
    let before = feedback::stats();
    let recorder = Recorder::with(|b| {
        b.phoenix_annotations(&phoenix.url)
            .with_honeyhive()
            .api_key("hh-test-key")
            .server_url(&honeyhive.url)
            .export_timeout(Duration::from_mins(1))
    });
    let span_ref: SpanRef = request_ref().parse().expect("a reference");
    feedback::feedback(&span_ref).score(1.0).send();
    // `send` returned while Phoenix still holds the request: nothing waited for its answer.
    phoenix
        .wait_for(WAIT, is_annotation)
        .expect("the annotation request reached Phoenix");
    assert!(
        !feedback::flush(Duration::ZERO),
        "the feedback is still being sent"
    );
    // The traced program went on, and the feedback span is recorded all the same.
    let spans = recorder.spans();
    spans.get("feedback user_feedback");

    phoenix.release();
    assert!(feedback::flush(WAIT), "the sender gives up on both");
    let after = feedback::stats();
    assert!(after.failed >= before.failed + 2, "{before:?} -> {after:?}");
    assert_eq!(after.delivered, before.delivered, "{before:?} -> {after:?}");
    assert!(honeyhive.wait_for(WAIT, is_event_update).is_some());
    recorder.shutdown();
}

#[test]
fn shutdown_gives_up_on_feedback_a_backend_never_answers() {
    let phoenix = FakeBackend::start(Answer::Hang);
    let recorder = Recorder::with(|b| {
        b.phoenix_annotations(&phoenix.url)
            .export_timeout(Duration::from_mins(10))
            .shutdown_timeout(Duration::from_millis(500))
    });
    let span_ref: SpanRef = request_ref().parse().expect("a reference");
    feedback::feedback(&span_ref).score(1.0).send();
    phoenix
        .wait_for(WAIT, is_annotation)
        .expect("the annotation request reached Phoenix");
    // Returns although Phoenix never answers (the request's own timeout is ten minutes).
    let report = recorder.shutdown();
    assert!(report.exported > 0, "{report:?}");
}

#[test]
fn another_process_with_only_the_string_sends_feedback_where_its_environment_says() {
    let honeyhive = FakeBackend::honeyhive();
    let text = "hh1.4bf92f3577b34da6a3ce929d0e0e4736.00f067aa0ba902b7";
    let span_ref: SpanRef = text.parse().expect("a reference");
    // `HH_API_KEY` alone: spans and feedback go to HoneyHive.
    let out = Command::new(env!("CARGO_BIN_EXE_send_feedback"))
        .arg(text)
        .env_clear()
        .env("HH_API_KEY", "hh-env-key")
        .env("HH_API_URL", &honeyhive.url)
        .output()
        .expect("the send_feedback program runs");
    assert!(out.status.success(), "{out:?}");

    // The feedback, sent before the process ended.
    let update = honeyhive
        .requests()
        .into_iter()
        .find(is_event_update)
        .expect("PUT /events from the other process");
    assert_eq!(update.header("authorization"), Some("Bearer hh-env-key"));
    assert_eq!(
        update.json(),
        serde_json::json!({
            "event_id": span_ref.honeyhive_event_id(),
            "feedback": {"user_feedback": 0.5, "comment": "from another process"},
            "metrics": {"user_feedback": 0.5},
        })
    );
    // And its span, exported over OTLP under the referenced span.
    let spans: Vec<_> = honeyhive
        .requests()
        .into_iter()
        .filter(|r| r.path == "/opentelemetry/v1/traces")
        .filter_map(|r| ExportTraceServiceRequest::decode(r.body.as_slice()).ok())
        .flat_map(|req| req.resource_spans)
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    let fb = spans
        .iter()
        .find(|s| s.name == "feedback user_feedback")
        .unwrap_or_else(|| panic!("no feedback span among {spans:?}"));
    assert_eq!(fb.trace_id, span_ref.trace_id().to_bytes());
    assert_eq!(fb.parent_span_id, span_ref.span_id().to_bytes());
    assert!(
        fb.events.iter().any(|e| e.name == evaluate::EVENT),
        "{fb:?}"
    );
}

#[trace(event_type = "chain")]
fn answer_with_feedback_inside() -> SpanRef {
    let here = current_span_ref().expect("sampled");
    // A thumbs-up recorded while the request is still running: in its own scope.
    feedback::feedback(&here).name("inline").score(1.0).send();
    here
}

#[test]
fn a_feedback_span_carries_the_referenced_traces_correlation_not_the_senders() {
    use honeyhive_runtime::Scope;
    let rec = Recorder::start();
    let (_, span_ref) = Scope::session("session-of-the-answer")
        .user("alice")
        .request_id("req-of-the-answer")
        .run(|| answer("weather?"));
    let span_ref = span_ref.expect("sampled");
    // The click arrives with a later request of another user.
    Scope::session("session-of-the-feedback-handler")
        .user("bob")
        .request_id("req-of-the-feedback")
        .run(|| feedback::feedback(&span_ref).score(1.0).send());
    // Feedback sent from inside the referenced trace keeps that trace's correlation.
    let inline_ref = Scope::session("session-of-the-answer")
        .user("alice")
        .run(answer_with_feedback_inside);
    // The handler's scope is back after sending.
    Scope::session("s").run(|| {
        feedback::feedback(&span_ref).name("again").send();
        assert_eq!(
            honeyhive_runtime::current_session_id().as_deref(),
            Some("s")
        );
    });
    let spans = rec.spans();
    let fb = spans.get("feedback user_feedback");
    assert_eq!(fb.trace_id(), span_ref.trace_id());
    for key in [
        "honeyhive.session_id",
        "session.id",
        "user.id",
        "honeyhive.request_id",
    ] {
        assert_eq!(
            fb.str(key),
            None,
            "{key} of the sender's scope on the feedback span"
        );
    }
    let inline = spans.get("feedback inline");
    assert_eq!(inline.trace_id(), inline_ref.trace_id());
    assert_eq!(
        inline.str("honeyhive.session_id"),
        Some("session-of-the-answer")
    );
    assert_eq!(inline.str("user.id"), Some("alice"));
}
