use async_trait::async_trait;
use honeyhive_runtime::{retry, trace};

#[async_trait]
trait Llm {
    async fn complete(&self, prompt: &str) -> Result<String, String>;
}

struct Echo;

// A span per attempt is not available on an `#[async_trait]` method: `#[trace]` goes above.
#[async_trait]
impl Llm for Echo {
    #[retry]
    #[trace(event_type = "model")]
    async fn complete(&self, prompt: &str) -> Result<String, String> {
        Ok(prompt.to_owned())
    }
}

fn main() {}
