//! An owned argument the body only borrows needs no `clone(..)`: every attempt shares it, as a
//! Python decorator passes the same object to each call. Attempts see it unchanged, and it is
//! dropped once, after the last attempt.
#![deny(warnings)]

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use honeyhive_runtime::{retry, trace, with_request_id};

async fn no_wait(_: Duration) {}

fn no_wait_sync(_: Duration) {}

thread_local! {
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

/// Counts its drops, so a test sees the argument dropped once, not once per attempt.
#[derive(Debug)]
struct Request {
    prompt: String,
}

impl Drop for Request {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

fn fails_until(attempts: &Cell<u32>, ok_at: u32) -> Result<(), String> {
    attempts.set(attempts.get() + 1);
    if attempts.get() < ok_at {
        Err(format!("attempt {}", attempts.get()))
    } else {
        Ok(())
    }
}

#[retry(max_attempts = 3, sleep = no_wait_sync)]
fn sync_borrows(prompt: String, request: Request, attempts: &Cell<u32>) -> Result<usize, String> {
    fails_until(attempts, 3)?;
    Ok(prompt.len() + request.prompt.len())
}

#[retry(max_attempts = 3, sleep = no_wait)]
async fn async_borrows(
    prompt: String,
    options: HashMap<String, f64>,
    attempts: &Cell<u32>,
) -> Result<String, String> {
    fails_until(attempts, 2)?;
    let text: &str = &prompt;
    Ok(format!("{text}{}", options.len()))
}

#[trace(event_type = "model")]
#[retry(max_attempts = 3, sleep = no_wait)]
async fn traced_outside(request: Request, attempts: &Cell<u32>) -> Result<String, String> {
    fails_until(attempts, 2)?;
    Ok(request.prompt.to_uppercase())
}

#[retry(max_attempts = 3, sleep = no_wait)]
#[trace(event_type = "model")]
async fn traced_inside(request: Request, attempts: &Cell<u32>) -> Result<usize, String> {
    fails_until(attempts, 2)?;
    Ok(request.prompt.len())
}

#[retry(max_attempts = 3, sleep = no_wait_sync)]
#[trace(event_type = "tool")]
fn traced_inside_sync(prompt: String, attempts: &Cell<u32>) -> Result<usize, String> {
    fails_until(attempts, 2)?;
    Ok(prompt.len())
}

#[with_request_id]
#[trace(event_type = "chain")]
#[retry(max_attempts = 3, sleep = no_wait)]
async fn stacked(prompt: Arc<str>, attempts: &Cell<u32>) -> Result<usize, String> {
    fails_until(attempts, 3)?;
    Ok(prompt.len())
}

/// A `Copy` argument used by value, and a `mut` one that each attempt gets afresh.
#[retry(max_attempts = 3, sleep = no_wait_sync)]
fn copies(budget: u32, mut left: u32, attempts: &Cell<u32>) -> Result<u32, String> {
    left -= 1;
    fails_until(attempts, 3)?;
    Ok(budget + left)
}

struct Client {
    base: String,
}

impl Client {
    #[retry(max_attempts = 2, sleep = no_wait)]
    async fn send(&self, path: String, attempts: &Cell<u32>) -> Result<String, String> {
        fails_until(attempts, 2)?;
        Ok(format!("{}{path}", self.base))
    }

    #[retry(max_attempts = 2, sleep = no_wait_sync)]
    fn send_mut(&mut self, path: String, attempts: &Cell<u32>) -> Result<usize, String> {
        fails_until(attempts, 2)?;
        self.base.push_str(&path);
        Ok(self.base.len())
    }
}

fn request(prompt: &str) -> Request {
    Request {
        prompt: prompt.to_owned(),
    }
}

fn main() {
    by_value_self::check();
    let attempts = Cell::new(0);
    assert_eq!(sync_borrows("ab".into(), request("cde"), &attempts), Ok(5));
    assert_eq!(attempts.get(), 3);
    assert_eq!(DROPS.with(Cell::get), 1, "dropped once, after the last attempt");

    let attempts = Cell::new(0);
    assert_eq!(copies(10, 5, &attempts), Ok(14), "each attempt starts from 5");

    let attempts = Cell::new(0);
    assert_eq!(traced_inside_sync("xyz".into(), &attempts), Ok(3));

    let mut client = Client { base: "b/".into() };
    let attempts = Cell::new(0);
    assert_eq!(client.send_mut("p".into(), &attempts), Ok(3));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let attempts = Cell::new(0);
        let options = HashMap::from([("t".to_owned(), 0.5)]);
        assert_eq!(async_borrows("q".into(), options, &attempts).await, Ok("q1".into()));
        assert_eq!(attempts.get(), 2);

        DROPS.with(|d| d.set(0));
        let attempts = Cell::new(0);
        assert_eq!(traced_outside(request("hi"), &attempts).await, Ok("HI".into()));
        let attempts = Cell::new(0);
        assert_eq!(traced_inside(request("hey"), &attempts).await, Ok(3));
        assert_eq!(DROPS.with(Cell::get), 2, "each call dropped its argument once");

        let attempts = Cell::new(0);
        assert_eq!(stacked(Arc::from("four"), &attempts).await, Ok(4));
        let attempts = Cell::new(0);
        assert_eq!(client.send("x".into(), &attempts).await, Ok("b/px".into()));
    });
}

mod by_value_self {
    use std::sync::Arc;
    use std::time::Duration;

    use honeyhive_runtime::{retry, trace};

    async fn no_wait(_: Duration) {}

    fn no_wait_sync(_: Duration) {}

    #[derive(Debug)]
    pub struct Client {
        pub base: String,
    }

    /// `self` by value (plain or `Arc<Self>`) is shared by the attempts like any argument.
    impl Client {
        #[retry(max_attempts = 2, sleep = no_wait)]
        pub async fn get(self: Arc<Self>, path: String) -> Result<String, String> {
            Ok(format!("{}{path}", self.base))
        }

        #[trace]
        #[retry(max_attempts = 2, sleep = no_wait_sync)]
        pub fn len(self) -> Result<usize, String> {
            Ok(self.base.len())
        }

        #[retry(max_attempts = 2, sleep = no_wait_sync)]
        #[trace]
        pub fn len_per_attempt(self, extra: String) -> Result<usize, String> {
            Ok(self.base.len() + extra.len())
        }

        #[retry(max_attempts = 2, sleep = no_wait)]
        #[trace]
        pub async fn get_per_attempt(self: Arc<Self>, path: String) -> Result<String, String> {
            Ok(format!("{}{path}", self.base))
        }
    }

    pub fn check() {
        assert_eq!(Client { base: "abc".into() }.len(), Ok(3));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let client = Arc::new(Client { base: "b/".into() });
        assert_eq!(runtime.block_on(Arc::clone(&client).get("x".into())), Ok("b/x".into()));
        assert_eq!(runtime.block_on(client.get_per_attempt("y".into())), Ok("b/y".into()));
        assert_eq!(Client { base: "ab".into() }.len_per_attempt("cd".into()), Ok(4));
    }
}
