//! Trace analysis over real spans: the critical path of concurrent traced calls, the
//! per-model summary and queries over `Recorder` spans, and the in-process store of recent
//! traces (`Builder::trace_store`).

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use honeyhive_runtime::analysis::alerts::{AlertRule, Monitor};
use honeyhive_runtime::analysis::{self, GroupBy, Query, Trace, TraceFile, TraceStore};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{
    Conventions, EventType, LlmCall, SpanRef, bind_current, current_span_ref, feedback, trace,
};

/// Runs on its own thread until the model call lets it go: it starts before the cache lookup
/// and ends while the model call runs. The channels fix that order, not timing.
#[trace(event_type = "retriever", skip_all)]
fn slow_search(started: &mpsc::Sender<()>, go: &mpsc::Receiver<()>) -> usize {
    started.send(()).expect("the request waits for this");
    go.recv().expect("the request lets the search go");
    3
}

/// Runs while `slow_search` does.
#[trace(event_type = "tool")]
fn quick_cache(question: &str) -> Option<String> {
    question.is_empty().then(String::new)
}

/// The model call lets the search finish, waits for it, then ends.
#[trace(event_type = "model", skip_all)]
fn generate(question: &str, finish_search: impl FnOnce() -> usize) -> String {
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .usage(120, 30)
        .cost_usd(0.002)
        .record();
    let docs = finish_search();
    format!("{docs} documents about {question}")
}

#[trace(event_type = "chain")]
fn concurrent_request(question: &str) -> String {
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let search = std::thread::spawn(bind_current(move || slow_search(&started_tx, &go_rx)));
    started_rx.recv().expect("the search started");
    let _ = quick_cache(question);
    generate(question, move || {
        go_tx.send(()).expect("the search waits");
        search.join().expect("the search thread")
    })
}

fn only_trace(rec: &Recorder) -> Trace {
    let mut traces = rec.spans().traces();
    assert_eq!(traces.len(), 1, "{traces:?}");
    traces.remove(0)
}

#[test]
fn the_critical_path_of_concurrent_calls_leaves_out_one_that_overlapped_a_later_call() {
    let rec = Recorder::start();
    let answer = concurrent_request("rust");
    assert_eq!(answer, "3 documents about rust");
    let trace = only_trace(&rec);
    let span = |name: &str| {
        trace
            .spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };
    let (search, model, cache) = (span("slow_search"), span("generate"), span("quick_cache"));
    // The set-up: the search spans the cache lookup and ends inside the model call. (The
    // unit tests of `critical_path` and the console pin the case where it is also the
    // longest child; here the order is what matters, and it does not depend on timing.)
    assert!(search.start_unix_nanos < cache.start_unix_nanos);
    assert!(cache.end_unix_nanos <= model.start_unix_nanos);
    assert!(search.end_unix_nanos > model.start_unix_nanos);
    assert!(search.end_unix_nanos <= model.end_unix_nanos);

    let path = trace.critical_path();
    let names: Vec<&str> = path.iter().map(|s| s.span.name.as_str()).collect();
    // The model call ended last; before it started, the cache lookup was the last to end.
    // The search decided nothing: it was still running when the model call started, and
    // ended before it, so neither waited for it.
    assert_eq!(names, ["concurrent_request", "quick_cache", "generate"]);
    assert_eq!(path[0].depth, 0);
    assert!(path[1..].iter().all(|s| s.depth == 1));
    // The steps' own times add up to the root's duration.
    let on_path: u64 = path.iter().map(|s| s.self_nanos).sum();
    assert_eq!(on_path, path[0].span.duration_nanos());
    assert_eq!(path[1].self_nanos, cache.duration_nanos());
}

#[trace(event_type = "model", name = "chat")]
fn chat(model: &'static str, provider: &'static str, fail: bool) -> Result<String, String> {
    LlmCall::new(model)
        .provider(provider)
        .usage(100, 10)
        .cost_usd(0.01)
        .record();
    if fail {
        Err("429 rate limited".to_owned())
    } else {
        Ok(format!("{model} says hi"))
    }
}

#[trace(event_type = "tool")]
fn lookup(city: &str) -> usize {
    city.len()
}

#[trace(event_type = "chain")]
fn agent(turn: usize) -> usize {
    let _ = chat("gpt-4o-mini", "openai", turn == 2);
    let _ = chat("gpt-4o-mini", "openai", false);
    if turn.is_multiple_of(2) {
        let _ = chat("claude-sonnet-4", "anthropic", false);
    }
    lookup("Paris")
}

#[test]
fn the_per_model_summary_counts_calls_errors_tokens_and_cost() {
    let rec = Recorder::start();
    for turn in 0..4 {
        agent(turn);
    }
    let traces = rec.spans().traces();
    assert_eq!(traces.len(), 4);
    let rows = analysis::summarize(&traces);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mini = &rows[0];
    assert_eq!(mini.model, "gpt-4o-mini");
    assert_eq!(mini.provider.as_deref(), Some("openai"));
    assert_eq!((mini.calls, mini.errors), (8, 1));
    assert_eq!((mini.input_tokens, mini.output_tokens), (800, 80));
    assert!((mini.cost_usd - 0.08).abs() < 1e-9, "{mini:?}");
    assert!(mini.p50 <= mini.p95 && mini.p95 <= mini.max);
    let claude = &rows[1];
    assert_eq!(
        (
            claude.model.as_str(),
            claude.provider.as_deref(),
            claude.calls
        ),
        ("claude-sonnet-4", Some("anthropic"), 2)
    );
}

#[test]
fn the_summary_reads_either_convention_our_pipeline_writes() {
    for conventions in [Conventions::GenAi, Conventions::OpenInference] {
        let rec = Recorder::with(|b| b.conventions(conventions));
        for turn in 0..4 {
            agent(turn);
        }
        let rows = analysis::summarize(&rec.spans().traces());
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.model.as_str(),
                    r.provider.as_deref(),
                    r.calls,
                    r.errors,
                    r.input_tokens,
                    r.output_tokens,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("gpt-4o-mini", Some("openai"), 8, 1, 800, 80),
                ("claude-sonnet-4", Some("anthropic"), 2, 0, 200, 20),
            ],
            "{conventions:?}"
        );
        assert!((rows[0].cost_usd - 0.08).abs() < 1e-9, "{conventions:?}");
    }
}

#[test]
fn queries_filter_group_and_aggregate_recorder_spans() {
    let rec = Recorder::start();
    for turn in 0..4 {
        agent(turn);
    }
    let traces = rec.spans().traces();

    let q = || Query::over(&traces);
    assert_eq!(
        q().count(),
        4 * 2 + 2 + 4 + 4,
        "4 agents, 10 chats, 4 lookups"
    );
    assert_eq!(q().roots().count(), 4);
    assert_eq!(q().event_type(EventType::Model).count(), 10);
    assert_eq!(q().event_type(EventType::Tool).name("lookup").count(), 4);
    assert_eq!(q().errors().count(), 1);
    assert_eq!(q().errors().name("chat").count(), 1);
    assert_eq!(q().attr_eq("honeyhive_inputs.turn", 2).count(), 1);
    assert_eq!(q().attr_eq("honeyhive_inputs.city", "Paris").count(), 4);
    assert_eq!(q().attr_exists("gen_ai.usage.input_tokens").count(), 10);
    assert_eq!(q().model("claude-sonnet-4").count(), 2);
    // A time range, from the third turn's start on: its 5 spans and the fourth turn's 4.
    let third = q().roots().attr_eq("honeyhive_inputs.turn", 2).spans()[0].start_unix_nanos;
    let at = |nanos: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(q().started_between(at(third), later).count(), 9);
    assert_eq!(q().started_between(at(0), at(third)).count(), 9);
    let longest = q().aggregate().max;
    assert_eq!(q().min_duration(longest).count(), 1);
    assert_eq!(q().max_duration(longest).count(), q().count() - 1);

    let models = q().event_type(EventType::Model).aggregate();
    assert_eq!((models.count, models.errors), (10, 1));
    assert!((models.error_rate() - 0.1).abs() < 1e-12);
    assert_eq!((models.input_tokens, models.output_tokens), (1000, 100));
    assert!((models.cost_usd - 0.1).abs() < 1e-9);
    assert!(models.p50 <= models.p95 && models.p95 <= models.p99 && models.p99 <= models.max);

    let by_model = q().group_by(GroupBy::Model);
    let keys: Vec<(&str, usize)> = by_model
        .iter()
        .map(|g| (g.key.as_str(), g.stats.count))
        .collect();
    assert_eq!(keys, [("gpt-4o-mini", 8), ("claude-sonnet-4", 2)]);
    let by_provider = q().group_by(GroupBy::Attribute("gen_ai.provider.name".into()));
    assert_eq!(by_provider[0].key, "openai");
    assert_eq!(by_provider[0].stats.errors, 1);
    let by_name = q().group_by(GroupBy::Name);
    assert_eq!(
        by_name
            .iter()
            .map(|g| (g.key.as_str(), g.stats.count))
            .collect::<Vec<_>>(),
        [("chat", 10), ("agent", 4), ("lookup", 4)]
    );
}

#[test]
fn the_trace_store_keeps_recent_traces_for_the_same_analysis() {
    let store = TraceStore::new(4 << 20);
    let rec = Recorder::with(|b| b.trace_store(store.clone()));
    for turn in 0..4 {
        agent(turn);
    }
    concurrent_request("store");
    assert!(rec.guard().force_flush());

    let stats = store.stats();
    assert_eq!((stats.traces, stats.evicted), (5, 0), "{stats:?}");
    assert_eq!(stats.spans, rec.spans().len());
    let traces = store.traces();
    // What the backends got: rendered attributes, cost included.
    let rows = analysis::summarize(&traces);
    assert_eq!(rows[0].model, "gpt-4o-mini");
    assert_eq!(rows[0].calls, 9);
    assert_eq!(store.query().roots().count(), 5);
    assert_eq!(
        store
            .query()
            .event_type(EventType::Model)
            .errors()
            .aggregate()
            .count,
        1
    );
    let concurrent = traces
        .iter()
        .find(|t| t.root().is_some_and(|r| r.name == "concurrent_request"))
        .expect("the concurrent trace");
    let names: Vec<&str> = concurrent
        .critical_path()
        .iter()
        .map(|s| s.span.name.as_str())
        .collect();
    assert_eq!(names, ["concurrent_request", "quick_cache", "generate"]);
    assert_eq!(store.get(concurrent.trace_id).as_ref(), Some(concurrent));
}

#[test]
fn a_full_store_evicts_its_oldest_traces_and_counts_them() {
    // Room for a few small traces only.
    let store = TraceStore::new(64 << 10);
    let rec = Recorder::with(|b| b.trace_store(store.clone()));
    for turn in 0..40 {
        agent(turn);
        assert!(rec.guard().force_flush());
    }
    let stats = store.stats();
    assert!(stats.bytes <= stats.max_bytes, "{stats:?}");
    assert!(stats.evicted > 0, "{stats:?}");
    assert_eq!(stats.added, 40);
    assert_eq!(u64::try_from(stats.traces).unwrap() + stats.evicted, 40);
    // The newest are kept, oldest first.
    let turns: Vec<i64> = store
        .query()
        .roots()
        .spans()
        .iter()
        .filter_map(|s| match s.attr("honeyhive_inputs.turn") {
            Some(honeyhive_runtime::Value::Int(t)) => Some(*t),
            _ => None,
        })
        .collect();
    let kept = i64::try_from(stats.traces).unwrap();
    assert_eq!(turns, (40 - kept..40).collect::<Vec<_>>());
    // Export went on as usual.
    assert_eq!(rec.spans().traces().len(), 40);
}

#[trace(event_type = "chain")]
fn request(fail: bool) -> Result<SpanRef, String> {
    let answer = current_span_ref().expect("a sampled span");
    if fail {
        Err("boom".to_owned())
    } else {
        Ok(answer)
    }
}

/// The trace id of a span reference, as the analysis model has it.
fn trace_id(span_ref: &SpanRef) -> u128 {
    u128::from_be_bytes(span_ref.trace_id().to_bytes())
}

#[test]
fn feedback_on_a_request_is_not_a_second_request() {
    let store = TraceStore::new(4 << 20);
    let rec = Recorder::with(|b| b.trace_store(store.clone()));
    let mut refs = Vec::new();
    for i in 0..10 {
        // Half of them fail; `Err` carries no reference, so take it from the span itself.
        let span_ref = if let Ok(span_ref) = request(i % 2 == 0) {
            span_ref
        } else {
            assert!(rec.guard().force_flush());
            let trace = store.traces().pop().expect("the failed request");
            let root = trace.root().expect("its root");
            SpanRef::new(trace.trace_id.into(), root.span_id.into()).expect("valid ids")
        };
        refs.push(span_ref);
    }
    // Two ratings of every answer, after the requests ended: spans of the requests' traces
    // under a remote parent (the rating may come from another process).
    for span_ref in &refs {
        feedback(span_ref).score(0.0).send();
        feedback(span_ref).name("second").score(1.0).send();
    }
    assert!(rec.guard().force_flush());
    assert_eq!(store.query().name_prefix("feedback").count(), 20);
    assert_eq!(store.query().roots().count(), 10);
    let by_name = store.query().roots().group_by(GroupBy::Name);
    assert_eq!(
        by_name
            .iter()
            .map(|g| (g.key.as_str(), g.stats.count))
            .collect::<Vec<_>>(),
        [("request", 10)]
    );
    // The default error-rate rule looks at the requests: 5 of 10 failed.
    let mut errors = Monitor::new(AlertRule::error_rate(
        "errors",
        0.4,
        Duration::from_hours(1),
    ));
    for trace in store.traces() {
        errors.observe_trace(&trace);
    }
    assert_eq!(errors.value(SystemTime::now()), (Some(0.5), 10));
}

#[test]
fn feedback_after_many_other_requests_joins_its_trace_in_the_store() {
    let store = TraceStore::new(16 << 20);
    let rec = Recorder::with(|b| b.trace_store(store.clone()));
    let rated = request(false).unwrap();
    for _ in 0..200 {
        let _ = request(false);
    }
    assert!(rec.guard().force_flush());
    feedback(&rated).comment("spot on").send();
    assert!(rec.guard().force_flush());
    let trace = store.get(trace_id(&rated)).expect("held");
    let mut names: Vec<&str> = trace.spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["feedback user_feedback", "request"]);
    let held = store.traces();
    assert_eq!(held.len(), 201);
    assert_eq!(
        held.iter()
            .filter(|t| t.trace_id == trace_id(&rated))
            .count(),
        1
    );
}

#[trace(event_type = "model")]
fn runaway_count() {
    // A provider's corrupt usage: `u64::MAX` is recorded as `i64::MAX`.
    LlmCall::new("gpt-4o-mini")
        .usage(u64::MAX, u64::MAX)
        .record();
}

#[test]
fn token_totals_of_corrupt_counts_saturate() {
    let rec = Recorder::start();
    for _ in 0..3 {
        runaway_count();
    }
    let traces = rec.spans().traces();
    let rows = analysis::summarize(&traces);
    assert_eq!(
        (rows[0].calls, rows[0].input_tokens, rows[0].output_tokens),
        (3, u64::MAX, u64::MAX)
    );
    let all = Query::over(&traces).aggregate();
    assert_eq!((all.input_tokens, all.output_tokens), (u64::MAX, u64::MAX));
}

#[test]
fn a_trace_file_saved_with_a_byte_order_mark_keeps_its_first_line() {
    let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"first","startTimeUnixNano":"1","endTimeUnixNano":"3"}]}]}]}"#;
    let text = format!("\u{feff}{line}\n");
    let file = TraceFile::from_reader(text.as_bytes()).unwrap();
    assert_eq!(file.skipped_lines, 0, "{:?}", file.skipped);
    assert_eq!(file.traces[0].spans[0].name, "first");
}
