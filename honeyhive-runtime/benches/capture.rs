//! What capturing a value costs, by size: formatting stops at the byte cap (8 KiB by
//! default), so a 1M-item `Vec` argument or a 100k-entry map in `enrich_span` costs about the
//! cap's worth of formatting, not the whole value's.
//!
//! Each case runs the same function traced (a pipeline whose exporter discards batches, every
//! call sampled) and untraced (no pipeline installed: the span is not recorded and nothing is
//! captured), so the difference is the span plus the capture:
//!
//! - `small`: a `&str`, a `u64` and an 8-item `Vec<u32>` as arguments, a `u64` returned.
//! - `vec_1m_arg`: a 1,000,000-item `Vec<u64>` argument, recorded through `Debug`.
//! - `option_vec_1m_arg`, `arc_vec_1m_arg`: the same `Vec` in `Some(..)` and behind an `Arc`,
//!   walked up to the cap like the bare `Vec` (before, std's `Debug` stepped over every item).
//! - `vec_1m_output`: the same `Vec` returned (by reference to a static), recorded as output.
//! - `struct_vec_1m_arg`: a user struct with a derived `Debug` that holds the same `Vec`: std's
//!   list helper formats the field, and stops formatting when the capped writer fails (it
//!   still steps over the remaining items, unformatted).
//! - `map_100k_enrich`: a 100,000-entry `enrich::Value` map given to `enrich_span().metadata`
//!   (built outside the timing; its drop is timed in both variants).
//! - `hashmap_100k_enrich`: a 100,000-entry `HashMap<String, i64>` given the same way, so its
//!   conversion to `Value` (a linear pick of the smallest keys) is timed too.
//!
//! Run: `cargo bench -p honeyhive-runtime --bench capture`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use honeyhive_runtime::{Value, enrich_span, trace};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[derive(Debug, Clone, Default)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

static BIG: LazyLock<Vec<u64>> = LazyLock::new(|| (0..1_000_000).collect());

#[derive(Debug)]
struct Batch {
    id: u64,
    items: Vec<u64>,
}

static BATCH: LazyLock<Batch> = LazyLock::new(|| Batch {
    id: 7,
    items: (0..1_000_000).collect(),
});

#[trace]
#[inline(never)]
fn small(query: &str, n: u64, ids: &[u32]) -> u64 {
    black_box(query.len() as u64 + n + ids.len() as u64)
}

#[trace]
#[inline(never)]
fn vec_arg(items: &Vec<u64>) -> usize {
    black_box(items.len())
}

#[trace]
#[inline(never)]
fn option_vec_arg(items: &Option<Vec<u64>>) -> usize {
    black_box(items.as_ref().map_or(0, Vec::len))
}

#[trace]
#[inline(never)]
fn arc_vec_arg(items: &Arc<Vec<u64>>) -> usize {
    black_box(items.len())
}

#[trace]
#[inline(never)]
fn struct_arg(batch: &Batch) -> u64 {
    black_box(batch.id + batch.items.len() as u64)
}

#[trace]
#[inline(never)]
fn vec_output(n: usize) -> &'static [u64] {
    &BIG[..black_box(n)]
}

#[trace]
#[inline(never)]
fn enrich_value(value: Value) {
    enrich_span().metadata("scores", value);
}

#[trace]
#[inline(never)]
fn enrich_map(map: HashMap<String, i64>) {
    enrich_span().metadata("scores", map);
}

fn cases(c: &mut Criterion, variant: &str) {
    let mut group = c.benchmark_group(format!("capture/{variant}"));
    let ids = [1u32, 2, 3, 4, 5, 6, 7, 8];
    group.bench_function("small", |b| {
        b.iter(|| small(black_box("what is the capital of France?"), 7, &ids));
    });
    let big: &Vec<u64> = &BIG;
    group.bench_function("vec_1m_arg", |b| b.iter(|| vec_arg(black_box(big))));
    let some: Option<Vec<u64>> = Some(BIG.clone());
    group.bench_function("option_vec_1m_arg", |b| {
        b.iter(|| option_vec_arg(black_box(&some)));
    });
    let shared = Arc::new(BIG.clone());
    group.bench_function("arc_vec_1m_arg", |b| {
        b.iter(|| arc_vec_arg(black_box(&shared)));
    });
    let batch: &Batch = &BATCH;
    group.bench_function("struct_vec_1m_arg", |b| {
        b.iter(|| struct_arg(black_box(batch)));
    });
    group.bench_function("vec_1m_output", |b| {
        b.iter(|| vec_output(black_box(1_000_000)).len());
    });
    let value = Value::map((0..100_000).map(|i| (format!("k{i:06}"), Value::from(i))));
    group.bench_function("map_100k_enrich", |b| {
        b.iter_batched(|| value.clone(), enrich_value, BatchSize::LargeInput);
    });
    let map: HashMap<String, i64> = (0..100_000).map(|i| (format!("k{i:06}"), i)).collect();
    group.bench_function("hashmap_100k_enrich", |b| {
        b.iter_batched(|| map.clone(), enrich_map, BatchSize::LargeInput);
    });
    group.finish();
}

fn untraced(c: &mut Criterion) {
    cases(c, "untraced");
}

fn traced(c: &mut Criterion) {
    let guard = honeyhive_runtime::Builder::new()
        .env(|_| None)
        .with_exporter(Discard)
        .install()
        .expect("the pipeline installs");
    cases(c, "traced");
    drop(guard);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = untraced, traced
}
criterion::criterion_main!(benches);
