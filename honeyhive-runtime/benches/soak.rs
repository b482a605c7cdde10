//! Soak: one million traced calls on two threads, exported over OTLP/HTTP protobuf to a local
//! receiver, with the default pipeline settings.
//!
//! Each thread makes 250,000 requests of two traced calls (a `chain` root and a `tool` child).
//! The receiver (`support/receiver.rs`, shared with the throughput bench) is an in-process
//! HTTP server on 127.0.0.1 that counts the spans in each request and answers 200 at once, so
//! the export path (conversion to `SpanData`, protobuf encoding, HTTP) is what is measured.
//! Two runs:
//!
//! - flat out: as fast as the threads can call, far more than any exporter takes; shows the
//!   drops and the memory bound under overload;
//! - paced: 100,000 calls per second in all; shows export keeping up.
//!
//! Printed for each: the application's calls per second, spans per second exported (from the
//! first call until shutdown has exported everything), spans dropped because the queue was
//! full, what the receiver got (requests, spans, bytes), and peak resident memory (`VmHWM` from `/proc/self/status`,
//! reset between runs).
//!
//! Run: `cargo bench -p honeyhive-runtime --bench soak` (about fifteen seconds).

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/receiver.rs"]
mod receiver;

use std::hint::black_box;
use std::time::{Duration, Instant};

use honeyhive_runtime::{Builder, trace};
use receiver::Receiver;

const THREADS: u32 = 2;
const REQUESTS_PER_THREAD: u32 = 250_000;
const CALLS_PER_REQUEST: u32 = 2;
/// The paced run's rate, in traced calls per second over both threads.
const PACED_CALLS_PER_SECOND: u32 = 100_000;

#[trace(event_type = "tool")]
fn lookup(key: u32) -> u32 {
    black_box(key).wrapping_mul(2_654_435_761)
}

#[trace(event_type = "chain")]
fn handle(request: u32) -> u32 {
    lookup(request) ^ request
}

/// Peak resident set size, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resets `VmHWM` to the current resident size, so each run reports its own peak (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Makes the calls on `THREADS` threads, flat out or at `rate` calls per second in all, and
/// prints what happened.
#[allow(clippy::cast_precision_loss)] // figures for display
fn run(receiver: &Receiver, rate: Option<u32>) {
    let before = receiver.counts();
    reset_peak_rss();
    let rss_before = peak_rss_mib();
    let builder = Builder::new()
        .env(|_| None)
        .with_otlp_http(receiver.traces_url())
        .shutdown_timeout(Duration::from_mins(1));
    let settings = builder.resolve();
    let guard = builder.install().expect("the pipeline starts");

    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let base = t * REQUESTS_PER_THREAD;
                // Requests per second on this thread, paced every 64 requests.
                let per_thread = rate.map(|r| f64::from(r / CALLS_PER_REQUEST / THREADS));
                let mut acc = 0u32;
                for i in 0..REQUESTS_PER_THREAD {
                    acc ^= handle(base + i);
                    if let Some(per_thread) = per_thread
                        && i % 64 == 0
                    {
                        let due = started + Duration::from_secs_f64(f64::from(i) / per_thread);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                }
                black_box(acc);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker thread panicked");
    }
    let calls_done = started.elapsed();
    let report = guard.shutdown();
    let all_done = started.elapsed();
    // The receiver counts a request right after answering it.
    std::thread::sleep(Duration::from_millis(30));
    let got = receiver.counts() - before;

    let calls = u64::from(THREADS * REQUESTS_PER_THREAD * CALLS_PER_REQUEST);
    let secs = |d: Duration| d.as_secs_f64();
    let label = rate.map_or_else(
        || "flat out".to_owned(),
        |r| format!("paced at {r} calls/s"),
    );
    println!(
        "soak ({label}): {calls} traced calls ({} requests of {CALLS_PER_REQUEST}) on {THREADS} \
         threads in {:.2} s: {:.0} calls/s",
        THREADS * REQUESTS_PER_THREAD,
        secs(calls_done),
        calls as f64 / secs(calls_done),
    );
    println!(
        "  export: {} spans in {:.2} s (until shutdown completed: {}): {:.0} spans/s",
        report.exported,
        secs(all_done),
        report.completed,
        report.exported as f64 / secs(all_done),
    );
    println!(
        "  dropped: {} ({:.1}%; queue {} spans, batches of {})",
        report.dropped,
        100.0 * report.dropped as f64 / calls as f64,
        settings.queue_capacity,
        settings.max_export_batch,
    );
    println!(
        "  receiver: {} requests, {} spans, {:.1} MB of protobuf ({:.0} bytes/span)",
        got.requests,
        got.spans,
        got.bytes as f64 / 1e6,
        got.bytes as f64 / got.spans.max(1) as f64,
    );
    match (rss_before, peak_rss_mib()) {
        (Some(before), Some(peak)) => {
            println!("  memory: peak resident {peak:.1} MiB (VmHWM; {before:.1} MiB at the start)");
        }
        _ => println!("  memory: VmHWM not available on this platform"),
    }
    assert_eq!(
        report.exported + report.dropped,
        calls,
        "every span is exported or counted as dropped"
    );
    assert_eq!(
        got.spans, report.exported,
        "the receiver got every span the pipeline says it exported"
    );
}

fn main() {
    let receiver = Receiver::start();
    run(&receiver, None);
    run(&receiver, Some(PACED_CALLS_PER_SECOND));
}
