//! What `#[trace]` records, asserted on real finished spans.

use std::future::Future as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::trace;
use opentelemetry::trace::SpanId;

#[derive(Debug)]
struct Doc {
    #[allow(dead_code)] // read through Debug, which is what the span records
    id: u32,
}

#[trace(event_type = "retriever")]
fn retrieve(question: &str, k: usize) -> Vec<Doc> {
    (0..u32::try_from(k).unwrap())
        .map(|id| Doc { id })
        .collect()
}

#[trace(event_type = "model", name = "llm.complete")]
fn complete(prompt: String, temperature: f64, stream: bool) -> Result<String, std::io::Error> {
    if prompt.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty prompt",
        ));
    }
    let _ = (temperature, stream);
    Ok(format!("answer to {prompt}"))
}

#[trace(event_type = "chain")]
fn answer(question: &str) -> Result<String, std::io::Error> {
    let docs = retrieve(question, 2);
    let prompt = format!("{question} with {} docs", docs.len());
    complete(prompt, 0.2, false)
}

#[test]
fn parent_and_children_form_one_trace() {
    let rec = Recorder::start();
    answer("why").unwrap();
    let spans = rec.spans();
    assert_eq!(spans.names(), ["retrieve", "llm.complete", "answer"]);
    let root = spans.get("answer");
    assert!(root.is_root());
    let kids: Vec<_> = spans
        .children_of(root)
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(kids, ["retrieve", "llm.complete"]);
    for span in spans.iter() {
        assert_eq!(span.trace_id(), root.trace_id());
    }
    assert_ne!(
        spans.get("retrieve").span_id(),
        spans.get("llm.complete").span_id()
    );
}

#[test]
fn core_attributes_name_type_and_duration() {
    let rec = Recorder::start();
    answer("q").unwrap();
    let spans = rec.spans();
    let llm = spans.get("llm.complete");
    assert_eq!(llm.str("honeyhive_event_type"), Some("model"));
    assert_eq!(llm.name, "llm.complete");
    assert_eq!(
        llm.attr("honeyhive_event_name"),
        None,
        "the event name is the span name, not sent twice"
    );
    assert_eq!(
        spans.get("retrieve").str("honeyhive_event_type"),
        Some("retriever")
    );
    let root = spans.get("answer");
    let ms = root.f64("honeyhive_duration_ms").unwrap();
    let wall = root.end_time.duration_since(root.start_time).unwrap();
    assert!(
        (ms - wall.as_secs_f64() * 1e3).abs() < 0.01,
        "{ms} vs {wall:?}"
    );
    assert!(root.start_time <= llm.start_time && llm.end_time <= root.end_time);
}

#[test]
fn inputs_are_typed_text_or_debug_and_output_is_recorded() {
    let rec = Recorder::start();
    answer("why").unwrap();
    let spans = rec.spans();
    let retrieve = spans.get("retrieve");
    assert_eq!(retrieve.str("honeyhive_inputs.question"), Some("why"));
    assert_eq!(retrieve.i64("honeyhive_inputs.k"), Some(2));
    assert_eq!(
        retrieve.str("honeyhive_outputs.result"),
        Some("[Doc { id: 0 }, Doc { id: 1 }]")
    );
    let llm = spans.get("llm.complete");
    assert_eq!(llm.str("honeyhive_inputs.prompt"), Some("why with 2 docs"));
    assert_eq!(llm.f64("honeyhive_inputs.temperature"), Some(0.2));
    assert_eq!(llm.bool("honeyhive_inputs.stream"), Some(false));
    // The Ok value, as text: not `Ok("...")`.
    assert_eq!(
        llm.str("honeyhive_outputs.result"),
        Some("answer to why with 2 docs")
    );
}

#[test]
fn err_marks_the_same_span_failed_with_an_exception_event() {
    let rec = Recorder::start();
    let err = complete(String::new(), 0.0, true).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let spans = rec.spans();
    assert_eq!(
        spans.len(),
        1,
        "one span per call, never a second error span"
    );
    let span = spans.get("llm.complete");
    assert!(span.is_error());
    assert_eq!(span.error_message(), Some("empty prompt"));
    assert_eq!(span.str("honeyhive_error"), Some("empty prompt"));
    assert_eq!(span.attr("honeyhive_outputs.result"), None);
    let events: Vec<_> = span.events_named("exception").collect();
    assert_eq!(events.len(), 1);
    let ty = FinishedSpan::event_attr(events[0], "exception.type").unwrap();
    assert_eq!(
        ty.as_str(),
        "Error",
        "the short type name, not std::io::error::Error"
    );
    let msg = FinishedSpan::event_attr(events[0], "exception.message").unwrap();
    assert_eq!(msg.as_str(), "empty prompt");
}

#[trace]
fn explode(code: u32) -> u32 {
    assert!(code == 0, "boom {code}");
    code
}

#[trace(event_type = "chain")]
fn catches() -> bool {
    std::panic::catch_unwind(|| explode(7)).is_err()
}

#[trace]
fn cleanup(n: u32) -> u32 {
    n + 1
}

#[trace]
async fn cleanup_async(n: u32) -> u32 {
    n + 2
}

/// Runs traced cleanup, sync and async, when dropped: during unwinding, when a panic passes.
struct CleansUp;

impl Drop for CleansUp {
    fn drop(&mut self) {
        assert_eq!(cleanup(1), 2);
        let mut future = std::pin::pin!(cleanup_async(1));
        let waker = std::task::Waker::noop();
        let polled = future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        assert_eq!(polled, std::task::Poll::Ready(3));
    }
}

#[trace]
fn fails_with_cleanup() -> u32 {
    let _cleanup = CleansUp;
    panic!("the real failure")
}

#[test]
fn spans_that_run_and_end_during_unwinding_are_not_failed_by_the_panic_passing_through() {
    let rec = Recorder::start();
    assert!(std::panic::catch_unwind(fails_with_cleanup).is_err());
    let spans = rec.spans();
    let failed = spans.get("fails_with_cleanup");
    assert!(failed.is_error());
    // The panic's message is on the span it unwound through, not taken by the cleanup.
    assert_eq!(failed.error_message(), Some("the real failure"));
    for name in ["cleanup", "cleanup_async"] {
        let span = spans.get(name);
        assert!(
            !span.is_error(),
            "{name} ran and returned: {:?}",
            span.0.status
        );
        assert_eq!(
            spans.parent_of(span).map(|p| p.0.name.as_ref()),
            Some("fails_with_cleanup")
        );
    }
}

#[test]
fn panic_ends_the_span_as_error_and_keeps_unwinding() {
    let rec = Recorder::start();
    let payload = std::panic::catch_unwind(|| explode(3)).unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 3");
    assert!(catches());
    let spans = rec.spans();
    let failed: Vec<_> = spans.all("explode").collect();
    assert_eq!(failed.len(), 2);
    for span in failed {
        assert!(span.is_error());
        assert!(span.error_message().unwrap().starts_with("boom "));
    }
    // The parent that caught the panic is fine, and still the parent.
    let parent = spans.get("catches");
    assert!(!parent.is_error());
    assert_eq!(
        spans.children_of(parent)[0].str("honeyhive_error"),
        Some("boom 7")
    );
}

#[test]
fn captured_values_are_cut_at_the_byte_cap_with_a_marker() {
    let rec = Recorder::with(|b| b.capture_max_bytes(16));
    let long = "x".repeat(100);
    let _ = retrieve(&long, 30);
    let spans = rec.spans();
    let span = spans.get("retrieve");
    assert_eq!(
        span.str("honeyhive_inputs.question"),
        Some("xxxxxxxxxxxxxxxx…[truncated 84 bytes]")
    );
    let out = span.str("honeyhive_outputs.result").unwrap();
    assert!(out.starts_with("[Doc { id: 0 }, "), "{out}");
    assert!(out.contains("…[truncated "), "{out}");
    // Core keys are never cut.
    assert_eq!(span.str("honeyhive_event_type"), Some("retriever"));
}

struct Counted;
static DEBUG_CALLS: AtomicUsize = AtomicUsize::new(0);
static METADATA_EVALS: AtomicUsize = AtomicUsize::new(0);

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        DEBUG_CALLS.fetch_add(1, Ordering::SeqCst);
        f.write_str("Counted")
    }
}

fn tenant() -> &'static str {
    METADATA_EVALS.fetch_add(1, Ordering::SeqCst);
    "acme"
}

#[trace(metadata(tenant = tenant(), version = 3))]
fn with_metadata(value: &Counted) -> usize {
    let _ = value;
    1
}

#[test]
fn metadata_is_recorded_and_nothing_is_evaluated_when_unsampled() {
    use honeyhive_runtime::sampling::Sampler;
    {
        let rec = Recorder::with(|b| b.sampler(Sampler::AlwaysOff));
        DEBUG_CALLS.store(0, Ordering::SeqCst);
        METADATA_EVALS.store(0, Ordering::SeqCst);
        assert_eq!(with_metadata(&Counted), 1);
        assert!(rec.spans().is_empty());
        assert_eq!(DEBUG_CALLS.load(Ordering::SeqCst), 0, "no Debug formatting");
        assert_eq!(
            METADATA_EVALS.load(Ordering::SeqCst),
            0,
            "no metadata evaluated"
        );
    }
    let rec = Recorder::start();
    with_metadata(&Counted);
    let spans = rec.spans();
    let span = spans.get("with_metadata");
    assert_eq!(span.str("honeyhive_metadata.tenant"), Some("acme"));
    assert_eq!(span.i64("honeyhive_metadata.version"), Some(3));
    assert_eq!(span.str("honeyhive_inputs.value"), Some("Counted"));
}

#[trace(skip(secret))]
fn skip_one(user: &str, secret: &str) -> usize {
    user.len() + secret.len()
}

#[trace(skip_all, skip_output)]
fn skip_everything(user: &str) -> usize {
    user.len()
}

#[test]
fn skip_skip_all_and_skip_output() {
    let rec = Recorder::start();
    skip_one("ann", "hunter2");
    skip_everything("bob");
    let spans = rec.spans();
    let one = spans.get("skip_one");
    assert_eq!(one.str("honeyhive_inputs.user"), Some("ann"));
    assert_eq!(one.attr("honeyhive_inputs.secret"), None);
    assert_eq!(one.i64("honeyhive_outputs.result"), Some(10));
    let all = spans.get("skip_everything");
    assert!(
        all.attributes
            .iter()
            .all(|kv| !kv.key.as_str().starts_with("honeyhive_inputs.")
                && kv.key.as_str() != "honeyhive_outputs.result"),
        "{:?}",
        all.attributes
    );
}

// Every fn shape: methods, trait impls, generics, impl Trait, `?` and early return.

#[derive(Debug, Default)]
struct Agent {
    name: String,
    steps: u32,
}

impl Agent {
    #[trace(event_type = "agent")]
    fn step(&mut self, input: &str) -> &mut String {
        self.steps += 1;
        self.name.push_str(input);
        &mut self.name
    }

    #[trace]
    fn peek(&self) -> u32 {
        self.steps
    }

    #[trace]
    fn into_name(self) -> String {
        self.name
    }
}

trait Tool {
    fn call(&self, arg: u32) -> Result<u32, String>;
}

struct Doubler;

impl Tool for Doubler {
    #[trace(event_type = "tool")]
    fn call(&self, arg: u32) -> Result<u32, String> {
        let checked = arg.checked_mul(2).ok_or("overflow")?;
        if checked == 0 {
            return Ok(0);
        }
        Ok(checked)
    }
}

#[trace]
fn generic<T, U>(value: T, other: U) -> String
where
    T: std::fmt::Debug + Clone,
    U: AsRef<str> + std::fmt::Debug,
{
    format!("{:?}{}", value.clone(), other.as_ref())
}

#[trace(skip(items))]
fn evens(items: impl IntoIterator<Item = u32>, limit: u32) -> impl Iterator<Item = u32> {
    items.into_iter().filter(move |n| n % 2 == 0 && *n < limit)
}

#[test]
fn methods_trait_impls_generics_and_impl_trait() {
    let rec = Recorder::start();
    let mut agent = Agent::default();
    agent.step("a").push('!');
    assert_eq!(agent.peek(), 1);
    assert_eq!(agent.into_name(), "a!");
    assert_eq!(Doubler.call(4), Ok(8));
    assert_eq!(Doubler.call(u32::MAX), Err("overflow".to_owned()));
    assert_eq!(Doubler.call(0), Ok(0));
    assert_eq!(generic(7u8, "x"), "7x");
    assert_eq!(evens(1..10, 7).collect::<Vec<_>>(), [2, 4, 6]);
    let spans = rec.spans();
    assert_eq!(spans.get("step").str("honeyhive_event_type"), Some("agent"));
    assert_eq!(spans.get("step").str("honeyhive_inputs.input"), Some("a"));
    assert_eq!(spans.get("peek").i64("honeyhive_outputs.result"), Some(1));
    assert_eq!(
        spans.get("into_name").str("honeyhive_outputs.result"),
        Some("a!")
    );
    let calls: Vec<_> = spans.all("call").collect();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].i64("honeyhive_outputs.result"), Some(8));
    assert_eq!(
        calls[1].error_message(),
        Some("overflow"),
        "`?` is an Err return"
    );
    assert_eq!(
        calls[2].i64("honeyhive_outputs.result"),
        Some(0),
        "early return"
    );
    let g = spans.get("generic");
    assert_eq!(g.str("honeyhive_inputs.value"), Some("7"));
    assert_eq!(g.str("honeyhive_inputs.other"), Some("\"x\""));
    let e = spans.get("evens");
    assert_eq!(e.i64("honeyhive_inputs.limit"), Some(7));
    // An `impl Iterator` is not Debug: nothing is recorded for it, and nothing breaks.
    assert_eq!(e.attr("honeyhive_outputs.result"), None);
}

// Async: parent/child across `.await`, on a multi-thread runtime.

#[trace(event_type = "tool")]
async fn fetch(id: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    if id == 0 {
        return Err("no id".into());
    }
    Ok(id * 10)
}

#[trace(event_type = "chain")]
async fn pipeline(ids: Vec<u32>) -> Result<u32, String> {
    let mut total = 0;
    for id in ids {
        tokio::task::yield_now().await;
        total += fetch(id).await?;
        sync_step(total);
    }
    Ok(total)
}

#[trace]
fn sync_step(total: u32) -> u32 {
    total
}

#[test]
fn async_spans_follow_the_task_across_awaits_and_threads() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (a, b) = rt.block_on(async {
        let a = tokio::spawn(pipeline(vec![1, 2, 3]));
        let b = tokio::spawn(pipeline(vec![4, 0]));
        (a.await.unwrap(), b.await.unwrap())
    });
    assert_eq!(a, Ok(60));
    assert_eq!(b, Err("no id".to_owned()));
    drop(rt);
    let spans = rec.spans();
    let roots: Vec<_> = spans.all("pipeline").collect();
    assert_eq!(roots.len(), 2);
    for root in roots {
        assert!(root.is_root());
        let kids = spans.children_of(root);
        let failed = root.is_error();
        // ok: fetch + sync_step for ids 1, 2, 3; failed: fetch(4), sync_step, fetch(0).
        assert_eq!(
            kids.len(),
            if failed { 3 } else { 6 },
            "{:?}",
            spans.names()
        );
        for kid in &kids {
            assert_eq!(kid.trace_id(), root.trace_id());
            assert!(kid.start_time >= root.start_time && kid.end_time <= root.end_time);
        }
        if failed {
            assert_eq!(root.error_message(), Some("no id"));
            assert!(kids.iter().any(|k| k.name == "fetch" && k.is_error()));
        } else {
            assert_eq!(root.i64("honeyhive_outputs.result"), Some(60));
        }
    }
    assert!(
        spans
            .iter()
            .all(|s| s.parent_span_id != SpanId::INVALID || s.name == "pipeline")
    );
}

#[trace]
async fn slow_forever() -> u32 {
    std::future::pending::<()>().await;
    1
}

#[test]
fn a_future_dropped_before_completion_ends_its_span_as_cancelled() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = tokio::time::timeout(std::time::Duration::from_millis(1), slow_forever()).await;
        assert!(r.is_err());
    });
    let spans = rec.spans();
    assert_eq!(
        spans.get("slow_forever").bool("honeyhive.cancelled"),
        Some(true)
    );
}

#[async_trait::async_trait]
trait Retriever {
    async fn search(&self, query: &str, k: u32) -> Vec<String>;
}

struct Store;

#[async_trait::async_trait]
impl Retriever for Store {
    #[trace(event_type = "retriever")]
    async fn search(&self, query: &str, k: u32) -> Vec<String> {
        tokio::task::yield_now().await;
        sync_step(k);
        vec![format!("{query}:{k}")]
    }
}

#[test]
fn async_trait_methods_are_instrumented_around_the_future() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = rt.block_on(Store.search("rust", 2));
    assert_eq!(out, ["rust:2"]);
    let spans = rec.spans();
    let search = spans.get("search");
    assert_eq!(search.str("honeyhive_inputs.query"), Some("rust"));
    assert_eq!(search.str("honeyhive_outputs.result"), Some("[\"rust:2\"]"));
    // The child ran inside the future, so the span covers the awaited work.
    assert_eq!(spans.get("sync_step").parent_span_id, search.span_id());
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn traced_futures_stay_send() {
    let fut = pipeline(vec![1]);
    assert_send(&fut);
    let fut2 = Store.search("x", 1);
    assert_send(&fut2);
}
