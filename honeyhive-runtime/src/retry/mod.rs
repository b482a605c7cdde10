//! Retries with backoff that show every attempt on the trace: the runtime side of
//! [`#[retry]`](macro@crate::retry).
//!
//! ```
//! use honeyhive_runtime::retry::{Decision, HttpFailure};
//! use honeyhive_runtime::{retry, trace};
//!
//! #[derive(Debug)]
//! struct ApiError { status: u16 }
//!
//! impl std::fmt::Display for ApiError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "HTTP {}", self.status)
//!     }
//! }
//!
//! impl HttpFailure for ApiError {
//!     fn status(&self) -> Option<u16> { Some(self.status) }
//! }
//!
//! #[trace(event_type = "model")]
//! #[retry(max_attempts = 4, backoff = constant(0ms), classify = retry::classify_http)]
//! fn complete(prompt: &str) -> Result<String, ApiError> {
//!     match retry::current_attempt() {
//!         Some(1) => Err(ApiError { status: 429 }), // rate limited: retried
//!         _ => Ok(format!("answer to {prompt}")),
//!     }
//! }
//!
//! assert_eq!(complete("hi").unwrap(), "answer to hi");
//! assert_eq!(retry::classify_http(&ApiError { status: 400 }), Decision::Stop);
//! ```
//!
//! `#[retry]` turns the function's body into a loop: each attempt runs the body afresh, and
//! `?` or `return` end the attempt, not the function. An attempt fails when it returns `Err`;
//! the return type must be a `Result` (any alias: `io::Result<T>`, `anyhow::Result<T>`). It
//! works on sync and `async` functions, methods taking `&self` or `&mut self`, and generic
//! functions. A stream or iterator cannot be retried once items are handed out: retry the call
//! that opens it.
//!
//! # Arguments
//!
//! | argument | meaning |
//! |---|---|
//! | `max_attempts = 3` | total calls, the first included (default 3) |
//! | `backoff = exponential(initial = 500ms, factor = 2, max = 8s)` | the default, as the OpenAI and Anthropic SDKs; each value is optional |
//! | `backoff = constant(1s)` | the same wait every time |
//! | `backoff = fibonacci(initial = 500ms, max = 8s)` | waits of 1, 1, 2, 3, 5, ... times `initial` |
//! | `jitter = full` | `full` (default): uniform in `[0, wait]`; `equal`: in `[wait/2, wait]`; `decorrelated`: in `[initial, 3 × last wait]`; `none` |
//! | `max_delay = 10s` | caps every wait, a server's `retry-after` included |
//! | `max_elapsed = 30s` | no wait starts that would end past this much time since the first attempt |
//! | `attempt_timeout = 20s` | `async fn` only: an attempt running longer fails with [`TimedOut`], which the error type must convert from |
//! | `when = path` | `fn(&E) -> bool`: which errors are retried (default: all) |
//! | `classify = path` | `fn(&E) -> Decision`: retry, retry after a given wait, or stop; see [`classify_http`] |
//! | `sleep = path` | how to wait: `async fn(Duration)` for other runtimes than tokio, or `fn(Duration)` for a sync function |
//! | `clone(a, b)` | owned arguments cloned for each attempt |
//! | `crate = "path"` | where `honeyhive_runtime` is, if renamed |
//!
//! Durations are literals: `250ms`, `2s`, `1.5s`, `1m`, `1h`. Mistakes (an unknown or duplicate
//! argument, zero attempts, a duration without a unit, an unknown jitter, `attempt_timeout` on
//! a sync function) are compile errors at the argument.
//!
//! The attempts share the function's arguments, as a Python decorator passes the same objects
//! to each call: a body that only borrows an owned argument (`prompt: String` read as `&prompt`)
//! needs nothing, and `Copy` arguments are copied where they are used. A body that consumes an
//! owned argument needs one per attempt, `clone(..)`; without it the compile error points at
//! the move ("closure is `FnOnce` because it moves the variable"). A `mut` owned argument
//! starts each attempt from the caller's value, so it must be `Copy` or in `clone(..)` (the
//! error at the argument says so); so does each `mut` binding of a pattern argument
//! (`(mut a, b): (u32, u32)`, which `clone(a)` names as it names an argument) and a `mut _name`
//! (used all the same). A `ref mut` binding into an argument taken by value is refused: every
//! attempt would change the same value. `self` follows the same rule: `&self`, `&mut self`, and `self`
//! or `self: Arc<Self>` by value, shared by the attempts; a `mut self` by value is refused.
//!
//! On an `#[async_trait]` method the attempts run the body inside the boxed future, after
//! `#[async_trait]` has rebound the arguments, so the rules above hold there too (the future
//! stays `Send`); `#[trace]` goes above `#[retry]`, since a span per attempt would need the
//! method's signature, which `#[async_trait]` has rewritten.
//!
//! An `async fn` waits on tokio's timer (the `tokio` feature, on by default), so it never blocks
//! the executor, and tests under `tokio::time::pause` take no time. Without the feature, name
//! another runtime's sleep with `sleep = path`; forgetting both is a compile error. A sync
//! function sleeps its thread; [`TestClock`] simulates that in tests.
//!
//! # What is recorded
//!
//! On the current span, a `retry` event for each failed attempt:
//!
//! | attribute | value |
//! |---|---|
//! | `retry.attempt` | the attempt that failed, from 1 |
//! | `retry.max_attempts` | `max_attempts` |
//! | `retry.delay_ms` | the wait before the next attempt (0 when there is none) |
//! | `retry.reason` | `retryable`, `retry_after`, or why there is no next attempt: `exhausted`, `non_retryable`, `budget_exceeded` |
//! | `error.type`, `exception.message` | the error |
//!
//! and when the call ends, `retry.attempts`, `retry.outcome` (`success`, `exhausted`,
//! `non_retryable`, `budget_exceeded`, or `cancelled` when the future is dropped between
//! attempts) and `retry.total_delay_ms`. The console exporter shows `(n attempts)`.
//!
//! The order of `#[retry]` and `#[trace]` matters, as with Python decorators:
//!
//! - `#[trace] #[retry]`: one span for the call, with the events and the outcome. It is marked
//!   failed only if the call's final result is an error.
//! - `#[retry] #[trace]`: one span per attempt, each with `retry.attempt`; a failed attempt's
//!   span has its error and its `retry` event, and the last attempt's span has the outcome. A
//!   `sample_rate` decision is made once per call: all its attempts are recorded, or none.
//!
//! Attributes of other crates (`#[tracing::instrument]`, `#[allow(..)]`) are kept; they expand
//! in Rust's order, the first written first, so one written above `#[retry]` ends up inside
//! each attempt. Between `#[trace]` and `#[retry]` none can (the attempts run inside the one
//! span): an attribute there that may be a macro is a compile error saying where it can go.
//!
//! # Explanation
//!
//! `#[retry(backoff = constant(1s), clone(request))] fn send(&mut self, request: Request) ->
//! Result<Reply, Error>` keeps its signature and becomes, roughly:
//!
//! ```ignore
//! fn send(&mut self, request: Request) -> Result<Reply, Error> {
//!     static __HH_RETRY: RetryPolicy = RetryPolicy { max_attempts: 3, backoff: Constant(1s), .. };
//!     let mut __hh_body = || -> Result<Reply, Error> {
//!         let request = Clone::clone(&request);     // each attempt's own copy
//!         { /* the original body: `?` and `return` leave this closure */ }
//!     };
//!     let mut __hh_retry = Retry::new_sync(&__HH_RETRY);
//!     loop {
//!         __hh_retry.begin();
//!         let __hh_ret = __hh_retry.run(&mut __hh_body);   // sets current_attempt()
//!         // Classifies an error, records the `retry` event or the outcome on the current span.
//!         match __hh_retry.after(retry_error(&__hh_ret), |_| Decision::Retry, describe) {
//!             Some(delay) => __hh_retry.sleep_sync(delay),
//!             None => return __hh_ret,
//!         }
//!     }
//! }
//! ```
//!
//! An `async fn` does the same with an async closure and awaits the timer. Under `#[retry]
//! #[trace]`, each attempt is the traced call: `#[trace]`'s expansion wraps the call of the
//! closure and the classification, so both happen inside the attempt's span.

// `pub(crate)`: the crate's `__private` re-exports what the expansion calls.
pub(crate) mod executor;
mod http;
pub(crate) mod policy;

use std::fmt;
use std::time::Duration;

pub use http::{
    HttpFailure, RETRY_AFTER_CAP, classify_http, classify_status, is_retryable_status,
    parse_retry_after, retry_after,
};
pub use policy::{set_thread_jitter_fraction, set_thread_rng_seed};

/// What to do after a failed attempt; returned by a `classify = path` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try again after the policy's backoff.
    Retry,
    /// Try again after this long (a server's `retry-after`), instead of the backoff. The wait
    /// is still capped by `max_delay` and counted against `max_elapsed`.
    RetryAfter(Duration),
    /// Give up and return this error.
    Stop,
}

/// The number of the attempt in progress (1 for the first call), inside a function under
/// `#[retry]` and anything it calls on the same thread or task; `None` elsewhere.
///
/// ```
/// use honeyhive_runtime::retry;
///
/// #[retry(backoff = constant(0ms))]
/// fn fetch() -> Result<u32, String> {
///     let attempt = retry::current_attempt().unwrap();
///     if attempt < 3 { Err(format!("attempt {attempt} failed")) } else { Ok(attempt) }
/// }
///
/// assert_eq!(fetch(), Ok(3));
/// assert_eq!(retry::current_attempt(), None);
/// ```
pub fn current_attempt() -> Option<u32> {
    executor::current_attempt()
}

/// The error an attempt ends with when it runs longer than `attempt_timeout`.
///
/// The function's error type must implement `From<TimedOut>`; `std::io::Error` (as
/// [`ErrorKind::TimedOut`](std::io::ErrorKind::TimedOut)), `Box<dyn Error + Send + Sync>` and
/// `anyhow::Error` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut {
    /// The limit the attempt exceeded.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timed out after {:?}", self.after)
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for std::io::Error {
    fn from(timeout: TimedOut) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, timeout)
    }
}

/// Makes sync retries on this thread wait on a simulated clock instead of sleeping, while the
/// returned guard lives. For tests: delays are recorded, and `max_elapsed` sees the simulated
/// time. (Async retries under tokio need nothing of the kind: use `tokio::time::pause`.)
///
/// ```
/// use std::time::Duration;
/// use honeyhive_runtime::retry;
/// use honeyhive_runtime::retry::TestClock;
///
/// #[retry(max_attempts = 3, backoff = constant(2s), jitter = none)]
/// fn always_fails() -> Result<(), String> {
///     Err("down".into())
/// }
///
/// let clock = TestClock::install();
/// assert!(always_fails().is_err());
/// assert_eq!(clock.sleeps(), [Duration::from_secs(2), Duration::from_secs(2)]);
/// ```
#[derive(Debug)]
pub struct TestClock {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl TestClock {
    /// Installs a simulated clock on this thread, starting at zero.
    ///
    /// # Panics
    /// If one is already installed on this thread.
    pub fn install() -> TestClock {
        executor::install_test_clock();
        TestClock {
            _not_send: std::marker::PhantomData,
        }
    }

    /// Moves the simulated time forward, e.g. to make an attempt look slow.
    pub fn advance(&self, by: Duration) {
        executor::advance_test_clock(by);
    }

    /// The simulated time since [`install`](TestClock::install).
    pub fn elapsed(&self) -> Duration {
        executor::test_clock_state().0
    }

    /// Every wait between attempts so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        executor::test_clock_state().1
    }
}

impl Drop for TestClock {
    fn drop(&mut self) {
        executor::uninstall_test_clock();
    }
}
