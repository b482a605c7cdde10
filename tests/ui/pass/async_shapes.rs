//! `async fn` shapes that `#[trace]` writes as a plain fn returning its traced future: each
//! must compile and behave as the `async fn` did (receivers of every kind, `mut` and pattern
//! arguments, `unsafe`, const generics, lifetime bounds, an awaited `impl Future` argument,
//! an `impl Trait` output, an `async fn` in a trait implemented and defaulted, attributes).

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[derive(Debug, Default)]
struct Counter(u32);

impl Counter {
    #[trace]
    async fn grow(mut self, by: u32) -> Self {
        self.0 += by;
        self
    }

    #[trace]
    async fn bump(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }

    #[trace]
    async fn pinned(self: Pin<&mut Self>) -> u32 {
        self.0
    }

    #[trace]
    async fn boxed(self: Box<Self>) -> u32 {
        self.0
    }
}

/// # Safety
/// `p` points to a live `u32`.
#[trace(skip(p))]
async unsafe fn read(p: *const u32) -> u32 {
    // SAFETY: the caller promises `p` is valid.
    unsafe { *p }
}

#[trace]
async fn fill<const N: usize>(v: u8) -> [u8; N] {
    [v; N]
}

#[trace]
async fn outlives<'a: 'b, 'b, T: Debug + 'a>(long: &'a T, _short: &'b str) -> &'b T {
    long
}

#[trace(skip(work))]
async fn awaits(work: impl Future<Output = u32>, mut extra: Vec<u32>) -> u32 {
    extra.push(work.await);
    extra.iter().sum()
}

#[trace]
async fn opaque(n: u8) -> impl Debug {
    n * 2
}

#[trace]
async fn pattern((a, b): (u32, u32), [c, _]: [u32; 2]) -> u32 {
    a + b + c
}

#[trace]
#[inline]
#[must_use = "the total is the point"]
#[allow(clippy::unused_async)]
async fn with_attributes(x: u32) -> u32 {
    x
}

trait Agent {
    async fn plan(&self, goal: &str) -> usize;

    #[trace]
    async fn plan_twice(&self, goal: &str) -> usize {
        self.plan(goal).await * 2
    }
}

struct Planner;

impl Agent for Planner {
    #[trace]
    async fn plan(&self, goal: &str) -> usize {
        goal.len()
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = Box::pin(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn main() {
    let rec = Recorder::start();
    let counter = block_on(Counter::default().grow(2));
    assert_eq!(counter.0, 2);
    let mut counter = counter;
    assert_eq!(block_on(counter.bump()), 3);
    assert_eq!(block_on(Pin::new(&mut counter).pinned()), 3);
    assert_eq!(block_on(Box::new(counter).boxed()), 3);
    let x = 7;
    // SAFETY: `&x` is a live `u32`.
    assert_eq!(block_on(unsafe { read(&raw const x) }), 7);
    assert_eq!(block_on(fill::<3>(1)), [1, 1, 1]);
    assert_eq!(*block_on(outlives(&5, "s")), 5);
    assert_eq!(block_on(awaits(async { 4 }, vec![1])), 5);
    assert_eq!(format!("{:?}", block_on(opaque(2))), "4");
    assert_eq!(block_on(pattern((1, 2), [3, 4])), 6);
    assert_eq!(block_on(with_attributes(9)), 9);
    assert_eq!(block_on(Planner.plan_twice("abc")), 6);
    let spans = rec.spans();
    for name in [
        "grow", "bump", "pinned", "boxed", "read", "fill", "outlives", "awaits", "opaque",
        "pattern", "with_attributes", "plan_twice", "plan",
    ] {
        assert!(spans.all(name).next().is_some(), "a span for {name}");
    }
    assert_eq!(spans.get("grow").i64("honeyhive_inputs.by"), Some(2));
    assert_eq!(spans.get("awaits").str("honeyhive_inputs.extra"), Some("[1]"));
    let plan = spans.get("plan");
    assert_eq!(
        spans.parent_of(plan).map(|p| p.name.to_string()).as_deref(),
        Some("plan_twice")
    );
}
