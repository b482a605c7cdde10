//! `#[retry]`: the loop, the policy arguments and what each call records, asserted on real
//! finished spans. Sync retries wait on a `TestClock` and async ones on tokio's paused clock,
//! so no test sleeps.

// `mut _name` arguments are used on purpose: `#[retry]` must give each attempt its copy.
#![allow(clippy::used_underscore_binding)]

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use honeyhive_runtime::retry::{self as retries, HttpFailure, TestClock, TimedOut};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{retry, trace};
use opentelemetry::Value;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// An HTTP API failure, as an LLM client would report it.
#[derive(Debug, Clone, PartialEq)]
struct ApiError {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
}

impl ApiError {
    fn status(status: u16) -> Self {
        ApiError {
            status,
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)
    }
}

impl std::error::Error for ApiError {}

impl HttpFailure for ApiError {
    fn status(&self) -> Option<u16> {
        Some(self.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

impl From<TimedOut> for ApiError {
    fn from(_: TimedOut) -> Self {
        ApiError::status(408)
    }
}

/// Counts the calls of a function; `next` is the number of the call being made (from 1).
#[derive(Debug, Default)]
struct Calls(AtomicU32);

impl Calls {
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

fn check(ok: bool, status: u16) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::status(status))
    }
}

// ---------------------------------------------------------------------------------------
// The loop

#[retry(backoff = constant(1s), jitter = none)]
fn flaky(calls: &Calls, failures: u32) -> Result<u32, ApiError> {
    let n = calls.next();
    // `?` and `return` end the attempt, not the function.
    check(n > 1 || failures == 0, 500)?;
    if n <= failures {
        return Err(ApiError::status(503));
    }
    Ok(n)
}

#[test]
fn each_attempt_runs_the_body_afresh_and_question_mark_ends_only_the_attempt() {
    let clock = TestClock::install();
    let calls = Calls::default();
    assert_eq!(flaky(&calls, 2), Ok(3));
    assert_eq!(calls.count(), 3);
    assert_eq!(clock.sleeps(), [SEC, SEC]);
}

#[retry(max_attempts = 4, backoff = constant(10ms), jitter = none)]
fn always_fails(calls: &Calls) -> Result<(), String> {
    Err(format!("failure {}", calls.next()))
}

#[test]
fn max_attempts_counts_every_call_and_the_last_error_is_returned() {
    let clock = TestClock::install();
    let calls = Calls::default();
    assert_eq!(always_fails(&calls), Err("failure 4".to_owned()));
    assert_eq!(calls.count(), 4);
    assert_eq!(clock.sleeps(), [10 * MS, 10 * MS, 10 * MS]);
}

#[retry(max_attempts = 1)]
fn single_attempt(calls: &Calls) -> Result<(), String> {
    calls.next();
    Err("no".to_owned())
}

#[test]
fn one_attempt_means_no_retry() {
    let clock = TestClock::install();
    let calls = Calls::default();
    assert!(single_attempt(&calls).is_err());
    assert_eq!(calls.count(), 1);
    assert!(clock.sleeps().is_empty());
}

struct Counter {
    count: u32,
    shared: Cell<u32>,
}

impl Counter {
    #[retry(backoff = constant(0ms))]
    fn bump(&mut self) -> Result<&'static str, String> {
        self.count += 1;
        if self.count < 3 {
            return Err(format!("count {}", self.count));
        }
        Ok("done")
    }

    #[retry(backoff = constant(0ms))]
    fn peek(&self, floor: u32) -> Result<u32, String> {
        self.shared.set(self.shared.get() + 1);
        if self.shared.get() < floor {
            Err("too low".to_owned())
        } else {
            Ok(self.shared.get())
        }
    }
}

#[test]
fn methods_taking_self_by_reference_and_by_mut_reference_are_retried() {
    let _clock = TestClock::install();
    let mut counter = Counter {
        count: 0,
        shared: Cell::new(0),
    };
    assert_eq!(counter.bump(), Ok("done"));
    assert_eq!(counter.count, 3);
    assert_eq!(counter.peek(2), Ok(2));
}

#[retry(backoff = constant(0ms), clone(label))]
fn describe<T>(label: T, attempts_needed: &Cell<u32>) -> Result<String, String>
where
    T: fmt::Display + Clone,
{
    attempts_needed.set(attempts_needed.get() - 1);
    if attempts_needed.get() > 0 {
        return Err(format!("not yet: {label}"));
    }
    // Consumes the attempt's own clone.
    Ok(format!("{}!", into_string(label)))
}

fn into_string<T: fmt::Display>(value: T) -> String {
    value.to_string()
}

#[retry(backoff = constant(0ms), clone(request))]
fn send(mut request: Vec<String>, calls: &Calls) -> std::io::Result<usize> {
    request.push(format!("attempt {}", calls.next()));
    if calls.count() < 3 {
        return Err(std::io::Error::other("connection reset"));
    }
    Ok(request.len())
}

#[test]
fn cloned_arguments_are_fresh_for_each_attempt_and_generics_work() {
    let _clock = TestClock::install();
    assert_eq!(describe("hi", &Cell::new(2)), Ok("hi!".to_owned()));
    // Each attempt pushes onto its own clone of the one-element request.
    let calls = Calls::default();
    assert_eq!(send(vec!["prompt".to_owned()], &calls).unwrap(), 2);
}

mod aliases {
    pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

#[retry(backoff = constant(0ms))]
fn parse_port(input: &str, calls: &Calls) -> aliases::Result<u16> {
    calls.next();
    Ok(input.parse::<u16>()?)
}

#[test]
fn result_aliases_are_results() {
    let _clock = TestClock::install();
    let calls = Calls::default();
    assert_eq!(parse_port("8080", &calls).unwrap(), 8080);
    assert!(parse_port("http", &calls).is_err());
    assert_eq!(calls.count(), 4);
}

#[retry(backoff = constant(0ms))]
fn nested_attempt() -> Result<u32, String> {
    let here = retries::current_attempt().unwrap();
    // Code called from the body sees the attempt too.
    let below = helper_sees_attempt();
    assert_eq!(here, below);
    if here < 3 {
        Err("again".to_owned())
    } else {
        Ok(here)
    }
}

fn helper_sees_attempt() -> u32 {
    retries::current_attempt().unwrap()
}

#[test]
fn current_attempt_is_readable_in_the_body() {
    let _clock = TestClock::install();
    assert_eq!(retries::current_attempt(), None);
    assert_eq!(nested_attempt(), Ok(3));
    assert_eq!(retries::current_attempt(), None);
}

// ---------------------------------------------------------------------------------------
// Backoff, jitter and budgets

#[retry]
fn with_defaults(calls: &Calls) -> Result<(), String> {
    calls.next();
    Err("down".to_owned())
}

#[test]
fn defaults_are_three_attempts_exponential_from_500ms_doubling_with_full_jitter() {
    let clock = TestClock::install();
    let calls = Calls::default();
    retries::set_thread_jitter_fraction(Some(1.0));
    assert!(with_defaults(&calls).is_err());
    retries::set_thread_jitter_fraction(Some(0.5));
    assert!(with_defaults(&calls).is_err());
    retries::set_thread_jitter_fraction(None);
    assert_eq!(calls.count(), 6);
    // Full jitter waits `fraction * backoff`.
    assert_eq!(clock.sleeps(), [500 * MS, 1000 * MS, 250 * MS, 500 * MS]);
}

#[retry(
    max_attempts = 6,
    backoff = exponential(initial = 100ms, factor = 3, max = 1s),
    jitter = none
)]
fn exponential(calls: &Calls) -> Result<(), String> {
    calls.next();
    Err("down".to_owned())
}

#[retry(
    max_attempts = 7,
    backoff = fibonacci(initial = 100ms, max = 1s),
    jitter = none
)]
fn fibonacci(calls: &Calls) -> Result<(), String> {
    calls.next();
    Err("down".to_owned())
}

#[test]
fn exponential_and_fibonacci_backoffs_grow_up_to_their_max() {
    let clock = TestClock::install();
    let calls = Calls::default();
    assert!(exponential(&calls).is_err());
    assert_eq!(clock.sleeps(), [100 * MS, 300 * MS, 900 * MS, SEC, SEC]);
    drop(clock);
    let clock = TestClock::install();
    assert!(fibonacci(&calls).is_err());
    assert_eq!(
        clock.sleeps(),
        [100 * MS, 100 * MS, 200 * MS, 300 * MS, 500 * MS, 800 * MS]
    );
}

#[retry(max_attempts = 4, backoff = exponential(initial = 1s), jitter = equal)]
fn equal_jitter() -> Result<(), String> {
    Err("down".to_owned())
}

#[retry(
    max_attempts = 5,
    backoff = exponential(initial = 100ms, max = 2s),
    jitter = decorrelated
)]
fn decorrelated_jitter() -> Result<(), String> {
    Err("down".to_owned())
}

#[retry(max_attempts = 5, backoff = exponential(initial = 1s, max = 10s))]
fn full_jitter() -> Result<(), String> {
    Err("down".to_owned())
}

#[test]
fn jitter_draws_from_a_source_tests_can_fix() {
    retries::set_thread_jitter_fraction(Some(0.5));
    let clock = TestClock::install();
    assert!(equal_jitter().is_err());
    // Equal jitter: half the backoff, plus the fraction of the other half.
    assert_eq!(clock.sleeps(), [750 * MS, 1500 * MS, 3000 * MS]);
    drop(clock);

    let clock = TestClock::install();
    assert!(decorrelated_jitter().is_err());
    // Decorrelated: between `initial` and three times the last wait, at most `max`.
    assert_eq!(
        clock.sleeps(),
        [
            200 * MS,
            350 * MS,
            575 * MS,
            912 * MS + 500 * Duration::from_micros(1)
        ]
    );
    drop(clock);
    retries::set_thread_jitter_fraction(None);

    // A seed makes random draws reproducible.
    let mut runs = Vec::new();
    for _ in 0..2 {
        retries::set_thread_rng_seed(2024);
        let clock = TestClock::install();
        assert!(full_jitter().is_err());
        runs.push(clock.sleeps());
    }
    assert_eq!(runs[0], runs[1]);
    for (wait, base) in runs[0].iter().zip([1, 2, 4, 8]) {
        assert!(*wait <= base * SEC, "{wait:?} > {base}s");
    }
}

#[retry(
    max_attempts = 4,
    backoff = exponential(initial = 1s, max = 60s),
    jitter = none,
    max_delay = 1500ms
)]
fn capped(calls: &Calls) -> Result<(), String> {
    calls.next();
    Err("down".to_owned())
}

#[test]
fn max_delay_caps_every_wait() {
    let clock = TestClock::install();
    assert!(capped(&Calls::default()).is_err());
    assert_eq!(clock.sleeps(), [SEC, 1500 * MS, 1500 * MS]);
}

#[trace]
#[retry(
    max_attempts = 10,
    backoff = constant(1s),
    jitter = none,
    max_elapsed = 2500ms
)]
fn slow_attempts(clock: &TestClock, calls: &Calls) -> Result<(), String> {
    calls.next();
    clock.advance(200 * MS);
    Err("slow and failing".to_owned())
}

#[test]
fn max_elapsed_never_starts_a_wait_that_would_end_past_the_budget() {
    let rec = Recorder::start();
    let clock = TestClock::install();
    let calls = Calls::default();
    assert!(slow_attempts(&clock, &calls).is_err());
    // 0.2 s, wait to 1.2, 1.4, wait to 2.4, 2.6: a third wait would end at 3.6 > 2.5.
    assert_eq!(calls.count(), 3);
    assert_eq!(clock.sleeps(), [SEC, SEC]);
    assert_eq!(clock.elapsed(), 2600 * MS);
    let spans = rec.spans();
    let span = spans.get("slow_attempts");
    assert_eq!(span.str("retry.outcome"), Some("budget_exceeded"));
    assert_eq!(span.i64("retry.attempts"), Some(3));
    assert_eq!(span.i64("retry.total_delay_ms"), Some(2000));
    let last = span.events_named("retry").last().unwrap();
    assert_eq!(
        FinishedSpan::event_attr(last, "retry.reason"),
        Some(&Value::from("budget_exceeded"))
    );
    assert!(span.is_error());
}

fn is_transient(error: &ApiError) -> bool {
    retries::is_retryable_status(error.status)
}

#[trace]
#[retry(backoff = constant(0ms), when = is_transient)]
fn only_transient(status: u16, calls: &Calls) -> Result<(), ApiError> {
    calls.next();
    Err(ApiError::status(status))
}

#[test]
fn when_decides_which_errors_are_retried() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    let calls = Calls::default();
    assert!(only_transient(400, &calls).is_err());
    assert_eq!(calls.count(), 1);
    assert!(only_transient(503, &calls).is_err());
    assert_eq!(calls.count(), 4);
    let spans = rec.spans();
    let outcomes: Vec<_> = spans
        .all("only_transient")
        .map(|s| s.str("retry.outcome").unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["non_retryable", "exhausted"]);
}

#[retry(
    max_attempts = 5,
    backoff = constant(100ms),
    jitter = none,
    max_delay = 10s,
    classify = retries::classify_http
)]
fn llm_call(
    script: &[Result<&'static str, ApiError>],
    calls: &Calls,
) -> Result<&'static str, ApiError> {
    script[calls.next() as usize - 1].clone()
}

#[test]
fn classify_http_waits_as_the_server_asks_up_to_a_cap_and_stops_on_client_errors() {
    let clock = TestClock::install();
    let calls = Calls::default();
    let script = [
        Err(ApiError::status(429).with_header("retry-after", "2")),
        Err(ApiError::status(503).with_header("retry-after-ms", "1500")),
        // Asks for an hour: honoured up to the 60 s cap, then `max_delay`.
        Err(ApiError::status(529).with_header("retry-after", "3600")),
        Err(ApiError::status(500)),
        Ok("answer"),
    ];
    assert_eq!(llm_call(&script, &calls), Ok("answer"));
    assert_eq!(clock.sleeps(), [2 * SEC, 1500 * MS, 10 * SEC, 100 * MS]);

    let calls = Calls::default();
    let script = [Err(ApiError::status(401)), Ok("never")];
    assert_eq!(llm_call(&script, &calls), Err(ApiError::status(401)));
    assert_eq!(calls.count(), 1);
}

thread_local! {
    static WAITED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

fn record_wait(delay: Duration) {
    WAITED.set(WAITED.get() + delay);
}

#[retry(backoff = constant(3s), jitter = none, sleep = record_wait)]
fn custom_sync_sleep() -> Result<(), String> {
    Err("down".to_owned())
}

#[test]
fn sleep_path_replaces_the_thread_sleep() {
    assert!(custom_sync_sleep().is_err());
    assert_eq!(WAITED.get(), 6 * SEC);
}

// ---------------------------------------------------------------------------------------
// Async

#[retry(backoff = constant(1s), jitter = none)]
async fn flaky_async(calls: &Calls, other_task_ran: &AtomicBool) -> Result<u32, ApiError> {
    let n = calls.next();
    if n == 2 {
        // The first wait let the other task run: the executor was not blocked.
        assert!(other_task_ran.load(Ordering::SeqCst));
    }
    tokio::task::yield_now().await;
    if n < 3 {
        return Err(ApiError::status(502));
    }
    Ok(retries::current_attempt().unwrap())
}

#[tokio::test(start_paused = true)]
async fn async_retries_wait_on_tokio_time_without_blocking_the_executor() {
    let calls = Calls::default();
    let other_task_ran = AtomicBool::new(false);
    let start = tokio::time::Instant::now();
    let (result, ()) = tokio::join!(flaky_async(&calls, &other_task_ran), async {
        tokio::time::sleep(100 * MS).await;
        other_task_ran.store(true, Ordering::SeqCst);
    });
    assert_eq!(result, Ok(3));
    assert_eq!(start.elapsed(), 2 * SEC);
}

struct Session {
    turns: Vec<String>,
}

impl Session {
    #[retry(backoff = constant(500ms), jitter = none, clone(message))]
    async fn say(&mut self, message: String) -> Result<usize, ApiError> {
        self.turns.push(message);
        tokio::task::yield_now().await;
        if self.turns.len() < 2 {
            return Err(ApiError::status(500));
        }
        Ok(self.turns.len())
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test(start_paused = true)]
async fn async_methods_borrowing_self_mutably_are_retried_and_stay_send() {
    let mut session = Session { turns: Vec::new() };
    let said = assert_send(session.say("hello".to_owned())).await;
    assert_eq!(said, Ok(2));
    assert_eq!(session.turns, ["hello", "hello"]);
}

#[retry(backoff = constant(0ms), attempt_timeout = 1s)]
async fn sometimes_hangs(calls: &Calls) -> Result<&'static str, ApiError> {
    if calls.next() == 1 {
        tokio::time::sleep(60 * SEC).await;
    }
    Ok("fast")
}

#[trace]
#[retry(max_attempts = 2, backoff = constant(0ms), attempt_timeout = 250ms)]
async fn always_hangs() -> Result<(), std::io::Error> {
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_fails_a_slow_attempt_and_retries_it() {
    let calls = Calls::default();
    let start = tokio::time::Instant::now();
    assert_eq!(sometimes_hangs(&calls).await, Ok("fast"));
    assert_eq!(start.elapsed(), SEC);

    let rec = Recorder::start();
    let error = always_hangs().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    let spans = rec.spans();
    let span = spans.get("always_hangs");
    assert_eq!(span.str("retry.outcome"), Some("exhausted"));
    let messages: Vec<_> = span
        .events_named("retry")
        .map(|e| {
            FinishedSpan::event_attr(e, "exception.message")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        messages,
        [
            "attempt timed out after 250ms",
            "attempt timed out after 250ms"
        ]
    );
}

thread_local! {
    static TIMER_CALLS: Cell<u32> = const { Cell::new(0) };
}

/// Another runtime's timer, as `sleep = path` takes it.
async fn other_runtime_sleep(delay: Duration) {
    TIMER_CALLS.set(TIMER_CALLS.get() + 1);
    tokio::time::sleep(delay).await;
}

#[retry(backoff = constant(2s), jitter = none, sleep = other_runtime_sleep)]
async fn with_own_timer() -> Result<(), String> {
    Err("down".to_owned())
}

#[tokio::test(start_paused = true)]
async fn sleep_path_replaces_the_async_timer() {
    let start = tokio::time::Instant::now();
    assert!(with_own_timer().await.is_err());
    assert_eq!(TIMER_CALLS.get(), 2);
    assert_eq!(start.elapsed(), 4 * SEC);
}

// ---------------------------------------------------------------------------------------
// What the span records

#[trace(event_type = "model")]
#[retry(backoff = constant(1s), jitter = none, max_attempts = 3)]
fn complete(prompt: &str, calls: &Calls, failures: u32) -> Result<String, ApiError> {
    let n = calls.next();
    if n <= failures {
        return Err(ApiError::status(500 + u16::try_from(n).unwrap()));
    }
    Ok(format!("answer to {prompt}"))
}

fn event_i64(event: &opentelemetry::trace::Event, key: &str) -> i64 {
    match FinishedSpan::event_attr(event, key) {
        Some(Value::I64(v)) => *v,
        other => panic!("{key}: {other:?}"),
    }
}

fn event_str(event: &opentelemetry::trace::Event, key: &str) -> String {
    FinishedSpan::event_attr(event, key)
        .unwrap_or_else(|| panic!("no {key}"))
        .to_string()
}

#[test]
fn each_failed_attempt_is_an_event_and_the_span_gets_the_outcome() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    let calls = Calls::default();
    assert_eq!(complete("q", &calls, 2).unwrap(), "answer to q");
    let spans = rec.spans();
    let span = spans.get("complete");
    let events: Vec<_> = span.events_named("retry").collect();
    assert_eq!(events.len(), 2);
    for (i, event) in events.iter().enumerate() {
        let attempt = i64::try_from(i).unwrap() + 1;
        assert_eq!(event_i64(event, "retry.attempt"), attempt);
        assert_eq!(event_i64(event, "retry.max_attempts"), 3);
        assert_eq!(event_i64(event, "retry.delay_ms"), 1000);
        assert_eq!(event_str(event, "retry.reason"), "retryable");
        // The short name the docs promise, not `retry::ApiError`.
        assert_eq!(event_str(event, "error.type"), "ApiError");
        assert_eq!(
            event_str(event, "exception.message"),
            format!("HTTP {}", 500 + attempt)
        );
    }
    assert_eq!(span.i64("retry.attempts"), Some(3));
    assert_eq!(span.str("retry.outcome"), Some("success"));
    assert_eq!(span.i64("retry.total_delay_ms"), Some(2000));
    assert!(!span.is_error(), "the call succeeded in the end");
    assert_eq!(span.str("honeyhive_outputs.result"), Some("answer to q"));
}

#[test]
fn the_span_fails_only_when_the_final_outcome_is_an_error() {
    let rec = Recorder::start();
    let _clock = TestClock::install();
    assert!(complete("q", &Calls::default(), 5).is_err());
    assert!(complete("q", &Calls::default(), 0).is_ok());
    let spans = rec.spans();
    let all: Vec<_> = spans.all("complete").collect();
    let (failed, succeeded) = (all[0], all[1]);

    assert!(failed.is_error());
    assert_eq!(failed.str("retry.outcome"), Some("exhausted"));
    assert_eq!(failed.i64("retry.attempts"), Some(3));
    let last = failed.events_named("retry").last().unwrap();
    assert_eq!(event_i64(last, "retry.delay_ms"), 0);
    assert_eq!(event_str(last, "retry.reason"), "exhausted");
    assert_eq!(failed.events_named("retry").count(), 3);

    assert!(!succeeded.is_error());
    assert_eq!(succeeded.str("retry.outcome"), Some("success"));
    assert_eq!(succeeded.i64("retry.attempts"), Some(1));
    assert_eq!(succeeded.events_named("retry").count(), 0);
}

#[retry(backoff = constant(1s), jitter = none, max_attempts = 10)]
async fn keeps_failing() -> Result<(), ApiError> {
    Err(ApiError::status(503))
}

#[trace]
async fn gives_up_early() -> bool {
    tokio::time::timeout(1500 * MS, keeps_failing())
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_between_attempts_is_cancelled() {
    let rec = Recorder::start();
    assert!(gives_up_early().await);
    let spans = rec.spans();
    let span = spans.get("gives_up_early");
    assert_eq!(span.str("retry.outcome"), Some("cancelled"));
    assert_eq!(span.i64("retry.attempts"), Some(2));
    assert_eq!(span.events_named("retry").count(), 2);
    assert!(!span.is_error());
}

#[trace]
#[retry(backoff = constant(1s), jitter = none, max_attempts = 10)]
async fn traced_keeps_failing() -> Result<(), ApiError> {
    Err(ApiError::status(503))
}

#[trace]
async fn gives_up_on_a_traced_call() -> bool {
    tokio::time::timeout(1500 * MS, traced_keeps_failing())
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_never_writes_its_outcome_on_another_span() {
    let rec = Recorder::start();
    assert!(gives_up_on_a_traced_call().await);
    let spans = rec.spans();
    let call = spans.get("traced_keeps_failing");
    assert_eq!(call.bool("honeyhive.cancelled"), Some(true));
    assert_eq!(call.events_named("retry").count(), 2);
    // The call's span ended before its future was dropped; its caller's span is not the call's.
    assert_eq!(
        spans.get("gives_up_on_a_traced_call").str("retry.outcome"),
        None
    );
}

/// An LLM client behind a trait object, as `#[async_trait]` makes possible.
#[async_trait::async_trait]
trait Completer: Send + Sync {
    async fn complete(&self, prompt: String, budget: u32) -> Result<String, ApiError>;
}

struct Flaky {
    calls: Calls,
    fail_first: u32,
}

#[async_trait::async_trait]
impl Completer for Flaky {
    #[trace(event_type = "model")]
    #[retry(backoff = constant(500ms), jitter = none)]
    async fn complete(&self, prompt: String, mut budget: u32) -> Result<String, ApiError> {
        // Each attempt starts from the caller's `budget`, and shares `prompt`.
        budget -= 1;
        self.calls.next();
        if self.calls.count() <= self.fail_first {
            return Err(ApiError::status(503));
        }
        Ok(format!(
            "{prompt} ({budget} left, attempt {:?})",
            retries::current_attempt()
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn async_trait_methods_are_retried_in_one_span_with_an_event_per_failed_attempt() {
    let rec = Recorder::start();
    let client: Box<dyn Completer> = Box::new(Flaky {
        calls: Calls::default(),
        fail_first: 2,
    });
    let start = tokio::time::Instant::now();
    let call = assert_send(client.complete("hi".to_owned(), 5));
    assert_eq!(call.await.unwrap(), "hi (4 left, attempt Some(3))");
    assert_eq!(start.elapsed(), SEC, "two waits of 500 ms on tokio's clock");
    let spans = rec.spans();
    assert_eq!(spans.names(), ["complete"]);
    let span = spans.get("complete");
    assert_eq!(span.events_named("retry").count(), 2);
    assert_eq!(span.i64("retry.attempts"), Some(3));
    assert_eq!(span.str("retry.outcome"), Some("success"));
    assert_eq!(span.str("honeyhive_inputs.prompt"), Some("hi"));
    assert!(!span.is_error());
}

/// What each attempt saw, and an error that names it.
type Seen = std::cell::RefCell<Vec<u32>>;

#[retry(backoff = constant(0ms), jitter = none)]
fn underscored(mut _n: u32, seen: &Seen) -> Result<(), u32> {
    _n += 1;
    seen.borrow_mut().push(_n);
    Err(_n)
}

#[retry(backoff = constant(0ms), jitter = none, clone(_v))]
fn underscored_cloned(mut _v: Vec<u32>, seen: &Seen) -> Result<(), u32> {
    _v.push(1);
    seen.borrow_mut().push(u32::try_from(_v.len()).unwrap());
    Err(0)
}

#[retry(backoff = constant(0ms), jitter = none)]
fn tuple_pattern((mut a, b): (u32, u32), seen: &Seen) -> Result<(), u32> {
    a += b;
    seen.borrow_mut().push(a);
    Err(a)
}

struct Holder {
    items: Vec<u32>,
    base: u32,
}

#[retry(backoff = constant(0ms), jitter = none, clone(items))]
fn struct_pattern(Holder { mut items, base }: Holder, seen: &Seen) -> Result<(), u32> {
    items.push(base);
    seen.borrow_mut().push(u32::try_from(items.len()).unwrap());
    Err(base)
}

#[retry(backoff = constant(0ms), jitter = none)]
#[trace]
fn traced_tuple_pattern((mut a, b): (u32, u32), seen: &Seen) -> Result<(), u32> {
    a += b;
    seen.borrow_mut().push(a);
    Err(a)
}

#[trace]
#[retry(backoff = constant(0ms), jitter = none)]
fn retried_tuple_pattern((mut a, b): (u32, u32), mut _c: u32, seen: &Seen) -> Result<(), u32> {
    a += b;
    _c += 1;
    seen.borrow_mut().push(a + _c);
    Err(a)
}

#[retry(backoff = constant(0ms), jitter = none)]
async fn async_tuple_pattern((mut a, b): (u32, u32), mut _c: u32, seen: &Seen) -> Result<(), u32> {
    a += b;
    _c += 1;
    seen.borrow_mut().push(a + _c);
    Err(a)
}

#[async_trait::async_trait(?Send)]
trait PairCounter {
    async fn count_from(&self, pair: (u32, u32), seen: &Seen) -> Result<(), u32>;
}

struct Tally;

#[async_trait::async_trait(?Send)]
impl PairCounter for Tally {
    #[retry(backoff = constant(0ms), jitter = none)]
    async fn count_from(&self, (mut a, b): (u32, u32), seen: &Seen) -> Result<(), u32> {
        a += b;
        seen.borrow_mut().push(a);
        Err(a)
    }
}

#[test]
fn every_mut_binding_starts_each_attempt_from_the_callers_value() {
    let _clock = TestClock::install();
    let attempts = |f: &dyn Fn(&Seen)| {
        let seen = Seen::default();
        f(&seen);
        seen.into_inner()
    };
    assert_eq!(
        attempts(&|s| assert!(underscored(10, s).is_err())),
        [11, 11, 11]
    );
    assert_eq!(
        attempts(&|s| assert!(underscored_cloned(vec![7], s).is_err())),
        [2, 2, 2]
    );
    assert_eq!(
        attempts(&|s| assert!(tuple_pattern((10, 1), s).is_err())),
        [11, 11, 11]
    );
    let holder = || Holder {
        items: vec![1],
        base: 5,
    };
    assert_eq!(
        attempts(&|s| assert!(struct_pattern(holder(), s).is_err())),
        [2, 2, 2]
    );
    assert_eq!(
        attempts(&|s| assert!(traced_tuple_pattern((10, 1), s).is_err())),
        [11, 11, 11]
    );
    assert_eq!(
        attempts(&|s| assert!(retried_tuple_pattern((10, 1), 0, s).is_err())),
        [12, 12, 12]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let seen = Seen::default();
    assert!(rt.block_on(async_tuple_pattern((10, 1), 0, &seen)).is_err());
    assert_eq!(seen.into_inner(), [12, 12, 12]);
    // `#[async_trait]` binds the pattern from an argument of its own, in the boxed future.
    let seen = Seen::default();
    assert!(rt.block_on(Tally.count_from((10, 1), &seen)).is_err());
    assert_eq!(seen.into_inner(), [11, 11, 11]);
}

/// A fn whose attribute arguments come from a `macro_rules!`'s fragments, which reach the
/// attribute in invisible groups.
macro_rules! retried_fn {
    ($name:ident, $attempts:expr, $delay:literal, $when:path, $span:literal, $rate:expr, $cloned:expr) => {
        #[retry(max_attempts = $attempts, backoff = constant($delay), jitter = none, when = $when, clone($cloned))]
        #[trace(name = $span, sample_rate = $rate, skip($cloned))]
        fn $name(calls: &Calls, label: String) -> Result<u32, ApiError> {
            calls.next();
            drop(label);
            Err(ApiError::status(503))
        }
    };
}

retried_fn!(
    from_fragments,
    4,
    250ms,
    is_transient,
    "made.by.macro",
    1.0,
    label
);

#[test]
fn attribute_arguments_from_macro_fragments_read_as_written_out() {
    let clock = TestClock::install();
    let rec = Recorder::start();
    let calls = Calls::default();
    assert!(from_fragments(&calls, "hi".to_owned()).is_err());
    assert_eq!(calls.count(), 4, "max_attempts = 4");
    assert_eq!(clock.sleeps(), [250 * MS; 3], "constant(250ms)");
    let spans = rec.spans();
    assert_eq!(spans.all("made.by.macro").count(), 4);
    assert!(
        spans
            .all("made.by.macro")
            .all(|s| s.attr("honeyhive_inputs.label").is_none()),
        "skip($cloned)"
    );
}
