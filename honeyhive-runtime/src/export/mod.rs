//! Export: from the spans traced threads hand over (the sink) to the wire.
//!
//! One background thread takes batches off the bounded queue, assembles them into whole
//! traces (`assembler`), renders the LLM semantics and redaction once per span
//! (`semantics`), and feeds the outputs: OTLP protobuf written straight from the records
//! (`otlp`) for the HTTP exporter, or OpenTelemetry `SpanData` for any other `SpanExporter`
//! (console, gRPC, in-memory, your own). A trace is never split across two export calls.
//!
//! Callers never block and never do I/O: a full queue drops whole traces and counts them.

pub(crate) mod alerting;
pub(crate) mod assembler;
pub mod console;
pub mod file;
pub(crate) mod http;
pub(crate) mod observe;
pub(crate) mod otlp;
mod resilience;
pub(crate) mod semantics;
pub(crate) mod store;
pub(crate) mod tail;

pub use resilience::CircuitBreaker;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, SpanId, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};

use crate::clock;
use crate::record::Attr;
use crate::sink::{self, Batch, Counters, Msg};
use crate::span::SpanRecord;
use assembler::{Assembler, Limits, Trace};
use resilience::{Guarded, Outcome};
use semantics::Rendered;

pub use crate::capture::DEFAULT_CAPTURE_CAP;

impl Counters {
    fn stats(&self) -> ExportStats {
        ExportStats {
            // Momentarily above capacity while a refused batch is being taken back.
            queued: self.queued.spans.load(Ordering::Relaxed).min(self.capacity),
            queue_capacity: self.capacity,
            staged: sink::staged_spans(self.generation.load(Ordering::Acquire))
                + self.taken.load(Ordering::Relaxed),
            queued_bytes: self.queued.bytes.load(Ordering::Relaxed),
            queue_capacity_bytes: self.capacity_bytes,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            dropped_traces: self.dropped_traces.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            circuit_open: self.circuit_open.load(Ordering::Relaxed),
            late_spans: self.late.load(Ordering::Relaxed),
            lost_annotations: self.lost_annotations.load(Ordering::Relaxed),
            exporter_panics: self.exporter_panics.load(Ordering::Relaxed),
        }
    }
}

/// What the export pipeline has done so far; see [`export_stats`].
///
/// Every ended, sampled span is in one of `queued`, `staged`, `in_flight`, `exported` and
/// `dropped` (give or take the instant it moves from one to the next), or held by a tail
/// sampler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans waiting in the queue; never above `queue_capacity`.
    pub queued: usize,
    /// The queue's capacity ([`Builder::queue_capacity`](crate::Builder::queue_capacity)).
    pub queue_capacity: usize,
    /// Spans of whole traces that caller threads ended and keep to queue with more (at most
    /// a quarter of the queue per thread); the export thread takes them at its next
    /// scheduled export, flush or shutdown.
    pub staged: usize,
    /// Bytes of span records waiting in the queue.
    pub queued_bytes: usize,
    /// The queue's capacity in bytes ([`Builder::queue_max_bytes`](crate::Builder::queue_max_bytes)).
    pub queue_capacity_bytes: usize,
    /// Spans taken off the queue: waiting for a full batch or being exported now.
    pub in_flight: usize,
    /// Spans every exporter accepted.
    pub exported: u64,
    /// Spans lost: the queue was full (with the rest of their traces), or an exporter failed
    /// or was skipped.
    pub dropped: u64,
    /// Traces the queue refused (all their spans are in `dropped`).
    pub dropped_traces: u64,
    /// Of `dropped`, spans in batches that an exporter failed or skipped.
    pub failed: u64,
    /// Of `failed`, spans an exporter skipped because its [`CircuitBreaker`] was open.
    pub circuit_open: u64,
    /// Spans that ended after the rest of their trace was sent (exported on their own).
    pub late_spans: u64,
    /// `enrich_span`, `LlmCall::record` and retry events made where no span of the thread
    /// was open (a carried scope on another thread, under an extracted remote parent): lost.
    pub lost_annotations: u64,
    /// Exporter calls that panicked; each is a failed export, and export goes on.
    pub exporter_panics: u64,
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
pub(crate) type ExporterFactory = Box<dyn FnOnce() -> Result<Exporter, String> + Send>;

/// An exporter as the export thread drives it.
pub(crate) enum Exporter {
    /// Any `SpanExporter`: fed `SpanData`.
    Spans(Box<dyn DynSpanExporter>),
    /// OTLP over HTTP: fed protobuf encoded straight from the records.
    OtlpHttp(Box<http::HttpTransport>),
}

impl Exporter {
    /// The OTLP/HTTP exporter for `endpoint` (the full URL, with `/v1/traces`).
    pub(crate) fn otlp_http(
        endpoint: &str,
        headers: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Exporter, String> {
        http::HttpTransport::new(endpoint, headers, timeout)
            .map(|t| Exporter::OtlpHttp(Box::new(t)))
    }
}

/// What the export thread needs to start.
pub(crate) struct PipelineConfig {
    pub(crate) exporters: Vec<ExporterFactory>,
    pub(crate) resource: Resource,
    pub(crate) queue_capacity: usize,
    pub(crate) queue_max_bytes: usize,
    pub(crate) max_export_batch: usize,
    pub(crate) scheduled_delay: Duration,
    pub(crate) capture_cap: usize,
    pub(crate) tail: Option<crate::sampling::TailSampling>,
    pub(crate) limits: Limits,
    pub(crate) circuit_breaker: CircuitBreaker,
    /// LLM conventions, cost, roll-ups, redaction and the attribute budget.
    pub(crate) semantics: semantics::Semantics,
    /// Flush at process exit (`std::process::exit`, or `main` returning with the guard leaked).
    pub(crate) exit_hook: bool,
    /// How long the exit hook waits.
    pub(crate) shutdown_timeout: Duration,
    /// What else sees every whole trace (metrics, the trace store, alerts, files).
    pub(crate) observers: Vec<observe::ObserverFactory>,
}

/// A running export pipeline; dropping it does not stop it (see [`Pipeline::shutdown`]).
pub(crate) struct Pipeline {
    generation: u64,
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    export_thread: Thread,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a shutdown achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Spans handed to the exporters successfully over the pipeline's life.
    pub exported: u64,
    /// Spans dropped because the queue was full or an export failed (and those of
    /// `lost_buffered`).
    pub dropped: u64,
    /// Spans still queued, staged or being exported when the deadline passed (lost).
    pub lost_at_deadline: u64,
    /// Spans ended under roots still open at shutdown (on another thread, or on the one that
    /// shuts down from inside traced code): not exported without their root, so lost, and
    /// counted in `dropped`. They never reach a pipeline installed later.
    pub lost_buffered: u64,
    /// Whether the export thread finished within the deadline.
    pub completed: bool,
}

impl ShutdownReport {
    /// The report of a pipeline that was never running.
    pub(crate) const NOTHING: ShutdownReport = ShutdownReport {
        exported: 0,
        dropped: 0,
        lost_at_deadline: 0,
        lost_buffered: 0,
        completed: true,
    };
}

/// The pipeline the exit hook flushes, if one is installed with the hook on.
static AT_EXIT: Mutex<Option<ExitHandle>> = Mutex::new(None);

struct ExitHandle {
    generation: u64,
    tx: SyncSender<Msg>,
    export_thread: Thread,
    timeout: Duration,
}

extern "C" fn flush_at_exit() {
    let handle = AT_EXIT.try_lock().ok().and_then(|mut h| h.take());
    let Some(handle) = handle else {
        return;
    };
    sink::flush_thread();
    sink::uninstall(handle.generation);
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let deadline = clock::after(handle.timeout);
    if send_control(&handle.tx, Msg::Shutdown(reply_tx, deadline), deadline) {
        handle.export_thread.unpark();
        let _ = reply_rx.recv_timeout(handle.timeout);
    }
}

fn register_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `flush_at_exit` is a plain `extern "C" fn()` that never unwinds (it only
        // sends a message and waits with a timeout).
        unsafe {
            libc::atexit(flush_at_exit);
        }
    });
}

/// How long exporters are given to shut down when the pipeline's handle is gone without a
/// shutdown (the channel disconnected).
const EXPORTER_SHUTDOWN: Duration = Duration::from_secs(5);

/// The least time an exporter is given to shut down, even past the shutdown deadline.
const MIN_EXPORTER_SHUTDOWN: Duration = Duration::from_millis(1);

/// Messages the queue's channel holds at most: a batch holds at least one span and the
/// queue admits at most its capacity in spans, so with room for control messages it is never
/// full before the queue is, up to this bound on its preallocated slots.
const MAX_CHANNEL_SLOTS: usize = 64 * 1024;

/// Sends a flush or shutdown message, waiting for room until `deadline` (the channel is full
/// only when more than [`MAX_CHANNEL_SLOTS`] batches wait); whether it was sent.
fn send_control(tx: &SyncSender<Msg>, mut msg: Msg, deadline: Instant) -> bool {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(m)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Pipeline {
    /// Starts the export thread and installs the pipeline as the global one.
    pub(crate) fn start(config: PipelineConfig) -> Result<Pipeline, String> {
        clock::init();
        // Bounded, so its slots are allocated once here: an unbounded channel allocates a
        // block every 31 messages on the sending (caller's) thread and frees it here.
        let slots = config.queue_capacity.clamp(1, MAX_CHANNEL_SLOTS) + 64;
        let (tx, rx) = mpsc::sync_channel(slots);
        let counters = Arc::new(Counters {
            capacity: config.queue_capacity.max(1),
            capacity_bytes: config.queue_max_bytes.max(1),
            wake_at: config
                .max_export_batch
                .min(config.queue_capacity / 2)
                .max(1),
            ..Counters::default()
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_counters = Arc::clone(&counters);
        let exit_hook = config.exit_hook;
        let timeout = config.shutdown_timeout;
        let thread = std::thread::Builder::new()
            .name("honeyhive-export".into())
            .spawn(move || export_thread(config, &rx, thread_counters, &ready_tx))
            .map_err(|e| format!("cannot start the export thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(cap)) => crate::capture::set_capture_cap(cap),
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err("the export thread stopped while starting".into()),
        }
        let export_thread = thread.thread().clone();
        let generation = sink::install(tx.clone(), Arc::clone(&counters), export_thread.clone());
        // From now on the export thread takes the stages of this generation.
        counters.generation.store(generation, Ordering::Release);
        if exit_hook {
            register_exit_hook();
            *AT_EXIT.lock().unwrap_or_else(PoisonError::into_inner) = Some(ExitHandle {
                generation,
                tx: tx.clone(),
                export_thread: export_thread.clone(),
                timeout,
            });
        }
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
        sink::flush_thread();
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let deadline = clock::after(timeout);
        if !send_control(&self.tx, Msg::Flush(reply_tx), deadline) {
            return false;
        }
        self.export_thread.unpark();
        reply_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Uninstalls the pipeline, exports what is queued and stops the thread, within `timeout`.
    pub(crate) fn shutdown(&mut self, timeout: Duration) -> ShutdownReport {
        let lost_here = sink::flush_thread_at_shutdown() as u64;
        {
            let mut at_exit = AT_EXIT.lock().unwrap_or_else(PoisonError::into_inner);
            if at_exit
                .as_ref()
                .is_some_and(|h| h.generation == self.generation)
            {
                *at_exit = None;
            }
        }
        let lost_buffered = sink::buffered_elsewhere() as u64 + lost_here;
        self.counters
            .dropped
            .fetch_add(lost_buffered, Ordering::Relaxed);
        sink::uninstall(self.generation);
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let deadline = clock::after(timeout);
        let sent = send_control(&self.tx, Msg::Shutdown(reply_tx, deadline), deadline);
        self.export_thread.unpark();
        let completed = sent
            && reply_rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok();
        if completed && let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // A hung exporter keeps its thread; it is detached and ends with the process.
        let lost_at_deadline = if completed {
            0
        } else {
            let stats = self.stats();
            (stats.queued + stats.staged + stats.in_flight) as u64
        };
        ShutdownReport {
            exported: self.exported(),
            dropped: self.dropped(),
            lost_at_deadline,
            lost_buffered,
            completed,
        }
    }
}

/// Spans dropped by the installed pipeline (queue full or export failed), 0 when none is.
pub fn dropped_spans() -> u64 {
    sink::counters().map_or(0, |c| c.dropped.load(Ordering::Relaxed))
}

/// The installed pipeline's counters (all zero when none is installed).
pub fn export_stats() -> ExportStats {
    sink::counters().map_or_else(ExportStats::default, |c| c.stats())
}

fn export_thread(
    config: PipelineConfig,
    rx: &Receiver<Msg>,
    counters: Arc<Counters>,
    ready: &mpsc::SyncSender<Result<usize, String>>,
) {
    sink::mark_export_thread();
    let mut outputs = Vec::with_capacity(config.exporters.len());
    let mut wire = Vec::new();
    for factory in config.exporters {
        match factory() {
            Ok(Exporter::Spans(mut exporter)) => {
                exporter.set_resource_dyn(&config.resource);
                outputs.push(Guarded::new(exporter, config.circuit_breaker));
            }
            Ok(Exporter::OtlpHttp(transport)) => {
                wire.push(Guarded::new(*transport, config.circuit_breaker));
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let envelope = otlp::Envelope::new(
        &resource_attributes(&config.resource),
        "honeyhive-rs",
        env!("CARGO_PKG_VERSION"),
    );
    let _ = ready.send(Ok(config.capture_cap));
    let tail = tail::Policy::start(config.tail);
    let limits = tail
        .as_ref()
        .map_or(config.limits, |t| t.limits(config.limits));
    let mut semantics = config.semantics;
    semantics.set_capture_cap(config.capture_cap);
    let observers = config.observers.into_iter().map(|f| f()).collect();
    let mut worker = Worker {
        observers,
        outputs,
        wire,
        envelope,
        body: otlp::Body::default(),
        pending_n: 0,
        assembler: Assembler::new(limits, tail),
        semantics,
        counters,
        max_batch: config.max_export_batch.max(1),
        // Grown as needed past this: a configured batch size is not an allocation.
        pending: Vec::with_capacity(config.max_export_batch.clamp(1, 4096)),
        scope: InstrumentationScope::builder("honeyhive-rs")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
        traces: Vec::new(),
        dropped: Vec::new(),
        rendered: Vec::new(),
        staged: Vec::new(),
        taken: 0,
        owed: 0,
        origin: Origin::Queue,
        late_seen: 0,
        doomed_seen: 0,
    };
    let delay = config.scheduled_delay;
    let mut next_export = clock::after(delay);
    loop {
        // Woken by a full batch, a flush or shutdown (see `Sink::send`), or by the timer: a
        // wake-up per batch, not per message, keeps futex calls off the callers' threads.
        loop {
            match rx.try_recv() {
                Ok(Msg::Spans(batch)) => worker.accept(batch),
                Ok(Msg::Flush(reply)) => {
                    worker.flush();
                    let _ = reply.send(());
                }
                Ok(Msg::Shutdown(reply, deadline)) => {
                    worker.drain(rx);
                    worker.shutdown(deadline);
                    let _ = reply.send(());
                    return;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    worker.shutdown(clock::after(EXPORTER_SHUTDOWN));
                    return;
                }
            }
        }
        if Instant::now() >= next_export {
            worker.take_staged();
            worker.tick();
            worker.export_pending();
            next_export = clock::after(delay);
        }
        std::thread::park_timeout(next_export.saturating_duration_since(Instant::now()));
    }
}

/// Where the spans the export thread is taking came from.
#[derive(Clone, Copy)]
enum Origin {
    Queue,
    Stage,
}

struct Worker {
    /// Fed every rendered trace before the exporters take it.
    observers: Vec<Box<dyn observe::Observer>>,
    /// `SpanExporter`s, fed `pending`.
    outputs: Vec<Guarded<Box<dyn DynSpanExporter>>>,
    /// OTLP/HTTP exporters, fed `body`.
    wire: Vec<Guarded<http::HttpTransport>>,
    envelope: otlp::Envelope,
    body: otlp::Body,
    /// Spans rendered and waiting for the next export call.
    pending_n: usize,
    assembler: Assembler,
    semantics: semantics::Semantics,
    counters: Arc<Counters>,
    max_batch: usize,
    pending: Vec<SpanData>,
    scope: InstrumentationScope,
    /// Scratch space, reused for every batch.
    traces: Vec<Trace>,
    dropped: Vec<Box<SpanRecord>>,
    rendered: Vec<Rendered<'static>>,
    /// What `take_staged` took, reused.
    staged: Vec<Box<SpanRecord>>,
    /// Of the batch or stages being taken, spans not yet rendered for export, held or
    /// dropped; `owed`: those that were, not yet taken off the count they came from
    /// (`origin`).
    taken: usize,
    owed: usize,
    origin: Origin,
    /// Assembler counts already published.
    late_seen: u64,
    doomed_seen: u64,
}

impl Worker {
    /// Takes a batch off the queue. Its spans stay counted as queued until they are rendered
    /// for export, held or dropped (see [`Worker::settle`]), so that every span is in one
    /// count even while an export blocks in the middle of a large batch.
    fn accept(&mut self, batch: Batch) {
        self.counters
            .queued
            .bytes
            .fetch_sub(batch.bytes, Ordering::Relaxed);
        self.origin = Origin::Queue;
        self.taken = batch.records.len();
        self.assemble_batch(batch);
        self.taken = 0;
        self.settle();
    }

    /// Takes the whole traces threads staged instead of queueing them one by one (see
    /// `sink::take_staged`): at each scheduled export, flush and shutdown. They stay counted
    /// as staged (`Counters::taken`) until they are rendered for export, held or dropped.
    fn take_staged(&mut self) {
        let mut staged = std::mem::take(&mut self.staged);
        sink::take_staged(&self.counters, &mut staged);
        if !staged.is_empty() {
            self.origin = Origin::Stage;
            self.taken = staged.len();
            self.assemble(&mut staged);
            self.taken = 0;
            self.settle();
        }
        self.staged = staged;
    }

    /// `n` spans of what was taken moved on (rendered, held or dropped): owed to the count
    /// they were taken from.
    fn untake(&mut self, n: usize) {
        let moved = n.min(self.taken);
        self.taken -= moved;
        self.owed += moved;
    }

    /// Takes what moved on off the count it was taken from: before an export call blocks,
    /// and when a batch is done (once per batch, not per trace: callers write that count).
    fn settle(&mut self) {
        if self.taken > 0 {
            // Whatever was not moved on explicitly is done with when the batch is.
            self.owed += std::mem::take(&mut self.taken);
        }
        self.settle_owed();
    }

    fn settle_owed(&mut self) {
        let owed = std::mem::take(&mut self.owed);
        if owed == 0 {
            return;
        }
        match self.origin {
            Origin::Queue => self
                .counters
                .queued
                .spans
                .fetch_sub(owed, Ordering::Relaxed),
            Origin::Stage => self.counters.taken.fetch_sub(owed, Ordering::Relaxed),
        };
    }

    fn assemble_batch(&mut self, batch: Batch) {
        let Batch {
            mut records, home, ..
        } = batch;
        self.assemble(&mut records);
        // The emptied vector was allocated by the thread that handed it over: it goes back
        // there for reuse, not freed here.
        sink::give_back_vec(home, records);
    }

    fn assemble(&mut self, records: &mut Vec<Box<SpanRecord>>) {
        let now = self.assembler.now();
        self.take_doomed(now);
        let mut traces = std::mem::take(&mut self.traces);
        self.assembler
            .accept(records, now, &mut traces, &mut self.dropped);
        if self.taken > 0 {
            // What the assembler held or dropped is counted there now.
            let out: usize = traces.iter().map(|t| t.spans.len()).sum();
            self.untake(self.taken.saturating_sub(out));
        }
        self.emit_all(&mut traces);
        self.traces = traces;
    }

    /// Drops the rest of traces the queue refused part of.
    fn take_doomed(&mut self, now: u64) {
        if !self.counters.has_doomed.swap(false, Ordering::Acquire) {
            return;
        }
        let ids = {
            let mut doomed = self
                .counters
                .doomed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if doomed.is_empty() {
                return;
            }
            std::mem::take(&mut *doomed)
        };
        self.assembler.doom(&ids, now, &mut self.dropped);
    }

    fn tick(&mut self) {
        let wall = std::time::SystemTime::now();
        self.observe(|o| o.tick(wall));
        let now = self.assembler.now();
        self.take_doomed(now);
        let mut traces = std::mem::take(&mut self.traces);
        self.assembler.tick(now, &mut traces, &mut self.dropped);
        self.emit_all(&mut traces);
        self.traces = traces;
    }

    fn flush(&mut self) {
        self.take_staged();
        let now = self.assembler.now();
        self.take_doomed(now);
        let mut traces = std::mem::take(&mut self.traces);
        self.assembler.drain(now, &mut traces, &mut self.dropped);
        self.emit_all(&mut traces);
        self.traces = traces;
        self.export_pending();
        self.observe(|o| o.flush());
        let panics = &self.counters.exporter_panics;
        for e in &mut self.outputs {
            e.guard(panics, |e| e.force_flush_blocking());
        }
    }

    /// Runs `f` on every observer; one that panics is counted (as an exporter panic) and
    /// dropped, and the rest go on.
    fn observe(&mut self, mut f: impl FnMut(&mut dyn observe::Observer)) {
        let panics = &self.counters.exporter_panics;
        self.observers.retain_mut(|o| {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut **o))).is_ok();
            if !ok {
                panics.fetch_add(1, Ordering::Relaxed);
            }
            ok
        });
    }

    fn emit_all(&mut self, traces: &mut Vec<Trace>) {
        for trace in traces.drain(..) {
            self.emit(trace);
        }
        let stats = self.assembler.stats;
        let doomed = stats.doomed_spans - self.doomed_seen;
        if doomed > 0 {
            self.counters.dropped.fetch_add(doomed, Ordering::Relaxed);
            self.doomed_seen = stats.doomed_spans;
        }
        if stats.late > self.late_seen {
            self.counters
                .late
                .fetch_add(stats.late - self.late_seen, Ordering::Relaxed);
            self.late_seen = stats.late;
        }
        sink::give_back(&mut self.dropped);
        self.publish_in_flight();
    }

    fn publish_in_flight(&self) {
        self.counters.in_flight.store(
            self.assembler.held_spans() + self.pending_n,
            Ordering::Relaxed,
        );
    }

    /// Whether every exporter's circuit breaker is open (and there is one).
    fn all_open(&self) -> bool {
        (!self.outputs.is_empty() || !self.wire.is_empty())
            && self.outputs.iter().all(Guarded::is_open)
            && self.wire.iter().all(Guarded::is_open)
    }

    fn emit(&mut self, mut trace: Trace) {
        let n = trace.spans.len();
        if self.all_open() {
            // Nobody would take them: drop without rendering, so a dead backend costs nothing.
            let n64 = n as u64;
            self.counters.failed.fetch_add(n64, Ordering::Relaxed);
            self.counters.circuit_open.fetch_add(n64, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n64, Ordering::Relaxed);
            self.untake(n);
            sink::give_back(&mut trace.spans);
            self.assembler.recycle(trace.spans);
            return;
        }
        // A trace is never split across export calls (the console prints whole traces).
        if self.pending_n > 0 && self.pending_n + n > self.max_batch {
            self.export_pending();
        }
        self.untake(n);
        let mut rendered = std::mem::take(&mut self.rendered);
        self.semantics.render_trace(&trace, &mut rendered);
        if !self.observers.is_empty() {
            let views: Vec<observe::SpanView<'_>> = trace
                .spans
                .iter()
                .zip(&rendered)
                .map(|(record, rendered)| observe::SpanView {
                    record,
                    rendered,
                    factor: trace.factor,
                })
                .collect();
            self.observe(|o| o.trace(&views));
        }
        let to_wire = !self.wire.is_empty();
        let to_spans = !self.outputs.is_empty();
        for (record, r) in trace.spans.iter().zip(rendered.drain(..)) {
            if to_wire {
                self.body.push(record, &r);
            }
            if to_spans {
                self.pending.push(to_span_data(record, r, &self.scope));
            } else {
                self.semantics.recycle(r.attrs);
            }
        }
        self.pending_n += n;
        self.rendered = semantics::unborrowed_spans(rendered);
        sink::give_back(&mut trace.spans);
        self.assembler.recycle(trace.spans);
        if self.pending_n >= self.max_batch {
            self.export_pending();
        }
    }

    /// Takes what is already queued (spans ended before shutdown began).
    fn drain(&mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Spans(batch) => self.accept(batch),
                Msg::Flush(reply) | Msg::Shutdown(reply, _) => {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn export_pending(&mut self) {
        if self.pending_n == 0 {
            self.publish_in_flight();
            return;
        }
        let n = self.pending_n;
        self.pending_n = 0;
        // Exact while the export blocks: these spans are in flight, the rest of a batch
        // being taken is still queued (or staged).
        self.settle_owed();
        self.counters
            .in_flight
            .store(self.assembler.held_spans() + n, Ordering::Relaxed);
        let panics = &self.counters.exporter_panics;
        // The most spans any exporter failed to deliver: a span counts as exported only when
        // every exporter took it.
        let mut failed = 0;
        let mut refused = false;
        for guarded in &mut self.wire {
            let body = &self.body;
            let envelope = &self.envelope;
            let mut delivery = http::Delivery::default();
            let outcome = guarded.call(panics, |transport| {
                delivery =
                    transport.deliver(n, &mut |range, out| body.request(envelope, range, out));
                delivery.failed == 0
            });
            match outcome {
                Outcome::Exported => {}
                Outcome::Refused => {
                    refused = true;
                    failed = n;
                }
                // A panicking transport delivered nothing we can vouch for.
                Outcome::Failed => {
                    let lost = if delivery.delivered + delivery.failed == n {
                        delivery.failed
                    } else {
                        n
                    };
                    failed = failed.max(lost);
                }
            }
        }
        self.body.clear();
        let batch = std::mem::take(&mut self.pending);
        if !batch.is_empty()
            && let Some((last, rest)) = self.outputs.split_last_mut()
        {
            let mut outcomes = Vec::with_capacity(rest.len() + 1);
            for exporter in rest {
                outcomes.push(exporter.export(batch.clone(), panics));
            }
            outcomes.push(last.export(batch, panics));
            if outcomes.contains(&Outcome::Refused) {
                refused = true;
            }
            if outcomes.iter().any(|o| *o != Outcome::Exported) {
                failed = n;
            }
        }
        let (n, failed) = (n as u64, failed as u64);
        self.counters
            .exported
            .fetch_add(n - failed, Ordering::Relaxed);
        if failed > 0 {
            if refused {
                self.counters
                    .circuit_open
                    .fetch_add(failed, Ordering::Relaxed);
            }
            self.counters.failed.fetch_add(failed, Ordering::Relaxed);
            self.counters.dropped.fetch_add(failed, Ordering::Relaxed);
        }
        self.publish_in_flight();
    }

    /// Exports what is left; each exporter is then given what is left of `deadline` to shut
    /// down (at least [`MIN_EXPORTER_SHUTDOWN`]: one that honours its timeout gets a chance).
    fn shutdown(&mut self, deadline: Instant) {
        self.flush();
        self.observe(|o| o.shutdown());
        let panics = &self.counters.exporter_panics;
        for e in &mut self.outputs {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_EXPORTER_SHUTDOWN);
            e.guard(panics, |e| e.shutdown_blocking(left));
        }
    }
}

/// Builds OpenTelemetry's `SpanData` from a record and its rendering (for `SpanExporter`s).
fn to_span_data(record: &SpanRecord, r: Rendered<'_>, scope: &InstrumentationScope) -> SpanData {
    let end = record.end.max(record.start);
    let mut events = SpanEvents::default();
    events.events = r.events;
    events.dropped_count = r.dropped_events;
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(record.trace_id),
            SpanId::from(record.span_id),
            TraceFlags::SAMPLED,
            false,
            r.trace_state
                .as_deref()
                .and_then(|ts| ts.parse().ok())
                .unwrap_or(TraceState::NONE),
        ),
        parent_span_id: if record.parent_id == 0 {
            SpanId::INVALID
        } else {
            SpanId::from(record.parent_id)
        },
        parent_span_is_remote: record.parent_remote,
        span_kind: record.kind().to_otel(),
        name: match r.name {
            Some(name) => Cow::Owned(name),
            None => record
                .name
                .clone()
                .unwrap_or(Cow::Borrowed(record.meta.name)),
        },
        start_time: clock::to_system_time(record.start),
        end_time: clock::to_system_time(end),
        attributes: r.attrs.into_iter().map(Attr::into_owned).collect(),
        dropped_attributes_count: r.dropped_attributes,
        events,
        links: SpanLinks::default(),
        status: r.status,
        instrumentation_scope: scope.clone(),
    }
}

/// The resource's attributes, for encoders that write it themselves.
pub(crate) fn resource_attributes(resource: &Resource) -> Vec<KeyValue> {
    resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect()
}
