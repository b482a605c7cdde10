//! The export engine as a user meets it: overload loses whole traces and counts them, a trace
//! larger than the queue still arrives whole, exporters that panic or trace themselves cannot
//! break export, spans ending after their root still join its trace and roll-ups, and
//! shutdown accounts for every thread's spans without blocking an async runtime.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use honeyhive_runtime::export::CircuitBreaker;
use honeyhive_runtime::metrics::Metrics;
use honeyhive_runtime::testing::{Recorder, Spans};
use honeyhive_runtime::{Carried, LlmCall, enrich_span, propagation, trace};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Every exported span's parent was exported too (or it is a root), and every exported trace
/// has its root.
fn assert_whole_traces(spans: &Spans) {
    let ids: HashSet<_> = spans.iter().map(|s| (s.trace_id(), s.span_id())).collect();
    let mut has_root: HashMap<_, bool> = HashMap::new();
    for span in spans.iter() {
        assert!(
            span.is_root() || ids.contains(&(span.trace_id(), span.parent_span_id)),
            "orphan {} in trace {}",
            span.name,
            span.trace_id()
        );
        *has_root.entry(span.trace_id()).or_default() |= span.is_root();
    }
    let rootless = has_root.values().filter(|r| !**r).count();
    assert_eq!(rootless, 0, "traces exported without their root");
}

/// An exporter that takes its time, as a remote backend does, so a loaded app overruns the
/// queue.
#[derive(Debug, Clone)]
struct Slow(Duration);

impl SpanExporter for Slow {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(self.0);
        Ok(())
    }
}

#[trace(event_type = "tool")]
async fn fetch(i: usize) -> usize {
    tokio::task::yield_now().await;
    i
}

#[trace(event_type = "chain")]
async fn handle(i: usize) -> usize {
    let mut sum = 0;
    for k in 0..4 {
        sum += fetch(i + k).await;
    }
    sum
}

#[test]
fn overload_drops_whole_traces_and_counts_them() {
    let rec = Recorder::with(|b| {
        b.with_exporter(Slow(Duration::from_millis(2)))
            .queue_capacity(256)
            .max_export_batch(64)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let tasks = 1_000;
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(handle(i))).collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), 4 * i + 6, "traced code returns its value");
        }
    });
    drop(rt);
    let spans = rec.spans();
    let stats = rec.guard().export_stats();
    assert!(stats.dropped > 0, "the load overran the queue: {stats:?}");
    assert!(stats.dropped_traces > 0, "{stats:?}");
    assert_whole_traces(&spans);
    let produced = (tasks * 5) as u64;
    assert_eq!(
        spans.len() as u64 + stats.dropped,
        produced,
        "every span is exported or counted: {stats:?}"
    );
}

#[test]
fn the_queue_counts_the_bytes_of_run_time_names_and_keys() {
    let rec = Recorder::with(|b| {
        b.with_exporter(Slow(Duration::from_millis(100)))
            .queue_max_bytes(4 << 20)
    });
    // Twenty roots of a megabyte each, in a run-time name and an attribute key: a queue
    // bounded at 4 MiB cannot hold them while the exporter is slow.
    let made = 20;
    for i in 0..made {
        let mut span =
            honeyhive_runtime::SpanBuilder::new(format!("{i}{}", "n".repeat(1 << 19))).start();
        span.set_attribute(format!("{i}{}", "k".repeat(1 << 19)), 1);
        span.end();
    }
    let spans = rec.spans();
    let stats = rec.guard().export_stats();
    assert!(
        stats.dropped > 0,
        "20 MiB went into a 4 MiB queue: {stats:?}"
    );
    assert_eq!(
        spans.len() as u64 + stats.dropped,
        made,
        "every span is exported or counted: {stats:?}"
    );
}

#[trace(event_type = "tool")]
fn leaf(i: usize) -> usize {
    i
}

#[trace(event_type = "chain")]
fn wide(n: usize) -> usize {
    (0..n).map(leaf).sum()
}

#[test]
fn a_trace_larger_than_a_thread_buffer_arrives_whole() {
    // The thread hands its spans over in parts (at most a quarter of the queue each); the
    // export thread holds the parts until the root comes.
    let rec = Recorder::start();
    assert_eq!(wide(3_000), 4_498_500);
    let spans = rec.spans();
    assert_eq!(spans.len(), 3_001);
    assert_eq!(rec.guard().export_stats().dropped, 0);
    assert_whole_traces(&spans);
    assert_eq!(spans.children_of(spans.get("wide")).len(), 3_000);
}

#[test]
fn a_trace_larger_than_the_free_queue_is_kept_or_dropped_whole_and_counted() {
    let rec = Recorder::with(|b| b.queue_capacity(64));
    for _ in 0..20 {
        assert_eq!(wide(1_000), 499_500);
    }
    let spans = rec.spans();
    let stats = rec.guard().export_stats();
    assert_whole_traces(&spans);
    assert_eq!(spans.len() % 1_001, 0, "only whole traces: {stats:?}");
    assert_eq!(spans.len() as u64 + stats.dropped, 20 * 1_001, "{stats:?}");
    assert_eq!(
        stats.dropped_traces > 0,
        stats.dropped > 0,
        "a lost trace is counted as one: {stats:?}"
    );
}

/// Panics on its first call, then works.
#[derive(Debug, Clone, Default)]
struct PanicsOnce {
    called: Arc<AtomicBool>,
    spans: Arc<AtomicUsize>,
}

impl SpanExporter for PanicsOnce {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        assert!(
            self.called.swap(true, Ordering::SeqCst),
            "exporter bug on the first batch"
        );
        self.spans.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn an_exporter_that_panics_is_counted_and_export_goes_on() {
    let exporter = PanicsOnce::default();
    let rec = Recorder::with(|b| b.with_exporter(exporter.clone()));
    assert_eq!(wide(2), 1);
    drop(rec.spans());
    assert_eq!(wide(3), 3);
    drop(rec.spans());
    let stats = rec.guard().export_stats();
    assert_eq!(stats.exporter_panics, 1, "{stats:?}");
    assert_eq!(stats.failed, 3, "the first trace failed with the panic");
    assert_eq!(
        exporter.spans.load(Ordering::SeqCst),
        4,
        "the second got through"
    );
}

/// Panics in `force_flush` and `shutdown` (as an exporter with a bug does), and records the
/// shutdown timeout it is given.
#[derive(Debug, Clone, Default)]
struct PanicsOutsideExport {
    spans: Arc<AtomicUsize>,
    panic: Arc<AtomicBool>,
    shutdown_timeout: Arc<Mutex<Option<Duration>>>,
}

impl SpanExporter for PanicsOutsideExport {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        assert!(
            !self.panic.load(Ordering::SeqCst),
            "exporter bug in force_flush"
        );
        Ok(())
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        *self.shutdown_timeout.lock().unwrap() = Some(timeout);
        assert!(
            !self.panic.load(Ordering::SeqCst),
            "exporter bug in shutdown"
        );
        Ok(())
    }
}

#[test]
fn an_exporter_that_panics_in_flush_or_shutdown_is_counted_and_export_goes_on() {
    let exporter = PanicsOutsideExport::default();
    exporter.panic.store(true, Ordering::SeqCst);
    let rec = Recorder::with(|b| b.with_exporter(exporter.clone()));
    assert_eq!(wide(2), 1);
    drop(rec.spans());
    assert_eq!(wide(3), 3);
    drop(rec.spans());
    assert_eq!(exporter.spans.load(Ordering::SeqCst), 7, "export went on");
    assert_eq!(
        rec.guard().export_stats().exporter_panics,
        2,
        "each flush's panic"
    );
    let report = rec.shutdown();
    assert!(report.completed, "{report:?}");
    assert_eq!(report.exported, 7);
    assert!(exporter.shutdown_timeout.lock().unwrap().is_some());
}

#[test]
fn an_exporter_is_given_what_is_left_of_the_shutdown_deadline() {
    let exporter = PanicsOutsideExport::default();
    let timeout = Duration::from_millis(300);
    let rec = Recorder::with(|b| b.with_exporter(exporter.clone()).shutdown_timeout(timeout));
    assert_eq!(wide(2), 1);
    let report = rec.shutdown();
    assert!(report.completed, "{report:?}");
    let given = exporter
        .shutdown_timeout
        .lock()
        .unwrap()
        .expect("shut down");
    assert!(
        given <= timeout,
        "given {given:?} of a {timeout:?} deadline"
    );
}

/// Fails every export.
#[derive(Debug, Clone, Default)]
struct Fails;

impl SpanExporter for Fails {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
            "backend down".into(),
        ))
    }
}

#[test]
fn durations_as_long_as_duration_max_never_break_export() {
    // `Duration::MAX` for "never" or "as long as it takes", in every setting that takes a
    // duration: `Instant + Duration` would panic on the export thread.
    let refusing = honeyhive_runtime::testing::RefusingPort::bind();
    let rec = Recorder::with(|b| {
        b.scheduled_delay(Duration::MAX)
            .circuit_breaker(CircuitBreaker::new(1, Duration::MAX).max_cool_down(Duration::MAX))
            .with_exporter(Fails)
            .metrics(
                Metrics::new()
                    .endpoint(format!("http://{}/v1/metrics", refusing.addr()))
                    .interval(Duration::MAX),
            )
    });
    for n in 1..4 {
        assert_eq!(wide(n), (0..n).sum::<usize>());
        assert_eq!(
            rec.spans().all("leaf").count(),
            n * (n + 1) / 2,
            "flush {n}"
        );
    }
    assert!(honeyhive_runtime::evaluate::wait(Duration::MAX));
    assert!(honeyhive_runtime::feedback::flush(Duration::MAX));
    let report = rec.shutdown();
    assert!(report.completed, "{report:?}");
}

#[trace(event_type = "tool")]
fn post_batch(n: usize) -> usize {
    n
}

/// An exporter whose HTTP client is itself traced.
#[derive(Debug, Clone, Default)]
struct TracedClient(Arc<Mutex<Vec<String>>>);

impl SpanExporter for TracedClient {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        post_batch(batch.len());
        self.0
            .lock()
            .unwrap()
            .extend(batch.iter().map(|s| s.name.to_string()));
        Ok(())
    }
}

#[test]
fn spans_made_inside_an_exporter_are_not_exported_again() {
    let exporter = TracedClient::default();
    let rec = Recorder::with(|b| b.with_exporter(exporter.clone()));
    assert_eq!(wide(2), 1);
    drop(rec.spans());
    drop(rec.spans());
    drop(rec.spans());
    let seen = exporter.0.lock().unwrap().clone();
    assert_eq!(seen, ["leaf", "leaf", "wide"], "only the app's spans, once");
}

/// A thread inside a root under which two leaves ended, until the returned barrier is
/// passed; the thread returns the root's result (3).
fn inside_a_root_on_another_thread() -> (std::thread::JoinHandle<usize>, Arc<Barrier>) {
    let ended = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (e, r) = (ended.clone(), release.clone());
    let worker = std::thread::spawn(move || {
        #[trace(event_type = "chain")]
        fn long_root(ended: &Barrier, release: &Barrier) -> usize {
            let n = leaf(1) + leaf(2);
            ended.wait();
            release.wait();
            n
        }
        long_root(&e, &r)
    });
    ended.wait();
    (worker, release)
}

#[test]
fn shutdown_counts_spans_buffered_on_threads_still_inside_a_root() {
    let rec = Recorder::start();
    let (worker, release) = inside_a_root_on_another_thread();
    let report = rec.shutdown();
    release.wait();
    assert_eq!(worker.join().unwrap(), 3);
    assert_eq!(report.lost_buffered, 2, "{report:?}");
    assert!(report.dropped >= 2, "{report:?}");
}

/// The names of the spans it exported, kept after shutdown (`InMemorySpanExporter` forgets).
#[derive(Debug, Clone, Default)]
struct Names(Arc<Mutex<Vec<String>>>);

impl SpanExporter for Names {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0
            .lock()
            .unwrap()
            .extend(batch.iter().map(|s| s.name.to_string()));
        Ok(())
    }
}

impl Names {
    fn sorted(&self) -> Vec<String> {
        let mut names = self.0.lock().unwrap().clone();
        names.sort();
        names
    }
}

/// A pipeline of its own, exporting to `names` (a test holds a `Recorder` for its turn).
fn pipeline(names: &Names) -> honeyhive_runtime::Guard {
    honeyhive_runtime::Builder::new()
        .env(|_| None)
        .with_exporter(names.clone())
        .exit_hook(false)
        .install()
        .expect("install")
}

#[test]
fn a_thread_still_inside_a_root_at_shutdown_gives_the_next_pipeline_nothing() {
    let _turn = Recorder::start();
    let first = Names::default();
    let guard = pipeline(&first);
    let (worker, release) = inside_a_root_on_another_thread();
    let report = guard.shutdown();
    assert_eq!(report.lost_buffered, 2, "{report:?}");
    // The next pipeline starts while the thread is still inside the root.
    let next = Names::default();
    let guard = pipeline(&next);
    release.wait();
    assert_eq!(worker.join().unwrap(), 3);
    assert_eq!(wide(2), 1);
    let report = guard.shutdown();
    // Only what was recorded for it: the first pipeline counted the two leaves as lost.
    assert_eq!(next.sorted(), ["leaf", "leaf", "wide"]);
    assert_eq!(report.exported, 3);
    assert!(first.sorted().is_empty());
}

#[test]
fn a_second_pipeline_does_not_lose_what_was_staged_for_the_first() {
    let _turn = Recorder::start();
    let first = Names::default();
    let first_guard = pipeline(&first);
    // A whole trace, staged on this thread for the first pipeline's next export.
    assert_eq!(wide(2), 1);
    let second = Names::default();
    let second_guard = pipeline(&second);
    assert_eq!(wide(3), 3);
    let first_report = first_guard.shutdown();
    let second_report = second_guard.shutdown();
    assert_eq!(first.sorted(), ["leaf", "leaf", "wide"]);
    assert_eq!(second.sorted(), ["leaf", "leaf", "leaf", "wide"]);
    assert_eq!(first_report.exported + second_report.exported, 7);
}

#[trace(event_type = "chain", skip(guard))]
fn shuts_down_inside(
    guard: honeyhive_runtime::Guard,
) -> (usize, honeyhive_runtime::ShutdownReport) {
    let n = leaf(1) + leaf(2);
    // Two leaves ended under this root, still open: there is no whole trace to export.
    (n, guard.shutdown())
}

#[test]
fn shutdown_from_inside_a_root_exports_no_orphans_and_counts_what_ended() {
    let _turn = Recorder::start();
    let names = Names::default();
    let (n, report) = shuts_down_inside(pipeline(&names));
    assert_eq!(n, 3);
    assert_eq!(report.lost_buffered, 2, "{report:?}");
    assert_eq!(report.exported, 0, "{report:?}");
    assert!(names.sorted().is_empty(), "orphans: {:?}", names.sorted());
}

#[test]
fn annotations_with_no_local_span_are_counted_not_kept() {
    let rec = Recorder::start();
    let mut headers = HashMap::new();
    headers.insert(
        "traceparent".to_owned(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
    );
    let remote = propagation::extract(&headers);
    for _ in 0..300 {
        remote.run(|| {
            enrich_span().metadata("k", "v");
        });
    }
    // A carried scope on another thread: the span lives on this one.
    #[trace(event_type = "chain")]
    fn parent() -> usize {
        let carried = Carried::current();
        std::thread::spawn(move || {
            carried.run(|| {
                LlmCall::new("gpt-4o-mini").usage(1, 1).record();
            });
        })
        .join()
        .unwrap();
        leaf(5)
    }
    assert_eq!(parent(), 5);
    let spans = rec.spans();
    assert_eq!(spans.names(), ["leaf", "parent"]);
    // 300 enrichments, and the LLM call's three attributes (model, two token counts; the
    // operation is picked from the event type on the export thread).
    assert_eq!(rec.guard().export_stats().lost_annotations, 303);
    // Nothing was left behind for the next span of this thread to carry.
    assert_eq!(leaf(1), 1);
    let spans = rec.spans();
    let last = spans.all("leaf").last().unwrap();
    assert_eq!(last.str("honeyhive_metadata.k"), None);
}

/// Pending until woken by the test.
struct Gate(Arc<AtomicBool>);

impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[trace(event_type = "tool")]
async fn waits(gate: Arc<AtomicBool>) -> u32 {
    Gate(gate).await;
    1
}

#[trace(event_type = "chain")]
async fn outer(gate: Arc<AtomicBool>) -> u32 {
    waits(gate).await
}

#[test]
fn a_cancelled_future_ends_its_children_before_itself() {
    let rec = Recorder::start();
    let mut fut = Box::pin(outer(Arc::new(AtomicBool::new(false))));
    let poll = fut
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()));
    assert!(poll.is_pending());
    drop(fut);
    let spans = rec.spans();
    let (parent, child) = (spans.get("outer"), spans.get("waits"));
    assert_eq!(spans.parent_of(child).unwrap().span_id(), parent.span_id());
    assert!(
        child.end_time <= parent.end_time,
        "child ended after parent"
    );
    assert_eq!(parent.bool("honeyhive.cancelled"), Some(true));
}

#[trace(event_type = "model")]
fn late_call() -> u32 {
    LlmCall::new("gpt-4o-mini").usage(100, 10).record();
    1
}

#[test]
fn work_carried_out_of_a_root_that_ends_later_joins_its_trace_and_totals() {
    let rec = Recorder::start();
    let go = Arc::new(Barrier::new(2));
    #[trace(event_type = "chain")]
    fn root(go: Arc<Barrier>) -> std::thread::JoinHandle<u32> {
        let carried = Carried::current();
        std::thread::spawn(move || {
            go.wait();
            carried.run(late_call)
        })
    }
    let handle = root(go.clone());
    // The root has ended; only now does the carried work run and end.
    go.wait();
    assert_eq!(handle.join().unwrap(), 1);
    let spans = rec.spans();
    let (root, late) = (spans.get("root"), spans.get("late_call"));
    assert!(
        late.end_time >= root.end_time,
        "the call ended after its root"
    );
    assert_eq!(late.parent_span_id, root.span_id());
    assert_eq!(root.i64("honeyhive.total.tokens"), Some(110));
    assert_eq!(rec.guard().export_stats().late_spans, 0);
}

#[test]
fn async_shutdown_does_not_block_the_runtime() {
    #[derive(Debug, Clone)]
    struct Hung;
    impl SpanExporter for Hung {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        }
    }
    let rec = Recorder::with(|b| {
        b.with_exporter(Hung)
            .shutdown_timeout(Duration::from_millis(500))
    });
    assert_eq!(wide(3), 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let report = rt.block_on(async move {
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let report = rec.shutdown_async().await;
        ticker.abort();
        report
    });
    assert!(
        !report.completed,
        "the hung exporter kept it past the deadline"
    );
    assert!(
        ticks.load(Ordering::SeqCst) > 1,
        "the one runtime thread kept running other tasks while shutdown waited"
    );
}
