//! Spans opened from code (`SpanBuilder`): run-time names and kinds, every kind of parent, and
//! the same scope rules as `#[trace]` (children, enrichment, panics, cancellation).

use std::collections::HashMap;

use honeyhive_runtime::propagation::{self, Remote, extract};
use honeyhive_runtime::sampling::{self, Rule};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{EventType, Parent, SpanBuilder, SpanKind, Value, enrich_span, trace};

#[trace]
fn traced_child() -> u32 {
    7
}

#[trace(event_type = "chain")]
fn traced_parent() -> String {
    let mut span = SpanBuilder::new(format!("GET /users/{}", 42))
        .kind(SpanKind::Server)
        .attribute("http.request.method", "GET")
        .start();
    let seven = span.in_scope(|| {
        enrich_span().metadata("tenant", "acme");
        traced_child()
    });
    span.set_attribute("http.response.status_code", 200);
    span.set_attribute(
        "http.request.header",
        Value::map([("accept", "text/plain"), ("host", "example.com")]),
    );
    span.add_event("cache.miss", [("cache.key", Value::from("u42"))]);
    format!("{seven}")
}

#[test]
fn a_run_time_name_kind_and_attributes_reach_the_span_under_the_current_parent() {
    let rec = Recorder::start();
    assert_eq!(traced_parent(), "7");
    let spans = rec.spans();
    let parent = spans.get("traced_parent");
    let span = spans.get("GET /users/42");
    let child = spans.get("traced_child");
    assert_eq!(
        spans.parent_of(span).map(FinishedSpan::span_id),
        Some(parent.span_id())
    );
    assert_eq!(
        spans.parent_of(child).map(FinishedSpan::span_id),
        Some(span.span_id())
    );
    assert_eq!(span.kind(), SpanKind::Server);
    assert_eq!(parent.kind(), SpanKind::Internal);
    assert_eq!(span.str("http.request.method"), Some("GET"));
    assert_eq!(span.i64("http.response.status_code"), Some(200));
    assert_eq!(span.str("http.request.header.accept"), Some("text/plain"));
    assert_eq!(span.str("honeyhive_metadata.tenant"), Some("acme"));
    assert_eq!(span.str("honeyhive_event_type"), Some("tool"));
    let event = span.events_named("cache.miss").next().expect("event");
    assert_eq!(
        FinishedSpan::event_attr(event, "cache.key").map(ToString::to_string),
        Some("u42".to_owned())
    );
}

#[test]
fn model_spans_are_client_spans_unless_told_otherwise_and_can_be_renamed() {
    let rec = Recorder::start();
    let mut span = SpanBuilder::new("llm call")
        .event_type(EventType::Model)
        .start();
    span.set_name("chat gpt-4o");
    span.set_error("HttpError", "503 Service Unavailable");
    span.end();
    let spans = rec.spans();
    let span = spans.get("chat gpt-4o");
    assert_eq!(span.kind(), SpanKind::Client);
    assert_eq!(span.str("honeyhive_event_type"), Some("model"));
    assert!(span.is_error());
    assert_eq!(span.error_message(), Some("503 Service Unavailable"));
    assert!(spans.0.iter().all(|s| s.name != "llm call"));
}

#[trace]
fn outer_with_detached_root() -> u128 {
    let root = SpanBuilder::new("background job")
        .parent(Parent::Root)
        .start();
    let id = root.is_recording();
    drop(root);
    u128::from(id)
}

#[test]
fn a_root_parent_starts_a_new_trace_whatever_is_current() {
    let rec = Recorder::start();
    assert_eq!(outer_with_detached_root(), 1);
    let spans = rec.spans();
    let outer = spans.get("outer_with_detached_root");
    let job = spans.get("background job");
    assert!(job.is_root());
    assert_ne!(job.trace_id(), outer.trace_id());
}

#[test]
fn a_remote_parent_joins_the_callers_trace_with_its_correlation() {
    let rec = Recorder::start();
    let headers = HashMap::from([
        (
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        ),
        ("x-request-id".to_owned(), "req-123".to_owned()),
    ]);
    let remote = extract(&headers);
    let span = SpanBuilder::new("POST /chat")
        .kind(SpanKind::Server)
        .parent(Parent::Remote(&remote))
        .start();
    drop(span);
    let spans = rec.spans();
    let span = spans.get("POST /chat");
    assert_eq!(
        format!("{:032x}", span.trace_id()),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(format!("{:016x}", span.parent_span_id), "00f067aa0ba902b7");
    assert!(span.parent_span_is_remote);
    assert_eq!(span.str("honeyhive.request_id"), Some("req-123"));
}

#[test]
fn a_span_opened_on_another_thread_can_parent_one_started_here() {
    let rec = Recorder::start();
    let parent = std::thread::spawn(|| SpanBuilder::new("request").start())
        .join()
        .expect("thread");
    let child = SpanBuilder::new("step")
        .parent(Parent::Span(&parent))
        .start();
    let moved = std::thread::spawn(move || {
        let mut child = child;
        child.set_attribute("done.on", "another thread");
        child
    })
    .join()
    .expect("thread");
    drop(moved);
    drop(parent);
    let spans = rec.spans();
    let request = spans.get("request");
    let step = spans.get("step");
    assert_eq!(
        spans.parent_of(step).map(FinishedSpan::span_id),
        Some(request.span_id())
    );
    assert_eq!(step.str("done.on"), Some("another thread"));
}

#[test]
fn entering_makes_the_span_current_until_the_guard_drops() {
    let rec = Recorder::start();
    let mut span = SpanBuilder::new("entered").start();
    {
        let _entered = span.enter();
        traced_child();
    }
    traced_child();
    drop(span);
    let spans = rec.spans();
    let entered = spans.get("entered");
    let children: Vec<_> = spans.all("traced_child").collect();
    assert_eq!(children.len(), 2);
    assert_eq!(
        children
            .iter()
            .filter(|c| c.parent_span_id == entered.span_id())
            .count(),
        1
    );
    assert_eq!(children.iter().filter(|c| c.is_root()).count(), 1);
}

#[trace]
async fn traced_async_child() -> u8 {
    1
}

#[test]
fn an_instrumented_future_has_its_span_current_while_polled_and_ends_with_it() {
    let rec = Recorder::start();
    let span = SpanBuilder::new("async work").start();
    let out = futures_executor::block_on(span.instrument(async { traced_async_child().await + 1 }));
    assert_eq!(out, 2);
    let never_done = SpanBuilder::new("cancelled work")
        .start()
        .instrument(std::future::pending::<()>());
    drop(never_done);
    let spans = rec.spans();
    let work = spans.get("async work");
    let child = spans.get("traced_async_child");
    assert_eq!(
        spans.parent_of(child).map(FinishedSpan::span_id),
        Some(work.span_id())
    );
    assert_eq!(
        spans.get("cancelled work").bool("honeyhive.cancelled"),
        Some(true)
    );
    assert_eq!(work.bool("honeyhive.cancelled"), None);
}

#[test]
fn a_panic_inside_the_scope_marks_the_span_and_still_unwinds() {
    let rec = Recorder::start();
    let mut span = SpanBuilder::new("panicky").start();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        span.in_scope(|| panic!("boom"));
    }));
    assert!(caught.is_err());
    drop(span);
    let spans = rec.spans();
    let span = spans.get("panicky");
    assert!(span.is_error());
    assert_eq!(span.error_message(), Some("boom"));
}

#[test]
fn with_tracing_disabled_nothing_is_recorded_and_the_code_runs_the_same() {
    // Holds the Recorder lock, so no other test's pipeline is installed meanwhile.
    let rec = Recorder::with(|b| b.disabled(true));
    let mut span = SpanBuilder::new("disabled").start();
    assert!(!span.is_recording());
    span.set_attribute("k", "v");
    assert_eq!(span.in_scope(traced_child), 7);
    drop(span);
    assert!(rec.spans().0.is_empty());
}

#[test]
fn a_rule_by_name_decides_roots_named_at_run_time_and_stats_count_them_by_name() {
    let rec = Recorder::with(|b| b.sampling_rule(Rule::new(0.0).name("GET /health")));
    for _ in 0..3 {
        drop(SpanBuilder::new("GET /health").start());
    }
    let mut users = SpanBuilder::new(format!("GET /users/{}", "{id}")).start();
    users.in_scope(traced_child);
    drop(users);
    let spans = rec.spans();
    assert!(spans.0.iter().all(|s| s.name != "GET /health"));
    let users = spans.get("GET /users/{id}");
    assert_eq!(
        spans
            .parent_of(spans.get("traced_child"))
            .map(FinishedSpan::span_id),
        Some(users.span_id())
    );
    let stats = sampling::sampling_stats();
    let counts = |name: &str| stats.get(name).map(|s| (s.seen, s.sampled));
    assert_eq!(counts("GET /health"), Some((3, 0)));
    assert_eq!(counts("GET /users/{id}"), Some((1, 1)));
    // Children follow their root: counted nowhere, nor under the event type's operation.
    assert_eq!(stats.len(), 2, "{stats:?}");
}

#[trace(sample_rate = 0.5)]
fn half(tag: &'static str) -> &'static str {
    tag
}

/// A caller that kept its trace at 50% by its own randomness (`rv`, all ones): by the trace
/// id's (all zeros) every rate below 1 would drop it.
fn caller_with_randomness() -> Remote {
    extract(&HashMap::from([
        (
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a300000000000000-b7ad6b7169203331-01".to_owned(),
        ),
        (
            "tracestate".to_owned(),
            "ot=th:8;rv:ffffffffffffff,vendor=x".to_owned(),
        ),
        ("x-request-id".to_owned(), "req-7".to_owned()),
    ]))
}

fn injected() -> HashMap<String, String> {
    let mut headers = HashMap::new();
    propagation::inject(&mut headers);
    headers
}

#[test]
fn a_span_carries_the_callers_correlation_to_other_threads() {
    let rec = Recorder::start();
    let (here, there) = caller_with_randomness().run(|| {
        let mut span = SpanBuilder::new("work").start();
        let here = span.in_scope(|| {
            half("here");
            injected()
        });
        let there = std::thread::spawn(move || {
            let there = span.in_scope(|| {
                half("in_scope");
                injected()
            });
            let mut child = SpanBuilder::new("child")
                .parent(Parent::Span(&span))
                .start();
            child.in_scope(|| half("parent"));
            drop(child);
            {
                let _entered = span.enter();
                half("enter");
            }
            futures_executor::block_on(span.instrument(async { half("instrument") }));
            there
        })
        .join()
        .expect("thread");
        (here, there)
    });
    assert_eq!(here["tracestate"], "ot=th:8;rv:ffffffffffffff,vendor=x");
    assert_eq!(there.get("tracestate"), here.get("tracestate"));
    assert!(here["traceparent"].ends_with("-01"), "{here:?}");
    assert_eq!(there.get("traceparent"), here.get("traceparent"));
    let spans = rec.spans();
    let mut kept: Vec<_> = spans
        .all("half")
        .map(|s| {
            assert_eq!(s.str("honeyhive.request_id"), Some("req-7"));
            s.str("honeyhive_inputs.tag").expect("tag").to_owned()
        })
        .collect();
    kept.sort();
    // One trace, one randomness: the nested rate decides the same on every thread.
    assert_eq!(kept, ["enter", "here", "in_scope", "instrument", "parent"]);
    assert_eq!(
        spans.get("child").str("honeyhive.request_id"),
        Some("req-7")
    );
}

#[test]
fn guards_left_out_of_order_leave_neither_a_span_nor_its_scope_current() {
    use honeyhive_runtime::Scope;
    let rec = Recorder::start();
    let mut a = Scope::session("sess-a").run(|| SpanBuilder::new("a").parent(Parent::Root).start());
    let mut b = Scope::session("sess-b").run(|| SpanBuilder::new("b").parent(Parent::Root).start());
    let ga = a.enter();
    let gb = b.enter();
    drop(ga);
    // `b` is still entered: what starts now is its child, in its session.
    drop(SpanBuilder::new("inside_b").start());
    drop(gb);
    drop(SpanBuilder::new("after").start());
    drop(a);
    drop(b);
    let spans = rec.spans();
    let inside = spans.get("inside_b");
    assert_eq!(spans.parent_of(inside).map(|p| p.name.as_ref()), Some("b"));
    assert_eq!(inside.str("honeyhive.session_id"), Some("sess-b"));
    let after = spans.get("after");
    assert!(
        after.is_root(),
        "a child of {:?}",
        spans.parent_of(after).map(|p| &p.name)
    );
    assert_eq!(
        after.str("honeyhive.session_id"),
        None,
        "a session left behind"
    );
}
