//! `#[trace(resources)]`: CPU time and resident memory per sampled call. For an `async fn`,
//! CPU is summed over its polls, so waiting is not counted.
#![cfg(target_os = "linux")]

use std::hint::black_box;
use std::time::Duration;

use honeyhive_runtime::resources::{
    CPU_NS_AFTER, CPU_NS_BEFORE, CPU_NS_DELTA, POLLS, RSS_BYTES_AFTER, RSS_BYTES_BEFORE,
    RSS_BYTES_DELTA,
};
use honeyhive_runtime::testing::{FinishedSpan, Recorder};
use honeyhive_runtime::{retry, trace, with_request_id};

/// A fixed amount of work, whatever the machine's load.
fn spin(rounds: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..rounds {
        x = black_box(x.rotate_left(7) ^ i).wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    x
}

const MIB: usize = 1024 * 1024;

#[trace(resources, skip_output)]
fn allocate_and_work(mib: usize) -> Vec<u8> {
    spin(2_000_000);
    // Touch every page, so that it is resident.
    vec![1u8; mib * MIB]
}

fn wall_ns(span: &FinishedSpan) -> i64 {
    let d = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[test]
fn a_sync_call_records_cpu_and_rss_before_after_and_delta() {
    let rec = Recorder::start();
    let kept = allocate_and_work(64);
    assert_eq!(kept.len(), 64 * MIB);
    let spans = rec.spans();
    let span = spans.get("allocate_and_work");
    let (before, after, delta) = (
        span.i64(CPU_NS_BEFORE).unwrap(),
        span.i64(CPU_NS_AFTER).unwrap(),
        span.i64(CPU_NS_DELTA).unwrap(),
    );
    assert_eq!(after - before, delta);
    assert!(delta > 0, "the work used CPU");
    assert!(
        delta <= wall_ns(span),
        "one thread's CPU fits in the call's wall time"
    );
    let (before, after, delta) = (
        span.i64(RSS_BYTES_BEFORE).unwrap(),
        span.i64(RSS_BYTES_AFTER).unwrap(),
        span.i64(RSS_BYTES_DELTA).unwrap(),
    );
    assert_eq!(after - before, delta);
    assert!(
        delta >= i64::try_from(32 * MIB).unwrap(),
        "64 MiB touched and kept: the resident set grew (by {delta})"
    );
    drop(kept);
}

#[trace(resources)]
async fn sleeper() -> u32 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    1
}

#[trace(resources)]
async fn busy() -> u64 {
    let mut x = 0;
    // In pieces, each poll perhaps on another worker thread.
    for _ in 0..4 {
        x ^= spin(5_000_000);
        tokio::task::yield_now().await;
    }
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_fn_counts_cpu_over_its_polls_not_its_wall_time() {
    let rec = Recorder::start();
    assert_eq!(sleeper().await, 1);
    black_box(busy().await);
    let spans = rec.spans();
    let sleeper = spans.get("sleeper");
    let busy = spans.get("busy");
    let sleep_cpu = sleeper.i64(CPU_NS_DELTA).unwrap();
    let busy_cpu = busy.i64(CPU_NS_DELTA).unwrap();
    // The sleeper spent its 200 ms waiting: its CPU is a small part of its duration.
    assert!(
        sleep_cpu * 10 < wall_ns(sleeper),
        "sleeper: cpu {sleep_cpu} ns over {} ns",
        wall_ns(sleeper)
    );
    // The busy one computed all along: far more CPU, and never more than its wall time.
    assert!(
        busy_cpu > 10 * sleep_cpu,
        "busy {busy_cpu} vs sleeper {sleep_cpu}"
    );
    assert!(busy_cpu <= wall_ns(busy));
    assert!(busy.i64(POLLS).unwrap() >= 5, "polled after each yield");
    assert!(
        sleeper.i64(POLLS).unwrap() >= 2,
        "polled, then woken by the timer"
    );
    assert!(busy.i64(RSS_BYTES_AFTER).unwrap() > 0);
    assert!(
        busy.attr(CPU_NS_BEFORE).is_none(),
        "no thread clock readings across polls"
    );
}

#[trace(sample_rate = 0.0, resources)]
fn unsampled(n: u64) -> u64 {
    spin(n)
}

#[test]
fn nothing_is_read_for_an_unsampled_call() {
    let rec = Recorder::start();
    black_box(unsampled(10));
    assert!(rec.spans().all("unsampled").next().is_none());
}

#[with_request_id]
#[trace(resources, metadata(kind = "stacked"))]
#[retry(backoff = constant(10ms), jitter = none)]
fn stacked(n: u64) -> Result<u64, String> {
    Ok(spin(n))
}

#[test]
fn resources_stack_with_other_options_retry_and_request_ids() {
    let rec = Recorder::start();
    assert!(stacked(100_000).is_ok());
    let spans = rec.spans();
    let span = spans.get("stacked");
    assert!(span.i64(CPU_NS_DELTA).unwrap() > 0);
    assert_eq!(span.str("honeyhive_metadata.kind"), Some("stacked"));
    assert!(span.str("honeyhive.request_id").is_some());
    assert_eq!(span.i64("retry.attempts"), Some(1));
}
