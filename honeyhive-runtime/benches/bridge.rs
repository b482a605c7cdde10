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
//! when nothing was dropped. The peers take turns round by round (the first peer of a round
//! moves on each round), so that a shared, loaded machine slows all of them alike rather than
//! whichever ran while the load was high. It prints the median ns per span of each peer over
//! its rounds, and the ratio.
//!
//! Run: `cargo bench -p honeyhive-runtime --features tracing --bench bridge`.
//! `HH_BENCH_PEER=honeyhive_layer` (a comma-separated list of peer names) runs only those
//! peers, for a profiler.

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

/// One peer: its subscriber, the untimed flush after each round, and what it measured.
struct Peer {
    name: &'static str,
    dispatch: tracing::Dispatch,
    flush: Box<dyn Fn()>,
    /// Spans its exporter got, for the peers that export.
    delivered: Option<Box<dyn Fn() -> u64>>,
    per_span: Vec<f64>,
    requests: u64,
}

impl Peer {
    fn new(
        name: &'static str,
        subscriber: impl tracing::Subscriber + Send + Sync + 'static,
        flush: impl Fn() + 'static,
    ) -> Peer {
        Peer {
            name,
            dispatch: tracing::Dispatch::new(subscriber),
            flush: Box::new(flush),
            delivered: None,
            per_span: Vec::with_capacity(ROUNDS),
            requests: 0,
        }
    }

    /// One round under this peer's subscriber; kept when `measured`.
    fn round(&mut self, measured: bool) {
        let elapsed = tracing::dispatcher::with_default(&self.dispatch, || {
            let start = Instant::now();
            for i in 0..BATCH {
                black_box(request::root(black_box(QUERY), black_box(i)));
            }
            start.elapsed()
        });
        self.requests += BATCH;
        (self.flush)();
        if measured {
            #[allow(clippy::cast_precision_loss)] // nanoseconds of a short round
            self.per_span
                .push(elapsed.as_nanos() as f64 / (BATCH * SPANS) as f64);
        }
    }

    /// The median ns per span of the measured rounds.
    fn median(&mut self) -> f64 {
        self.per_span.sort_by(f64::total_cmp);
        self.per_span[self.per_span.len() / 2]
    }

    fn report(&mut self) -> f64 {
        let ns = self.median();
        let peer = self.name;
        match &self.delivered {
            Some(delivered) => {
                let made = self.requests * SPANS;
                let delivered = delivered();
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
        ns
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let only = std::env::var("HH_BENCH_PEER").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|p| p == name))
    };

    let mut peers = Vec::new();
    if wanted("registry_only") {
        peers.push(Peer::new(
            "registry_only",
            tracing_subscriber::registry(),
            || {},
        ));
    }

    let ours = Count::default();
    let guard = wanted("honeyhive_layer").then(|| {
        honeyhive_runtime::Builder::new()
            .env(|_| None)
            .with_exporter(ours.clone())
            .sampler(honeyhive_runtime::sampling::Sampler::AlwaysOn)
            .install()
            .expect("the pipeline installs")
    });
    // Shared with the peer's flush, and shut down after the rounds.
    let guard = guard.map(std::rc::Rc::new);
    if let Some(guard) = &guard {
        let flusher = std::rc::Rc::clone(guard);
        let mut peer = Peer::new(
            "honeyhive_layer",
            tracing_subscriber::registry().with(honeyhive_runtime::tracing::HoneyHiveLayer::new()),
            move || assert!(flusher.force_flush(), "our export thread did not flush"),
        );
        let count = ours.clone();
        peer.delivered = Some(Box::new(move || count.get()));
        peers.push(peer);
    }

    let theirs = Count::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(theirs.clone()).build(),
        )
        .build();
    if wanted("tracing_opentelemetry") {
        let flusher = provider.clone();
        let mut peer = Peer::new(
            "tracing_opentelemetry",
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
            move || flusher.force_flush().expect("the SDK flushes"),
        );
        let count = theirs.clone();
        peer.delivered = Some(Box::new(move || count.get()));
        peers.push(peer);
    }
    assert!(
        !peers.is_empty(),
        "HH_BENCH_PEER names no peer of this bench"
    );

    for round in 0..ROUNDS * 2 {
        let n = peers.len();
        for k in 0..n {
            peers[(round + k) % n].round(round >= ROUNDS);
        }
    }
    for peer in &mut peers {
        // Drops the flushes' handles on the pipeline, so that it can be shut down.
        peer.flush = Box::new(|| {});
    }
    if let Some(guard) = guard.and_then(std::rc::Rc::into_inner) {
        guard.shutdown();
    }
    let _ = provider.shutdown();

    let mut ns = std::collections::HashMap::new();
    for peer in &mut peers {
        ns.insert(peer.name, peer.report());
    }
    if let (Some(registry), Some(ours), Some(theirs)) = (
        ns.get("registry_only"),
        ns.get("honeyhive_layer"),
        ns.get("tracing_opentelemetry"),
    ) {
        println!(
            "ratio honeyhive_layer / tracing_opentelemetry: {:.3} (goal: at most 0.2); \
             without the registry's own cost: {:.3}",
            ours / theirs,
            (ours - registry) / (theirs - registry)
        );
    }
}
