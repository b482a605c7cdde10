//! What a bridged `tracing` span costs the caller: `HoneyHiveLayer` against
//! `tracing-opentelemetry` over the OpenTelemetry SDK, in one run, while every span is
//! delivered.
//!
//! Every peer runs the same request: six `#[tracing::instrument]` functions (a root calling
//! five children, two nested under the first), each recording its two arguments as fields,
//! under `tracing_subscriber::registry()` with:
//!
//! - `registry_only`: no layer; what the registry itself costs (both peers below pay it).
//! - `honeyhive_layer`: `HoneyHiveLayer`, our pipeline sampling every trace, an exporter that
//!   counts the spans it is given.
//! - `tracing_opentelemetry`: `tracing_opentelemetry::layer()` over an SDK provider with a
//!   `BatchSpanProcessor` and the same kind of counting exporter.
//!
//! A round is a batch of requests small enough for either export queue (1,800 spans; the
//! SDK's queue holds 2,048), timed on the caller's thread, then a flush that is not timed. So
//! every span made reaches the exporter, which the bench checks: a cost per span counts only
//! when nothing was dropped. It prints the median ns per span over the rounds, and the ratio.
//!
//! Run: `cargo bench -p honeyhive-runtime --features tracing --bench bridge`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

/// Spans in one request.
const SPANS: u64 = 6;
/// Requests in one round: 1,800 spans, within the SDK's default queue of 2,048.
const BATCH: u64 = 300;
/// Rounds measured, after as many again to warm up.
const ROUNDS: usize = 150;
/// The text argument every function records.
const QUERY: &str = "what is the capital of France?";

mod request {
    #[tracing::instrument]
    #[inline(never)]
    pub(crate) fn root(query: &str, n: u64) -> u64 {
        retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
    }

    #[tracing::instrument]
    #[inline(never)]
    fn retrieve(query: &str, n: u64) -> u64 {
        embed(query, n) ^ search(query, n + 1)
    }

    #[tracing::instrument]
    #[inline(never)]
    fn embed(query: &str, n: u64) -> u64 {
        super::leaf(query, n)
    }

    #[tracing::instrument]
    #[inline(never)]
    fn search(query: &str, n: u64) -> u64 {
        super::leaf(query, n)
    }

    #[tracing::instrument]
    #[inline(never)]
    fn rerank(query: &str, n: u64) -> u64 {
        super::leaf(query, n)
    }

    #[tracing::instrument]
    #[inline(never)]
    fn complete(query: &str, n: u64) -> u64 {
        super::leaf(query, n)
    }
}

#[inline(never)]
fn leaf(query: &str, n: u64) -> u64 {
    black_box(query.len() as u64 ^ n)
}

/// An OpenTelemetry exporter that counts the spans it is given and discards them.
#[derive(Debug, Clone, Default)]
struct Count(Arc<AtomicU64>);

impl SpanExporter for Count {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Count {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs the rounds under `subscriber`, with `flush` after each; returns the median ns per
/// span of the measured rounds and the requests made.
fn measure(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    flush: impl Fn(),
) -> (f64, u64) {
    tracing::subscriber::with_default(subscriber, || {
        let mut per_span = Vec::with_capacity(ROUNDS);
        let mut requests = 0;
        for round in 0..ROUNDS * 2 {
            let start = Instant::now();
            for i in 0..BATCH {
                black_box(request::root(black_box(QUERY), black_box(i)));
            }
            let elapsed = start.elapsed();
            requests += BATCH;
            flush();
            if round >= ROUNDS {
                #[allow(clippy::cast_precision_loss)] // nanoseconds of a short round
                per_span.push(elapsed.as_nanos() as f64 / (BATCH * SPANS) as f64);
            }
        }
        per_span.sort_by(f64::total_cmp);
        (per_span[per_span.len() / 2], requests)
    })
}

fn report(peer: &str, ns: f64, requests: u64, delivered: Option<u64>) {
    match delivered {
        Some(delivered) => {
            let made = requests * SPANS;
            println!(
                "{peer:>22}: {ns:8.0} ns per span   (spans made {made}, delivered {delivered})"
            );
            assert_eq!(
                delivered, made,
                "{peer} dropped spans: its cost would not count"
            );
        }
        None => println!("{peer:>22}: {ns:8.0} ns per span"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let (registry_ns, requests) = measure(tracing_subscriber::registry(), || {});
    report("registry_only", registry_ns, requests, None);

    let ours = Count::default();
    let guard = honeyhive_runtime::Builder::new()
        .env(|_| None)
        .with_exporter(ours.clone())
        .sampler(honeyhive_runtime::sampling::Sampler::AlwaysOn)
        .install()
        .expect("the pipeline installs");
    let (ours_ns, requests) = measure(
        tracing_subscriber::registry().with(honeyhive_runtime::tracing::HoneyHiveLayer::new()),
        || assert!(guard.force_flush(), "our export thread did not flush"),
    );
    guard.shutdown();
    report("honeyhive_layer", ours_ns, requests, Some(ours.get()));

    let theirs = Count::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(theirs.clone()).build(),
        )
        .build();
    let (theirs_ns, requests) = measure(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
        || provider.force_flush().expect("the SDK flushes"),
    );
    let _ = provider.shutdown();
    report(
        "tracing_opentelemetry",
        theirs_ns,
        requests,
        Some(theirs.get()),
    );

    println!(
        "ratio honeyhive_layer / tracing_opentelemetry: {:.3} (goal: at most 0.2); \
         without the registry's own cost: {:.3}",
        ours_ns / theirs_ns,
        (ours_ns - registry_ns) / (theirs_ns - registry_ns)
    );
}
