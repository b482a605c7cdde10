//! Tracing never changes whether a future is `Send`: a traced async fn holding a `Send` value
//! across `.await` stays `Send`, so it can be spawned on a multi-threaded runtime.

use std::sync::Arc;

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;
use tokio::sync::Mutex;

fn assert_send<T: Send>(_: &T) {}

#[trace]
async fn step(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n + 1
}

#[trace(event_type = "chain")]
async fn pipeline(history: Arc<Mutex<Vec<u32>>>, start: u32) -> u32 {
    let held = vec![start];
    let a = step(start).await;
    let mut guard = history.lock().await;
    guard.push(a);
    let b = step(a).await;
    guard.push(b);
    held[0] + b
}

struct Service {
    calls: u32,
}

impl Service {
    #[trace]
    async fn handle(&mut self, request: String) -> String {
        let first = step(self.calls).await;
        self.calls = first;
        format!("{request} #{first}")
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let recorder = Recorder::start();
    let history = Arc::new(Mutex::new(Vec::new()));
    let future = pipeline(history.clone(), 1);
    assert_send(&future);
    assert_eq!(tokio::spawn(future).await.unwrap(), 4);
    assert_eq!(*history.lock().await, [2, 3]);

    let mut service = Service { calls: 0 };
    let future = service.handle("hello".to_owned());
    assert_send(&future);
    assert_eq!(future.await, "hello #1");
    assert_send(&step(1));

    let spans = recorder.spans();
    let pipeline = spans.get("pipeline");
    assert_eq!(pipeline.i64("honeyhive_outputs.result"), Some(4));
    let children = spans.children_of(pipeline);
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.name == "step"));
    spans.get("handle");
}
