//! `enrich_span` and `enrich_session`, asserted on real finished spans.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{Value, enrich::MAX_LEAVES, enrich_session, enrich_span, trace};

#[trace(event_type = "model")]
fn graded(answer: &str) -> usize {
    enrich_span()
        .metadata("model", "gpt-4o")
        .metrics("score", 0.9)
        .feedback(
            "rating",
            Value::map([("stars", Value::from(4)), ("comment", "good".into())]),
        )
        .config(
            "prompt",
            Value::map([("template", "Q: {q}"), ("version", "v2")]),
        )
        .inputs("extra", vec![1, 2])
        .outputs("tokens", 42u64)
        .user_properties("plan", "pro");
    answer.len()
}

#[test]
fn every_namespace_is_written_and_nested_values_are_flattened() {
    let rec = Recorder::start();
    assert_eq!(graded("Paris"), 5);
    let spans = rec.spans();
    let s = spans.get("graded");
    assert_eq!(s.str("honeyhive_metadata.model"), Some("gpt-4o"));
    assert_eq!(s.f64("honeyhive_metrics.score"), Some(0.9));
    assert_eq!(s.i64("honeyhive_feedback.rating.stars"), Some(4));
    assert_eq!(s.str("honeyhive_feedback.rating.comment"), Some("good"));
    assert_eq!(s.str("honeyhive_config.prompt.template"), Some("Q: {q}"));
    assert_eq!(s.i64("honeyhive_inputs.extra.1"), Some(2));
    assert_eq!(s.i64("honeyhive_outputs.tokens"), Some(42));
    assert_eq!(s.str("honeyhive_user_properties.plan"), Some("pro"));
    // The captured argument is still there next to the enriched input.
    assert_eq!(s.str("honeyhive_inputs.answer"), Some("Paris"));
}

#[trace]
fn big_metadata() {
    let many: BTreeMap<String, u32> = (0..1000).map(|i| (format!("k{i:04}"), i)).collect();
    let mut deep = Value::from("bottom");
    for _ in 0..10 {
        deep = Value::map([("d", deep)]);
    }
    enrich_span().metadata("many", many).metadata("deep", deep);
}

#[test]
fn flattening_is_bounded_in_depth_and_count() {
    let rec = Recorder::start();
    big_metadata();
    let spans = rec.spans();
    let s = spans.get("big_metadata");
    let many = s
        .attributes
        .iter()
        .filter(|kv| kv.key.as_str().starts_with("honeyhive_metadata.many.k"))
        .count();
    assert_eq!(many, MAX_LEAVES);
    assert_eq!(
        s.i64("honeyhive_metadata.many._omitted"),
        Some(1000 - i64::try_from(MAX_LEAVES).unwrap())
    );
    let deep_key = format!("honeyhive_metadata.deep{}", ".d".repeat(5));
    assert_eq!(
        s.str(&deep_key),
        Some(r#"{"d":{"d":{"d":{"d":{"d":"bottom"}}}}}"#)
    );
}

static CONVERSIONS: AtomicUsize = AtomicUsize::new(0);

struct Costly;

impl From<Costly> for Value {
    fn from(_: Costly) -> Value {
        CONVERSIONS.fetch_add(1, Ordering::SeqCst);
        Value::from("built")
    }
}

#[trace(sample_rate = 0.0)]
fn unsampled() {
    enrich_span().metadata("costly", Costly);
    enrich_session().metadata("costly", Costly);
}

#[test]
fn nothing_is_built_without_a_recorded_span() {
    let rec = Recorder::start();
    enrich_span().metadata("outside", Costly);
    enrich_session().metrics("outside", Costly);
    unsampled();
    assert!(rec.spans().is_empty());
    assert_eq!(CONVERSIONS.load(Ordering::SeqCst), 0);
}

#[trace]
fn step(n: u32) {
    enrich_session()
        .metadata("last_step", n)
        .feedback("liked", true);
}

#[trace(event_type = "chain")]
fn turn(n: u32) {
    step(n);
}

#[trace(event_type = "session")]
fn conversation() {
    turn(1);
    turn(2);
    enrich_span().metadata("own", "yes");
}

#[trace(event_type = "chain")]
fn request_with_session() {
    conversation();
}

#[test]
fn session_enrichment_lands_on_the_session_span() {
    let rec = Recorder::start();
    request_with_session();
    let spans = rec.spans();
    let session = spans.get("conversation");
    assert_eq!(session.bool("honeyhive_feedback.liked"), Some(true));
    // Both turns wrote it; the last one to end wins.
    assert_eq!(session.i64("honeyhive_metadata.last_step"), Some(2));
    assert_eq!(session.str("honeyhive_metadata.own"), Some("yes"));
    for name in ["step", "turn", "request_with_session"] {
        for s in spans.all(name) {
            assert_eq!(s.attr("honeyhive_feedback.liked"), None, "{name}");
        }
    }
    for s in spans.iter() {
        assert!(
            s.attributes
                .iter()
                .all(|kv| !kv.key.as_str().contains('\0')),
            "a private key leaked on {}",
            s.name
        );
    }
}

#[trace(event_type = "chain")]
fn request_without_session() {
    turn(7);
}

#[test]
fn without_a_session_span_it_lands_on_the_root() {
    let rec = Recorder::start();
    request_without_session();
    let spans = rec.spans();
    let root = spans.get("request_without_session");
    assert_eq!(root.i64("honeyhive_metadata.last_step"), Some(7));
    assert_eq!(spans.get("step").attr("honeyhive_metadata.last_step"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_enrichment_crosses_await_points() {
    #[trace]
    async fn rate() {
        tokio::task::yield_now().await;
        enrich_session().metrics("rating", 5);
    }
    #[trace(event_type = "chain")]
    async fn handle() {
        rate().await;
        tokio::task::yield_now().await;
    }
    let rec = Recorder::start();
    handle().await;
    let spans = rec.spans();
    assert_eq!(spans.get("handle").i64("honeyhive_metrics.rating"), Some(5));
}

/// Session enrichment from every level of a deep chain: all of it moves to the session (200
/// levels: a span keeps at most 256 attributes).
#[trace(skip(depth))]
fn deep_step(depth: u32) {
    enrich_session().metadata(&format!("level_{depth}"), depth);
    if depth > 1 {
        deep_step(depth - 1);
    }
}

#[trace(event_type = "session")]
fn deep_conversation() {
    deep_step(200);
}

#[test]
fn session_enrichment_from_a_deep_chain_reaches_its_session() {
    let rec = Recorder::start();
    deep_conversation();
    let spans = rec.spans();
    let session = spans.get("deep_conversation");
    for depth in 1..=200 {
        assert_eq!(
            session.i64(&format!("honeyhive_metadata.level_{depth}")),
            Some(i64::from(depth)),
            "level {depth}"
        );
    }
    let moved = spans
        .all("deep_step")
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str().starts_with("honeyhive_metadata."))
        })
        .count();
    assert_eq!(moved, 0, "no step keeps session enrichment");
}
