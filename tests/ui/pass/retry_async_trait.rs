//! `#[retry]` on `#[async_trait]` methods: `&self`, `&mut self`, a default method, `clone(..)`,
//! a `mut` argument, `?`, a generic method, alone and under `#[trace]`; the futures stay `Send`
//! and callable through `dyn`.
#![deny(warnings)]

use std::time::Duration;

use async_trait::async_trait;
use honeyhive_runtime::{retry, trace};

async fn no_wait(_: Duration) {}

#[derive(Debug, Clone)]
struct Request {
    prompt: String,
}

fn send(request: Request) -> Result<String, String> {
    Ok(request.prompt)
}

#[async_trait]
trait Llm: Send + Sync {
    async fn complete(&self, request: Request) -> Result<String, String>;

    async fn count(&mut self, mut left: u32) -> Result<u32, String>;

    #[retry(max_attempts = 2, sleep = no_wait)]
    async fn twice(&self, prompt: String) -> Result<String, String> {
        let first = self
            .complete(Request {
                prompt: prompt.clone(),
            })
            .await?;
        Ok(format!("{first}{prompt}"))
    }
}

struct Echo {
    calls: u32,
}

#[async_trait]
impl Llm for Echo {
    #[trace(event_type = "model")]
    #[retry(max_attempts = 3, sleep = no_wait, clone(request))]
    async fn complete(&self, request: Request) -> Result<String, String> {
        send(request)
    }

    #[retry(max_attempts = 3, sleep = no_wait)]
    async fn count(&mut self, mut left: u32) -> Result<u32, String> {
        left -= 1;
        self.calls += 1;
        if self.calls < 3 {
            return Err(format!("attempt {}", self.calls));
        }
        Ok(left)
    }
}

#[async_trait]
trait Store {
    async fn put<T: std::fmt::Display + Send + Sync>(&self, key: &str, value: T)
    -> Result<String, String>;
}

#[async_trait]
impl Store for Echo {
    #[retry(sleep = no_wait)]
    async fn put<T: std::fmt::Display + Send + Sync>(
        &self,
        key: &str,
        value: T,
    ) -> Result<String, String> {
        let parsed: u32 = key.len().try_into().map_err(|_| "long".to_owned())?;
        Ok(format!("{key}={value}/{parsed}"))
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut echo = Echo { calls: 0 };
        {
            let llm: &dyn Llm = &echo;
            let request = Request { prompt: "a".into() };
            assert_eq!(assert_send(llm.complete(request)).await.unwrap(), "a");
            assert_eq!(llm.twice("b".into()).await.unwrap(), "bb");
        }
        assert_eq!(echo.count(10).await.unwrap(), 9, "each attempt starts from 10");
        assert_eq!(echo.calls, 3);
        assert_eq!(echo.put("k", 7).await.unwrap(), "k=7/1");
    });
}
