//! Export: the bounded queue from traced threads to one background thread, which turns span
//! records into OpenTelemetry `SpanData` and feeds any `SpanExporter` (console, OTLP, memory).
//!
//! Callers never block and never do I/O: a full queue drops spans and counts them.

pub mod console;
mod http;
mod resilience;
pub(crate) mod semantics;
pub(crate) mod tail;

pub use resilience::CircuitBreaker;

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, SpanId, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};

use crate::clock;
use crate::span::SpanRecord;
use resilience::{Guarded, Outcome};

/// Whether a pipeline is installed and enabled. Read once per root span.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Byte cap for captured values (default 8 KiB).
static CAPTURE_CAP: AtomicUsize = AtomicUsize::new(DEFAULT_CAPTURE_CAP);
/// Bumped whenever the installed pipeline changes, so threads refresh their cached sender.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Default byte cap of one captured value.
pub const DEFAULT_CAPTURE_CAP: usize = 8 * 1024;

#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

#[inline]
pub(crate) fn capture_cap() -> usize {
    CAPTURE_CAP.load(Ordering::Relaxed)
}

/// Counters shared by callers and the export thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queued: AtomicUsize,
    capacity: usize,
    /// How many queued spans wake the export thread before its next scheduled export.
    wake_at: usize,
    /// Spans taken off the queue and not yet exported or dropped (waiting for a full batch,
    /// or being exported). Written by the export thread only.
    in_flight: AtomicUsize,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    circuit_open: AtomicU64,
}

impl Counters {
    fn stats(&self) -> ExportStats {
        ExportStats {
            // Momentarily above capacity while a refused batch is being taken back.
            queued: self.queued.load(Ordering::Relaxed).min(self.capacity),
            queue_capacity: self.capacity,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            circuit_open: self.circuit_open.load(Ordering::Relaxed),
        }
    }
}

/// What the export pipeline has done so far; see [`export_stats`].
///
/// Every ended, sampled span is in one of `queued`, `in_flight`, `exported` and `dropped`
/// (give or take the instant it moves from one to the next), or held by a tail sampler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans waiting in the queue; never above `queue_capacity`.
    pub queued: usize,
    /// The queue's capacity ([`Builder::queue_capacity`](crate::Builder::queue_capacity)).
    pub queue_capacity: usize,
    /// Spans taken off the queue: waiting for a full batch or being exported now.
    pub in_flight: usize,
    /// Spans every exporter accepted.
    pub exported: u64,
    /// Spans lost: the queue was full, or an exporter failed or was skipped.
    pub dropped: u64,
    /// Of `dropped`, spans in batches that an exporter failed or skipped.
    pub failed: u64,
    /// Of `failed`, spans an exporter skipped because its [`CircuitBreaker`] was open.
    pub circuit_open: u64,
}

#[derive(Clone)]
struct Sink {
    generation: u64,
    tx: Sender<Msg>,
    counters: Arc<Counters>,
    export_thread: Thread,
}

impl Sink {
    fn send(&self, batch: Vec<SpanRecord>) {
        let n = batch.len();
        let before = self.counters.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.counters.capacity {
            self.counters.queued.fetch_sub(n, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        if self.tx.send(Msg::Spans(batch)).is_err() {
            self.counters.queued.fetch_sub(n, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        // The export thread sleeps until its next scheduled export and is woken early only when
        // a batch's worth is waiting: waking it for every trace cost a futex syscall and a
        // context switch per trace, more than all the spans in it.
        let wake_at = self.counters.wake_at;
        if before < wake_at && before + n >= wake_at {
            self.export_thread.unpark();
        }
    }
}

thread_local! {
    static CACHED_SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Hands ended spans to the export thread, or drops and counts them when the queue is full.
pub(crate) fn submit(batch: Vec<SpanRecord>) {
    let generation = GENERATION.load(Ordering::Acquire);
    let sent = CACHED_SINK.try_with(|cached| {
        let Ok(mut cached) = cached.try_borrow_mut() else {
            return;
        };
        if cached.as_ref().map(|s| s.generation) != Some(generation) {
            cached.clone_from(&SINK.read().unwrap_or_else(PoisonError::into_inner));
        }
        if let Some(sink) = cached.as_ref() {
            sink.send(batch);
        }
    });
    // Thread-local storage is gone only while this thread exits; its spans are lost then.
    let _ = sent;
}

enum Msg {
    Spans(Vec<SpanRecord>),
    Flush(mpsc::SyncSender<()>),
    Shutdown(mpsc::SyncSender<()>),
}

/// An OpenTelemetry `SpanExporter`, made object safe so exporters of any type can be mixed.
///
/// Implemented for every [`SpanExporter`]; the export thread drives its futures.
pub trait DynSpanExporter: Send + fmt::Debug {
    /// Exports one batch, blocking the export thread until done.
    ///
    /// # Errors
    /// When the exporter fails to deliver the batch.
    fn export_blocking(&self, batch: Vec<SpanData>) -> OTelSdkResult;
    /// Flushes the exporter.
    ///
    /// # Errors
    /// When the exporter fails to flush.
    fn force_flush_blocking(&mut self) -> OTelSdkResult;
    /// Shuts the exporter down.
    ///
    /// # Errors
    /// When the exporter fails to shut down cleanly.
    fn shutdown_blocking(&mut self, timeout: Duration) -> OTelSdkResult;
    /// Sets the resource sent with every batch.
    fn set_resource_dyn(&mut self, resource: &Resource);
}

impl<E: SpanExporter + 'static> DynSpanExporter for E {
    fn export_blocking(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        block_on(self.export(batch))
    }
    fn force_flush_blocking(&mut self) -> OTelSdkResult {
        self.force_flush()
    }
    fn shutdown_blocking(&mut self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
    fn set_resource_dyn(&mut self, resource: &Resource) {
        self.set_resource(resource);
    }
}

#[cfg(feature = "grpc")]
thread_local! {
    // tonic needs a tokio reactor, to build its channel and to export: the export thread
    // keeps one current-thread runtime.
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
}

#[cfg(feature = "grpc")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| match rt {
        Some(rt) => rt.block_on(future),
        None => futures_executor::block_on(future),
    })
}

/// Runs `f` inside the export thread's tokio runtime (building a gRPC channel needs one).
#[cfg(feature = "grpc")]
pub(crate) fn in_runtime<R>(f: impl FnOnce() -> R) -> R {
    RUNTIME.with(|rt| match rt {
        Some(rt) => {
            let _entered = rt.enter();
            f()
        }
        None => f(),
    })
}

#[cfg(not(feature = "grpc"))]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

/// Builds an exporter on the export thread, where blocking HTTP clients are safe to create.
pub(crate) type ExporterFactory =
    Box<dyn FnOnce() -> Result<Box<dyn DynSpanExporter>, String> + Send>;

/// What the export thread needs to start.
pub(crate) struct PipelineConfig {
    pub(crate) exporters: Vec<ExporterFactory>,
    pub(crate) resource: Resource,
    pub(crate) queue_capacity: usize,
    pub(crate) max_export_batch: usize,
    pub(crate) scheduled_delay: Duration,
    pub(crate) capture_cap: usize,
    pub(crate) tail: Option<tail::TailSampling>,
    pub(crate) circuit_breaker: CircuitBreaker,
    /// LLM conventions, cost, roll-ups, redaction and the attribute budget.
    pub(crate) semantics: semantics::Semantics,
}

/// A running export pipeline; dropping it does not stop it (see [`Pipeline::shutdown`]).
pub(crate) struct Pipeline {
    generation: u64,
    tx: Sender<Msg>,
    counters: Arc<Counters>,
    export_thread: Thread,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a shutdown achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans handed to the exporters successfully over the pipeline's life.
    pub exported: u64,
    /// Spans dropped because the queue was full or an export failed.
    pub dropped: u64,
    /// Spans still queued or being exported when the deadline passed (lost).
    pub lost_at_deadline: u64,
    /// Whether the export thread finished within the deadline.
    pub completed: bool,
}

impl Pipeline {
    /// Starts the export thread and installs the pipeline as the global one.
    pub(crate) fn start(config: PipelineConfig) -> Result<Pipeline, String> {
        clock::init();
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters {
            capacity: config.queue_capacity,
            wake_at: config
                .max_export_batch
                .min(config.queue_capacity / 2)
                .max(1),
            ..Counters::default()
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("honeyhive-export".into())
            .spawn(move || export_thread(config, &rx, thread_counters, &ready_tx))
            .map_err(|e| format!("cannot start the export thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(cap)) => CAPTURE_CAP.store(cap, Ordering::Relaxed),
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err("the export thread stopped while starting".into()),
        }
        let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
        let export_thread = thread.thread().clone();
        *SINK.write().unwrap_or_else(PoisonError::into_inner) = Some(Sink {
            generation,
            tx: tx.clone(),
            counters: Arc::clone(&counters),
            export_thread: export_thread.clone(),
        });
        GENERATION.store(generation, Ordering::Release);
        ACTIVE.store(true, Ordering::Release);
        Ok(Pipeline {
            generation,
            tx,
            counters,
            export_thread,
            thread: Some(thread),
        })
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn exported(&self) -> u64 {
        self.counters.exported.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> ExportStats {
        self.counters.stats()
    }

    /// Exports everything ended so far; waits at most `timeout`. Returns whether it finished.
    pub(crate) fn force_flush(&self, timeout: Duration) -> bool {
        crate::span::flush_thread();
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(reply_tx)).is_err() {
            return false;
        }
        self.export_thread.unpark();
        reply_rx.recv_timeout(timeout).is_ok()
    }

    /// Uninstalls the pipeline, exports what is queued and stops the thread, within `timeout`.
    pub(crate) fn shutdown(&mut self, timeout: Duration) -> ShutdownReport {
        crate::span::flush_thread();
        self.uninstall();
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let sent = self.tx.send(Msg::Shutdown(reply_tx)).is_ok();
        self.export_thread.unpark();
        let completed = sent && reply_rx.recv_timeout(timeout).is_ok();
        if completed && let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // A hung exporter keeps its thread; it is detached and ends with the process.
        let lost_at_deadline = if completed {
            0
        } else {
            let stats = self.stats();
            (stats.queued + stats.in_flight) as u64
        };
        ShutdownReport {
            exported: self.exported(),
            dropped: self.dropped(),
            lost_at_deadline,
            completed,
        }
    }

    fn uninstall(&self) {
        let mut sink = SINK.write().unwrap_or_else(PoisonError::into_inner);
        if sink.as_ref().map(|s| s.generation) == Some(self.generation) {
            *sink = None;
            ACTIVE.store(false, Ordering::Release);
            GENERATION.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Spans dropped by the installed pipeline (queue full or export failed), 0 when none is.
pub fn dropped_spans() -> u64 {
    SINK.read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or(0, |s| s.counters.dropped.load(Ordering::Relaxed))
}

/// The installed pipeline's counters (all zero when none is installed).
pub fn export_stats() -> ExportStats {
    SINK.read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or_else(ExportStats::default, |s| s.counters.stats())
}

fn export_thread(
    config: PipelineConfig,
    rx: &Receiver<Msg>,
    counters: Arc<Counters>,
    ready: &mpsc::SyncSender<Result<usize, String>>,
) {
    let mut exporters = Vec::with_capacity(config.exporters.len());
    for factory in config.exporters {
        match factory() {
            Ok(mut exporter) => {
                exporter.set_resource_dyn(&config.resource);
                exporters.push(Guarded::new(exporter, config.circuit_breaker));
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let _ = ready.send(Ok(config.capture_cap));
    let mut worker = Worker {
        exporters,
        pending: Vec::with_capacity(config.max_export_batch),
        max_batch: config.max_export_batch.max(1),
        counters,
        tail: tail::TailSampler::start(config.tail),
        semantics: config.semantics,
        scope: InstrumentationScope::builder("honeyhive-rs")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    };
    let mut next_export = Instant::now() + config.scheduled_delay;
    loop {
        // Woken by a full batch, a flush or shutdown (see `Sink::send`), or by the timer.
        loop {
            match rx.try_recv() {
                Ok(Msg::Spans(batch)) => worker.accept(batch),
                Ok(Msg::Flush(reply)) => {
                    worker.release_held();
                    worker.export_pending();
                    for e in &mut worker.exporters {
                        let _ = e.exporter.force_flush_blocking();
                    }
                    let _ = reply.send(());
                }
                Ok(Msg::Shutdown(reply)) => {
                    worker.drain(rx);
                    worker.shutdown();
                    let _ = reply.send(());
                    return;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    worker.shutdown();
                    return;
                }
            }
        }
        if Instant::now() >= next_export {
            if let Some(tail) = &mut worker.tail {
                let kept = tail.expire_now();
                worker.convert(kept);
            }
            worker.export_pending();
            next_export = Instant::now() + config.scheduled_delay;
        }
        std::thread::park_timeout(next_export.saturating_duration_since(Instant::now()));
    }
}

struct Worker {
    exporters: Vec<Guarded>,
    pending: Vec<SpanData>,
    max_batch: usize,
    counters: Arc<Counters>,
    /// Holds traces until their root ends, when tail sampling is on.
    tail: Option<tail::TailSampler>,
    semantics: semantics::Semantics,
    scope: InstrumentationScope,
}

impl Worker {
    fn accept(&mut self, batch: Vec<SpanRecord>) {
        self.counters
            .queued
            .fetch_sub(batch.len(), Ordering::Relaxed);
        let batch = match &mut self.tail {
            Some(tail) => tail.filter(batch),
            None => batch,
        };
        self.convert(batch);
    }

    /// Decides the traces the tail sampler still holds (at flush and shutdown).
    fn release_held(&mut self) {
        if let Some(tail) = &mut self.tail {
            let kept = tail.decide_all();
            self.convert(kept);
        }
    }

    fn convert(&mut self, batch: Vec<SpanRecord>) {
        if !self.exporters.is_empty() && self.exporters.iter().all(Guarded::is_open) {
            // Nobody would take them: drop without converting, so a dead backend costs nothing.
            let n = batch.len() as u64;
            self.counters.failed.fetch_add(n, Ordering::Relaxed);
            self.counters.circuit_open.fetch_add(n, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let mut rest = batch.len();
        for record in batch {
            rest -= 1;
            let event_type = record.meta.event_type;
            let mut span = to_span_data(record, &self.scope);
            self.semantics.process(&mut span, event_type);
            self.pending.push(span);
            // The rest of this batch is off the queue too, while a full batch is exported.
            self.counters
                .in_flight
                .store(self.pending.len() + rest, Ordering::Relaxed);
            if self.pending.len() >= self.max_batch {
                self.export_pending();
            }
        }
    }

    /// Takes what is already queued (spans ended before shutdown began).
    fn drain(&mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Spans(batch) => self.accept(batch),
                Msg::Flush(reply) | Msg::Shutdown(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn export_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let n = batch.len() as u64;
        let mut outcomes = Vec::with_capacity(self.exporters.len());
        if let Some((last, rest)) = self.exporters.split_last_mut() {
            for exporter in rest {
                outcomes.push(exporter.export(batch.clone()));
            }
            outcomes.push(last.export(batch));
        }
        if outcomes.iter().all(|o| *o == Outcome::Exported) {
            self.counters.exported.fetch_add(n, Ordering::Relaxed);
        } else {
            if outcomes.contains(&Outcome::Refused) {
                self.counters.circuit_open.fetch_add(n, Ordering::Relaxed);
            }
            self.counters.failed.fetch_add(n, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
        self.counters.in_flight.store(0, Ordering::Relaxed);
    }

    fn shutdown(&mut self) {
        self.release_held();
        self.export_pending();
        for e in &mut self.exporters {
            let _ = e.exporter.force_flush_blocking();
            let _ = e.exporter.shutdown_blocking(Duration::from_secs(5));
        }
    }
}

/// Turns a span record into OpenTelemetry's `SpanData` (on the export thread).
fn to_span_data(record: SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let SpanRecord {
        trace_id,
        span_id,
        parent_id,
        parent_remote,
        meta,
        start,
        end,
        attrs,
        events,
        status,
        root_sample_rate,
        local_root: _,
    } = record;
    let end = end.max(start);
    #[allow(clippy::cast_precision_loss)] // sub-nanosecond precision is not needed for ms
    let duration_ms = (end - start) as f64 / 1e6;
    let mut attributes = Vec::with_capacity(attrs.len() + 4);
    attributes.push(KeyValue::new(
        "honeyhive_event_type",
        meta.event_type.as_str(),
    ));
    attributes.push(KeyValue::new("honeyhive_event_name", meta.name));
    attributes.push(KeyValue::new("honeyhive_duration_ms", duration_ms));
    if let Some(rate) = root_sample_rate {
        attributes.push(KeyValue::new("honeyhive.sample_rate", rate));
    }
    attributes.extend(attrs);
    let mut span_events = SpanEvents::default();
    span_events.events = events;
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: if parent_id == 0 {
            SpanId::INVALID
        } else {
            SpanId::from(parent_id)
        },
        parent_span_is_remote: parent_remote,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(meta.name),
        start_time: clock::to_system_time(start),
        end_time: clock::to_system_time(end),
        attributes,
        dropped_attributes_count: 0,
        events: span_events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}
