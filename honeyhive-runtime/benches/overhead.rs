//! What tracing costs the caller, for `#[trace]` and its peers, in one run.
//!
//! Every peer runs the same request: a root function calling five children (two nested under
//! the first, one sibling, one with a child of its own), six spans in all. Every function takes
//! a `&str` and a `u64`, and each peer records both as span attributes (two per span); no peer
//! records the return value. All functions are `#[inline(never)]`, so the plain-function baseline
//! pays six real calls.
//!
//! Groups (one criterion group each, reported per request; divide by 6 for one span, or run
//! `python3 honeyhive-runtime/benches/ratios.py`):
//!
//! - `unsampled`: the plain functions; `#[trace]` with no pipeline installed; `#[trace]` under
//!   an `AlwaysOff` sampler (unsampled roots); tracing `#[instrument]` with no subscriber; the
//!   OpenTelemetry SDK with `ParentBased(TraceIdRatioBased(0.0))` (start + attributes +
//!   `Context` attach per span, on a span that is not recorded).
//! - `sampled`: the plain functions; `#[trace]` with a pipeline whose exporter discards
//!   batches; fastrace `#[trace]` without properties (`fastrace_trace_no_properties`) and with
//!   both arguments as properties (`fastrace_trace`), under a `Span::root` set as local parent,
//!   with a reporter that counts every span it is given (so fastrace really collects them: its
//!   spans are turned into `SpanRecord`s on its collector thread); the OpenTelemetry SDK
//!   (start, two `set_attribute`, `Context` attach per span; batch processor, exporter that
//!   discards);
//!   tracing `#[instrument]` with a `tracing-opentelemetry` layer over that same kind of SDK
//!   provider.
//!
//! Each peer installs what it needs right before it runs and removes it right after (our guard
//! is shut down, tracing's subscriber is scoped with `with_default`, SDK providers are shut
//! down), so peers never see each other's global state. fastrace's reporter cannot be removed,
//! and nothing after it uses fastrace. Tracing without a subscriber runs before any tracing
//! subscriber has ever existed in the process, as in a program that never installs one.
//!
//! Exporters and reporters count what they receive. After each sampled peer (flushed and shut
//! down) the bench prints how many spans it made and how many reached its exporter, and writes
//! both to `target/criterion/overhead-delivery.json`: every peer here exports asynchronously
//! through a bounded queue, and a loop that does nothing but trace makes spans faster than an
//! export thread takes them, so some peers drop most of them. `ratios.py` shows that share next
//! to the timings.
//!
//! Run: `cargo bench -p honeyhive-runtime --bench overhead`, then
//! `python3 honeyhive-runtime/benches/ratios.py` for ns per span and ratios.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Spans in one request.
const SPANS: u64 = 6;
/// The text argument every function records.
const QUERY: &str = "what is the capital of France?";

/// Defines `root` and its five children with the given attributes on each function.
macro_rules! request {
    ($(#[$attr:meta])*) => {
        $(#[$attr])*
        #[inline(never)]
        pub(crate) fn root(query: &str, n: u64) -> u64 {
            retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
        }

        $(#[$attr])*
        #[inline(never)]
        fn retrieve(query: &str, n: u64) -> u64 {
            embed(query, n) ^ search(query, n + 1)
        }

        $(#[$attr])*
        #[inline(never)]
        fn embed(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }

        $(#[$attr])*
        #[inline(never)]
        fn search(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }

        $(#[$attr])*
        #[inline(never)]
        fn rerank(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }

        $(#[$attr])*
        #[inline(never)]
        fn complete(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }
    };
}

/// The work every function does: almost none, so the table shows the tracing cost alone.
#[inline]
fn leaf(query: &str, n: u64) -> u64 {
    black_box(n).wrapping_add(query.len() as u64)
}

mod plain {
    use super::leaf;
    request!();
}

mod ours {
    use super::leaf;
    // `skip_output`: every peer records the two arguments and nothing else.
    request!(#[honeyhive_runtime::trace(skip_output)]);
}

mod with_tracing {
    use super::leaf;
    // `#[instrument]` records every argument (here both) and not the return value.
    request!(#[tracing::instrument]);
}

/// fastrace `#[trace]` without properties: what it costs to record a span and nothing else.
mod with_fastrace_bare {
    use super::leaf;
    use fastrace::prelude::{Span, SpanContext};

    #[inline(never)]
    pub(crate) fn root(query: &str, n: u64) -> u64 {
        let root = Span::root("root", SpanContext::random());
        let _scope = root.set_local_parent();
        retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
    }

    #[fastrace::trace]
    #[inline(never)]
    fn retrieve(query: &str, n: u64) -> u64 {
        embed(query, n) ^ search(query, n + 1)
    }

    #[fastrace::trace]
    #[inline(never)]
    fn embed(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[fastrace::trace]
    #[inline(never)]
    fn search(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[fastrace::trace]
    #[inline(never)]
    fn rerank(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[fastrace::trace]
    #[inline(never)]
    fn complete(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }
}

mod with_fastrace {
    use super::leaf;
    use fastrace::prelude::{Span, SpanContext};

    /// fastrace records only under a root `Span` set as the local parent, as a service does at
    /// its request boundary; so the root is written out by hand, with the same properties.
    #[inline(never)]
    pub(crate) fn root(query: &str, n: u64) -> u64 {
        let root = Span::root("root", SpanContext::random())
            .with_properties(|| [("query", query.to_owned()), ("n", n.to_string())]);
        let _scope = root.set_local_parent();
        retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
    }

    #[fastrace::trace(properties = { "query": "{query}", "n": "{n}" })]
    #[inline(never)]
    fn retrieve(query: &str, n: u64) -> u64 {
        embed(query, n) ^ search(query, n + 1)
    }

    #[fastrace::trace(properties = { "query": "{query}", "n": "{n}" })]
    #[inline(never)]
    fn embed(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[fastrace::trace(properties = { "query": "{query}", "n": "{n}" })]
    #[inline(never)]
    fn search(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[fastrace::trace(properties = { "query": "{query}", "n": "{n}" })]
    #[inline(never)]
    fn rerank(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[fastrace::trace(properties = { "query": "{query}", "n": "{n}" })]
    #[inline(never)]
    fn complete(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }
}

/// The raw OpenTelemetry SDK, written by hand the way the SDK documents it: per span,
/// `tracer.start`, two `set_attribute`, and a `Context` attach that makes it the parent of
/// what runs inside.
mod with_otel_sdk {
    use std::cell::RefCell;

    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::trace::SdkTracer;

    use super::leaf;

    thread_local! {
        /// The tracer of the provider installed for the current peer.
        static TRACER: RefCell<Option<SdkTracer>> = const { RefCell::new(None) };
    }

    pub(crate) fn set_tracer(tracer: Option<SdkTracer>) {
        TRACER.with(|t| *t.borrow_mut() = tracer);
    }

    #[inline]
    fn in_span<R>(name: &'static str, query: &str, n: u64, body: impl FnOnce() -> R) -> R {
        let mut span = TRACER.with(|t| {
            t.borrow()
                .as_ref()
                .expect("a tracer is installed")
                .start(name)
        });
        span.set_attribute(KeyValue::new("query", query.to_owned()));
        span.set_attribute(KeyValue::new("n", i64::try_from(n).unwrap_or(i64::MAX)));
        let _attached = Context::current_with_span(span).attach();
        body()
    }

    #[inline(never)]
    pub(crate) fn root(query: &str, n: u64) -> u64 {
        in_span("root", query, n, || {
            retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
        })
    }

    #[inline(never)]
    fn retrieve(query: &str, n: u64) -> u64 {
        in_span("retrieve", query, n, || {
            embed(query, n) ^ search(query, n + 1)
        })
    }

    #[inline(never)]
    fn embed(query: &str, n: u64) -> u64 {
        in_span("embed", query, n, || leaf(query, n))
    }

    #[inline(never)]
    fn search(query: &str, n: u64) -> u64 {
        in_span("search", query, n, || leaf(query, n))
    }

    #[inline(never)]
    fn rerank(query: &str, n: u64) -> u64 {
        in_span("rerank", query, n, || leaf(query, n))
    }

    #[inline(never)]
    fn complete(query: &str, n: u64) -> u64 {
        in_span("complete", query, n, || leaf(query, n))
    }
}

/// An OpenTelemetry exporter that counts the spans it is given and discards them.
#[derive(Debug, Clone, Default)]
struct Discard(Arc<AtomicU64>);

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Discard {
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A fastrace reporter that counts the spans it is given and discards them. fastrace hands it
/// finished `SpanRecord`s (names, ids, times, properties) built on its collector thread, so
/// every span counted here was really collected.
struct DiscardFastrace(Arc<AtomicU64>);

impl fastrace::collector::Reporter for DiscardFastrace {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        self.0.fetch_add(spans.len() as u64, Ordering::Relaxed);
    }
}

/// Flushes fastrace until its reporter's count stops moving (its collector thread hands over
/// spans after `flush` returns), so one peer's late spans are not counted for the next one.
/// Returns the count.
fn flush_fastrace(reported: &AtomicU64) -> u64 {
    let mut last = u64::MAX;
    loop {
        fastrace::flush();
        std::thread::sleep(Duration::from_millis(100));
        let now = reported.load(Ordering::Acquire);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Runs one peer: one request per iteration, with arguments the optimizer cannot see through.
/// Returns how many requests ran (warm-up included).
fn run(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, request: fn(&str, u64) -> u64) -> u64 {
    let mut requests = 0u64;
    group.bench_function(id, |b| {
        b.iter(|| {
            requests += 1;
            request(black_box(QUERY), black_box(7))
        });
    });
    requests
}

/// Spans each sampled peer made and spans that reached its exporter.
#[derive(Default)]
struct Deliveries(Vec<(&'static str, u64, u64)>);

impl Deliveries {
    fn add(&mut self, peer: &'static str, requests: u64, delivered: u64) {
        let made = requests * SPANS;
        #[allow(clippy::cast_precision_loss)] // a percentage
        let share = 100.0 * delivered as f64 / made.max(1) as f64;
        eprintln!("  [{peer}] spans made: {made}, reached the exporter: {delivered} ({share:.1}%)");
        self.0.push((peer, made, delivered));
    }

    /// Writes `criterion/overhead-delivery.json` next to criterion's own results.
    fn write(&self) {
        let Some(dir) = criterion_dir() else {
            return;
        };
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|(peer, made, delivered)| {
                format!("  \"{peer}\": {{\"made\": {made}, \"delivered\": {delivered}}}")
            })
            .collect();
        let json = format!("{{\n{}\n}}\n", entries.join(",\n"));
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("overhead-delivery.json"), json))
        {
            eprintln!("  cannot write overhead-delivery.json: {e}");
        }
    }
}

/// Where criterion writes: `$CARGO_TARGET_DIR/criterion`, else `target/criterion` above this
/// executable (`target/release/deps/overhead-*`).
fn criterion_dir() -> Option<std::path::PathBuf> {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(std::path::PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

fn our_pipeline(
    sampler: honeyhive_runtime::sampling::Sampler,
) -> (honeyhive_runtime::Guard, Discard) {
    let exporter = Discard::default();
    let guard = honeyhive_runtime::Builder::new()
        .env(|_| None)
        .with_exporter(exporter.clone())
        .sampler(sampler)
        .install()
        .expect("the pipeline installs");
    (guard, exporter)
}

fn otel_provider(
    sampler: opentelemetry_sdk::trace::Sampler,
) -> (opentelemetry_sdk::trace::SdkTracerProvider, Discard) {
    let exporter = Discard::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter.clone()).build(),
        )
        .with_sampler(sampler)
        .build();
    (provider, exporter)
}

fn unsampled(c: &mut Criterion) {
    use honeyhive_runtime::sampling::Sampler;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::Sampler as OtelSampler;

    let mut group = c.benchmark_group("unsampled");
    group.throughput(Throughput::Elements(SPANS));

    run(&mut group, "plain_fn", plain::root);

    // Before any subscriber has ever been set in this process.
    run(
        &mut group,
        "tracing_instrument_no_subscriber",
        with_tracing::root,
    );

    // Before any pipeline has been installed: `#[trace]` is a no-op.
    run(&mut group, "honeyhive_trace_no_pipeline", ours::root);

    let (guard, exporter) = our_pipeline(Sampler::AlwaysOff);
    run(&mut group, "honeyhive_trace_always_off", ours::root);
    drop(guard);
    assert_eq!(exporter.count(), 0, "an unsampled root exported spans");

    let (provider, exporter) = otel_provider(OtelSampler::ParentBased(Box::new(
        OtelSampler::TraceIdRatioBased(0.0),
    )));
    with_otel_sdk::set_tracer(Some(provider.tracer("bench")));
    run(&mut group, "otel_sdk_ratio_0", with_otel_sdk::root);
    with_otel_sdk::set_tracer(None);
    let _ = provider.shutdown();
    assert_eq!(exporter.count(), 0, "an unsampled SDK root exported spans");

    group.finish();
}

fn sampled(c: &mut Criterion) {
    use honeyhive_runtime::sampling::Sampler;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::Sampler as OtelSampler;
    use tracing_subscriber::layer::SubscriberExt as _;

    let mut group = c.benchmark_group("sampled");
    group.throughput(Throughput::Elements(SPANS));

    run(&mut group, "plain_fn", plain::root);

    let mut deliveries = Deliveries::default();

    let (guard, exporter) = our_pipeline(Sampler::AlwaysOn);
    let requests = run(&mut group, "honeyhive_trace", ours::root);
    guard.shutdown();
    deliveries.add("honeyhive_trace", requests, exporter.count());

    let reported = Arc::new(AtomicU64::new(0));
    fastrace::set_reporter(
        DiscardFastrace(Arc::clone(&reported)),
        fastrace::collector::Config::default(),
    );
    let requests = run(
        &mut group,
        "fastrace_trace_no_properties",
        with_fastrace_bare::root,
    );
    let bare_reported = flush_fastrace(&reported);
    deliveries.add("fastrace_trace_no_properties", requests, bare_reported);
    let requests = run(&mut group, "fastrace_trace", with_fastrace::root);
    deliveries.add(
        "fastrace_trace",
        requests,
        flush_fastrace(&reported) - bare_reported,
    );

    let (provider, exporter) = otel_provider(OtelSampler::AlwaysOn);
    with_otel_sdk::set_tracer(Some(provider.tracer("bench")));
    let requests = run(&mut group, "otel_sdk", with_otel_sdk::root);
    with_otel_sdk::set_tracer(None);
    let _ = provider.shutdown();
    deliveries.add("otel_sdk", requests, exporter.count());

    let (provider, exporter) = otel_provider(OtelSampler::AlwaysOn);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    let requests = tracing::subscriber::with_default(subscriber, || {
        run(&mut group, "tracing_instrument_otel", with_tracing::root)
    });
    let _ = provider.shutdown();
    deliveries.add("tracing_instrument_otel", requests, exporter.count());

    deliveries.write();
    group.finish();
}

fn config() -> Criterion {
    // 12 peers on a shared 2-core machine: short runs keep the whole bench near two minutes.
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args()
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = unsampled, sampled
}
criterion::criterion_main!(benches);
