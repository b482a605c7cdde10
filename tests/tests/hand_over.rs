//! How a traced thread hands its small traces over: it stages whole traces and queues them
//! several at a time, and none of that may cost a span. A thread that stops tracing keeps
//! nothing back (the next scheduled export takes its stage), shutdown exports what other,
//! still running threads staged, and a stage the full queue refuses loses whole traces,
//! counted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use honeyhive_runtime::testing::{Recorder, Spans};
use honeyhive_runtime::trace;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[trace(event_type = "tool")]
fn step(i: usize) -> usize {
    i + 1
}

/// A root and two children: a small trace, staged when it ends.
#[trace(event_type = "chain")]
fn request(i: usize) -> usize {
    step(i) + step(i + 1)
}

/// Every exported span's parent was exported too (or it is a root), and every exported trace
/// has its root and both children.
fn assert_whole_requests(spans: &Spans) {
    let ids: HashSet<_> = spans.iter().map(|s| (s.trace_id(), s.span_id())).collect();
    let mut per_trace: HashMap<_, (usize, usize)> = HashMap::new();
    for span in spans.iter() {
        assert!(
            span.is_root() || ids.contains(&(span.trace_id(), span.parent_span_id)),
            "orphan {} in trace {}",
            span.name,
            span.trace_id()
        );
        let entry = per_trace.entry(span.trace_id()).or_default();
        if span.is_root() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    for (trace, (roots, children)) in per_trace {
        assert_eq!((roots, children), (1, 2), "trace {trace} is not whole");
    }
}

/// Remembers the names of the spans it is given, without a flush to ask for them.
#[derive(Debug, Clone, Default)]
struct Names(Arc<Mutex<Vec<String>>>);

impl SpanExporter for Names {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut names = self.0.lock().unwrap();
        names.extend(batch.into_iter().map(|s| s.name.into_owned()));
        Ok(())
    }
}

#[test]
fn a_thread_that_stops_tracing_keeps_no_trace_back() {
    let names = Names::default();
    let exporter = names.clone();
    let rec = Recorder::with(move |b| {
        b.with_exporter(exporter)
            .scheduled_delay(Duration::from_millis(20))
    });
    let traced = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (t, r) = (traced.clone(), release.clone());
    // Three small traces, far fewer spans than a stage queues at once, on a thread that then
    // stays alive and traces nothing more: no flush, no shutdown, no other thread's traffic.
    let worker = std::thread::spawn(move || {
        let sum: usize = (0..3).map(request).sum();
        t.wait();
        r.wait();
        sum
    });
    traced.wait();
    // The scheduled export (every 20 ms) takes them; waiting is bounded, not timed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let seen = names.0.lock().unwrap().clone();
        if seen.len() >= 9 || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    release.wait();
    assert_eq!(worker.join().unwrap(), 15, "traced code returns its value");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in &seen {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    assert_eq!(
        counts,
        HashMap::from([("request", 3), ("step", 6)]),
        "exported without a flush while the thread lives: {seen:?}"
    );
    let spans = rec.spans();
    assert_eq!(spans.len(), 9);
    assert_whole_requests(&spans);
}

#[test]
fn shutdown_exports_the_traces_other_running_threads_staged() {
    let rec = Recorder::with(|b| b.scheduled_delay(Duration::from_hours(1)));
    let traced = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (t, r) = (traced.clone(), release.clone());
    let worker = std::thread::spawn(move || {
        let sum: usize = (0..5).map(request).sum();
        t.wait();
        r.wait();
        sum
    });
    traced.wait();
    // The worker is outside any root, still running; its traces are whole and staged.
    let report = rec.shutdown();
    release.wait();
    assert_eq!(worker.join().unwrap(), 35);
    assert_eq!(
        report.exported, 15,
        "every staged span exported: {report:?}"
    );
    assert_eq!(report.dropped, 0, "{report:?}");
    assert_eq!(report.lost_buffered, 0, "{report:?}");
}

#[test]
fn a_flush_takes_the_traces_other_threads_staged() {
    let rec = Recorder::with(|b| b.scheduled_delay(Duration::from_hours(1)));
    let traced = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (t, r) = (traced.clone(), release.clone());
    let worker = std::thread::spawn(move || {
        let sum: usize = (0..4).map(request).sum();
        t.wait();
        r.wait();
        sum
    });
    traced.wait();
    // No scheduled export comes (an hour away): the traces are counted as staged, not lost.
    let stats = rec.guard().export_stats();
    assert_eq!(stats.staged, 12, "{stats:?}");
    assert_eq!(stats.queued + stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.exported + stats.dropped, 0, "{stats:?}");
    let spans = rec.spans();
    let stats = rec.guard().export_stats();
    assert_eq!(stats.staged, 0, "{stats:?}");
    assert_eq!(stats.exported, 12, "{stats:?}");
    release.wait();
    assert_eq!(worker.join().unwrap(), 24);
    assert_eq!(spans.len(), 12, "flushed from the other thread's stage");
    assert_whole_requests(&spans);
    assert_eq!(rec.guard().export_stats().dropped, 0);
}

/// An exporter that takes its time, as a remote backend does, so the callers overrun the
/// queue.
#[derive(Debug, Clone)]
struct Slow(Duration);

impl SpanExporter for Slow {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(self.0);
        Ok(())
    }
}

#[test]
fn a_refused_stage_loses_whole_traces_and_counts_them() {
    // A queue of 64 spans: a thread queues its stage at 16 spans (a quarter), several small
    // traces at once.
    let rec = Recorder::with(|b| {
        b.with_exporter(Slow(Duration::from_millis(2)))
            .queue_capacity(64)
            .max_export_batch(16)
    });
    let threads = 2;
    let per_thread = 3_000;
    let workers: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || (0..per_thread).map(request).sum::<usize>()))
        .collect();
    for w in workers {
        assert_eq!(
            w.join().unwrap(),
            (0..per_thread).map(|i| 2 * i + 3).sum::<usize>()
        );
    }
    let spans = rec.spans();
    let stats = rec.guard().export_stats();
    assert!(stats.dropped > 0, "the load overran the queue: {stats:?}");
    assert_eq!(stats.dropped % 3, 0, "whole traces of 3 spans: {stats:?}");
    assert!(stats.dropped_traces > 1, "{stats:?}");
    assert_eq!(
        stats.dropped_traces * 3,
        stats.dropped,
        "each lost trace counted once: {stats:?}"
    );
    assert_whole_requests(&spans);
    assert_eq!(
        spans.len() as u64 + stats.dropped,
        (threads * per_thread * 3) as u64,
        "every span is exported or counted: {stats:?}"
    );
}
