//! A thread whose first traced call comes from a thread-local destructor, after the thread's
//! other code used OpenTelemetry's current `Context` and that context was destroyed: reading
//! it again would panic, and a panic in a destructor aborts the process. The traced call runs,
//! returns what it returns, and its span is delivered (with no ambient parent to join).

use std::cell::RefCell;
use std::sync::Mutex;

use std::collections::HashMap;

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{SpanBuilder, otel_context, propagation, trace};

static RESULTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[trace]
fn traced_in_destructor(x: u32) -> u32 {
    x + 1
}

#[trace]
async fn traced_async_in_destructor(x: u32) -> u32 {
    x + 2
}

/// Polls a future that never waits to its end.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

struct TracesOnDrop;

impl Drop for TracesOnDrop {
    fn drop(&mut self) {
        let first = traced_in_destructor(1);
        let mut dynamic = SpanBuilder::new("dynamic in destructor").start();
        let inside = dynamic.in_scope(|| {
            let _cx = otel_context();
            traced_in_destructor(2)
        });
        dynamic.end();
        // The other entry points that look for an ambient parent: an async fn, and a handler
        // under a propagated caller.
        let awaited = ready(traced_async_in_destructor(1));
        let mut carrier: HashMap<String, String> = HashMap::new();
        propagation::inject(&mut carrier);
        let extracted = propagation::extract(&carrier).run(|| traced_in_destructor(5));
        RESULTS
            .lock()
            .unwrap()
            .push(format!("{first}:{inside}:{awaited}:{extracted}"));
    }
}

thread_local! {
    static USER: RefCell<Option<TracesOnDrop>> = const { RefCell::new(None) };
}

#[test]
fn a_first_traced_call_after_the_opentelemetry_context_is_gone_runs_and_is_recorded() {
    let recorder = Recorder::start();
    std::thread::spawn(|| {
        // The user's thread-local first, then OpenTelemetry's context (used by other code, not
        // through us): destroyed in the reverse order, the context goes before the destructor
        // that makes this thread's first traced call.
        USER.with_borrow_mut(|slot| *slot = Some(TracesOnDrop));
        let _ = opentelemetry::Context::current();
    })
    .join()
    .expect("the thread exits without a panic");
    assert_eq!(*RESULTS.lock().unwrap(), ["2:3:3:6"]);
    assert!(recorder.guard().force_flush());
    let spans = recorder.spans();
    assert_eq!(
        spans.all("traced_in_destructor").count(),
        3,
        "{:?}",
        spans.names()
    );
    assert_eq!(spans.all("traced_async_in_destructor").count(), 1);
    let dynamic = spans.get("dynamic in destructor");
    assert_eq!(spans.children_of(dynamic).len(), 1);
}
