//! Consistent probability sampling across services (OpenTelemetry "`TraceState`: Probability
//! Sampling", W3C Trace Context level 2): every decision keeps a trace iff its randomness `R`
//! (the low 56 bits of the trace id, or `ot=rv:`) is at least the rate's threshold `T`, and
//! kept traces carry `ot=th:<T>` downstream.
//!
//! Deterministic: trace ids are fixed (or drawn from a seeded generator), and what each
//! decision must be is computed here from `R` and the specification's threshold values.

use std::collections::{HashMap, HashSet};

use honeyhive_runtime::propagation::{extract, inject};
use honeyhive_runtime::sampling::{self, Sampler};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceId;
use opentelemetry_sdk::propagation::TraceContextPropagator;

type Headers = HashMap<String, String>;

/// Thresholds from the specification's table (4 digits of precision), as 56-bit values.
const TH_HALF: u64 = 0x80_0000_0000_0000; // "8": 0.5
const TH_QUARTER: u64 = 0xc0_0000_0000_0000; // "c": 0.25
const TH_TENTH: u64 = 0xe6_6600_0000_0000; // "e666": 0.1 (0.100006103515625)
const P_TENTH: f64 = 0.100_006_103_515_625;

/// `count` fixed trace ids spread over the randomness range (splitmix64 from a constant).
fn trace_ids(count: usize) -> Vec<u128> {
    let mut state = 0x5eed_u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..count)
        .map(|_| (u128::from(next()) << 64) | u128::from(next()))
        .collect()
}

/// `R` of a trace id: its least significant 56 bits.
fn randomness(trace_id: u128) -> u64 {
    u64::try_from(trace_id & ((1 << 56) - 1)).unwrap()
}

/// A caller's headers: a sampled `traceparent` with the random flag, and `tracestate`.
fn caller(trace_id: u128, tracestate: Option<&str>) -> Headers {
    let mut h = Headers::from([(
        "traceparent".to_owned(),
        format!("00-{trace_id:032x}-00f067aa0ba902b7-03"),
    )]);
    if let Some(ts) = tracestate {
        h.insert("tracestate".to_owned(), ts.to_owned());
    }
    h
}

fn outbound() -> Headers {
    let mut h = Headers::new();
    inject(&mut h);
    h
}

fn trace_of(id: TraceId) -> u128 {
    u128::from_be_bytes(id.to_bytes())
}

// ---------------------------------------------------------------------------------------------
// Services with different rates keep nested subsets.

#[trace(event_type = "chain")]
fn service_handler() -> Headers {
    outbound()
}

/// The traces a service with `sampler` keeps of those arriving from a caller, and what it
/// sends on for each.
fn kept_by(sampler: Sampler, ids: &[u128]) -> HashMap<u128, Headers> {
    let rec = Recorder::with(|b| b.sampler(sampler));
    let sent: Vec<Headers> = ids
        .iter()
        .map(|&id| extract(&caller(id, None)).run(service_handler))
        .collect();
    let spans = rec.spans();
    let kept: HashSet<u128> = spans
        .all("service_handler")
        .map(|s| trace_of(s.trace_id()))
        .collect();
    ids.iter()
        .zip(sent)
        .filter(|(id, _)| kept.contains(id))
        .map(|(&id, h)| (id, h))
        .collect()
}

#[test]
fn every_trace_the_10_percent_service_keeps_the_50_percent_one_keeps_too() {
    let ids = trace_ids(400);
    // Samplers that decide for themselves (not parent-based), so only the shared randomness
    // can make the two agree.
    let fifty = kept_by(Sampler::Ratio(0.5), &ids);
    let ten = kept_by(Sampler::Ratio(0.1), &ids);
    for &id in &ids {
        assert_eq!(
            fifty.contains_key(&id),
            randomness(id) >= TH_HALF,
            "{id:032x}"
        );
        assert_eq!(
            ten.contains_key(&id),
            randomness(id) >= TH_TENTH,
            "{id:032x}"
        );
    }
    assert!(ten.keys().all(|id| fifty.contains_key(id)), "a subset");
    assert!(
        ten.len() > 20 && fifty.len() > ten.len() + 100,
        "{} {}",
        ten.len(),
        fifty.len()
    );
    // Each sends its threshold on, and the caller's trace id with the random flag.
    for (id, h) in &ten {
        assert_eq!(h["tracestate"], "ot=th:e666");
        assert_eq!(h["traceparent"][3..35], format!("{id:032x}"));
        assert!(h["traceparent"].ends_with("-03"), "{h:?}");
    }
    for h in fifty.values() {
        assert_eq!(h["tracestate"], "ot=th:8");
    }
}

#[trace(event_type = "chain", sample_rate = 0.5)]
fn frontend() -> Headers {
    outbound()
}

#[trace(event_type = "chain", sample_rate = 0.1)]
fn backend() -> Headers {
    outbound()
}

#[test]
fn a_downstream_with_a_lower_rate_keeps_a_subset_and_raises_the_threshold() {
    let rec = Recorder::start();
    // Our own roots: trace ids from a seeded generator, random and flagged so.
    sampling::seed_thread_rng(42);
    let mut forwarded = Vec::new();
    for _ in 0..300 {
        let headers = frontend();
        assert!(
            headers["traceparent"].ends_with("-03") || headers["traceparent"].ends_with("-02"),
            "the random flag is set on our trace ids: {headers:?}"
        );
        forwarded.push((extract(&headers).run(backend), headers));
    }
    let spans = rec.spans();
    let front: HashSet<u128> = spans
        .all("frontend")
        .map(|s| trace_of(s.trace_id()))
        .collect();
    let back: HashSet<u128> = spans
        .all("backend")
        .map(|s| trace_of(s.trace_id()))
        .collect();
    for &id in &front {
        assert!(randomness(id) >= TH_HALF);
    }
    for &id in &back {
        assert!(front.contains(&id), "never a superset");
        assert!(randomness(id) >= TH_TENTH);
    }
    assert!(back.len() > 10 && front.len() > back.len() + 50);
    for (sent_on, received) in &forwarded {
        let id = u128::from_str_radix(&received["traceparent"][3..35], 16).unwrap();
        if back.contains(&id) {
            assert_eq!(received["tracestate"], "ot=th:8");
            assert_eq!(sent_on["tracestate"], "ot=th:e666", "raised");
        } else if front.contains(&id) {
            // Kept upstream, not here: the threshold is erased with the decision.
            assert!(sent_on["traceparent"].ends_with("-02"));
            assert_eq!(sent_on.get("tracestate"), None);
        }
    }
    // What an adjusted count needs: the probability of the threshold, where it was decided.
    for s in spans.all("frontend") {
        assert_eq!(s.f64("honeyhive.sample_rate"), Some(0.5));
    }
    for s in spans.all("backend") {
        assert_eq!(s.f64("honeyhive.sample_rate"), Some(P_TENTH));
    }
}

// ---------------------------------------------------------------------------------------------
// Nested `sample_rate` inside one trace: the stricter threshold wins.

#[trace(event_type = "chain")]
fn request() -> (Headers, Option<Headers>) {
    (outbound(), rare_step())
}

#[trace(event_type = "tool", sample_rate = 0.1)]
fn rare_step() -> Option<Headers> {
    Some(outbound())
}

#[test]
fn a_nested_sample_rate_keeps_the_traces_whose_randomness_passes_its_threshold() {
    let rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.5)));
    let ids = trace_ids(300);
    let mut sent = HashMap::new();
    for &id in &ids {
        sent.insert(id, extract(&caller(id, None)).run(request));
    }
    let spans = rec.spans();
    let steps: HashSet<u128> = spans
        .all("rare_step")
        .map(|s| trace_of(s.trace_id()))
        .collect();
    for &id in &ids {
        assert_eq!(
            steps.contains(&id),
            randomness(id) >= TH_TENTH,
            "kept iff R >= th(0.1): {id:032x}"
        );
    }
    assert!(steps.len() > 10);
    for s in spans.all("rare_step") {
        assert_eq!(s.f64("honeyhive.sample_rate"), Some(P_TENTH));
        let parent = spans.parent_of(s).expect("under its recorded parent");
        assert_eq!(parent.f64("honeyhive.sample_rate"), Some(0.5));
        let (outer, inner) = &sent[&trace_of(s.trace_id())];
        assert_eq!(outer["tracestate"], "ot=th:8");
        assert_eq!(inner.as_ref().unwrap()["tracestate"], "ot=th:e666");
    }
}

// ---------------------------------------------------------------------------------------------
// The caller's threshold and randomness.

#[trace(event_type = "chain")]
fn plain_handler() -> Headers {
    outbound()
}

#[trace(event_type = "chain", sample_rate = 0.5)]
fn half_handler() -> Headers {
    outbound()
}

#[trace(event_type = "chain", sample_rate = 0.1)]
fn tenth_handler() -> Headers {
    outbound()
}

/// A trace id whose randomness is `r`.
fn with_randomness(r: u64) -> u128 {
    (0x4bf9_2f35_77b3_4da6_u128 << 64) | (0xa3u128 << 56) | u128::from(r)
}

#[test]
fn a_parent_based_service_honours_the_callers_threshold() {
    let rec = Recorder::start();
    // R = 0xd0...: kept upstream at 0.25 (th:c), and kept here whatever the declared rate
    // below that (0.5), since the stricter upstream threshold holds.
    let id = with_randomness(0xd0_0000_0000_0001);
    let ts = Some("ot=th:c,vendor=opaque");
    let out = extract(&caller(id, ts)).run(plain_handler);
    assert_eq!(out["tracestate"], "ot=th:c,vendor=opaque");
    let out = extract(&caller(id, ts)).run(half_handler);
    assert_eq!(
        out["tracestate"], "ot=th:c,vendor=opaque",
        "the stricter stays"
    );
    // A lower rate here raises the threshold: R = 0xd0... < 0xe666..: dropped; above: kept.
    let dropped = extract(&caller(id, ts)).run(tenth_handler);
    assert!(dropped["traceparent"].ends_with("-02"));
    assert_eq!(
        dropped["tracestate"], "vendor=opaque",
        "th erased, others kept"
    );
    let high = with_randomness(0xf0_0000_0000_0000);
    let kept = extract(&caller(high, ts)).run(tenth_handler);
    assert_eq!(kept["tracestate"], "ot=th:e666,vendor=opaque");
    let spans = rec.spans();
    assert_eq!(
        spans.names(),
        ["plain_handler", "half_handler", "tenth_handler"]
    );
    assert_eq!(
        spans.get("plain_handler").f64("honeyhive.sample_rate"),
        Some(0.25)
    );
    assert_eq!(
        spans.get("half_handler").f64("honeyhive.sample_rate"),
        Some(0.25)
    );
    assert_eq!(
        spans.get("tenth_handler").f64("honeyhive.sample_rate"),
        Some(P_TENTH)
    );
    assert_eq!(trace_of(spans.get("tenth_handler").trace_id()), high);
}

#[test]
fn a_threshold_the_sampled_flag_contradicts_is_erased() {
    let rec = Recorder::start();
    // Sampled, but R = 0x10.. < th:c: not a decision th:c could have made.
    let id = with_randomness(0x10_0000_0000_0000);
    let out = extract(&caller(id, Some("ot=th:c;p:8"))).run(plain_handler);
    assert_eq!(
        out["tracestate"], "ot=p:8",
        "th erased, other sub-keys kept"
    );
    let spans = rec.spans();
    let root = spans.get("plain_handler");
    assert_eq!(
        root.f64("honeyhive.sample_rate"),
        None,
        "probability unknown"
    );
}

#[test]
fn explicit_randomness_is_used_instead_of_the_trace_id_and_passed_on() {
    let rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.25)));
    // The trace id says drop (R = 0x01..), rv says keep (0xf0.. >= th:c).
    let low = with_randomness(0x01_0000_0000_0000);
    let out = extract(&caller(low, Some("ot=rv:f0000000000000"))).run(plain_handler);
    assert_eq!(out["tracestate"], "ot=th:c;rv:f0000000000000");
    // And the other way round.
    let high = with_randomness(0xff_0000_0000_0000);
    let out = extract(&caller(high, Some("ot=rv:01000000000000,other=1"))).run(plain_handler);
    assert!(out["traceparent"].ends_with("-02"));
    assert_eq!(
        out["tracestate"], "ot=rv:01000000000000,other=1",
        "rv stays"
    );
    let spans = rec.spans();
    let kept: Vec<u128> = spans
        .all("plain_handler")
        .map(|s| trace_of(s.trace_id()))
        .collect();
    assert_eq!(kept, [low]);
    // A nested decision in that trace uses rv too.
    drop(rec);
    let rec = Recorder::start();
    let out = extract(&caller(low, Some("ot=th:0;rv:f0000000000000"))).run(request);
    assert_eq!(out.0["tracestate"], "ot=th:0;rv:f0000000000000");
    assert_eq!(out.1.unwrap()["tracestate"], "ot=th:e666;rv:f0000000000000");
    assert_eq!(rec.spans().all("rare_step").count(), 1);
}

#[test]
fn invalid_ot_values_are_ignored_safely() {
    let id = with_randomness(0xf0_0000_0000_0000);
    for (sent, passed_on) in [
        ("ot=th:xyz", None),
        ("ot=th:123456789abcdef0", None),
        ("ot=th", None),
        ("ot=th:8;th:c", Some("ot=th:8")),
        ("ot=rv:123;th:c", Some("ot=th:c")),
        ("ot=rv:F0000000000000", None),
        ("ot=;;th:c;:;x:", Some("ot=th:c;x:")),
        ("ot=th:-8,v=1", Some("v=1")),
    ] {
        let rec = Recorder::start();
        let out = extract(&caller(id, Some(sent))).run(plain_handler);
        assert_eq!(
            out.get("tracestate").map(String::as_str),
            passed_on,
            "{sent}"
        );
        let spans = rec.spans();
        let root = spans.get("plain_handler");
        let rate = root.f64("honeyhive.sample_rate");
        match passed_on {
            Some(ts) if ts.starts_with("ot=th:c") => assert_eq!(rate, Some(0.25), "{sent}"),
            Some(ts) if ts.starts_with("ot=th:8") => assert_eq!(rate, Some(0.5), "{sent}"),
            _ => assert_eq!(rate, None, "{sent}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Interop with the OpenTelemetry SDK's propagator.

#[test]
fn the_opentelemetry_sdk_propagator_passes_our_threshold_through() {
    let rec = Recorder::start();
    let id = with_randomness(0xf8_0000_0000_0000);
    let ours = extract(&caller(id, Some("ot=th:8,vendor=opaque"))).run(|| {
        #[trace(sample_rate = 0.1)]
        fn client() -> Headers {
            outbound()
        }
        client()
    });
    assert_eq!(ours["tracestate"], "ot=th:e666,vendor=opaque");
    // A hop through a service instrumented with the OpenTelemetry SDK: it extracts and
    // injects with its own propagator (W3C level 1: it drops the random flag).
    let propagator = TraceContextPropagator::new();
    let cx = propagator.extract(&ours);
    let mut theirs = Headers::new();
    propagator.inject_context(&cx, &mut theirs);
    assert_eq!(theirs["tracestate"], "ot=th:e666,vendor=opaque");
    assert!(theirs["traceparent"].ends_with("-01"));
    // And back to us: the threshold is honoured, randomness presumed in the trace id.
    let back = extract(&theirs).run(plain_handler);
    assert_eq!(back["tracestate"], "ot=th:e666,vendor=opaque");
    assert!(back["traceparent"].ends_with("-01"), "the caller's flag");
    let spans = rec.spans();
    assert_eq!(
        spans.get("plain_handler").f64("honeyhive.sample_rate"),
        Some(P_TENTH)
    );
    assert_eq!(trace_of(spans.get("plain_handler").trace_id()), id);
}

#[test]
fn our_roots_send_the_random_flag_and_no_threshold_at_probability_one() {
    let rec = Recorder::start();
    let out = plain_handler();
    assert!(out["traceparent"].ends_with("-03"), "{out:?}");
    assert_eq!(
        out.get("tracestate"),
        None,
        "nothing to say at probability 1"
    );
    let spans = rec.spans();
    assert_eq!(
        spans.get("plain_handler").f64("honeyhive.sample_rate"),
        Some(1.0)
    );
    drop(rec);
    let _rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.25)));
    sampling::seed_thread_rng(5);
    let (mut kept, mut dropped) = (0, 0);
    for _ in 0..64 {
        let out = plain_handler();
        let id = u128::from_str_radix(&out["traceparent"][3..35], 16).unwrap();
        match &out["traceparent"][53..] {
            "03" => {
                assert!(randomness(id) >= TH_QUARTER);
                assert_eq!(out["tracestate"], "ot=th:c");
                kept += 1;
            }
            "02" => {
                assert!(randomness(id) < TH_QUARTER);
                assert_eq!(out.get("tracestate"), None);
                dropped += 1;
            }
            flags => panic!("{flags}"),
        }
    }
    assert!(kept > 0 && dropped > 0);
}

// ---------------------------------------------------------------------------------------------
// What an adjusted count needs, on every kept span.

#[test]
fn every_kept_span_carries_its_threshold_in_its_trace_state() {
    let (url, requests) = honeyhive_tests::otlp_receiver();
    let rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.5)).with_otlp_http(url));
    let id = with_randomness(0xf0_0000_0000_0000);
    let _ = extract(&caller(id, None)).run(request);
    let spans = rec.spans();
    // On the `SpanData` users' own exporters get...
    let state = |name: &str| spans.get(name).span_context.trace_state().header();
    assert_eq!(state("request"), "ot=th:8");
    assert_eq!(state("rare_step"), "ot=th:e666");
    // ...and in OTLP.
    let mut wire = HashMap::new();
    while wire.len() < spans.len() {
        let req = requests
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the receiver got every span");
        for span in req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            wire.insert(span.name.clone(), span.trace_state.clone());
        }
    }
    assert_eq!(wire["request"], "ot=th:8");
    assert_eq!(wire["rare_step"], "ot=th:e666");
}

#[trace(event_type = "chain")]
fn hands_off() -> (opentelemetry::Context, Option<opentelemetry::Context>) {
    (honeyhive_runtime::otel_context(), rare_hand_off())
}

#[trace(event_type = "tool", sample_rate = 0.1)]
fn rare_hand_off() -> Option<opentelemetry::Context> {
    Some(honeyhive_runtime::otel_context())
}

#[test]
fn otel_context_carries_the_threshold_its_span_carries() {
    use opentelemetry::trace::TraceContextExt;
    let rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.5)));
    let id = with_randomness(0xf0_0000_0000_0000);
    let (root, nested) = extract(&caller(id, None)).run(hands_off);
    let state = |cx: &opentelemetry::Context| cx.span().span_context().trace_state().header();
    let spans = rec.spans();
    let span_state = |name: &str| spans.get(name).span_context.trace_state().header();
    assert_eq!(state(&root), "ot=th:8");
    assert_eq!(state(&root), span_state("hands_off"));
    let nested = nested.expect("R passes 0.1");
    assert_eq!(state(&nested), "ot=th:e666");
    assert_eq!(state(&nested), span_state("rare_hand_off"));
    // An OpenTelemetry propagator passes it on.
    let mut out = Headers::new();
    TraceContextPropagator::new().inject_context(&nested, &mut out);
    assert_eq!(out["tracestate"], "ot=th:e666");
}
