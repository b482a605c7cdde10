//! W3C trace context, baggage and `x-request-id` between services: inject, extract, malformed
//! input, and interop with the OpenTelemetry SDK's own propagator.

use std::collections::HashMap;

use honeyhive_runtime::propagation::{Carrier, extract, inject};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{Scope, trace, with_request_id};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

#[with_request_id(from = id)]
#[trace(event_type = "chain")]
fn client_call(id: &str) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    inject(&mut headers);
    headers
}

#[trace(event_type = "tool")]
fn server_work(n: u32) -> u32 {
    n + 1
}

#[with_request_id]
#[trace(event_type = "chain")]
fn server_handler(n: u32) -> u32 {
    server_work(n)
}

#[test]
fn injected_headers_continue_the_trace_and_the_request_id_elsewhere() {
    let rec = Recorder::start();
    let headers = Scope::session("sess-9")
        .user("user-3")
        .run(|| client_call("rid-42"));
    let tp = &headers["traceparent"];
    assert!(
        // Sampled, and a random trace id (W3C level 2).
        tp.starts_with("00-") && tp.ends_with("-03") && tp.len() == 55,
        "{tp}"
    );
    assert_eq!(headers["x-request-id"], "rid-42");
    assert_eq!(
        headers["baggage"],
        "request_id=rid-42,session_id=sess-9,user_id=user-3"
    );

    let remote = extract(&headers);
    assert_eq!(remote.request_id.as_ref().unwrap().id.as_ref(), "rid-42");
    assert_eq!(remote.run(|| server_handler(1)), 2);
    let spans = rec.spans();
    let client = spans.get("client_call");
    let handler = spans.get("server_handler");
    assert_eq!(handler.trace_id(), client.trace_id());
    assert_eq!(handler.parent_span_id, client.span_id());
    assert!(
        handler.parent_span_is_remote,
        "the parent is in another process"
    );
    assert!(handler.is_root(), "a local root under a remote parent");
    let work = spans.get("server_work");
    assert_eq!(work.parent_span_id, handler.span_id());
    assert!(!work.parent_span_is_remote);
    for span in [handler, work] {
        assert_eq!(span.str("honeyhive.request_id"), Some("rid-42"));
        assert_eq!(span.str("honeyhive.request_id.source"), Some("header"));
        assert_eq!(span.str("session.id"), Some("sess-9"));
        assert_eq!(span.str("user.id"), Some("user-3"));
    }
}

#[test]
fn the_callers_unsampled_decision_is_honoured() {
    let rec = Recorder::start();
    let caller = |flags: &str| -> HashMap<String, String> {
        HashMap::from([(
            "traceparent".into(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"),
        )])
    };
    assert_eq!(extract(&caller("00")).run(|| server_handler(1)), 2);
    assert!(rec.spans().is_empty(), "not sampled upstream: nothing here");
    // The same request, sampled upstream, is recorded: the flag made the difference.
    extract(&caller("01")).run(|| server_handler(1));
    assert_eq!(rec.spans().names(), ["server_work", "server_handler"]);
}

#[test]
fn http_header_maps_work_both_ways() {
    let rec = Recorder::start();
    #[trace]
    fn call() -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        inject(&mut h);
        h
    }
    let headers = Scope::default().request_id("hm-1").run(call);
    assert_eq!(headers.get("x-request-id").unwrap(), "hm-1");
    let remote = extract(&headers);
    remote.run(|| server_handler(5));
    let spans = rec.spans();
    assert_eq!(
        spans.get("server_handler").parent_span_id,
        spans.get("call").span_id()
    );
    assert_eq!(
        spans.get("server_work").str("honeyhive.request_id"),
        Some("hm-1")
    );
}

#[test]
fn malformed_headers_are_ignored_safely() {
    let rec = Recorder::start();
    let cases: Vec<HashMap<String, String>> = vec![
        HashMap::from([(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e47".into(),
        )]),
        HashMap::from([(
            "traceparent".into(),
            format!("00-{}-00f067aa0ba902b7-01", "a".repeat(5000)),
        )]),
        HashMap::from([("traceparent".into(), "\u{0}\u{1}garbage🙂".into())]),
        HashMap::from([(
            "traceparent".into(),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
        )]),
        HashMap::from([("x-request-id".into(), "has spaces and \"quotes\"".into())]),
        HashMap::from([("x-request-id".into(), "r".repeat(10_000))]),
        HashMap::from([("baggage".into(), "k=%ZZ,=novalue,request_id=ok;prop".into())]),
        HashMap::from([("baggage".into(), "a=b,".repeat(5000))]),
        HashMap::from([("tracestate".into(), "x".repeat(10_000))]),
    ];
    for headers in &cases {
        let remote = extract(headers);
        assert_eq!(remote.parent, None, "{headers:?}");
        assert_eq!(remote.run(|| server_handler(1)), 2);
    }
    let spans = rec.spans();
    assert_eq!(spans.all("server_handler").count(), cases.len());
    for span in spans.all("server_handler") {
        assert!(
            span.is_root() && !span.parent_span_is_remote,
            "a fresh trace"
        );
        let id = span.str("honeyhive.request_id").unwrap();
        assert!(honeyhive_runtime::is_valid_request_id(id), "{id}");
    }
    // The one valid baggage request id is used; invalid x-request-ids are flagged and replaced.
    let sources: Vec<_> = spans
        .all("server_handler")
        .map(|s| s.str("honeyhive.request_id.source").unwrap())
        .collect();
    assert_eq!(
        sources.iter().filter(|s| **s == "baggage").count(),
        1,
        "{sources:?}"
    );
}

#[test]
fn opentelemetry_propagator_headers_are_read_and_ours_are_read_by_it() {
    let rec = Recorder::start();
    let propagator = TraceContextPropagator::new();
    // Theirs → ours.
    let sc = SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
        SpanId::from(0xb7ad_6b71_6920_3331_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "opaque")]).unwrap(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
    let mut theirs = HashMap::new();
    propagator.inject_context(&cx, &mut theirs);
    let remote = extract(&theirs);
    assert_eq!(remote.parent.unwrap().trace_id, sc.trace_id());
    assert_eq!(remote.parent.unwrap().span_id, sc.span_id());
    assert_eq!(remote.tracestate.as_deref(), Some("vendor=opaque"));
    // Ours → theirs, with tracestate passed on.
    let ours = remote.run(|| {
        #[trace]
        fn forward() -> HashMap<String, String> {
            let mut h = HashMap::new();
            inject(&mut h);
            h
        }
        forward()
    });
    let read = propagator.extract(&ours);
    let read = read.span().span_context().clone();
    let forward = rec.spans().get("forward").0.clone();
    assert_eq!(read.trace_id(), sc.trace_id());
    assert_eq!(read.span_id(), forward.span_context.span_id());
    assert!(read.is_sampled() && read.is_remote());
    assert_eq!(read.trace_state().header(), "vendor=opaque");
}

#[test]
fn carriers_match_header_names_case_insensitively() {
    let mut h: HashMap<String, String> = HashMap::from([("TraceParent".into(), "x".into())]);
    assert_eq!(Carrier::get(&h, "traceparent"), Some("x"));
    Carrier::set(&mut h, "traceparent", "y".into());
    assert_eq!(h.len(), 1);
    assert_eq!(h["traceparent"], "y");
}

#[trace(sample_rate = 0.0)]
fn unsampled_client() -> (HashMap<String, String>, opentelemetry::Context) {
    let mut headers = HashMap::new();
    inject(&mut headers);
    (headers, honeyhive_runtime::otel_context())
}

#[test]
fn an_unsampled_root_passes_its_decision_on_with_real_ids() {
    let rec = Recorder::start();
    let (first, cx) = unsampled_client();
    let (second, _) = unsampled_client();
    let tp = |h: &HashMap<String, String>| -> (String, String, String) {
        let parts: Vec<&str> = h["traceparent"].split('-').collect();
        assert_eq!(parts.len(), 4, "{h:?}");
        assert_eq!(parts[0], "00");
        (parts[1].into(), parts[2].into(), parts[3].into())
    };
    let (trace, span, flags) = tp(&first);
    assert_eq!(flags, "02", "not sampled, a random trace id");
    assert_ne!(trace, "0".repeat(32));
    assert_ne!(span, "0".repeat(16));
    assert_ne!(
        tp(&second).0,
        trace,
        "each unsampled root is a trace of its own"
    );
    // `otel_context` hands the same decision to OpenTelemetry code.
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid() && !sc.is_sampled());
    assert_eq!(format!("{:032x}", sc.trace_id()), trace);
    assert_eq!(format!("{:016x}", sc.span_id()), span);

    // Downstream, a parent-based sampler keeps the decision: nothing is recorded, the root is
    // counted, and what it passes on stays in the caller's trace, not sampled.
    let downstream = extract(&first).run(|| {
        #[trace]
        fn forward() -> HashMap<String, String> {
            let mut h = HashMap::new();
            inject(&mut h);
            h
        }
        forward()
    });
    let (d_trace, d_span, d_flags) = tp(&downstream);
    assert_eq!((d_trace.as_str(), d_flags.as_str()), (trace.as_str(), "02"));
    assert_ne!(d_span, span, "downstream's own span id");
    assert!(rec.spans().is_empty());
    let stats = honeyhive_runtime::sampling::sampling_stats();
    assert_eq!(stats["forward"].seen, 1);
    assert_eq!(stats["forward"].sampled, 0);
}
