//! The OTLP/HTTP exporter writes protobuf straight from span records. What a real receiver
//! decodes must be what the `SpanData` path hands any `SpanExporter` for the same spans:
//! names, ids, parents, timestamps, every attribute with its type, events, status and the
//! remote-parent flag, with the resource and scope around them.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{LlmCall, Scope, SpanBuilder, SpanKind, enrich_span, propagation, trace};
use opentelemetry::trace::Status;
use opentelemetry::{Array, Value};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span as WireSpan;

#[trace(event_type = "tool")]
fn lookup(city: &str, days: u32, precise: bool) -> Result<f64, String> {
    if city.is_empty() {
        return Err("no city".to_owned());
    }
    enrich_span()
        .metadata("source", "cache")
        .metrics("hits", 3)
        .metadata("tags", vec!["a", "b"]);
    Ok(f64::from(days) * if precise { 1.5 } else { 1.0 })
}

#[trace(event_type = "model")]
fn complete(question: &str) -> String {
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .temperature(0.2)
        .message("system", "be brief")
        .message("user", question)
        .completion("Paris")
        .usage(31, 13)
        .finish_reason("stop")
        .response_id("resp-1")
        .record();
    "Paris".to_owned()
}

#[trace(event_type = "chain")]
fn answer(question: &str) -> String {
    let _ = lookup("Paris", 3, true);
    let _ = lookup("", 0, false);
    complete(question)
}

#[trace(event_type = "chain")]
fn downstream() -> u32 {
    7
}

fn wire_value(v: &AnyValue) -> Value {
    match v.value.as_ref().expect("a value") {
        any_value::Value::StringValue(s) => Value::from(s.clone()),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::I64(*i),
        any_value::Value::DoubleValue(f) => Value::F64(*f),
        any_value::Value::ArrayValue(a) => {
            let items: Vec<_> = a.values.iter().map(wire_value).collect();
            match items.first() {
                Some(Value::String(_)) | None => Value::Array(Array::String(
                    items
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => s,
                            other => panic!("mixed array {other:?}"),
                        })
                        .collect(),
                )),
                Some(Value::I64(_)) => Value::Array(Array::I64(
                    items
                        .into_iter()
                        .map(|v| match v {
                            Value::I64(i) => i,
                            other => panic!("mixed array {other:?}"),
                        })
                        .collect(),
                )),
                other => panic!("unexpected array {other:?}"),
            }
        }
        other => panic!("unexpected value {other:?}"),
    }
}

fn nanos(t: std::time::SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

fn assert_same(ours: &FinishedSpan, wire: &WireSpan) {
    let s = &ours.0;
    let name = &s.name;
    assert_eq!(wire.name, s.name, "name");
    assert_eq!(
        wire.trace_id,
        s.span_context.trace_id().to_bytes(),
        "{name}: trace id"
    );
    assert_eq!(
        wire.span_id,
        s.span_context.span_id().to_bytes(),
        "{name}: span id"
    );
    let parent = if ours.is_root() && !s.parent_span_is_remote {
        Vec::new()
    } else {
        s.parent_span_id.to_bytes().to_vec()
    };
    assert_eq!(wire.parent_span_id, parent, "{name}: parent");
    assert_eq!(
        wire.start_time_unix_nano,
        nanos(s.start_time),
        "{name}: start"
    );
    assert_eq!(wire.end_time_unix_nano, nanos(s.end_time), "{name}: end");
    let kind = match ours.kind() {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
        other => panic!("{name}: a kind this test does not know: {other:?}"),
    };
    assert_eq!(wire.kind, kind, "{name}: kind");
    // Sampled, and whether the parent is remote is known (and said).
    let remote = if s.parent_span_is_remote { 0x200 } else { 0 };
    assert_eq!(wire.flags, 0x101 | remote, "{name}: flags");
    let theirs: Vec<(String, Value)> = wire
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), wire_value(kv.value.as_ref().unwrap())))
        .collect();
    let mine: Vec<(String, Value)> = s
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
        .collect();
    assert_eq!(
        theirs, mine,
        "{name}: attributes, in order, with their types"
    );
    assert_eq!(
        wire.dropped_attributes_count, s.dropped_attributes_count,
        "{name}: dropped"
    );
    assert_eq!(wire.events.len(), s.events.events.len(), "{name}: events");
    assert_eq!(
        wire.dropped_events_count, s.events.dropped_count,
        "{name}: dropped events"
    );
    for (w, e) in wire.events.iter().zip(&s.events.events) {
        assert_eq!(w.name, e.name, "{name}: event name");
        assert_eq!(w.time_unix_nano, nanos(e.timestamp), "{name}: event time");
        let attrs: Vec<(String, Value)> = w
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), wire_value(kv.value.as_ref().unwrap())))
            .collect();
        let expected: Vec<(String, Value)> = e
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
            .collect();
        assert_eq!(attrs, expected, "{name}: event attributes");
    }
    let status = wire.status.clone().unwrap_or_default();
    match &s.status {
        Status::Unset => assert_eq!(status.code, 0, "{name}: status"),
        Status::Ok => assert_eq!(status.code, 1, "{name}: status"),
        Status::Error { description } => {
            assert_eq!(status.code, 2, "{name}: status");
            assert_eq!(status.message, description.as_ref(), "{name}: message");
        }
    }
}

#[test]
fn the_wire_carries_exactly_what_span_data_exporters_get() {
    let (url, requests) = honeyhive_tests::otlp_receiver();
    let rec = Recorder::with(|b| b.project("wire-check").with_otlp_http(url));
    Scope::session("sess-1")
        .user("user-9")
        .run(|| answer("capital of France?"));
    let mut headers = HashMap::new();
    headers.insert(
        "traceparent".to_owned(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
    );
    propagation::extract(&headers).run(downstream);
    // More events than a span keeps (128): the first 127 and the last are sent, the rest
    // counted as dropped.
    let mut noisy = SpanBuilder::new("noisy").start();
    for i in 0..300 {
        noisy.add_event(format!("e{i}"), []);
    }
    drop(noisy);
    let ours = rec.spans();
    assert_eq!(ours.len(), 6);

    let mut wire = Vec::new();
    while wire.len() < ours.len() {
        let req = requests
            .recv_timeout(Duration::from_secs(20))
            .expect("the receiver got every span");
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let resource: HashMap<_, _> = rs
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), wire_value(kv.value.as_ref().unwrap())))
            .collect();
        assert_eq!(
            resource.get("openinference.project.name"),
            Some(&Value::from("wire-check"))
        );
        assert_eq!(
            resource.get("service.name"),
            Some(&Value::from("wire-check"))
        );
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().unwrap();
            assert_eq!(scope.name, "honeyhive-rs");
            assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
            wire.extend(ss.spans.iter().cloned());
        }
    }
    assert_eq!(wire.len(), ours.len(), "nothing is sent twice");
    for span in ours.iter() {
        let on_wire = wire
            .iter()
            .find(|w| w.span_id == span.span_id().to_bytes())
            .unwrap_or_else(|| panic!("{} was not sent", span.name));
        assert_same(span, on_wire);
    }
    // The cases the comparison must have covered.
    let lookups: Vec<_> = ours.all("lookup").collect();
    assert!(lookups.iter().any(|s| s.is_error()), "an error status");
    assert!(ours.get("complete").i64("honeyhive.total.tokens").is_none());
    assert_eq!(ours.get("answer").i64("honeyhive.total.tokens"), Some(44));
    assert!(ours.get("downstream").0.parent_span_is_remote);
    let noisy = ours.get("noisy");
    let names: Vec<&str> = noisy.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names.len(), 128);
    assert_eq!((names[0], names[126], names[127]), ("e0", "e126", "e299"));
    assert_eq!(noisy.events.dropped_count, 172);
    // A model call is a CLIENT span (the GenAI conventions), the rest INTERNAL.
    assert_eq!(ours.get("complete").kind(), SpanKind::Client);
    assert_eq!(ours.get("answer").kind(), SpanKind::Internal);
}
