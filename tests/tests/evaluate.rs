//! `#[trace(evaluate = ..)]`: evaluators score sampled calls; their results are
//! `gen_ai.evaluation.result` events and `honeyhive_metrics.<name>` attributes, on the traced
//! span (sync evaluators) or on an `evaluator` child span (async ones, which run off the
//! caller's task). An evaluator that fails or panics is recorded, never propagated.

// Evaluators take the output by reference, whatever its type (`&String`, `&u32`).
#![allow(clippy::ptr_arg, clippy::trivially_copy_pass_by_ref)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use honeyhive_runtime::evaluate::{self, EvalInput, Evaluation};
use honeyhive_runtime::retry::TestClock;
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{retry, trace, with_request_id};
use opentelemetry::trace::Event;

const WAIT: Duration = Duration::from_secs(20);

fn results(span: &FinishedSpan) -> Vec<&Event> {
    span.events_named(evaluate::EVENT).collect()
}

fn result_named<'a>(span: &'a FinishedSpan, name: &str) -> &'a Event {
    span.events_named(evaluate::EVENT)
        .find(|e| {
            FinishedSpan::event_attr(e, evaluate::NAME).map(opentelemetry::Value::as_str)
                == Some(name.into())
        })
        .unwrap_or_else(|| panic!("no evaluation result named {name} on {}", span.name))
}

fn attr_str(event: &Event, key: &str) -> Option<String> {
    FinishedSpan::event_attr(event, key).map(|v| v.as_str().into_owned())
}

fn attr_f64(event: &Event, key: &str) -> Option<f64> {
    match FinishedSpan::event_attr(event, key)? {
        opentelemetry::Value::F64(f) => Some(*f),
        _ => None,
    }
}

// --- sync evaluators -------------------------------------------------------------------

fn contains_city(input: &EvalInput, output: &String) -> Evaluation {
    let city = input.text("city").unwrap_or_default().into_owned();
    let hit = output.contains(&city);
    Evaluation::score(if hit { 1.0 } else { 0.0 })
        .with_label(if hit { "grounded" } else { "ungrounded" })
        .with_explanation(format!("looked for {city:?}"))
}

fn short(_: &EvalInput, output: &String) -> bool {
    output.len() < 40
}

#[trace(event_type = "model", evaluate(contains_city, short))]
fn forecast(city: &str) -> String {
    format!("Sunny in {city}")
}

#[test]
fn a_sync_evaluator_records_a_result_event_and_a_metric_on_the_span() {
    let rec = Recorder::start();
    assert_eq!(forecast("Paris"), "Sunny in Paris");
    let spans = rec.spans();
    let span = spans.get("forecast");
    let e = result_named(span, "contains_city");
    assert_eq!(attr_f64(e, evaluate::SCORE), Some(1.0));
    assert_eq!(attr_str(e, evaluate::LABEL).as_deref(), Some("grounded"));
    assert_eq!(
        attr_str(e, evaluate::EXPLANATION).as_deref(),
        Some("looked for \"Paris\"")
    );
    assert_eq!(span.f64("honeyhive_metrics.contains_city"), Some(1.0));
    // A bool is a pass (1) or fail (0).
    let e = result_named(span, "short");
    assert_eq!(attr_str(e, evaluate::LABEL).as_deref(), Some("pass"));
    assert_eq!(span.f64("honeyhive_metrics.short"), Some(1.0));
    assert!(!span.is_error());
}

/// Generic over the output: fits any function, here one returning a type that is neither
/// `Debug` nor `Clone`, with a skipped argument.
fn always_half<T: ?Sized>(_: &EvalInput, _: &T) -> f64 {
    0.5
}

fn sees_inputs(input: &EvalInput, output: &Opaque) -> Evaluation {
    let names: Vec<&str> = input.inputs().map(|(n, _)| n).collect();
    Evaluation::label(format!("{names:?} {}", output.0)).named("inputs_seen")
}

struct Opaque(u32);
struct NotDebug;

#[trace(skip(secret), evaluate = always_half, evaluate = sees_inputs)]
fn opaque(n: u32, secret: NotDebug) -> Opaque {
    let NotDebug = secret;
    Opaque(n + 1)
}

#[test]
fn evaluators_take_any_output_type_and_see_the_captured_inputs() {
    let rec = Recorder::start();
    assert_eq!(opaque(41, NotDebug).0, 42);
    let spans = rec.spans();
    let span = spans.get("opaque");
    assert_eq!(results(span).len(), 2);
    assert_eq!(span.f64("honeyhive_metrics.always_half"), Some(0.5));
    // Renamed by the evaluation; a skipped argument is not an input.
    assert_eq!(
        span.str("honeyhive_metrics.inputs_seen"),
        Some("[\"n\"] 42")
    );
}

fn fails(_: &EvalInput, _: &u32) -> Result<f64, std::fmt::Error> {
    Err(std::fmt::Error)
}

fn panics(_: &EvalInput, _: &u32) -> f64 {
    panic!("the judge fell over")
}

fn nothing(_: &EvalInput, _: &u32) -> Option<f64> {
    None
}

#[trace(evaluate(fails, panics, nothing))]
fn steady(n: u32) -> u32 {
    n * 2
}

#[test]
fn a_failing_or_panicking_evaluator_is_recorded_and_the_caller_is_unaffected() {
    let rec = Recorder::start();
    assert_eq!(steady(21), 42);
    let spans = rec.spans();
    let span = spans.get("steady");
    assert!(!span.is_error(), "the call itself succeeded");
    let e = result_named(span, "fails");
    assert_eq!(attr_str(e, "error.type").as_deref(), Some("Error"));
    assert_eq!(
        attr_str(e, "exception.message").as_deref(),
        Some("an error occurred when formatting an argument")
    );
    let e = result_named(span, "panics");
    assert_eq!(attr_str(e, "error.type").as_deref(), Some("panic"));
    assert_eq!(
        attr_str(e, "exception.message").as_deref(),
        Some("the judge fell over")
    );
    // `None`: nothing to record.
    assert_eq!(results(span).len(), 2);
    assert_eq!(span.attr("honeyhive_metrics.fails"), None);
    assert_eq!(span.attr("honeyhive_metrics.panics"), None);
}

static COUNTED: AtomicU32 = AtomicU32::new(0);

fn counting(_: &EvalInput, _: &u32) -> f64 {
    COUNTED.fetch_add(1, Ordering::SeqCst);
    1.0
}

#[trace(sample_rate = 0.0, evaluate = counting)]
fn never_sampled(n: u32) -> u32 {
    n
}

#[trace(evaluate = counting)]
fn sampled(n: u32) -> u32 {
    n
}

#[test]
fn evaluators_run_only_for_sampled_calls() {
    {
        let rec = Recorder::start();
        COUNTED.store(0, Ordering::SeqCst);
        assert_eq!(never_sampled(7), 7);
        assert_eq!(
            COUNTED.load(Ordering::SeqCst),
            0,
            "unsampled: not evaluated"
        );
        assert_eq!(sampled(7), 7);
        assert_eq!(COUNTED.load(Ordering::SeqCst), 1);
        assert!(rec.spans().all("never_sampled").next().is_none());
        rec.shutdown();
    }
    // No pipeline at all: nothing is recorded, nothing evaluated.
    let _turn = Recorder::with(|b| b.disabled(true));
    assert_eq!(sampled(7), 7);
    assert_eq!(COUNTED.load(Ordering::SeqCst), 1);
}

// --- async evaluators ------------------------------------------------------------------

#[trace(event_type = "model")]
fn judge_model(prompt: &str) -> String {
    if prompt.contains("Paris") {
        "8/10".to_owned()
    } else {
        "2/10".to_owned()
    }
}

/// An LLM-as-judge shaped evaluator: owns what it reads, calls a (traced) model.
async fn judge(input: EvalInput) -> Evaluation {
    let answer = input.output_text().unwrap_or_default().into_owned();
    tokio::task::yield_now().await;
    let verdict = judge_model(&format!("Rate: {answer}"));
    let score: f64 = verdict.trim_end_matches("/10").parse().unwrap_or(0.0);
    Evaluation::score(score / 10.0).with_explanation(verdict)
}

static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits for the test to open the gate: the caller must have returned by then.
async fn gated(_: EvalInput) -> f64 {
    GATE.notified().await;
    1.0
}

#[trace(event_type = "chain", evaluate(async judge, async gated))]
async fn answer(question: &str) -> String {
    tokio::task::yield_now().await;
    format!("The capital is Paris ({question})")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_evaluator_runs_off_the_callers_task_as_a_child_span() {
    let rec = Recorder::start();
    // The caller returns while `gated` still waits: it is not awaited by the caller.
    let out = answer("France?").await;
    assert_eq!(out, "The capital is Paris (France?)");
    assert!(evaluate::pending() >= 1, "gated is still running");
    GATE.notify_one();
    assert!(evaluate::wait(WAIT));
    let spans = rec.spans();
    let span = spans.get("answer");
    assert!(
        results(span).is_empty(),
        "async results are on the children"
    );
    let judge = spans.get("judge");
    assert_eq!(judge.parent_span_id, span.span_id());
    assert_eq!(judge.trace_id(), span.trace_id());
    assert_eq!(judge.str("honeyhive_event_type"), Some("evaluator"));
    assert_eq!(judge.f64("honeyhive_metrics.judge"), Some(0.8));
    let e = result_named(judge, "judge");
    assert_eq!(attr_str(e, evaluate::EXPLANATION).as_deref(), Some("8/10"));
    // The judge's own model call is its child.
    let model = spans.get("judge_model");
    assert_eq!(model.parent_span_id, judge.span_id());
    assert_eq!(spans.get("gated").f64("honeyhive_metrics.gated"), Some(1.0));
}

async fn async_panics(_: EvalInput) -> f64 {
    tokio::task::yield_now().await;
    panic!("async judge fell over")
}

#[trace(evaluate(async async_panics))]
fn sync_caller(n: u32) -> u32 {
    n + 1
}

#[test]
fn without_a_runtime_async_evaluators_run_on_a_worker_thread_and_panics_are_recorded() {
    let rec = Recorder::start();
    assert_eq!(sync_caller(1), 2);
    assert!(evaluate::wait(WAIT));
    let spans = rec.spans();
    let child = spans.get("async_panics");
    assert_eq!(child.parent_span_id, spans.get("sync_caller").span_id());
    let e = result_named(child, "async_panics");
    assert_eq!(attr_str(e, "error.type").as_deref(), Some("panic"));
    assert_eq!(
        attr_str(e, "exception.message").as_deref(),
        Some("async judge fell over")
    );
}

// --- stacking --------------------------------------------------------------------------

fn ok_value(_: &EvalInput, output: &Result<u32, String>) -> Option<f64> {
    output.as_ref().ok().map(|&v| f64::from(v))
}

async fn async_ok(input: EvalInput) -> Option<f64> {
    input.output_text()?.parse().ok()
}

/// Fails on the first call, succeeds on the second.
fn flaky(calls: &AtomicU32) -> Result<u32, String> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 2 {
        Err(format!("attempt {n} failed"))
    } else {
        Ok(n)
    }
}

#[with_request_id]
#[trace(evaluate(ok_value, async async_ok))]
#[retry(backoff = constant(10ms), jitter = none)]
fn once_per_call(calls: &AtomicU32) -> Result<u32, String> {
    flaky(calls)
}

#[retry(backoff = constant(10ms), jitter = none)]
#[trace(evaluate = ok_value)]
#[with_request_id]
fn once_per_attempt(calls: &AtomicU32) -> Result<u32, String> {
    flaky(calls)
}

#[test]
fn evaluators_stack_with_retry_and_request_ids() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    assert_eq!(once_per_call(&AtomicU32::new(0)), Ok(2));
    assert_eq!(once_per_attempt(&AtomicU32::new(0)), Ok(2));
    assert!(evaluate::wait(WAIT));
    let spans = rec.spans();
    // `#[trace]` above `#[retry]`: one span, evaluated once, on the final result.
    let call = spans.get("once_per_call");
    assert_eq!(results(call).len(), 1);
    assert_eq!(call.f64("honeyhive_metrics.ok_value"), Some(2.0));
    let child = spans.get("async_ok");
    assert_eq!(child.f64("honeyhive_metrics.async_ok"), Some(2.0));
    assert_eq!(
        child.str("honeyhive.request_id"),
        call.str("honeyhive.request_id"),
        "the async evaluator's span carries the call's request id"
    );
    assert!(child.str("honeyhive.request_id").is_some());
    // `#[retry]` above `#[trace]`: each attempt is evaluated (the failed one records nothing).
    let attempts: Vec<_> = spans.all("once_per_attempt").collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].attr("honeyhive_metrics.ok_value"), None);
    assert_eq!(attempts[1].f64("honeyhive_metrics.ok_value"), Some(2.0));
}

#[trace(evaluate = always_half)]
async fn unit_async() {
    tokio::task::yield_now().await;
}

#[tokio::test]
async fn async_fns_and_unit_outputs_are_evaluated_too() {
    let rec = Recorder::start();
    unit_async().await;
    let spans = rec.spans();
    assert_eq!(
        spans.get("unit_async").f64("honeyhive_metrics.always_half"),
        Some(0.5)
    );
}

// --- scores ----------------------------------------------------------------------------

fn nan_score(_: &EvalInput, _: &u32) -> f64 {
    f64::NAN
}

/// A score set on the public field, past `Evaluation::score`.
fn infinite_score_with_label(_: &EvalInput, _: &u32) -> Evaluation {
    let mut e = Evaluation::label("odd");
    e.score = Some(f64::INFINITY);
    e
}

#[trace(evaluate(nan_score, infinite_score_with_label))]
fn scored(n: u32) -> u32 {
    n
}

#[test]
fn a_score_that_is_not_finite_is_not_recorded_as_feedback_ignores_one() {
    let rec = Recorder::start();
    assert_eq!(scored(3), 3);
    let spans = rec.spans();
    let span = spans.get("scored");
    let e = result_named(span, "nan_score");
    assert_eq!(FinishedSpan::event_attr(e, evaluate::SCORE), None);
    assert_eq!(span.attr("honeyhive_metrics.nan_score"), None);
    let e = result_named(span, "infinite_score_with_label");
    assert_eq!(FinishedSpan::event_attr(e, evaluate::SCORE), None);
    assert_eq!(attr_str(e, evaluate::LABEL).as_deref(), Some("odd"));
    assert_eq!(
        span.str("honeyhive_metrics.infinite_score_with_label"),
        Some("odd"),
        "the label stands in for the score"
    );
    assert_eq!(Evaluation::score(f64::NAN).score, None);
    assert_eq!(Evaluation::new().with_score(f64::NEG_INFINITY).score, None);
}

// --- async evaluators: a hung one, a cancelled one, waiting in async code --------------

static HUNG: tokio::sync::Notify = tokio::sync::Notify::const_new();
static RAN: std::sync::Mutex<Option<std::sync::mpsc::Sender<String>>> = std::sync::Mutex::new(None);

/// Call 0 hangs (an HTTP call without a timeout) until the test lets it go; the others
/// say that they ran.
async fn maybe_hung(input: EvalInput) -> f64 {
    let n = input.text("n").unwrap_or_default().into_owned();
    if n == "0" {
        HUNG.notified().await;
    } else {
        tokio::task::yield_now().await;
        if let Some(ran) = RAN.lock().unwrap().as_ref() {
            ran.send(n).unwrap();
        }
    }
    1.0
}

#[trace(evaluate(async maybe_hung))]
fn judged_work(n: u32) -> u32 {
    n
}

#[test]
fn without_a_runtime_a_hung_async_evaluator_does_not_hold_up_the_others() {
    let rec = Recorder::start();
    let (tx, ran) = std::sync::mpsc::channel();
    *RAN.lock().unwrap() = Some(tx);
    for n in 0..=5 {
        judged_work(n);
    }
    let mut quick: Vec<String> = (1..=5)
        .map(|_| {
            ran.recv_timeout(WAIT)
                .expect("a quick evaluation ran while the first one hangs")
        })
        .collect();
    quick.sort();
    assert_eq!(quick, ["1", "2", "3", "4", "5"]);
    assert!(evaluate::pending() >= 1, "the hung one still runs");
    HUNG.notify_one();
    assert!(evaluate::wait(WAIT));
    *RAN.lock().unwrap() = None;
    let spans = rec.spans();
    let scored = spans
        .all("maybe_hung")
        .filter(|s| s.f64("honeyhive_metrics.maybe_hung") == Some(1.0))
        .count();
    assert_eq!(scored, 6);
}

/// Never finishes: its runtime is dropped first.
async fn never_done(_: EvalInput) -> f64 {
    std::future::pending::<()>().await;
    1.0
}

#[trace(evaluate(async never_done))]
async fn left_behind(n: u32) -> u32 {
    n + 1
}

#[test]
fn an_async_evaluator_dropped_with_its_runtime_is_counted_and_marked_cancelled() {
    let rec = Recorder::start();
    let dropped = evaluate::dropped_evaluations();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(left_behind(1)), 2);
    drop(runtime);
    assert!(evaluate::wait(WAIT), "a dropped evaluation is not pending");
    assert_eq!(evaluate::dropped_evaluations(), dropped + 1);
    let spans = rec.spans();
    let child = spans.get("never_done");
    assert_eq!(child.parent_span_id, spans.get("left_behind").span_id());
    assert_eq!(child.attr("honeyhive.cancelled"), Some(&true.into()));
    let e = result_named(child, "never_done");
    assert_eq!(attr_str(e, "error.type").as_deref(), Some("cancelled"));
    assert_eq!(child.attr("honeyhive_metrics.never_done"), None);
}

#[trace(event_type = "chain", evaluate(async judge))]
async fn answered_on_one_thread(question: &str) -> String {
    format!("Paris ({question})")
}

#[test]
fn wait_async_lets_evaluations_finish_on_a_current_thread_runtime() {
    let rec = Recorder::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        answered_on_one_thread("France?").await;
        // The evaluation is a task of this runtime: `wait` here would block it.
        assert_eq!(evaluate::pending(), 1);
        evaluate::wait_async().await;
        assert_eq!(evaluate::pending(), 0);
        // Nothing pending: done at once.
        evaluate::wait_async().await;
    });
    let spans = rec.spans();
    assert_eq!(spans.get("judge").f64("honeyhive_metrics.judge"), Some(0.8));
}

// --- panics inside evaluators are the program's ------------------------------------------

#[trace(event_type = "model")]
fn judge_call(prompt: &str) -> f64 {
    assert!(!prompt.contains("bad"), "judge model exploded on {prompt}");
    0.9
}

/// Catches its own model call's panic and scores 0.
fn catching_judge(input: &EvalInput, _: &usize) -> f64 {
    let prompt = input.text("q").unwrap_or_default().into_owned();
    std::panic::catch_unwind(|| judge_call(&prompt)).unwrap_or(0.0)
}

fn exploding_judge(_: &EvalInput, _: &usize) -> f64 {
    panic!("judge model exploded by itself")
}

#[trace(evaluate(catching_judge, exploding_judge))]
fn asked(q: &str) -> usize {
    q.len()
}

#[test]
fn a_panic_inside_an_evaluator_keeps_its_message_and_reaches_the_panic_hook() {
    static HEARD: AtomicU32 = AtomicU32::new(0);
    // The program's own hook (a crash reporter), chained in front of what is installed.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("judge model exploded") {
            HEARD.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    let rec = Recorder::start();
    assert_eq!(asked("a bad question"), 14);
    assert_eq!(
        HEARD.load(Ordering::SeqCst),
        2,
        "the program's panic hook heard of both panics"
    );
    let spans = rec.spans();
    let asked = spans.get("asked");
    let call = spans.get("judge_call");
    assert_eq!(call.parent_span_id, asked.span_id());
    assert!(
        call.error_message()
            .is_some_and(|m| m.contains("judge model exploded on a bad question")),
        "{:?}",
        call.error_message()
    );
    assert_eq!(asked.f64("honeyhive_metrics.catching_judge"), Some(0.0));
    let e = result_named(asked, "exploding_judge");
    assert_eq!(
        attr_str(e, "exception.message").as_deref(),
        Some("judge model exploded by itself")
    );
}
