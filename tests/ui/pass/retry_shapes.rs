//! Every fn shape `#[retry]` takes compiles cleanly, under shadowed prelude names, and keeps the
//! attributes it is stacked with.
#![deny(warnings)]

use std::fmt::Display;
use std::time::Duration;

use honeyhive_runtime::retry::{self as retries, Decision, TimedOut};
use honeyhive_runtime::{retry, trace};

// The expansion names everything absolutely.
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
enum Ordering {}

type Outcome<T> = ::core::result::Result<T, std::io::Error>;

fn transient(error: &std::io::Error) -> bool {
    error.kind() != std::io::ErrorKind::InvalidInput
}

fn classify(error: &std::io::Error) -> Decision {
    if transient(error) {
        Decision::RetryAfter(Duration::from_millis(1))
    } else {
        Decision::Stop
    }
}

async fn no_wait(_: Duration) {}

fn no_wait_sync(_: Duration) {}

#[retry(max_attempts = 2, backoff = constant(0ms))]
fn free(x: u32, name: &str) -> Outcome<String> {
    Ok(format!("{name}{x}"))
}

#[retry(backoff = fibonacci(initial = 1ms, max = 2ms), jitter = decorrelated, when = transient, sleep = no_wait_sync, clone(value))]
fn generic<T: Display + Clone, U>(value: T, other: &U) -> Outcome<String>
where
    U: Display + ?Sized,
{
    let _ = value;
    Ok(format!("{other}"))
}

#[retry(backoff = exponential(initial = 1ms, factor = 1.5, max = 1s), jitter = equal, clone(value), classify = classify)]
fn cloned<T: Display + Clone>(mut value: T, items: impl AsRef<[u8]> + Copy) -> Outcome<String> {
    value = value.clone();
    Ok(format!("{value}{}", items.as_ref().len()))
}

#[retry(max_attempts = 5, max_delay = 1s, max_elapsed = 1m, sleep = no_wait, attempt_timeout = 2s)]
async fn async_free(prompt: &str, temperature: f64) -> Result<String, Box2> {
    Ok(format!("{prompt}{temperature}"))
}

#[derive(Debug)]
struct Box2;

impl From<TimedOut> for Box2 {
    fn from(_: TimedOut) -> Self {
        Box2
    }
}

impl std::fmt::Display for Box2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("box2")
    }
}

struct Client {
    calls: u32,
}

impl Client {
    #[retry(backoff = constant(0ms))]
    fn borrow(&self) -> Outcome<u32> {
        Ok(self.calls)
    }

    #[retry(backoff = constant(0ms))]
    fn borrow_mut(&mut self) -> Outcome<&'static str> {
        self.calls += 1;
        Ok("ok")
    }

    #[trace(event_type = "model")]
    #[retry(backoff = constant(0ms), sleep = no_wait, clone(prompt))]
    async fn traced_outside(&mut self, prompt: String) -> Outcome<String> {
        self.calls += 1;
        Ok(prompt)
    }

    #[retry(backoff = constant(0ms), sleep = no_wait, clone(prompt))]
    #[trace(event_type = "model")]
    async fn traced_inside(&mut self, prompt: String, log: &mut Vec<String>) -> Outcome<usize> {
        self.calls += 1;
        log.push(prompt);
        Ok(log.len())
    }
}

// The attribute stays on the function: without it `unused` would fail the build.
#[retry(backoff = constant(0ms))]
#[allow(unused_variables)]
fn keeps_allow(unused: u32) -> Outcome<()> {
    let also_unused = 1;
    Ok(())
}

#[retry(backoff = constant(0ms), crate = "honeyhive_runtime")]
fn explicit_crate() -> Outcome<Result<u8, u8>> {
    Ok(Ok(retries::current_attempt().map_or(0, |_| 1)))
}

fn main() {
    assert_eq!(free(1, "a").unwrap(), "a1");
    assert_eq!(generic(1u8, "b").unwrap(), "b");
    assert_eq!(cloned("c", [1u8, 2]).unwrap(), "c2");
    keeps_allow(0).unwrap();
    assert_eq!(explicit_crate().unwrap(), Ok(1));
    let mut client = Client { calls: 0 };
    assert_eq!(client.borrow().unwrap(), 0);
    assert_eq!(client.borrow_mut().unwrap(), "ok");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(async_free("d", 0.5).await.unwrap(), "d0.5");
        assert_eq!(client.traced_outside("e".into()).await.unwrap(), "e");
        let mut log = Vec::new();
        assert_eq!(client.traced_inside("f".into(), &mut log).await.unwrap(), 1);
    });
}
