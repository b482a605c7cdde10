//! A traced `async fn` behaves as the `async fn` it was: `#[trace]` writes it as a plain fn
//! returning the runtime's traced future (one coroutine per fn instead of two, for compile
//! time), and nothing a caller can see may change with that: when the arguments drop, what a
//! future that is never polled records, when the span opens, which span is its parent, and
//! when it ends.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;
use honeyhive_tests::Noisy;

/// Polls once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

// --- arguments ---------------------------------------------------------------------------

#[trace]
async fn holds(
    _guard: Noisy,
    _: Noisy,
    (_pair_a, _pair_b): (Noisy, Noisy),
    log: Rc<RefCell<Vec<&'static str>>>,
) -> usize {
    log.borrow_mut().push("body");
    let _local = Noisy("local", Rc::clone(&log));
    std::future::ready(()).await;
    log.borrow().len()
}

#[test]
fn arguments_live_until_the_body_is_done_and_drop_after_its_locals() {
    let _rec = Recorder::start();
    let log = Rc::new(RefCell::new(Vec::new()));
    let n = |name| Noisy(name, Rc::clone(&log));
    let mut call = Box::pin(holds(
        n("guard"),
        n("wildcard"),
        (n("pair_a"), n("pair_b")),
        Rc::clone(&log),
    ));
    assert!(
        log.borrow().is_empty(),
        "no argument is dropped by the call itself, even those the body never names"
    );
    assert_eq!(poll_once(call.as_mut()), Poll::Ready(1));
    let order = log.borrow().clone();
    assert_eq!(order[0], "body");
    assert_eq!(
        order[1], "local",
        "the body's locals drop first, as in an `async fn`"
    );
    let mut args = order[2..].to_vec();
    args.sort_unstable();
    assert_eq!(args, ["guard", "pair_a", "pair_b", "wildcard"]);
}

struct Owner {
    _held: Noisy,
}

impl Owner {
    #[trace]
    async fn consume(self, log: Rc<RefCell<Vec<&'static str>>>) {
        std::future::ready(()).await;
        log.borrow_mut().push("body");
    }
}

#[test]
fn self_by_value_lives_until_the_body_is_done() {
    let _rec = Recorder::start();
    let log = Rc::new(RefCell::new(Vec::new()));
    let owner = Owner {
        _held: Noisy("self", Rc::clone(&log)),
    };
    let mut call = Box::pin(owner.consume(Rc::clone(&log)));
    assert!(log.borrow().is_empty(), "`self` is not dropped by the call");
    assert_eq!(poll_once(call.as_mut()), Poll::Ready(()));
    assert_eq!(*log.borrow(), ["body", "self"]);
}

#[test]
fn a_future_never_polled_records_nothing_and_drops_its_arguments() {
    let rec = Recorder::start();
    let log = Rc::new(RefCell::new(Vec::new()));
    let n = |name| Noisy(name, Rc::clone(&log));
    let call = holds(n("guard"), n("wildcard"), (n("a"), n("b")), Rc::clone(&log));
    drop(call);
    assert_eq!(
        log.borrow().len(),
        4,
        "every argument dropped with the future"
    );
    assert!(
        !log.borrow().contains(&"body"),
        "the body never ran: an `async fn` does nothing until polled"
    );
    assert!(
        rec.spans().all("holds").next().is_none(),
        "no span for a call that never started"
    );
}

// --- when the span opens and ends ------------------------------------------------------------

#[trace]
async fn leaf(n: u32) -> u32 {
    std::future::ready(()).await;
    n + 1
}

#[trace]
fn marker() {}

#[trace(skip(call))]
fn poller(call: std::pin::Pin<&mut dyn Future<Output = u32>>) -> Poll<u32> {
    poll_once(call)
}

#[test]
fn the_span_opens_at_the_first_poll_under_what_is_current_there() {
    let rec = Recorder::start();
    // Created outside any span; a span recorded between the call and the first poll.
    let mut call = Box::pin(leaf(1));
    marker();
    assert_eq!(poller(call.as_mut()), Poll::Ready(2));
    let spans = rec.spans();
    let leaf = spans.get("leaf");
    assert_eq!(
        spans.parent_of(leaf).map(|p| p.name.to_string()).as_deref(),
        Some("poller"),
        "the parent is the span current at the first poll, as for an `async fn`"
    );
    assert!(
        spans.get("marker").end_time <= leaf.start_time,
        "the span starts at the first poll, not at the call"
    );
    assert_eq!(leaf.i64("honeyhive_inputs.n"), Some(1));
    assert_eq!(leaf.i64("honeyhive_outputs.result"), Some(2));
}

#[test]
fn the_span_ends_when_the_body_is_done_though_the_future_is_kept() {
    let rec = Recorder::start();
    let mut call = Box::pin(leaf(5));
    assert_eq!(poll_once(call.as_mut()), Poll::Ready(6));
    // `call` is still alive here.
    let spans = rec.spans();
    let leaf = spans.get("leaf");
    assert_eq!(leaf.bool("honeyhive.cancelled"), None);
    assert_eq!(leaf.i64("honeyhive_outputs.result"), Some(6));
    drop(call);
}

// --- Send, generics, borrowing ----------------------------------------------------------------

#[trace]
async fn generic_borrow<'a, T: std::fmt::Debug + Sync>(
    items: &'a [T],
    at: &usize,
) -> Option<&'a T> {
    std::future::ready(()).await;
    items.get(*at)
}

fn assert_send<F: Future + Send>(f: F) -> F {
    f
}

#[test]
fn the_future_is_send_when_the_body_is_and_borrows_like_an_async_fn() {
    let rec = Recorder::start();
    let items = vec!["a".to_owned(), "b".to_owned()];
    let at = 1;
    let mut call = Box::pin(assert_send(generic_borrow(&items, &at)));
    assert_eq!(poll_once(call.as_mut()), Poll::Ready(Some(&items[1])));
    let spans = rec.spans();
    assert_eq!(
        spans.get("generic_borrow").str("honeyhive_inputs.at"),
        None,
        "a number is recorded as a number"
    );
    assert_eq!(
        spans.get("generic_borrow").i64("honeyhive_inputs.at"),
        Some(1)
    );
}

// --- recursion -------------------------------------------------------------------------------

#[trace]
async fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    Box::pin(fib(n - 1)).await + Box::pin(fib(n - 2)).await
}

#[test]
fn a_recursive_async_fn_compiles_as_an_async_fn_does_and_nests_its_spans() {
    let rec = Recorder::start();
    let mut call = Box::pin(assert_send(fib(6)));
    assert_eq!(poll_once(call.as_mut()), Poll::Ready(8));
    let spans = rec.spans();
    // fib(6) makes 25 calls.
    assert_eq!(spans.all("fib").count(), 25);
    let root = spans
        .all("fib")
        .find(|s| s.i64("honeyhive_inputs.n") == Some(6))
        .expect("the outer call");
    let children: Vec<_> = spans
        .children_of(root)
        .iter()
        .map(|s| s.i64("honeyhive_inputs.n"))
        .collect();
    assert_eq!(children, [Some(5), Some(4)]);
}
