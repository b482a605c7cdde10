//! A body is type-checked against the fn's declared return type under `#[trace]` and
//! `#[with_request_id]` as it is without them, also when the body moves into a closure or an
//! async block of the expansion: a sync fn returning `impl Future` or a boxed future whose
//! `async` block needs its output type (`?` with an error that is only `Debug`, `.collect()`,
//! `.sum()`, `.into()`, `Default::default()`), two branches returning different async blocks
//! as one `Pin<Box<dyn Future>>`, an `impl Iterator` whose items are inferred from its
//! `Item`, a returned closure whose argument types come from its `impl Fn` bound (also from
//! an `async fn`). Each is
//! traced (a span with its output) and returns what it did untraced; a returned future keeps
//! its auto traits (`Unpin`, `Send`, `Sync`), so they can be declared. Lint attributes keep
//! their meaning: `#[expect]` on a traced fn is not left unfulfilled by the expansion, an
//! argument's `#[allow(unused_variables)]` covers the binding the expansion makes of it, a
//! one-expression body under `#[with_request_id]` gets no `unused_braces`. A `#[retry]` async
//! fn's value coerces to its declared type (`&String` to `&str`, `Box<T>` to `Box<dyn Trait>`)
//! at the tail and at `return`, as untraced.

#![deny(warnings)]

use std::future::Future;
use std::pin::Pin;

use futures_executor::block_on;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{current_request_id, retry, trace, with_request_id};

/// An error that is `Debug` only: `?` must infer it, the output capture must not need more.
#[derive(Debug, PartialEq)]
struct Busy;

async fn send(n: u32) -> Result<u32, Busy> {
    if n == 0 { Err(Busy) } else { Ok(n) }
}

#[trace]
fn doubled(v: Vec<u32>) -> impl Future<Output = Vec<u32>> {
    async move { v.into_iter().map(|x| x * 2).collect() }
}

#[trace]
fn question(n: u32) -> impl Future<Output = Result<u32, Busy>> + Send {
    async move {
        let v = send(n).await?;
        Ok(v + 1)
    }
}

#[trace]
fn boxed_question(n: u32) -> Pin<Box<dyn Future<Output = Result<u32, Busy>> + Send>> {
    Box::pin(async move {
        let v = send(n).await?;
        Ok(v + 1)
    })
}

#[trace]
fn boxed_sum(v: Vec<u32>) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(async move { v.iter().sum() })
}

#[trace]
fn defaulted() -> impl Future<Output = String> {
    async { Default::default() }
}

#[trace]
fn converted(s: &'static str) -> impl Future<Output = String> {
    async move { s.into() }
}

#[trace]
fn cached(hit: Option<u32>) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    if let Some(v) = hit {
        return Box::pin(async move { v });
    }
    Box::pin(async { 42 })
}

#[trace]
#[track_caller]
fn cached_tracking(hit: Option<u32>) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    if let Some(v) = hit {
        return Box::pin(async move { v });
    }
    Box::pin(async { 42 })
}

#[with_request_id]
fn cached_in_request(hit: Option<u32>) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    if let Some(v) = hit {
        return Box::pin(async move { v });
    }
    Box::pin(async { 42 })
}

#[trace]
#[with_request_id]
fn question_in_request(n: u32) -> impl Future<Output = Result<u32, Busy>> {
    async move {
        let v = send(n).await?;
        Ok(v + u32::from(current_request_id().is_some()))
    }
}

#[trace]
fn numbers(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(',').map(|s| s.trim().parse().unwrap())
}

#[trace]
#[track_caller]
fn numbers_tracking(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(',').map(|s| s.trim().parse().unwrap())
}

#[trace]
fn non_empty() -> impl Fn(&str) -> bool {
    |s| !s.is_empty()
}

#[trace]
fn longer_than(n: usize) -> impl FnMut(&str) -> bool {
    move |s| s.len() > n
}

#[trace]
#[expect(unused_variables)]
fn stub(request: u32) -> u32 {
    0
}

#[trace]
async fn stub_async(#[allow(unused_variables)] request: u32) -> u32 {
    0
}

#[retry(max_attempts = 2, backoff = constant(0ms))]
fn retried_stub(#[allow(unused_variables)] request: u32) -> Result<u32, String> {
    Ok(0)
}

#[retry(max_attempts = 2, backoff = constant(0ms))]
async fn retried_stub_async(#[allow(unused_variables)] request: u32) -> Result<u32, String> {
    Ok(0)
}

/// What the retried async fns below borrow from.
struct Named {
    name: String,
}

impl Named {
    /// `&String` coerces to the declared `&str` at the tail and at a `return`, in each
    /// attempt's async closure as in the untraced fn.
    #[retry(max_attempts = 2, backoff = constant(0ms), jitter = none)]
    async fn name(&self, early: bool) -> Result<&str, String> {
        if early {
            return Ok(&self.name);
        }
        Ok(&self.name)
    }

    /// `Box<u8>` coerces to the declared `Box<dyn Debug>`, under `#[trace]` too.
    #[trace]
    #[retry(max_attempts = 2, backoff = constant(0ms), jitter = none)]
    async fn boxed(&self) -> Result<Box<dyn std::fmt::Debug + Send>, String> {
        Ok(Box::new(self.name.len()))
    }

    #[retry(max_attempts = 2, backoff = constant(0ms), jitter = none)]
    #[trace]
    async fn traced_name(&self) -> Result<&str, String> {
        Ok(&self.name)
    }
}

#[with_request_id]
fn one_expression(n: u32) -> u32 {
    n + 1
}

/// The returned future keeps the auto traits the user's has, so they can be declared.
#[trace]
fn ready_unpin(n: u32) -> impl Future<Output = u32> + Unpin + Send + Sync {
    std::future::ready(n)
}

#[with_request_id]
fn ready_unpin_in_request(n: u32) -> impl Future<Output = u32> + Unpin {
    std::future::ready(n)
}

/// Outputs named by a generic, by `Self`, with an elided lifetime, or not at all (`impl ..`).
#[trace]
fn defaulted_generic<T: Default + std::fmt::Debug>() -> impl Future<Output = T> {
    async { T::default() }
}

#[derive(Debug, Default)]
struct Counter(u32);

impl Counter {
    #[trace]
    fn make(n: u32) -> impl Future<Output = Self> {
        async move { Self(n) }
    }

    #[trace]
    fn doubles(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.0).map(|i| i * 2)
    }

    #[trace]
    fn into_sum(self, extra: String) -> usize {
        self.0 as usize + extra.len()
    }
}

#[trace]
fn trimmed(s: &str) -> impl Future<Output = &str> + '_ {
    async move { s.trim() }
}

#[trace]
fn opaque_output() -> impl Future<Output = impl std::fmt::Display> {
    async { 5 }
}

#[trace]
fn starts_with(prefix: &str) -> impl Fn(&str) -> bool + '_ {
    move |s| s.starts_with(prefix)
}

/// An `async fn` returning a closure: typed by the bound when a local fn can name it, left as
/// written when the bound names a generic of the impl.
#[trace]
async fn longer(n: usize) -> impl Fn(&str) -> bool {
    move |s| s.len() > n
}

#[trace]
async fn adder(base: u32) -> impl FnMut(u32) -> u32 + Send {
    let mut acc = base;
    move |x| {
        acc += x;
        acc
    }
}

#[trace]
#[must_use]
async fn zero_at() -> impl FnOnce(&[u8]) -> Option<usize> {
    |b| b.iter().position(|&x| x == 0)
}

struct Holder<T>(T);

impl<T: Clone + Send + 'static> Holder<T> {
    #[trace]
    async fn getter(&self) -> impl Fn(u8) -> T + '_ {
        move |_x: u8| self.0.clone()
    }
}

/// Arguments bound again in the body's closure: `mut`, `ref` and destructuring patterns, and a
/// `&'a mut` whose reborrow is returned.
#[trace]
fn patterns(mut total: u32, (a, mut b): (u32, u32), ref r: String) -> usize {
    b += 1;
    total += a + b;
    total as usize + r.len()
}

#[trace]
fn first_mut<'a>(v: &'a mut Vec<u8>) -> &'a mut u8 {
    v.push(1);
    &mut v[0]
}

#[trace]
#[must_use]
async fn total(x: u32) -> u32 {
    x
}

fn main() {
    let rec = Recorder::start();
    assert_eq!(block_on(doubled(vec![1, 2])), [2, 4]);
    assert_eq!(block_on(question(0)), Err(Busy));
    assert_eq!(block_on(question(1)), Ok(2));
    assert_eq!(block_on(boxed_question(2)), Ok(3));
    assert_eq!(block_on(boxed_sum(vec![1, 2, 3])), 6);
    assert_eq!(block_on(defaulted()), "");
    assert_eq!(block_on(converted("s")), "s");
    assert_eq!(block_on(cached(Some(1))), 1);
    assert_eq!(block_on(cached(None)), 42);
    assert_eq!(block_on(cached_tracking(None)), 42);
    assert_eq!(block_on(cached_in_request(Some(3))), 3);
    assert_eq!(block_on(question_in_request(1)), Ok(2));
    assert_eq!(numbers("1, 2").sum::<u64>(), 3);
    assert_eq!(numbers_tracking("3,4").collect::<Vec<_>>(), [3, 4]);
    assert!(non_empty()("x"));
    assert!(!longer_than(2)("ab"));
    assert_eq!(stub(1), 0);
    assert_eq!(block_on(stub_async(1)), 0);
    assert_eq!(retried_stub(1), Ok(0));
    assert_eq!(block_on(retried_stub_async(1)), Ok(0));
    let named = Named { name: "ann".into() };
    assert_eq!(block_on(named.name(true)), Ok("ann"));
    assert_eq!(block_on(named.name(false)), Ok("ann"));
    assert_eq!(format!("{:?}", block_on(named.boxed())), "Ok(3)");
    assert_eq!(block_on(named.traced_name()), Ok("ann"));
    assert_eq!(one_expression(1), 2);
    assert_eq!(block_on(total(4)), 4);
    assert_eq!(block_on(defaulted_generic::<u8>()), 0);
    assert_eq!(block_on(Counter::make(2)).0, 2);
    assert_eq!(Counter(3).doubles().sum::<u32>(), 6);
    assert_eq!(Counter(3).into_sum("ab".into()), 5);
    assert_eq!(block_on(trimmed(" x ")), "x");
    assert_eq!(block_on(opaque_output()).to_string(), "5");
    assert!(starts_with("a")("ab"));
    assert_eq!(patterns(1, (2, 3), "xy".into()), 9);
    let mut v = vec![];
    *first_mut(&mut v) = 9;
    assert_eq!(v, [9]);
    assert!(block_on(longer(1))("ab"));
    let mut add = block_on(adder(1));
    assert_eq!(add(2), 3);
    assert_eq!(block_on(zero_at())(b"a\0"), Some(1));
    assert_eq!(block_on(Holder(5u8).getter())(0), 5);
    let mut unpin = ready_unpin(5);
    assert_eq!(block_on(&mut unpin), 5);
    let mut unpin = ready_unpin_in_request(6);
    assert_eq!(block_on(&mut unpin), 6);

    let spans = rec.spans();
    assert_eq!(spans.get("doubled").str("honeyhive_outputs.result"), Some("[2, 4]"));
    assert_eq!(spans.get("boxed_sum").i64("honeyhive_outputs.result"), Some(6));
    let failed = spans.all("question").find(|s| s.is_error());
    assert!(failed.is_some(), "the `Err` of a returned future marks its span");
    for name in [
        "cached",
        "cached_tracking",
        "question_in_request",
        "numbers",
        "numbers_tracking",
        "non_empty",
        "longer_than",
        "stub",
        "total",
        "ready_unpin",
        "defaulted_generic",
        "make",
        "doubles",
        "trimmed",
        "starts_with",
        "patterns",
        "first_mut",
        "longer",
        "adder",
        "zero_at",
        "getter",
        "boxed",
        "traced_name",
    ] {
        assert!(spans.all(name).next().is_some(), "a span for {name}");
    }
    assert_eq!(spans.all("cached").count(), 2);
}
