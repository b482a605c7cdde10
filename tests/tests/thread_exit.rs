//! Tracing from a thread-local destructor: by then our own thread-locals on that thread may be
//! gone. Every entry point runs the user's code and returns what it returns; nothing panics
//! (a panic in a thread-local destructor aborts the process) and what cannot be recorded is
//! counted.
//!
//! The user's thread-local is touched first on its thread, so that (destructors running in
//! reverse order of registration) ours are destroyed before its destructor runs.

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::HashMap;

use honeyhive_runtime::propagation;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{
    LlmCall, SpanBuilder, bind_current, current_span_ids, enrich_span, export_stats, otel_context,
    retry, trace, with_request_id,
};

/// What each entry point returned, from inside the destructors.
static RESULTS: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());
static DESTRUCTORS_DONE: AtomicUsize = AtomicUsize::new(0);

#[trace]
fn traced_sync(x: u32) -> u32 {
    enrich_span().metadata("in_destructor", true);
    LlmCall::new("gpt-4o-mini")
        .message("user", "hi")
        .completion("hello")
        .usage(3, 2)
        .record();
    x + 1
}

#[trace]
async fn traced_async(x: u32) -> u32 {
    traced_sync(x) + 1
}

#[retry(max_attempts = 3, backoff = constant(1ms), jitter = none)]
fn retried(calls: &AtomicUsize) -> Result<usize, String> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 2 {
        Err("again".to_owned())
    } else {
        Ok(n)
    }
}

#[with_request_id]
#[trace]
fn in_request(x: u32) -> u32 {
    traced_sync(x) * 2
}

#[trace]
fn root_that_nests(x: u32) -> u32 {
    traced_sync(x) + in_request(x)
}

/// Polls a future that never waits (an executor's own thread-locals may be gone too).
fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the future waited"),
    }
}

fn opentelemetry_active(cx: &opentelemetry::Context) -> bool {
    use opentelemetry::trace::TraceContextExt as _;
    cx.span().span_context().is_valid()
}

/// Calls every entry point; what each returned goes to [`RESULTS`].
fn run_everything(label: &'static str) {
    let mut out = Vec::new();
    out.push(("sync", traced_sync(1).to_string()));
    out.push(("async", poll_ready(traced_async(1)).to_string()));
    let calls = AtomicUsize::new(0);
    out.push(("retry", format!("{:?}", retried(&calls))));
    out.push(("request", in_request(1).to_string()));
    out.push(("nested", root_that_nests(1).to_string()));
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagation::inject(&mut carrier);
    out.push((
        "extracted",
        propagation::extract(&carrier)
            .run(|| traced_sync(5))
            .to_string(),
    ));
    let mut dynamic = SpanBuilder::new(format!("dynamic {label}")).start();
    dynamic.set_attribute("round", label);
    let inside = dynamic.in_scope(|| {
        let ids = current_span_ids().is_some();
        let cx = otel_context();
        let bound = bind_current(|| traced_sync(7));
        format!("{ids}:{}:{}", opentelemetry_active(&cx), bound())
    });
    dynamic.end();
    out.push(("dynamic", inside));
    let mut results = RESULTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    results.extend(out.into_iter().map(|(k, v)| (k, format!("{label}:{v}"))));
}

struct TracesOnDrop(&'static str);

impl Drop for TracesOnDrop {
    fn drop(&mut self) {
        run_everything(self.0);
        DESTRUCTORS_DONE.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static FIRST: RefCell<Option<TracesOnDrop>> = const { RefCell::new(None) };
}

#[test]
fn every_entry_point_runs_from_a_thread_local_destructor() {
    let recorder = Recorder::start();
    std::thread::spawn(|| {
        // Registered before any of ours on this thread, so destroyed after them.
        FIRST.with_borrow_mut(|slot| *slot = Some(TracesOnDrop("after")));
        // Ours come to life here.
        run_everything("during");
    })
    .join()
    .expect("the thread exits without a panic");
    assert_eq!(DESTRUCTORS_DONE.load(Ordering::SeqCst), 1);
    let results = RESULTS.lock().unwrap().clone();
    let expected = [
        ("sync", "2"),
        ("async", "3"),
        ("retry", "Ok(2)"),
        ("request", "4"),
        ("nested", "6"),
        ("extracted", "6"),
        ("dynamic", "true:true:8"),
    ];
    for label in ["during", "after"] {
        for (what, value) in expected {
            assert!(
                results.contains(&(what, format!("{label}:{value}"))),
                "{what} {label}: {results:?}"
            );
        }
    }
    assert!(recorder.guard().force_flush());
    let spans = recorder.spans();
    let stats = export_stats();
    // Both rounds' spans arrived: twelve per round, the destructor's too.
    assert_eq!(spans.0.len(), 24, "{:?} {stats:?}", spans.names());
    assert_eq!(spans.all("traced_sync").count(), 14);
    for label in ["during", "after"] {
        let name = format!("dynamic {label}");
        let dynamic = spans.get(&name);
        assert_eq!(dynamic.str("round"), Some(label));
        assert_eq!(spans.children_of(dynamic).len(), 1);
    }
    // Whole traces: every parent arrived as well.
    for span in &spans.0 {
        assert!(
            span.is_root() || spans.parent_of(span).is_some(),
            "{} lost its parent",
            span.0.name
        );
    }
    // What could not reach its span in the destructor (the buffer of annotations is gone by
    // then) is counted, and the spans of the living thread carry theirs.
    let annotated = spans
        .all("traced_sync")
        .filter(|s| s.attr("gen_ai.request.model").is_some())
        .count();
    assert!(annotated >= 6, "{annotated} spans with their LLM call");
    assert_eq!(
        stats.lost_annotations > 0,
        annotated < 14,
        "annotations lost without a count: {stats:?}"
    );
}

thread_local! {
    static OPEN_ROOT: RefCell<Option<honeyhive_runtime::ActiveSpan>> = const { RefCell::new(None) };
}

#[test]
fn a_thread_that_ends_inside_a_span_delivers_the_trace() {
    let recorder = Recorder::start();
    std::thread::spawn(|| {
        // Touched first: dropped after our thread-locals.
        OPEN_ROOT.with_borrow_mut(|slot| {
            let mut root = SpanBuilder::new("left open").start();
            // Entered and never left (the guard is forgotten): the thread is still inside
            // the span when it ends, so the child waits in the thread's buffer.
            std::mem::forget(root.enter());
            traced_sync(1);
            *slot = Some(root);
        });
    })
    .join()
    .expect("the thread exits without a panic");
    assert!(recorder.guard().force_flush());
    let spans = recorder.spans();
    let root = spans.get("left open");
    let children = spans.children_of(root);
    assert_eq!(
        children.len(),
        1,
        "{:?} {:?}",
        spans.names(),
        export_stats()
    );
    assert_eq!(children[0].0.name, "traced_sync");
}
