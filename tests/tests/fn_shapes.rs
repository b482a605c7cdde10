//! Function shapes where tracing must not change the program: `#[track_caller]`, fns that
//! return a future, `impl Stream` of another trait, `_name` arguments.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{retry, trace, with_request_id};

// --- #[track_caller] --------------------------------------------------------------------

#[trace]
#[track_caller]
fn here() -> &'static Location<'static> {
    Location::caller()
}

/// Reached through a `#[track_caller]` callee, as `unwrap` and `expect` are.
#[track_caller]
fn callee_location() -> &'static Location<'static> {
    Location::caller()
}

#[derive(Debug)]
struct Missing;

#[trace]
#[track_caller]
fn lookup(
    key: Option<u32>,
    fail_early: bool,
) -> Result<(u32, &'static Location<'static>), Missing> {
    if fail_early {
        return Err(Missing);
    }
    let value = key.ok_or(Missing)?;
    Ok((value, callee_location()))
}

#[trace]
#[track_caller]
fn first_even(items: &[u32]) -> Option<u32> {
    let first = *items.first()?;
    if first % 2 == 0 {
        return Some(first);
    }
    items.iter().copied().find(|n| n % 2 == 0)
}

struct Store;

impl Store {
    #[trace]
    #[track_caller]
    fn get(&self) -> &'static Location<'static> {
        callee_location()
    }
}

#[derive(Debug)]
struct Flaky;

#[retry(max_attempts = 3, backoff = constant(1ms), jitter = none)]
#[track_caller]
fn retried(calls: &std::cell::Cell<u32>) -> Result<&'static Location<'static>, Flaky> {
    calls.set(calls.get() + 1);
    if calls.get() < 2 {
        return Err(Flaky);
    }
    assert_eq!(honeyhive_runtime::retry::current_attempt(), Some(2));
    Ok(Location::caller())
}

#[trace]
#[retry(max_attempts = 2, backoff = constant(1ms), jitter = none)]
#[track_caller]
fn traced_retried(fail: bool) -> Result<&'static Location<'static>, Flaky> {
    if fail {
        Err(Flaky)?;
    }
    Ok(callee_location())
}

#[test]
fn track_caller_sees_the_callers_location_under_trace() {
    let rec = Recorder::start();
    let (at, line) = (here(), line!());
    assert_eq!((at.file(), at.line()), (file!(), line));

    let (value, at) = lookup(Some(4), false).unwrap();
    assert_eq!((value, at.line()), (4, line!() - 1));
    assert!(lookup(None, false).is_err());
    assert!(lookup(Some(1), true).is_err());

    let (at, line) = (Store.get(), line!());
    assert_eq!(at.line(), line);

    assert_eq!(first_even(&[2, 3]), Some(2));
    assert_eq!(first_even(&[1, 3, 4]), Some(4));
    assert_eq!(first_even(&[]), None);

    // The body runs inline, so `return` and `?` still pass through output capture.
    let spans = rec.spans();
    let lookups: Vec<_> = spans.all("lookup").collect();
    assert_eq!(lookups.len(), 3);
    assert!(!lookups[0].is_error());
    assert!(lookups[1].is_error() && lookups[2].is_error());
    let evens: Vec<_> = spans
        .all("first_even")
        .map(|s| s.attr("honeyhive_outputs.result").map(ToString::to_string))
        .collect();
    assert_eq!(evens[0].as_deref(), Some("Some(2)"));
    assert_eq!(evens[1].as_deref(), Some("Some(4)"));
    assert_eq!(evens[2].as_deref(), Some("None"));
}

#[test]
fn track_caller_sees_the_callers_location_under_retry() {
    let rec = Recorder::start();
    let calls = std::cell::Cell::new(0);
    let (at, line) = (retried(&calls).unwrap(), line!());
    assert_eq!((at.line(), calls.get()), (line, 2));

    let (at, line) = (traced_retried(false).unwrap(), line!());
    assert_eq!(at.line(), line);
    assert!(traced_retried(true).is_err());
    let spans = rec.spans();
    let failed = spans.all("traced_retried").find(|s| s.is_error()).unwrap();
    assert_eq!(failed.i64("retry.attempts"), Some(2));
}

fn fails_first(calls: &std::cell::Cell<u32>) -> Result<u32, Flaky> {
    calls.set(calls.get() + 1);
    if calls.get() < 2 {
        Err(Flaky)
    } else {
        Ok(calls.get())
    }
}

/// `?` and `return` inside macros' arguments, which run inline with the body.
#[retry(max_attempts = 3, backoff = constant(1ms), jitter = none)]
#[track_caller]
fn retried_in_macros(
    calls: &std::cell::Cell<u32>,
    how: u8,
) -> Result<(Vec<u32>, &'static Location<'static>), Flaky> {
    match how {
        0 => Ok((vec![fails_first(calls)?], Location::caller())),
        1 => {
            let text = format!("{}", fails_first(calls)?);
            Ok((vec![text.parse().unwrap()], Location::caller()))
        }
        _ => {
            assert!(
                calls.get() > 0 || {
                    calls.set(1);
                    return Err(Flaky);
                },
                "never: the block returns first"
            );
            Ok((vec![calls.get()], Location::caller()))
        }
    }
}

#[trace]
#[retry(max_attempts = 3, backoff = constant(1ms), jitter = none)]
#[track_caller]
fn traced_retried_in_macro(calls: &std::cell::Cell<u32>) -> Result<Vec<u32>, Flaky> {
    Ok(vec![fails_first(calls)?])
}

#[test]
fn question_marks_and_returns_in_macro_arguments_end_only_the_attempt() {
    let rec = Recorder::start();
    // The second attempt's value each time: `fails_first` counts 2, the `return` case 1.
    for (how, value) in [(0, 2), (1, 2), (2, 1)] {
        let calls = std::cell::Cell::new(0);
        let ((items, at), line) = (retried_in_macros(&calls, how).unwrap(), line!());
        assert_eq!(at.line(), line, "case {how}: the caller's location");
        assert_eq!(items, [value], "case {how}");
    }
    let calls = std::cell::Cell::new(0);
    assert_eq!(traced_retried_in_macro(&calls).unwrap(), [2]);
    let spans = rec.spans();
    let span = spans.get("traced_retried_in_macro");
    assert_eq!(span.i64("retry.attempts"), Some(2));
    assert_eq!(span.str("retry.outcome"), Some("success"));
}

// --- fns returning a future ----------------------------------------------------------------

#[trace]
async fn child(n: u32) -> u32 {
    n * 2
}

#[trace]
fn later(n: u32) -> impl Future<Output = u32> + Send {
    let base = n + 1;
    async move { child(base).await + 1 }
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

#[trace]
fn boxed(n: u32) -> Pin<Box<dyn Future<Output = Result<u32, Refused>> + Send>> {
    Box::pin(async move {
        let doubled = child(n).await;
        if doubled > 10 {
            Err(Refused)
        } else {
            Ok(doubled)
        }
    })
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[trace]
fn aliased(text: &str) -> BoxFuture<'_, usize> {
    Box::pin(async move { child(1).await as usize + text.len() })
}

#[with_request_id]
#[trace]
fn handler(n: u32) -> impl Future<Output = u32> {
    async move { child(n).await }
}

#[test]
fn a_returned_future_runs_inside_the_span() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let future = later(1);
    // Created, not yet run: the span is still open.
    assert!(rec.spans().all("later").next().is_none());
    assert_eq!(rt.block_on(future), 5);
    assert_eq!(rt.block_on(boxed(2)).ok(), Some(4));
    assert!(rt.block_on(boxed(6)).is_err());
    assert_eq!(rt.block_on(aliased("abc")), 5);
    assert_eq!(rt.block_on(handler(3)), 6);

    let spans = rec.spans();
    let outer = spans.get("later");
    let kids = spans.children_of(outer);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].name, "child");
    assert!(outer.end_time >= kids[0].end_time);
    assert_eq!(outer.i64("honeyhive_outputs.result"), Some(5));

    let boxed_spans: Vec<_> = spans.all("boxed").collect();
    assert_eq!(boxed_spans.len(), 2);
    assert!(!boxed_spans[0].is_error());
    assert_eq!(boxed_spans[1].error_message(), Some("refused"));
    for span in &boxed_spans {
        assert_eq!(spans.children_of(span).len(), 1);
    }
    assert_eq!(spans.children_of(spans.get("aliased")).len(), 1);

    let handler = spans.get("handler");
    let kids = spans.children_of(handler);
    assert_eq!(kids.len(), 1);
    let id = handler.str("honeyhive.request_id");
    assert!(id.is_some());
    assert_eq!(kids[0].str("honeyhive.request_id"), id);
}

// --- `impl Stream` of a trait that is not futures' ------------------------------------------

mod own {
    /// A trait of the user's that happens to be named `Stream`.
    pub(crate) trait Stream {
        type Item;
        fn pull(&mut self) -> Option<Self::Item>;
    }

    pub(crate) struct Countdown(pub(crate) u32);

    impl Stream for Countdown {
        type Item = u32;
        fn pull(&mut self) -> Option<u32> {
            self.0 = self.0.checked_sub(1)?;
            Some(self.0)
        }
    }
}

mod users_stream {
    use super::own::{Countdown, Stream};
    use honeyhive_runtime::trace;

    #[trace]
    pub(crate) fn countdown(n: u32) -> impl Stream<Item = u32> {
        Countdown(n)
    }

    #[trace]
    pub(crate) fn countdown_by_path(n: u32) -> impl super::own::Stream<Item = u32> {
        Countdown(n)
    }
}

struct Ticks(u32);

impl futures_core::Stream for Ticks {
    type Item = u32;
    fn poll_next(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<u32>> {
        self.0 = match self.0.checked_sub(1) {
            Some(n) => n,
            None => return std::task::Poll::Ready(None),
        };
        std::task::Poll::Ready(Some(self.0))
    }
}

#[trace]
fn ticks(n: u32) -> impl futures_core::Stream<Item = u32> {
    Ticks(n)
}

#[test]
fn only_futures_streams_are_traced_as_streams() {
    use own::Stream as _;
    let rec = Recorder::start();
    let mut s = users_stream::countdown(2);
    let mut s2 = users_stream::countdown_by_path(1);
    // The user's trait still works on what the traced fn returns.
    assert_eq!(
        (s.pull(), s.pull(), s.pull(), s2.pull()),
        (Some(1), Some(0), None, Some(0))
    );
    let n = futures_executor::block_on(async {
        let mut t = std::pin::pin!(ticks(3));
        let mut n = 0;
        while std::future::poll_fn(|cx| futures_core::Stream::poll_next(t.as_mut(), cx))
            .await
            .is_some()
        {
            n += 1;
        }
        n
    });
    assert_eq!(n, 3);
    let spans = rec.spans();
    // Ended at return, as for any fn: no stream attributes.
    for name in ["countdown", "countdown_by_path"] {
        assert_eq!(
            spans.get(name).i64("honeyhive.stream.items"),
            None,
            "{name}"
        );
    }
    assert_eq!(spans.get("ticks").i64("honeyhive.stream.items"), Some(3));
}

// --- `_name` arguments ---------------------------------------------------------------------

#[trace]
fn unused(_retries: u32, _: &str, used: bool) -> bool {
    used
}

#[test]
fn underscore_named_arguments_are_captured() {
    let rec = Recorder::start();
    unused(3, "ignored", true);
    let spans = rec.spans();
    let span = spans.get("unused");
    assert_eq!(span.i64("honeyhive_inputs._retries"), Some(3));
    assert_eq!(span.bool("honeyhive_inputs.used"), Some(true));
    let inputs = span
        .attributes
        .iter()
        .filter(|kv| kv.key.as_str().starts_with("honeyhive_inputs."))
        .count();
    assert_eq!(inputs, 2);
}

// --- `#[trace]` twice ----------------------------------------------------------------------

#[trace(name = "call")]
#[retry(max_attempts = 3, backoff = constant(1ms), jitter = none)]
#[trace(name = "attempt")]
fn span_per_call_and_per_attempt(calls: &std::cell::Cell<u32>) -> Result<u32, Flaky> {
    calls.set(calls.get() + 1);
    if calls.get() < 2 {
        Err(Flaky)
    } else {
        Ok(calls.get())
    }
}

#[test]
fn trace_retry_trace_is_a_span_per_call_around_a_span_per_attempt() {
    let rec = Recorder::start();
    let calls = std::cell::Cell::new(0);
    assert_eq!(span_per_call_and_per_attempt(&calls).unwrap(), 2);
    let spans = rec.spans();
    let call = spans.get("call");
    let attempts = spans.children_of(call);
    let names: Vec<_> = attempts.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["attempt", "attempt"]);
    assert_eq!(attempts[1].i64("retry.attempt"), Some(2));
}

// --- a cancelled async fn ------------------------------------------------------------------

#[trace]
async fn waits_forever() {
    std::future::pending::<()>().await;
}

#[trace]
async fn parent_of_waiter() -> u32 {
    waits_forever().await;
    1
}

#[test]
fn a_cancelled_async_fn_ends_marked_after_its_children() {
    let rec = Recorder::start();
    let mut call = Box::pin(parent_of_waiter());
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(call.as_mut().poll(&mut cx).is_pending());
    drop(call);
    let spans = rec.spans();
    let parent = spans.get("parent_of_waiter");
    let child = spans.get("waits_forever");
    assert_eq!(parent.bool("honeyhive.cancelled"), Some(true));
    assert_eq!(
        spans
            .parent_of(child)
            .map(honeyhive_runtime::testing::FinishedSpan::span_id),
        Some(parent.span_id())
    );
    assert!(child.end_time <= parent.end_time);
}

// --- arguments drop as in the untraced fn ----------------------------------------------------

use honeyhive_tests::{DropLog as Log, Noisy};

// The body names its arguments in another order than they are declared, and not at all:
// a closure or async block would capture them in that order, or leave them out.
macro_rules! drop_shapes {
    ($($(#[$attr:meta])* $name:ident $($asyncness:ident)?;)*) => {$(
        $(#[$attr])*
        $($asyncness)? fn $name(first: Noisy, _unnamed: Noisy, (pair, _): (Noisy, Noisy), last: Noisy) {
            let _local = Noisy("local", Log::clone(&first.1));
            let _ = (&last, &pair);
        }
    )*};
}

drop_shapes! {
    untraced;
    untraced_async async;
    #[trace] traced_async async;
    #[trace] traced;
    #[trace] #[with_request_id] traced_in_request;
    #[with_request_id] in_request async;
    #[trace] #[with_request_id] traced_in_request_async async;
}

#[trace]
#[allow(clippy::needless_pass_by_value)]
fn returns_future(first: Noisy, _unnamed: Noisy, last: Noisy) -> impl Future<Output = ()> {
    let _local = Noisy("local", Log::clone(&first.1));
    let _ = &last;
    std::future::ready(())
}

#[allow(clippy::needless_pass_by_value)]
fn untraced_returns_future(first: Noisy, _unnamed: Noisy, last: Noisy) -> impl Future<Output = ()> {
    let _local = Noisy("local", Log::clone(&first.1));
    let _ = &last;
    std::future::ready(())
}

#[test]
#[allow(clippy::many_single_char_names)]
fn arguments_drop_after_the_body_in_reverse_order_as_untraced() {
    let _rec = Recorder::start();
    let log = Log::default();
    let n = |name| Noisy(name, Log::clone(&log));
    let args = || {
        (
            n("first"),
            n("unnamed"),
            (n("pair"), n("pair_rest")),
            n("last"),
        )
    };
    let take = || std::mem::take(&mut *log.borrow_mut());

    let (a, b, c, d) = args();
    untraced(a, b, c, d);
    let expected = take();
    assert_eq!(expected[0], "local");
    for (name, call) in [
        ("traced", traced as fn(Noisy, Noisy, (Noisy, Noisy), Noisy)),
        ("traced_in_request", traced_in_request),
    ] {
        let (a, b, c, d) = args();
        call(a, b, c, d);
        assert_eq!(take(), expected, "{name}");
    }
    let (a, b, c, d) = args();
    futures_executor::block_on(untraced_async(a, b, c, d));
    let async_order = take();
    assert_eq!(async_order[0], "local");
    let (a, b, c, d) = args();
    futures_executor::block_on(traced_async(a, b, c, d));
    assert_eq!(take(), async_order, "traced_async");
    let (a, b, c, d) = args();
    futures_executor::block_on(in_request(a, b, c, d));
    assert_eq!(take(), async_order, "in_request");
    let (a, b, c, d) = args();
    futures_executor::block_on(traced_in_request_async(a, b, c, d));
    assert_eq!(take(), async_order, "traced_in_request_async");

    let (a, b, _, c) = args();
    take();
    drop(untraced_returns_future(a, b, c));
    let expected = take();
    let (a, b, _, c) = args();
    take();
    let future = returns_future(a, b, c);
    assert_eq!(
        take(),
        expected,
        "the arguments drop at the call, as untraced"
    );
    futures_executor::block_on(future);
}

// --- `#[track_caller]` on fns returning what the span wraps ----------------------------------

#[trace]
#[track_caller]
fn located_future() -> impl Future<Output = &'static Location<'static>> {
    let at = Location::caller();
    async move { at }
}

#[trace]
#[track_caller]
fn located_boxed() -> Pin<Box<dyn Future<Output = &'static Location<'static>> + Send>> {
    let at = Location::caller();
    Box::pin(async move { at })
}

#[trace]
#[track_caller]
fn located_items() -> impl Iterator<Item = &'static Location<'static>> {
    std::iter::once(Location::caller())
}

#[with_request_id]
#[track_caller]
fn located_in_request() -> impl Future<Output = &'static Location<'static>> {
    let at = Location::caller();
    async move { at }
}

#[test]
fn track_caller_sees_the_caller_in_fns_returning_futures_and_iterators() {
    let rec = Recorder::start();
    let (future, line) = (located_future(), line!());
    assert_eq!(futures_executor::block_on(future).line(), line);
    let (future, line) = (located_boxed(), line!());
    assert_eq!(futures_executor::block_on(future).line(), line);
    let (mut items, line) = (located_items(), line!());
    assert_eq!(items.next().map(Location::line), Some(line));
    drop(items);
    let (future, line) = (located_in_request(), line!());
    assert_eq!(futures_executor::block_on(future).line(), line);
    let spans = rec.spans();
    for name in ["located_future", "located_boxed", "located_items"] {
        assert!(spans.all(name).next().is_some(), "a span for {name}");
    }
}

// --- a returned future keeps its auto traits -------------------------------------------------

#[trace]
fn ready(n: u32) -> impl Future<Output = u32> {
    std::future::ready(n)
}

#[test]
fn a_returned_unpin_future_stays_unpin_and_its_span_ends_when_it_completes() {
    fn unpin<F: Future + Unpin>(f: F) -> F {
        f
    }
    let rec = Recorder::start();
    let mut future = unpin(ready(3));
    assert_eq!(
        Pin::new(&mut future).poll(&mut std::task::Context::from_waker(std::task::Waker::noop())),
        std::task::Poll::Ready(3)
    );
    assert_eq!(
        rec.spans().get("ready").i64("honeyhive_outputs.result"),
        Some(3)
    );
    drop(future);
    let spans = rec.spans();
    assert_eq!(spans.all("ready").count(), 1);
    assert_eq!(spans.get("ready").bool("honeyhive.cancelled"), None);

    // Dropped unfinished: the span ends then, marked cancelled.
    drop(later(1));
    assert_eq!(
        rec.spans().get("later").bool("honeyhive.cancelled"),
        Some(true)
    );
}
