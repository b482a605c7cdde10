//! Traced code in every shape `#[trace]` supports, in a crate that denies rustc warnings and
//! clippy's pedantic lints and shadows the prelude's `Result`, `Option` and `Box`: the
//! expansion must add no warning of its own.

#![deny(warnings, clippy::pedantic)]
// Restriction lints a user may turn on: the expansion's bindings of the arguments must not
// trip them.
#![deny(clippy::shadow_same, clippy::shadow_reuse, clippy::shadow_unrelated)]

use std::fmt::{self, Debug};

use async_trait::async_trait;
use honeyhive_runtime::{retry, trace, with_request_id};

#[derive(Debug)]
struct MyError(&'static str);

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

type Result<T> = ::core::result::Result<T, MyError>;

#[derive(Debug, PartialEq, Eq)]
enum Option {
    Yes,
    No,
}

const MODEL: &str = "gpt-4o";

#[trace]
fn no_args() {}

#[trace(event_type = "tool")]
fn lookup(city: &str) -> usize {
    city.len()
}

#[trace]
fn parse(text: &str) -> Result<u32> {
    let n: u32 = text.trim().parse().map_err(|_| MyError("not a number"))?;
    if n == 0 {
        return Err(MyError("zero"));
    }
    Ok(n)
}

#[trace]
fn choose(yes: bool) -> Option {
    if yes { Option::Yes } else { Option::No }
}

/// `async-trait` itself needs the prelude's `Box`, so this shadow lives in a module of its own.
mod shadowed_box {
    use honeyhive_runtime::trace;

    #[derive(Debug)]
    pub(crate) struct Box;

    #[trace]
    pub(crate) fn unbox(b: Box) -> Box {
        b
    }

    #[trace]
    pub(crate) async fn unbox_async(b: Box) -> Box {
        tokio::task::yield_now().await;
        b
    }
}

#[trace]
fn early(flag: bool) {
    if flag {
        return;
    }
    no_args();
}

#[trace]
fn fail(reason: &str) -> ! {
    panic!("{reason}")
}

/// # Safety
/// `ptr` must be valid for reads.
#[trace]
unsafe fn read(ptr: *const u32) -> u32 {
    // SAFETY: the caller promises `ptr` is valid.
    unsafe { *ptr }
}

#[trace]
fn raw(r#type: &str, r#fn: u32) -> String {
    [r#type, &r#fn.to_string()].concat()
}

#[trace]
fn pair(_unused: u8, (a, b): (u8, u8)) -> u8 {
    a + b
}

#[trace]
async fn answer(question: &str) -> Result<String> {
    let n = parse(question)?;
    if n > 100 {
        return Ok("big".to_owned());
    }
    tokio::task::yield_now().await;
    Ok(format!("{n}"))
}

#[trace]
async fn unit_async(n: u32) {
    tokio::task::yield_now().await;
    early(n > 1);
}

#[trace]
fn largest<T>(items: &[T]) -> core::option::Option<&T>
where
    T: Ord + Debug,
{
    items.iter().max()
}

#[trace(skip(items))]
fn count(items: impl IntoIterator<Item = u8>) -> usize {
    items.into_iter().count()
}

#[trace]
fn tokens(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split_whitespace()
}

/// Patterns, `mut`, unused and by-value arguments: `#[trace]` moves each into the body's
/// future, as an `async fn` does.
#[trace]
async fn patterns(
    mut total: u32,
    (a, b): (u32, u32),
    _: u8,
    _unused: &str,
    ref_arg: String,
) -> u32 {
    total += a + b;
    tokio::task::yield_now().await;
    total + u32::try_from(ref_arg.len()).unwrap_or(0)
}

/// Owns a value, consumed by a traced `async fn` taking `self`.
#[derive(Debug)]
struct Owned(u32);

impl Owned {
    #[trace]
    async fn into_inner(self) -> u32 {
        tokio::task::yield_now().await;
        self.0
    }

    #[trace]
    async fn dropped(self) {
        tokio::task::yield_now().await;
    }
}

#[trace]
async fn describe(value: impl Debug + Send) -> String {
    tokio::task::yield_now().await;
    format!("{value:?}")
}

#[trace(
    name = "llm.complete",
    event_type = "model",
    sample_rate = 0.5,
    skip(api_key),
    metadata(model = MODEL, temperature = 0.2, prompt_len = prompt.len()),
)]
fn complete(prompt: &str, api_key: &str) -> String {
    format!("{prompt}{}", api_key.len())
}

#[trace(skip_all, skip_output)]
fn secret(password: &str) -> usize {
    password.len()
}

#[trace(event_type = "session")]
fn session() {}
#[trace(event_type = "chain")]
fn chain() {}
#[trace(event_type = "agent")]
fn agent() {}
#[trace(event_type = "retriever")]
fn retriever() {}
#[trace(event_type = "embedding")]
fn embedding() {}
#[trace(event_type = "evaluator")]
fn evaluator() {}
#[trace(event_type = "guardrail")]
fn guardrail() {}

#[trace(crate = "honeyhive_runtime", sample_rate = 1)]
fn with_crate() {}

#[derive(Debug, Clone)]
struct Agent {
    name: String,
    turns: u32,
}

impl Agent {
    #[trace]
    fn new(name: &str) -> Self {
        Agent {
            name: name.to_owned(),
            turns: 0,
        }
    }

    #[trace]
    fn name(&self) -> &str {
        &self.name
    }

    #[trace]
    fn name_mut(&mut self) -> &mut String {
        &mut self.name
    }

    #[trace]
    fn turn(&mut self, by: u32) -> u32 {
        self.turns += by;
        self.turns
    }

    #[trace]
    fn into_name(self) -> String {
        self.name
    }

    #[trace]
    async fn turn_async(&mut self, by: u32) -> u32 {
        tokio::task::yield_now().await;
        self.turns += by;
        self.turns
    }
}

impl fmt::Display for Agent {
    #[trace(skip(f))]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent {}", self.name)
    }
}

/// Native `async fn` in a trait, with a traced default body.
trait Planner {
    async fn plan(&self, goal: &str) -> Vec<String>;

    #[trace]
    async fn first_step(&self, goal: &str) -> core::option::Option<String> {
        self.plan(goal).await.into_iter().next()
    }
}

impl Planner for Agent {
    #[trace(event_type = "agent")]
    async fn plan(&self, goal: &str) -> Vec<String> {
        tokio::task::yield_now().await;
        vec![format!("{} thinks about {goal}", self.name)]
    }
}

#[trace]
async fn opaque(n: u8) -> impl Debug + Send {
    tokio::task::yield_now().await;
    (n, "opaque")
}

#[async_trait]
trait Llm {
    async fn complete(&self, prompt: &str) -> Result<String>;
    async fn reset(&mut self);
}

#[async_trait]
impl Llm for Agent {
    #[trace(event_type = "model")]
    async fn complete(&self, prompt: &str) -> Result<String> {
        if prompt.is_empty() {
            return Err(MyError("empty prompt"));
        }
        tokio::task::yield_now().await;
        Ok(format!("{}: {prompt}", self.name))
    }

    #[trace]
    async fn reset(&mut self) {
        tokio::task::yield_now().await;
        self.turns = 0;
    }
}

fn assert_send<T: Send>(_: &T) {}

/// `#[track_caller]`: the body runs inline, with `return` and `?` rewritten.
#[trace]
#[track_caller]
fn caller_line(
    text: std::option::Option<&str>,
    early: bool,
) -> std::option::Option<u32> {
    if early {
        return std::option::Option::None;
    }
    let found = text?;
    std::option::Option::Some(std::panic::Location::caller().line() + u32::from(found.is_empty()))
}

/// A sync fn returning a future: the span covers the future.
#[trace]
fn later(n: u32) -> impl std::future::Future<Output = u32> + Send {
    async move { n + 1 }
}

/// A unit fn whose body diverges.
#[trace]
#[allow(dead_code)]
fn unfinished(_reason: &str) {
    todo!()
}

/// An `#[expect]` of a lint the untraced fn meets: the expansion must not leave it
/// unfulfilled (`needless_pass_by_value` no longer fires once the argument moves into the
/// body's closure).
#[trace]
#[expect(clippy::needless_pass_by_value)]
fn word_count(words: Vec<String>) -> usize {
    words.len()
}

/// Arguments bound again where the body runs: by `#[trace]` on an `async fn`, by each attempt
/// of `#[retry]`, by `#[with_request_id]`.
#[trace]
async fn rebound(n: u32, (a, b): (u32, u32)) -> u32 {
    n + a + b
}

#[retry(max_attempts = 2, backoff = constant(0ms))]
fn attempted(n: u32) -> Result<u32> {
    Ok(n)
}

#[with_request_id]
async fn in_request(n: u32) -> u32 {
    n
}

/// A returned closure from an `async fn`, typed by the bound too.
#[trace]
async fn longer_than(n: usize) -> impl Fn(&str) -> bool {
    move |s| s.len() > n
}

/// A returned closure, whose argument types come from the bound.
#[trace]
fn predicate() -> impl Fn(&str) -> bool {
    |s| !s.is_empty()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(word_count(vec![String::new()]), 1);
    assert_eq!(rebound(1, (2, 3)).await, 6);
    assert_eq!(attempted(1).unwrap_or_default(), 1);
    assert_eq!(in_request(1).await, 1);
    assert!(predicate()("x"));
    assert!(longer_than(1).await("ab"));
    let _guard = honeyhive_runtime::init();
    no_args();
    assert_eq!(lookup("Paris"), 5);
    assert!(parse("0").is_err());
    assert_eq!(choose(true), Option::Yes);
    let shadowed_box::Box = shadowed_box::unbox(shadowed_box::Box);
    let shadowed_box::Box = shadowed_box::unbox_async(shadowed_box::Box).await;
    early(true);
    let x = 7;
    // SAFETY: `&x` is valid.
    assert_eq!(unsafe { read(&raw const x) }, 7);
    assert_eq!(raw("t", 1), "t1");
    assert_eq!(pair(0, (1, 2)), 3);
    let future = answer("21");
    assert_send(&future);
    assert_eq!(future.await.unwrap_or_default(), "21");
    unit_async(2).await;
    assert_eq!(largest(&[1, 3, 2]), Some(&3));
    assert_eq!(count([1, 2]), 2);
    assert_eq!(tokens("a b").count(), 2);
    assert_eq!(describe(1).await, "1");
    assert_eq!(patterns(1, (2, 3), 0, "", "ab".to_owned()).await, 8);
    assert_eq!(Owned(4).into_inner().await, 4);
    Owned(5).dropped().await;
    assert_eq!(complete("hi", "key"), "hi3");
    assert_eq!(secret("pw"), 2);
    session();
    chain();
    agent();
    retriever();
    embedding();
    evaluator();
    guardrail();
    with_crate();
    let mut agent = Agent::new("ada");
    agent.name_mut().push('!');
    assert_eq!(agent.name(), "ada!");
    assert_eq!(agent.turn(1), 1);
    assert_eq!(agent.turn_async(1).await, 2);
    assert_eq!(agent.to_string(), "agent ada!");
    assert!(agent.complete("").await.is_err());
    agent.reset().await;
    assert!(agent.first_step("tea").await.is_some());
    assert_eq!(format!("{:?}", opaque(1).await), "(1, \"opaque\")");
    assert_eq!(agent.clone().into_name(), "ada!");
    assert!(caller_line(std::option::Option::Some("x"), false).is_some());
    assert!(caller_line(std::option::Option::None, false).is_none());
    assert_eq!(later(1).await, 2);
    if std::env::args().count() > 1 {
        fail("asked to fail");
    }
}
