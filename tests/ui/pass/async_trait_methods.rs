//! `#[async_trait]` trait methods, including `&mut self`, defaults and `?`.

use async_trait::async_trait;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[async_trait]
trait Llm {
    async fn complete(&self, prompt: &str) -> Result<String, String>;
    async fn reset(&mut self, keep: usize);

    #[trace(event_type = "chain")]
    async fn twice(&self, prompt: &str) -> Result<String, String> {
        let first = self.complete(prompt).await?;
        self.complete(&first).await
    }
}

struct Echo {
    history: Vec<String>,
}

#[async_trait]
impl Llm for Echo {
    #[trace(event_type = "model")]
    async fn complete(&self, prompt: &str) -> Result<String, String> {
        if prompt.is_empty() {
            return Err("empty prompt".to_owned());
        }
        Ok(format!("{prompt}!"))
    }

    #[trace]
    async fn reset(&mut self, keep: usize) {
        self.history.truncate(keep);
    }
}

#[async_trait]
impl Llm for () {
    #[trace(skip_all)]
    async fn complete(&self, _prompt: &str) -> Result<String, String> {
        Ok(String::new())
    }

    #[trace]
    async fn reset(&mut self, _keep: usize) {}
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recorder = Recorder::start();
    let mut echo = Echo {
        history: vec!["a".into(), "b".into()],
    };
    let future = echo.twice("hi");
    assert_send(&future);
    assert_eq!(future.await.unwrap(), "hi!!");
    assert!(echo.complete("").await.is_err());
    echo.reset(1).await;
    assert_eq!(echo.history.len(), 1);
    ().reset(0).await;

    let spans = recorder.spans();
    let twice = spans.get("twice");
    assert_eq!(twice.str("honeyhive_inputs.prompt"), Some("hi"));
    assert_eq!(twice.str("honeyhive_outputs.result"), Some("hi!!"));
    let children = spans.children_of(twice);
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.name == "complete"));
    assert_eq!(spans.all("complete").filter(|s| s.is_error()).count(), 1);
    assert_eq!(spans.all("reset").count(), 2);
}
