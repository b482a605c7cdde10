//! The loop `#[retry]` expands to runs on a [`Retry`]: one per call, which counts attempts,
//! decides whether and how long to wait, and writes each failure and the outcome on the
//! current span.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use opentelemetry::{KeyValue, Value};

use super::policy::Policy;
use super::{Decision, TimedOut};
use crate::capture::ErrorInfo;
use crate::sampling::Pinned;
use crate::{context, span};

/// A return type `#[retry]` can retry: a `Result`, under any alias.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[retry]` needs a function that returns a `Result`, not `{Self}`",
    label = "not a `Result`",
    note = "an attempt fails by returning `Err`; aliases such as `io::Result<T>` or `anyhow::Result<T>` work"
)]
pub trait RetryResult {
    /// The error type.
    type Error;
    /// The error, if this is one.
    fn error(&self) -> Option<&Self::Error>;
    /// Wraps an error.
    fn from_error(error: Self::Error) -> Self;
}

impl<T, E> RetryResult for Result<T, E> {
    type Error = E;

    #[inline]
    fn error(&self) -> Option<&E> {
        self.as_ref().err()
    }

    fn from_error(error: E) -> Self {
        Err(error)
    }
}

/// The error of an attempt's result, if it failed. The expansion spans this call at the
/// function's return type, so a return type that is not a `Result` is reported there.
#[doc(hidden)]
#[inline]
pub fn retry_error<R: RetryResult>(ret: &R) -> Option<&R::Error> {
    ret.error()
}

/// A `mut` owned argument that each attempt can get afresh without `clone(..)`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[retry]` runs the body once per attempt, and each attempt needs its own `mut` `{Self}`",
    label = "`mut` owned argument: list it in `#[retry(clone(..))]`, or drop the `mut` and borrow it",
    note = "each attempt starts from the value the caller passed: `clone(arg)` clones it for each attempt; only `Copy` arguments need nothing"
)]
pub trait PerAttempt: Copy {}

impl<T: Copy> PerAttempt for T {}

/// A copy of a `Copy` argument for one attempt.
#[doc(hidden)]
#[inline]
pub fn reuse<T: PerAttempt>(value: &T) -> T {
    *value
}

/// A sync body callable once per attempt. A trait rather than an `FnMut` bound, so that the
/// closure's kind is inferred from its body: a body that consumes an argument the attempts
/// share is then reported at the move ("closure is `FnOnce` because it moves the variable"),
/// not as a move out of a reference the user never wrote.
#[doc(hidden)]
pub trait SyncAttempt<R> {}

impl<F: FnMut() -> R, R> SyncAttempt<R> for F {}

/// A sync attempt body, checked to be callable once per attempt.
#[doc(hidden)]
#[inline]
pub fn sync_attempt<F: SyncAttempt<R>, R>(body: F) -> F {
    body
}

/// An async body callable once per attempt; see [`SyncAttempt`].
#[doc(hidden)]
pub trait AsyncAttempt<R> {}

impl<F: AsyncFnMut() -> R, R> AsyncAttempt<R> for F {}

/// An async attempt body, checked to be callable once per attempt.
#[doc(hidden)]
#[inline]
pub fn async_attempt<F: AsyncAttempt<R>, R>(body: F) -> F {
    body
}

/// An error type that `attempt_timeout` can produce.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`attempt_timeout` needs the error type `{Self}` to implement `From<honeyhive_runtime::retry::TimedOut>`",
    label = "a timed-out attempt must become this error",
    note = "`std::io::Error`, `Box<dyn Error + Send + Sync>` and `anyhow::Error` implement it; for your own error type, add a variant and `impl From<TimedOut>`"
)]
pub trait TimeoutError: From<TimedOut> {}

impl<E: From<TimedOut>> TimeoutError for E {}

/// Waits between attempts of an `async fn`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[retry]` on an `async fn` needs a timer to wait between attempts",
    label = "no timer: the `tokio` feature of `honeyhive-runtime` is off",
    note = "enable the `tokio` feature of `honeyhive-runtime` (on by default), or name your runtime's sleep function: `#[retry(sleep = my_runtime::sleep)]`"
)]
pub trait AsyncTimer {
    /// A future that completes after `duration`.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The timer `#[retry]` uses when no `sleep = path` is given: tokio's, with the `tokio`
/// feature.
#[doc(hidden)]
#[derive(Debug)]
pub struct DefaultTimer;

#[cfg(feature = "tokio")]
impl AsyncTimer for DefaultTimer {
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// Where the time spent so far comes from.
#[derive(Debug)]
enum Clock {
    Real(Instant),
    /// A [`super::TestClock`]'s simulated time when the call started.
    Simulated(Duration),
    /// Tokio's clock, which tests can pause and advance.
    #[cfg(feature = "tokio")]
    Tokio(tokio::time::Instant),
}

impl Clock {
    fn elapsed(&self) -> Duration {
        match self {
            Clock::Real(start) => start.elapsed(),
            Clock::Simulated(start) => simulated_now().unwrap_or(*start).saturating_sub(*start),
            #[cfg(feature = "tokio")]
            Clock::Tokio(start) => start.elapsed(),
        }
    }
}

/// Whether the first attempt's own span (`#[retry] #[trace]`) was recorded.
const UNDECIDED: u8 = 0;
const RECORDED: u8 = 1;
const NOT_RECORDED: u8 = 2;

/// The state of one call of a retried function.
#[doc(hidden)]
#[derive(Debug)]
pub struct Retry {
    policy: &'static Policy,
    /// Attempts started.
    attempt: u32,
    clock: Clock,
    total_delay: Duration,
    last_delay: Option<Duration>,
    /// What follows the last attempt: a wait, or `None` to return.
    next: Option<Duration>,
    /// The span that was current when the call started, which gets the outcome if the call
    /// is cancelled; `None` when each attempt has its own span (`#[retry] #[trace]`).
    span_id: Option<u64>,
    finished: bool,
    sampled: AtomicU8,
}

impl Retry {
    fn new(policy: &'static Policy, clock: Clock) -> Retry {
        Retry {
            policy,
            attempt: 0,
            clock,
            total_delay: Duration::ZERO,
            last_delay: None,
            next: None,
            span_id: Some(context::current().span_id),
            finished: false,
            sampled: AtomicU8::new(UNDECIDED),
        }
    }

    /// A call of a sync function: time is a [`super::TestClock`]'s if one is installed.
    pub fn new_sync(policy: &'static Policy) -> Retry {
        let clock = simulated_now().map_or_else(|| Clock::Real(Instant::now()), Clock::Simulated);
        Retry::new(policy, clock)
    }

    /// A call of an async function: time is tokio's when the `tokio` feature is on, so that
    /// paused time in tests applies.
    pub fn new_async(policy: &'static Policy) -> Retry {
        #[cfg(feature = "tokio")]
        let clock = Clock::Tokio(tokio::time::Instant::now());
        #[cfg(not(feature = "tokio"))]
        let clock = Clock::Real(Instant::now());
        Retry::new(policy, clock)
    }

    /// `#[retry] #[trace]`: each attempt has its own span, which gets what this call records.
    #[must_use]
    pub fn on_attempt_spans(mut self) -> Retry {
        self.span_id = None;
        self
    }

    /// Starts the next attempt.
    #[inline]
    pub fn begin(&mut self) {
        self.attempt += 1;
    }

    /// Runs a sync attempt, with [`super::current_attempt`] set.
    #[inline]
    pub fn run<R>(&self, body: impl FnOnce() -> R) -> R {
        let _scope = AttemptScope::enter(self.attempt);
        body()
    }

    /// Sets [`super::current_attempt`] until the guard drops: a sync attempt of a
    /// `#[track_caller]` fn runs inline, not in a closure given to [`Retry::run`].
    #[inline]
    #[must_use]
    pub fn enter_attempt(&self) -> impl Drop + use<> {
        AttemptScope::enter(self.attempt)
    }

    /// Runs an async attempt, with [`super::current_attempt`] set while it is polled.
    pub fn run_async<F: Future>(&self, body: F) -> impl Future<Output = F::Output> + use<F> {
        let number = self.attempt;
        async move {
            let mut body = pin!(body);
            poll_fn(move |cx| {
                let _scope = AttemptScope::enter(number);
                body.as_mut().poll(cx)
            })
            .await
        }
    }

    /// Runs an async attempt that fails with [`TimedOut`] when `timer` completes first.
    pub fn run_async_with_timeout<F, T>(
        &self,
        body: F,
        limit: Duration,
        timer: T,
    ) -> impl Future<Output = F::Output> + use<F, T>
    where
        F: Future,
        F::Output: RetryResult,
        <F::Output as RetryResult>::Error: TimeoutError,
        T: Future<Output = ()>,
    {
        let number = self.attempt;
        async move {
            let mut body = pin!(body);
            let mut timer = pin!(timer);
            poll_fn(move |cx| {
                {
                    let _scope = AttemptScope::enter(number);
                    if let Poll::Ready(out) = body.as_mut().poll(cx) {
                        return Poll::Ready(out);
                    }
                }
                if timer.as_mut().poll(cx).is_ready() {
                    let error = TimedOut { after: limit }.into();
                    return Poll::Ready(<F::Output as RetryResult>::from_error(error));
                }
                Poll::Pending
            })
            .await
        }
    }

    /// Before an attempt's own span opens (`#[retry] #[trace]`): makes its sampling decision
    /// the first attempt's, so that a call is recorded whole or not at all.
    #[inline]
    pub fn pin_sampling(&self) {
        match self.sampled.load(Ordering::Relaxed) {
            RECORDED => span::pin_next_roll(Some(Pinned::Follow(true))),
            NOT_RECORDED => span::pin_next_roll(Some(Pinned::Follow(false))),
            _ => {}
        }
    }

    /// First thing inside an attempt's own span: remembers the first attempt's sampling
    /// decision and marks the span with `retry.attempt`.
    #[inline]
    pub fn enter_span(&self) {
        span::pin_next_roll(None);
        let recorded = if span::current_is_recording() {
            RECORDED
        } else {
            NOT_RECORDED
        };
        let _ = self.sampled.compare_exchange(
            UNDECIDED,
            recorded,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let number = i64::from(self.attempt);
        span::current_set_attribute("retry.attempt", || Value::I64(number));
    }

    /// Decides what follows an attempt that ended with `error` (`None`: it succeeded), and
    /// records it on the current span: `Some(delay)` to wait and try again, `None` to return
    /// the attempt's result. The decision is also kept for [`Retry::next_delay`].
    ///
    /// `decide` classifies the error; `describe` gives its type and message (capped at
    /// `usize` bytes), and runs only when the span is recorded.
    pub fn after<E: ?Sized>(
        &mut self,
        error: Option<&E>,
        decide: impl FnOnce(&E) -> Decision,
        describe: impl FnOnce(&E, usize) -> ErrorInfo,
    ) -> Option<Duration> {
        let Some(error) = error else {
            self.finish("success");
            self.next = None;
            return None;
        };
        let attempt = self.attempt;
        let max_attempts = self.policy.max_attempts;
        let (delay, reason) = match decide(error) {
            Decision::Stop => (None, "non_retryable"),
            _ if attempt >= max_attempts => (None, "exhausted"),
            Decision::Retry => (
                Some(self.policy.delay(attempt, self.last_delay)),
                "retryable",
            ),
            Decision::RetryAfter(wait) => (Some(self.policy.cap(wait)), "retry_after"),
        };
        // Never start a wait that would end past the budget.
        let (delay, reason) = match (delay, self.policy.max_elapsed) {
            (Some(d), Some(budget)) if self.clock.elapsed() + d > budget => {
                (None, "budget_exceeded")
            }
            _ => (delay, reason),
        };
        span::current_add_event("retry", || {
            let ErrorInfo { type_name, message } = describe(error, crate::capture::capture_cap());
            vec![
                KeyValue::new("retry.attempt", i64::from(attempt)),
                KeyValue::new("retry.max_attempts", i64::from(max_attempts)),
                KeyValue::new("retry.delay_ms", millis(delay.unwrap_or_default())),
                KeyValue::new("retry.reason", reason),
                KeyValue::new("error.type", Value::String(type_name)),
                KeyValue::new("exception.message", Value::String(message)),
            ]
        });
        match delay {
            Some(d) => {
                self.total_delay += d;
                self.last_delay = Some(d);
            }
            None => self.finish(reason),
        }
        self.next = delay;
        delay
    }

    /// What [`Retry::after`] decided for the last attempt.
    #[inline]
    pub fn next_delay(&self) -> Option<Duration> {
        self.next
    }

    /// Waits before the next attempt of a sync function: sleeps the thread, or advances a
    /// [`super::TestClock`].
    pub fn sleep_sync(&self, delay: Duration) {
        if !simulated_sleep(delay) {
            std::thread::sleep(delay);
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        self.finished = true;
        let attempts = i64::from(self.attempt);
        let total_delay = millis(self.total_delay);
        span::current_set_attribute("retry.attempts", || Value::I64(attempts));
        span::current_set_attribute("retry.outcome", || Value::from(outcome));
        span::current_set_attribute("retry.total_delay_ms", || Value::I64(total_delay));
    }
}

impl Drop for Retry {
    /// A call dropped between attempts (its future was cancelled) ends `cancelled`, when the
    /// span it started under is current again; never on another span.
    fn drop(&mut self) {
        if !self.finished
            && self.attempt > 0
            && !std::thread::panicking()
            && self.span_id == Some(context::current().span_id)
        {
            self.finish("cancelled");
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

thread_local! {
    /// The attempt in progress on this thread; 0 outside any.
    static ATTEMPT: Cell<u32> = const { Cell::new(0) };
    /// A [`super::TestClock`]: simulated time and the waits so far.
    static TEST_CLOCK: RefCell<Option<(Duration, Vec<Duration>)>> = const { RefCell::new(None) };
}

/// Sets the current attempt until dropped.
struct AttemptScope {
    prev: u32,
}

impl AttemptScope {
    #[inline]
    fn enter(number: u32) -> AttemptScope {
        AttemptScope {
            prev: ATTEMPT.replace(number),
        }
    }
}

impl Drop for AttemptScope {
    #[inline]
    fn drop(&mut self) {
        ATTEMPT.set(self.prev);
    }
}

pub(super) fn current_attempt() -> Option<u32> {
    let n = ATTEMPT.get();
    (n > 0).then_some(n)
}

pub(super) fn install_test_clock() {
    TEST_CLOCK.with_borrow_mut(|clock| {
        assert!(
            clock.is_none(),
            "a TestClock is already installed on this thread"
        );
        *clock = Some((Duration::ZERO, Vec::new()));
    });
}

pub(super) fn uninstall_test_clock() {
    TEST_CLOCK.with_borrow_mut(|clock| *clock = None);
}

pub(super) fn advance_test_clock(by: Duration) {
    TEST_CLOCK.with_borrow_mut(|clock| {
        if let Some((now, _)) = clock {
            *now += by;
        }
    });
}

pub(super) fn test_clock_state() -> (Duration, Vec<Duration>) {
    TEST_CLOCK.with_borrow(|clock| clock.clone().unwrap_or_default())
}

/// The test clock's time, if one is installed. Every retried call reads it, so it never
/// panics: on a thread destroying its thread-locals (a retried call in a destructor) there is
/// no test clock.
fn simulated_now() -> Option<Duration> {
    TEST_CLOCK
        .try_with(|clock| {
            let clock = clock.try_borrow().ok()?;
            clock.as_ref().map(|(now, _)| *now)
        })
        .ok()
        .flatten()
}

/// Advances the test clock instead of sleeping, if one is installed.
fn simulated_sleep(delay: Duration) -> bool {
    TEST_CLOCK
        .try_with(|clock| {
            let Ok(mut clock) = clock.try_borrow_mut() else {
                return false;
            };
            match &mut *clock {
                Some((now, sleeps)) => {
                    *now += delay;
                    sleeps.push(delay);
                    true
                }
                None => false,
            }
        })
        .unwrap_or(false)
}
