//! Head sampling: trace-consistent decisions, parent-based flags, the global samplers
//! (ratio, rules, users and sessions, adaptive) and `sampling_stats()`.
//!
//! Every decision draws from a seeded generator (`seed_thread_rng`), so each test sees the
//! same decisions on every run; statistical assertions state their tolerance.

// Counts and seconds here are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use honeyhive_runtime::sampling::{
    self, Adaptive, ManualClock, OperationStats, RootSampler, Rule, Sampler,
};
use honeyhive_runtime::testing::{Recorder, Spans};
use honeyhive_runtime::{EventType, Scope, current_span_ids, trace};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// splitmix64: the tests' own seeded generator (trees, arrival times).
struct TestRng(u64);

impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Polls a future to completion on this thread (our futures only yield, never wait).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Pending once, then ready: makes an async span leave and re-enter its scope.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random call trees: no recorded span ever has an unrecorded parent.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Always,
    Half,
    Tenth,
    Never,
    PlainAsync,
    HalfAsync,
    NeverAsync,
}

const KINDS: [Kind; 8] = [
    Kind::Plain,
    Kind::Always,
    Kind::Half,
    Kind::Tenth,
    Kind::Never,
    Kind::PlainAsync,
    Kind::HalfAsync,
    Kind::NeverAsync,
];

#[derive(Debug)]
struct Node {
    kind: Kind,
    children: Vec<Node>,
}

fn random_tree(rng: &mut TestRng, depth: u32) -> Node {
    let kind = KINDS[usize::try_from(rng.below(KINDS.len() as u64)).unwrap()];
    let fanout = if depth == 0 { 0 } else { rng.below(4) };
    Node {
        kind,
        children: (0..fanout).map(|_| random_tree(rng, depth - 1)).collect(),
    }
}

type Ids = Option<(TraceId, SpanId)>;

/// What each call saw: the current span before the call, and inside it.
#[derive(Debug)]
struct Seen {
    top: bool,
    parent: Ids,
    own: Ids,
}

#[derive(Default)]
struct Log(RefCell<Vec<Seen>>);

impl Log {
    fn before(&self, top: bool) -> usize {
        let mut seen = self.0.borrow_mut();
        seen.push(Seen {
            top,
            parent: current_span_ids(),
            own: None,
        });
        seen.len() - 1
    }

    fn inside(&self, at: usize) {
        self.0.borrow_mut()[at].own = current_span_ids();
    }
}

fn call(node: &Node, log: &Log, top: bool) {
    let at = log.before(top);
    match node.kind {
        Kind::Plain => plain(node, log, at),
        Kind::Always => always(node, log, at),
        Kind::Half => half(node, log, at),
        Kind::Tenth => tenth(node, log, at),
        Kind::Never => never(node, log, at),
        // A sync caller drives an async callee to completion on its own thread.
        Kind::PlainAsync => block_on(plain_async(node, log, at)),
        Kind::HalfAsync => block_on(half_async(node, log, at)),
        Kind::NeverAsync => block_on(never_async(node, log, at)),
    }
}

fn call_async<'a>(node: &'a Node, log: &'a Log) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
    Box::pin(async move {
        if !matches!(
            node.kind,
            Kind::PlainAsync | Kind::HalfAsync | Kind::NeverAsync
        ) {
            // An async caller calls a sync callee directly.
            return call(node, log, false);
        }
        let at = log.before(false);
        match node.kind {
            Kind::HalfAsync => half_async(node, log, at).await,
            Kind::NeverAsync => never_async(node, log, at).await,
            _ => plain_async(node, log, at).await,
        }
    })
}

fn visit(node: &Node, log: &Log, at: usize) {
    log.inside(at);
    for child in &node.children {
        call(child, log, false);
    }
}

async fn visit_async(node: &Node, log: &Log, at: usize) {
    log.inside(at);
    YieldOnce::default().await;
    // The span is current again after the await.
    assert_eq!(current_span_ids(), log.0.borrow()[at].own);
    for child in &node.children {
        call_async(child, log).await;
    }
}

#[trace(skip_all)]
fn plain(node: &Node, log: &Log, at: usize) {
    visit(node, log, at);
}

#[trace(skip_all, sample_rate = 1.0)]
fn always(node: &Node, log: &Log, at: usize) {
    visit(node, log, at);
}

#[trace(skip_all, sample_rate = 0.5)]
fn half(node: &Node, log: &Log, at: usize) {
    visit(node, log, at);
}

#[trace(skip_all, sample_rate = 0.1)]
fn tenth(node: &Node, log: &Log, at: usize) {
    visit(node, log, at);
}

#[trace(skip_all, sample_rate = 0.0)]
fn never(node: &Node, log: &Log, at: usize) {
    visit(node, log, at);
}

#[trace(skip_all)]
async fn plain_async(node: &Node, log: &Log, at: usize) {
    visit_async(node, log, at).await;
}

#[trace(skip_all, sample_rate = 0.5)]
async fn half_async(node: &Node, log: &Log, at: usize) {
    visit_async(node, log, at).await;
}

#[trace(skip_all, sample_rate = 0.0)]
async fn never_async(node: &Node, log: &Log, at: usize) {
    visit_async(node, log, at).await;
}

/// Runs `trees` and checks the recorded spans against what each call saw. Returns which
/// calls were recorded, in call order.
fn run_trees(trees: &[Node], rec: &Recorder) -> Vec<bool> {
    let log = Log::default();
    for tree in trees {
        call(tree, &log, true);
    }
    let spans = rec.spans();
    let recorded: HashSet<(TraceId, SpanId)> =
        spans.iter().map(|s| (s.trace_id(), s.span_id())).collect();
    // No orphans: every recorded span's parent was recorded, or it is a root.
    for span in spans.iter() {
        assert!(
            span.is_root() || recorded.contains(&(span.trace_id(), span.parent_span_id)),
            "orphan: {} has an unrecorded parent",
            span.name
        );
    }
    let seen = log.0.into_inner();
    for s in &seen {
        if let Some(own) = s.own {
            assert!(recorded.contains(&own), "a recorded scope was not exported");
            let span = spans
                .iter()
                .find(|x| (x.trace_id(), x.span_id()) == own)
                .unwrap();
            match s.parent {
                Some((trace, parent)) => {
                    assert_eq!(span.trace_id(), trace);
                    assert_eq!(span.parent_span_id, parent);
                }
                None => assert!(
                    s.top && span.is_root(),
                    "recorded under an unsampled parent"
                ),
            }
        }
        if !s.top && s.parent.is_none() {
            assert!(s.own.is_none(), "a child of an unsampled span was recorded");
        }
    }
    assert_eq!(
        seen.iter().filter(|s| s.own.is_some()).count(),
        spans.len(),
        "every recorded span is a call that saw itself recorded"
    );
    seen.iter().map(|s| s.own.is_some()).collect()
}

#[test]
fn random_call_trees_never_record_orphans_and_repeat_under_a_seed() {
    let mut rng = TestRng(2024);
    let trees: Vec<Node> = (0..300).map(|_| random_tree(&mut rng, 4)).collect();
    for sampler in [
        Sampler::ParentBased(RootSampler::AlwaysOn),
        Sampler::Ratio(0.5),
    ] {
        let rec = Recorder::with(|b| b.sampler(sampler));
        sampling::seed_thread_rng(7);
        let first = run_trees(&trees, &rec);
        drop(rec);
        let recorded = first.iter().filter(|r| **r).count();
        assert!(
            recorded > 100 && recorded < first.len() - 100,
            "{recorded} of {} recorded: the trees should mix both outcomes",
            first.len()
        );
        // The same seed gives the same decisions.
        let rec = Recorder::with(|b| b.sampler(sampler));
        sampling::seed_thread_rng(7);
        let second = run_trees(&trees, &rec);
        assert_eq!(first, second);
    }
}

// ---------------------------------------------------------------------------------------------
// Parent-based: an incoming sampled flag is honoured.

#[trace(event_type = "chain")]
fn handler() -> u32 {
    handler_step() + 1
}

#[trace]
fn handler_step() -> u32 {
    1
}

fn remote_parent(flags: TraceFlags) -> SpanContext {
    SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
        SpanId::from(0xb7ad_6b71_6920_3331_u64),
        flags,
        true,
        TraceState::NONE,
    )
}

#[test]
fn an_incoming_sampled_flag_is_honoured_both_ways() {
    // Sampled upstream: recorded even though this process would sample no root of its own.
    let rec = Recorder::with(|b| b.sampler(Sampler::ParentBased(RootSampler::AlwaysOff)));
    {
        let _cx = opentelemetry::Context::current()
            .with_remote_span_context(remote_parent(TraceFlags::SAMPLED))
            .attach();
        assert_eq!(handler(), 2);
    }
    let spans = rec.spans();
    assert_eq!(spans.names(), ["handler_step", "handler"]);
    let root = spans.get("handler");
    assert_eq!(
        root.trace_id(),
        remote_parent(TraceFlags::SAMPLED).trace_id()
    );
    assert_eq!(root.parent_span_id, SpanId::from(0xb7ad_6b71_6920_3331_u64));
    assert!(root.parent_span_is_remote);
    // The upstream rate is unknown here, so none is claimed.
    assert_eq!(root.f64("honeyhive.sample_rate"), None);
    assert_eq!(
        spans.get("handler_step").parent_span_id,
        root.span_id(),
        "the child joins the remote trace"
    );
    drop(rec);

    // Not sampled upstream: nothing recorded, though this process samples every root.
    let rec = Recorder::with(|b| b.sampler(Sampler::ParentBased(RootSampler::AlwaysOn)));
    {
        let _cx = opentelemetry::Context::current()
            .with_remote_span_context(remote_parent(TraceFlags::default()))
            .attach();
        assert_eq!(handler(), 2);
    }
    assert!(rec.spans().is_empty());
    assert_eq!(
        sampling::sampling_stats()["handler"],
        stats(1, 0),
        "the root is counted as seen, not sampled"
    );
    // Without the ambient context, the root sampler decides again.
    handler();
    assert_eq!(rec.spans().len(), 2);
}

#[test]
fn a_sampler_that_is_not_parent_based_decides_for_itself() {
    // Sampled upstream, dropped here.
    let rec = Recorder::with(|b| b.sampler(Sampler::AlwaysOff));
    {
        let _cx = opentelemetry::Context::current()
            .with_remote_span_context(remote_parent(TraceFlags::SAMPLED))
            .attach();
        handler();
    }
    assert!(rec.spans().is_empty());
    assert_eq!(sampling::sampling_stats()["handler"], stats(1, 0));
    drop(rec);
    // Not sampled upstream, kept here, still in the caller's trace and with its rate.
    let rec = Recorder::with(|b| b.sampler(Sampler::AlwaysOn));
    {
        let _cx = opentelemetry::Context::current()
            .with_remote_span_context(remote_parent(TraceFlags::default()))
            .attach();
        handler();
    }
    let spans = rec.spans();
    let root = spans.get("handler");
    assert_eq!(
        root.trace_id(),
        remote_parent(TraceFlags::default()).trace_id()
    );
    assert!(root.parent_span_is_remote);
    assert_eq!(root.f64("honeyhive.sample_rate"), Some(1.0));
    assert_eq!(sampling::sampling_stats()["handler"], stats(1, 1));
}

fn stats(seen: u64, sampled: u64) -> OperationStats {
    let mut s = OperationStats::default();
    s.seen = seen;
    s.sampled = sampled;
    s
}

// ---------------------------------------------------------------------------------------------
// Ratio, from the builder and from OTEL_TRACES_SAMPLER; sampling_stats().

#[trace(event_type = "chain")]
fn ratio_root() {
    ratio_child();
}

#[trace]
fn ratio_child() {}

/// The probability 0.2 is kept with: its threshold (`th:cccd`, 4 hex digits) stands for
/// this, as the specification's table says.
const P_FIFTH: f64 = 0.199_996_948_242_187_5;

fn within(actual: u64, expected: f64, tolerance: f64) -> bool {
    (actual as f64 - expected).abs() <= expected * tolerance
}

#[test]
fn a_ratio_keeps_its_fraction_and_roots_carry_the_rate() {
    let rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.2)));
    sampling::seed_thread_rng(11);
    for _ in 0..5000 {
        ratio_root();
    }
    let stats = sampling::sampling_stats();
    let root = stats["ratio_root"];
    assert_eq!(root.seen, 5000);
    // Tolerance 10% (about 4.5 standard deviations of a binomial(5000, 0.2)).
    assert!(within(root.sampled, 1000.0, 0.10), "{root:?}");
    assert!(
        !stats.contains_key("ratio_child"),
        "only roots are counted: children follow their root"
    );
    let spans = rec.spans();
    assert_eq!(spans.all("ratio_root").count() as u64, root.sampled);
    assert_eq!(spans.all("ratio_child").count() as u64, root.sampled);
    for r in spans.all("ratio_root") {
        assert_eq!(r.f64("honeyhive.sample_rate"), Some(P_FIFTH));
    }
    for child in spans.all("ratio_child") {
        assert_eq!(child.f64("honeyhive.sample_rate"), None);
        assert!(spans.parent_of(child).is_some());
    }
}

#[test]
fn otel_traces_sampler_reaches_the_decisions() {
    let rec = Recorder::with(|b| {
        b.env(|key| match key {
            "OTEL_TRACES_SAMPLER" => Some("parentbased_traceidratio".to_owned()),
            "OTEL_TRACES_SAMPLER_ARG" => Some("0.5".to_owned()),
            _ => None,
        })
    });
    sampling::seed_thread_rng(12);
    for _ in 0..2000 {
        ratio_root();
    }
    let root = sampling::sampling_stats()["ratio_root"];
    assert_eq!(root.seen, 2000);
    // Tolerance 10% (about 4.5 standard deviations).
    assert!(within(root.sampled, 1000.0, 0.10), "{root:?}");
    for r in rec.spans().all("ratio_root") {
        assert_eq!(r.f64("honeyhive.sample_rate"), Some(0.5));
    }
}

// ---------------------------------------------------------------------------------------------
// Rules: first match wins, by name and event type, then the fallback.

#[trace(event_type = "model")]
fn llm_call() {}

#[trace(event_type = "chain")]
fn checkout() {}

#[trace(event_type = "chain")]
fn health_check() {}

#[trace(event_type = "chain")]
fn browse() {}

#[trace(sample_rate = 0.0)]
fn declared_never() {}

#[trace]
fn unmatched() {}

#[test]
fn rules_match_by_name_and_event_type_and_the_first_match_wins() {
    let rec = Recorder::with(|b| {
        b.sampler(Sampler::AlwaysOff)
            .sampling_rule(Rule::new(0.0).name("health*"))
            .sampling_rule(Rule::new(1.0).name("checkout"))
            // Would drop `checkout` too, but the rule above matched first.
            .sampling_rule(Rule::new(0.0).event_type(EventType::Chain))
            // A rule overrides the rate declared on a root function.
            .sampling_rule(Rule::new(1.0).name("declared_never"))
            .sampling_rule(Rule::new(0.25).event_type(EventType::Model))
    });
    sampling::seed_thread_rng(13);
    for _ in 0..10 {
        checkout();
        health_check();
        browse();
        declared_never();
        unmatched();
    }
    for _ in 0..4000 {
        llm_call();
    }
    let stats = sampling::sampling_stats();
    assert_eq!(stats["checkout"], self::stats(10, 10));
    assert_eq!(stats["health_check"], self::stats(10, 0));
    assert_eq!(stats["browse"], self::stats(10, 0));
    assert_eq!(stats["declared_never"], self::stats(10, 10));
    assert_eq!(
        stats["unmatched"],
        self::stats(10, 0),
        "falls back to AlwaysOff"
    );
    let llm = stats["llm_call"];
    // Tolerance 10% (about 3.7 standard deviations of a binomial(4000, 0.25)).
    assert!(within(llm.sampled, 1000.0, 0.10), "{llm:?}");
    let spans = rec.spans();
    assert_eq!(
        rate_of(&spans, "checkout"),
        Some(1.0),
        "roots carry the rule's rate"
    );
    assert_eq!(rate_of(&spans, "declared_never"), Some(1.0));
    assert_eq!(rate_of(&spans, "llm_call"), Some(0.25));
}

/// The `honeyhive.sample_rate` of the first span named `name`.
fn rate_of(spans: &Spans, name: &str) -> Option<f64> {
    spans.all(name).next()?.f64("honeyhive.sample_rate")
}

// ---------------------------------------------------------------------------------------------
// Always-trace for given users and sessions.

#[trace(event_type = "chain")]
fn user_request() {
    ratio_child();
}

#[test]
fn chosen_users_and_sessions_are_always_traced() {
    let rec = Recorder::with(|b| {
        b.sampler(Sampler::Ratio(0.0))
            .always_sample_users(["vip-user"])
            .always_sample_sessions(["debug-session".to_owned()])
    });
    Scope::user_only("vip-user").run(user_request);
    Scope::user_only("someone-else").run(user_request);
    Scope::session("debug-session").run(user_request);
    Scope::session("other-session").run(user_request);
    user_request();
    assert_eq!(sampling::sampling_stats()["user_request"], stats(5, 2));
    let spans = rec.spans();
    let roots: Vec<_> = spans.all("user_request").collect();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0].str("user.id"), Some("vip-user"));
    assert_eq!(roots[1].str("session.id"), Some("debug-session"));
    for root in roots {
        assert_eq!(root.f64("honeyhive.sample_rate"), Some(1.0));
        assert_eq!(spans.children_of(root).len(), 1, "the whole trace is kept");
    }
}

// ---------------------------------------------------------------------------------------------
// Adaptive: a target number of traces per second per root operation.

#[trace(event_type = "chain")]
fn busy_operation() {}

#[trace(event_type = "chain")]
fn quiet_operation() {}

#[test]
fn adaptive_sampling_converges_to_the_target_per_operation() {
    const TARGET: f64 = 10.0;
    const RUN: f64 = 120.0;
    const WARM_UP: f64 = 20.0;
    let clock = ManualClock::new();
    let rec = Recorder::with(|b| {
        b.adaptive_sampling(
            Adaptive::new(TARGET)
                .window(Duration::from_secs(1))
                .clock(clock.clone()),
        )
    });
    sampling::seed_thread_rng(14);
    // Poisson arrivals: `busy` at 10x the target, `quiet` at 0.1x, interleaved in time.
    let mut rng = TestRng(99);
    let next = |rate: f64, rng: &mut TestRng| -rng.unit().ln() / rate;
    let (mut t_busy, mut t_quiet) = (next(100.0, &mut rng), next(1.0, &mut rng));
    let mut now = 0.0;
    let mut warm: Option<std::collections::BTreeMap<&str, OperationStats>> = None;
    loop {
        let (t, busy) = if t_busy < t_quiet {
            (t_busy, true)
        } else {
            (t_quiet, false)
        };
        if t >= RUN {
            break;
        }
        clock.advance(Duration::from_secs_f64(t - now));
        now = t;
        if warm.is_none() && now >= WARM_UP {
            warm = Some(sampling::sampling_stats());
        }
        if busy {
            busy_operation();
            t_busy += next(100.0, &mut rng);
        } else {
            quiet_operation();
            t_quiet += next(1.0, &mut rng);
        }
    }
    let warm = warm.unwrap();
    let end = sampling::sampling_stats();

    // 10x the target: within 10% of the target once converged.
    let kept = end["busy_operation"].sampled - warm["busy_operation"].sampled;
    let per_second = kept as f64 / (RUN - WARM_UP);
    assert!(
        (per_second - TARGET).abs() <= TARGET * 0.10,
        "busy: {per_second:.2} traces/s kept, target {TARGET}"
    );
    // 0.1x the target: every trace kept.
    let quiet = end["quiet_operation"];
    assert!(quiet.seen > 80, "{quiet:?}");
    assert_eq!(quiet.sampled, quiet.seen);

    let spans = rec.spans();
    assert_eq!(
        spans.all("busy_operation").count() as u64,
        end["busy_operation"].sampled
    );
    // Roots carry the adaptive probability they were kept with: about 0.1 once converged.
    let last = spans
        .all("busy_operation")
        .last()
        .unwrap()
        .f64("honeyhive.sample_rate")
        .unwrap();
    assert!((last - 0.1).abs() < 0.02, "{last}");
    for q in spans.all("quiet_operation") {
        assert_eq!(q.f64("honeyhive.sample_rate"), Some(1.0));
    }
}

// ---------------------------------------------------------------------------------------------
// Roots under an extracted context (`propagation::extract(..).run`): the same decision as any
// root, counted, with their rate.

const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331";

fn from_caller(flags: &str, baggage: Option<&str>) -> honeyhive_runtime::propagation::Remote {
    let mut headers =
        std::collections::HashMap::from([("traceparent".to_owned(), format!("{CALLER}-{flags}"))]);
    if let Some(b) = baggage {
        headers.insert("baggage".to_owned(), b.to_owned());
    }
    honeyhive_runtime::propagation::extract(&headers)
}

/// A sampled caller with a trace of its own (from `rng`), and `tracestate`: decisions are made
/// from the trace id, so each call of a loop needs its own.
fn from_callers_trace(
    rng: &mut TestRng,
    tracestate: Option<&str>,
) -> honeyhive_runtime::propagation::Remote {
    let trace = (u128::from(rng.next()) << 64) | u128::from(rng.next());
    let mut headers = std::collections::HashMap::from([(
        "traceparent".to_owned(),
        format!("00-{trace:032x}-b7ad6b7169203331-03"),
    )]);
    if let Some(ts) = tracestate {
        headers.insert("tracestate".to_owned(), ts.to_owned());
    }
    honeyhive_runtime::propagation::extract(&headers)
}

#[test]
fn under_an_extracted_context_a_parent_based_sampler_keeps_the_callers_flag_and_counts_the_root() {
    let rec = Recorder::with(|b| b.sampler(Sampler::ParentBased(RootSampler::AlwaysOff)));
    assert_eq!(from_caller("01", None).run(handler), 2);
    assert_eq!(from_caller("00", None).run(handler), 2);
    assert_eq!(sampling::sampling_stats()["handler"], stats(2, 1));
    let spans = rec.spans();
    assert_eq!(spans.names(), ["handler_step", "handler"]);
    let root = spans.get("handler");
    assert_eq!(
        root.trace_id(),
        remote_parent(TraceFlags::SAMPLED).trace_id()
    );
    assert_eq!(root.parent_span_id, SpanId::from(0xb7ad_6b71_6920_3331_u64));
    assert!(root.parent_span_is_remote);
    drop(rec);

    // A rate declared on the root still thins a sampled caller's trace, and is carried (the
    // caller kept it with probability 1: `ot=th:0`).
    let rec = Recorder::with(|b| b.sampler(Sampler::ParentBased(RootSampler::AlwaysOn)));
    let mut rng = TestRng(21);
    for _ in 0..400 {
        from_callers_trace(&mut rng, Some("ot=th:0")).run(quarter);
    }
    let kept = sampling::sampling_stats()["quarter"];
    assert_eq!(kept.seen, 400);
    // Tolerance 30% (about 3.5 standard deviations of a binomial(400, 0.25)).
    assert!(within(kept.sampled, 100.0, 0.30), "{kept:?}");
    for r in rec.spans().all("quarter") {
        assert_eq!(r.f64("honeyhive.sample_rate"), Some(0.25));
        assert!(r.parent_span_is_remote);
    }
    drop(rec);
    // A caller that sent no threshold kept the trace with a probability unknown here, so the
    // trace's is unknown too: none is claimed.
    let rec = Recorder::with(|b| b.sampler(Sampler::ParentBased(RootSampler::AlwaysOn)));
    for _ in 0..64 {
        from_callers_trace(&mut rng, None).run(quarter);
    }
    let spans = rec.spans();
    assert!(spans.all("quarter").count() > 0);
    for r in spans.all("quarter") {
        assert_eq!(r.f64("honeyhive.sample_rate"), None);
    }
}

#[trace(sample_rate = 0.25)]
fn quarter() {}

#[test]
fn under_an_extracted_context_other_samplers_apply_their_rules_users_and_rates() {
    // Rules decide whatever the caller's flag says.
    let rec = Recorder::with(|b| {
        b.sampler(Sampler::AlwaysOff)
            .sampling_rule(Rule::new(1.0).name("handler"))
    });
    from_caller("00", None).run(handler);
    from_caller("01", None).run(ratio_root);
    assert_eq!(sampling::sampling_stats()["handler"], stats(1, 1));
    assert_eq!(sampling::sampling_stats()["ratio_root"], stats(1, 0));
    let spans = rec.spans();
    assert_eq!(spans.names(), ["handler_step", "handler"]);
    assert_eq!(spans.get("handler").f64("honeyhive.sample_rate"), Some(1.0));
    assert!(spans.get("handler").parent_span_is_remote);
    drop(rec);

    // Always-sampled users and sessions, here from the caller's baggage.
    let rec = Recorder::with(|b| {
        b.sampler(Sampler::Ratio(0.0))
            .always_sample_users(["vip-user"])
            .always_sample_sessions(["debug-session"])
    });
    from_caller("01", Some("user_id=vip-user")).run(user_request);
    from_caller("01", Some("session_id=debug-session")).run(user_request);
    from_caller("01", Some("user_id=someone-else")).run(user_request);
    assert_eq!(sampling::sampling_stats()["user_request"], stats(3, 2));
    let spans = rec.spans();
    let roots: Vec<_> = spans.all("user_request").collect();
    assert_eq!(roots[0].str("user.id"), Some("vip-user"));
    assert_eq!(roots[1].str("session.id"), Some("debug-session"));
    for root in roots {
        assert_eq!(root.f64("honeyhive.sample_rate"), Some(1.0));
    }
    drop(rec);

    // The ratio, at its rate.
    let rec = Recorder::with(|b| b.sampler(Sampler::Ratio(0.2)));
    let mut rng = TestRng(22);
    for _ in 0..2000 {
        from_callers_trace(&mut rng, None).run(ratio_root);
    }
    let root = sampling::sampling_stats()["ratio_root"];
    assert_eq!(root.seen, 2000);
    // Tolerance 15% (about 4.2 standard deviations of a binomial(2000, 0.2)).
    assert!(within(root.sampled, 400.0, 0.15), "{root:?}");
    for r in rec.spans().all("ratio_root") {
        assert_eq!(r.f64("honeyhive.sample_rate"), Some(P_FIFTH));
    }
    drop(rec);

    // The adaptive rate (here its initial rate, before a window closes).
    let clock = ManualClock::new();
    let rec = Recorder::with(|b| {
        b.sampler(Sampler::AlwaysOn)
            .adaptive_sampling(Adaptive::new(1000.0).initial_rate(0.5).clock(clock.clone()))
    });
    let mut rng = TestRng(23);
    for _ in 0..1000 {
        from_callers_trace(&mut rng, None).run(ratio_root);
    }
    let root = sampling::sampling_stats()["ratio_root"];
    assert_eq!(root.seen, 1000);
    // Tolerance 15% (about 4.7 standard deviations of a binomial(1000, 0.5)).
    assert!(within(root.sampled, 500.0, 0.15), "{root:?}");
    for r in rec.spans().all("ratio_root") {
        assert_eq!(r.f64("honeyhive.sample_rate"), Some(0.5));
    }
}

// ---------------------------------------------------------------------------------------------
// Rates that are not numbers, from code and from OTEL_TRACES_SAMPLER_ARG: one rule, no panic.

#[trace(event_type = "chain")]
fn nan_configured_root() -> u32 {
    7
}

type Configure = fn(honeyhive_runtime::Builder) -> honeyhive_runtime::Builder;

#[test]
fn rates_that_are_not_numbers_keep_every_trace_and_never_panic() {
    let configurations: [(&str, Configure); 5] = [
        ("Sampler::Ratio", |b| b.sampler(Sampler::Ratio(f64::NAN))),
        ("RootSampler::Ratio", |b| {
            b.sampler(Sampler::ParentBased(RootSampler::Ratio(f64::NAN)))
        }),
        ("Rule::new", |b| b.sampling_rule(Rule::new(f64::NAN))),
        ("Adaptive::new", |b| {
            b.adaptive_sampling(Adaptive::new(f64::NAN).window(Duration::from_secs(1)))
        }),
        ("Adaptive::initial_rate", |b| {
            b.adaptive_sampling(Adaptive::new(1e9).initial_rate(f64::NAN))
        }),
    ];
    for (what, configure) in configurations {
        let rec = Recorder::with(configure);
        sampling::seed_thread_rng(21);
        for _ in 0..200 {
            assert_eq!(nan_configured_root(), 7);
        }
        assert_eq!(
            sampling::sampling_stats()["nan_configured_root"],
            stats(200, 200),
            "{what}(NaN)"
        );
        for root in rec.spans().all("nan_configured_root") {
            assert_eq!(root.f64("honeyhive.sample_rate"), Some(1.0), "{what}(NaN)");
        }
    }

    // A floor that is not a number: windows close and recompute their rate with it, on the
    // traced call's thread.
    let clock = ManualClock::new();
    let rec = Recorder::with(|b| {
        b.adaptive_sampling(
            Adaptive::new(1.0)
                .window(Duration::from_secs(1))
                .min_rate(f64::NAN)
                .clock(clock.clone()),
        )
    });
    sampling::seed_thread_rng(22);
    for _ in 0..50 {
        assert_eq!(nan_configured_root(), 7);
        clock.advance(Duration::from_millis(300));
    }
    assert_eq!(
        sampling::sampling_stats()["nan_configured_root"],
        stats(50, 50),
        "a floor of NaN is 1: every trace kept"
    );
    assert_eq!(rec.spans().all("nan_configured_root").count(), 50);
}

/// The sampler and warnings `OTEL_TRACES_SAMPLER` / `_ARG` resolve to.
fn sampler_from_env(name: &str, arg: Option<&str>) -> (Sampler, Vec<String>) {
    let (name, arg) = (name.to_owned(), arg.map(str::to_owned));
    let settings = honeyhive_runtime::Builder::new()
        .env(move |key| match key {
            "OTEL_TRACES_SAMPLER" => Some(name.clone()),
            "OTEL_TRACES_SAMPLER_ARG" => arg.clone(),
            _ => None,
        })
        .resolve();
    (settings.sampler, settings.warnings)
}

#[test]
fn otel_traces_sampler_names_are_case_insensitive_and_bad_ratios_are_warned_about() {
    for (name, sampler) in [
        ("ALWAYS_OFF", Sampler::AlwaysOff),
        ("Always_On", Sampler::AlwaysOn),
        (
            " ParentBased_Always_Off ",
            Sampler::ParentBased(RootSampler::AlwaysOff),
        ),
    ] {
        assert_eq!(sampler_from_env(name, None), (sampler, vec![]), "{name:?}");
        assert_eq!(
            Sampler::from_otel_env(name, None),
            Some(sampler),
            "{name:?}"
        );
    }
    assert_eq!(
        sampler_from_env("TraceIdRatio", Some(" 0.25 ")),
        (Sampler::Ratio(0.25), vec![])
    );
    assert_eq!(
        sampler_from_env("traceidratio", Some("0")),
        (Sampler::Ratio(0.0), vec![])
    );

    // Not a probability: 1.0, the specification's default, and a warning that says so.
    for bad in ["abc", "0,1", "5", "-1", "NaN", "inf"] {
        let (sampler, warnings) = sampler_from_env("parentbased_traceidratio", Some(bad));
        assert_eq!(
            sampler,
            Sampler::ParentBased(RootSampler::Ratio(1.0)),
            "{bad:?}"
        );
        assert_eq!(warnings.len(), 1, "{bad:?}: {warnings:?}");
        let warning = &warnings[0];
        assert!(
            warning.contains("OTEL_TRACES_SAMPLER_ARG")
                && warning.contains(&format!("{bad:?}"))
                && warning.contains("1.0"),
            "{warning}"
        );
    }
    // Empty is unset (as the specification says): a ratio sampler without its ratio.
    for missing in [Some(""), Some("  "), None] {
        let (sampler, warnings) = sampler_from_env("traceidratio", missing);
        assert_eq!(sampler, Sampler::Ratio(1.0), "{missing:?}");
        assert_eq!(warnings.len(), 1, "{missing:?}: {warnings:?}");
        assert!(
            warnings[0].contains("OTEL_TRACES_SAMPLER_ARG") && warnings[0].contains("1.0"),
            "{warnings:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// `#[retry] #[trace(sample_rate)]` at a root: every attempt is a root of its own trace, and
// follows the first attempt's decision.

fn third_time_lucky(calls: &std::sync::atomic::AtomicU32) -> Result<u32, String> {
    let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n >= 3 {
        Ok(n)
    } else {
        Err(format!("attempt {n} failed"))
    }
}

#[honeyhive_runtime::retry(max_attempts = 3, backoff = constant(0ms))]
#[trace(sample_rate = 0.5)]
fn retried_root(calls: &std::sync::atomic::AtomicU32) -> Result<u32, String> {
    third_time_lucky(calls)
}

#[test]
fn retried_roots_are_counted_as_recorded_and_carry_the_rate_they_stand_for() {
    let rec = Recorder::start();
    sampling::seed_thread_rng(5);
    for _ in 0..200 {
        let calls = std::sync::atomic::AtomicU32::new(0);
        assert_eq!(retried_root(&calls), Ok(3));
    }
    let spans = rec.spans();
    let roots: Vec<_> = spans.all("retried_root").collect();
    let st = sampling::sampling_stats()["retried_root"];
    assert_eq!(st.seen, 600);
    assert_eq!(st.sampled, roots.len() as u64, "counted as recorded");
    assert_eq!(roots.len() % 3, 0, "calls recorded whole: {}", roots.len());
    for root in &roots {
        // Each call is recorded with probability 0.5, so each of its attempts stands for 2.
        assert_eq!(root.f64("honeyhive.sample_rate"), Some(0.5));
        // An attempt whose own randomness fails 0.5 claims no threshold it does not pass.
        let state = root.span_context.trace_state().header();
        if randomness_of(root) >= 0x80_0000_0000_0000 {
            assert_eq!(state, "ot=th:8");
        } else {
            assert_eq!(state, "");
        }
    }
    // Σ 1/rate estimates the 600 attempts. Tolerance 20% (about 5 standard deviations of
    // 2 x 3 x binomial(200, 0.5)).
    let estimate: f64 = roots
        .iter()
        .map(|r| 1.0 / r.f64("honeyhive.sample_rate").unwrap())
        .sum();
    assert!((estimate - 600.0).abs() <= 120.0, "{estimate}");
}

fn randomness_of(span: &honeyhive_runtime::testing::FinishedSpan) -> u64 {
    u64::from_be_bytes(span.trace_id().to_bytes()[8..].try_into().unwrap()) & ((1 << 56) - 1)
}
