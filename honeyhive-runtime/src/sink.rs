//! The sink handle: how traced threads hand ended spans to the export thread.
//!
//! A thread buffers the spans it ends and hands them over as one batch when it leaves traced
//! code (or when the buffer is as large as a share of the queue). The queue is bounded in spans
//! and in bytes; a batch that does not fit is dropped whole and counted, and the traces it
//! belonged to are marked so that their other parts are dropped too: overload loses whole
//! traces, never parts of them.
//!
//! A thread whose hand-over holds only whole traces (each with its root, none of them
//! handed over in part before) does not queue them at once: it stages them in its [`Home`]
//! and queues the stage when it is as large as a share of the queue, so that a small trace
//! costs no queue message of its own. The export thread takes every thread's stage at each
//! scheduled export, flush and shutdown ([`take_staged`]), so a thread that stops tracing
//! keeps nothing. A stage is queued whole or refused whole, like any batch.
//!
//! Records are recycled, never freed across threads: the export thread returns each batch's
//! records to the thread that recorded them, which clears and reuses them (what they own was
//! allocated there, so it is freed there). The vector a batch travels in goes back the same
//! way, to the thread that handed it over: a hand-over allocates nothing once a thread has a
//! few in circulation.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::Thread;

use crate::record::SpanRecord;

/// Whether a pipeline is installed and enabled. Read once per root span.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Bumped whenever the installed pipeline changes, so threads refresh their cached sender.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Records a thread keeps for reuse at most; the export thread frees what is beyond.
const MAX_RECYCLED: usize = 4096;
/// Emptied batch vectors a thread keeps for reuse at most; the export thread frees what is
/// beyond (as many as batches can be in flight at once only when traces are tiny).
const MAX_RECYCLED_VECS: usize = 1024;
/// Refused trace ids waiting for the export thread at most.
const MAX_DOOMED: usize = 64 * 1024;

#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// What the queue holds: the one counter pair every hand-over writes.
#[derive(Debug, Default)]
pub(crate) struct Level {
    pub(crate) spans: AtomicUsize,
    pub(crate) bytes: AtomicUsize,
}

/// A value alone on its cache lines (two: the adjacent line is prefetched with it), so that
/// the export thread's writes to counters beside it do not take it from the callers' cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Counters shared by callers and the export thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Spans and bytes queued, written by every hand-over and by the export thread for every
    /// batch it takes.
    pub(crate) queued: Padded<Level>,
    pub(crate) capacity: usize,
    pub(crate) capacity_bytes: usize,
    /// How many queued spans wake the export thread before its next scheduled export.
    pub(crate) wake_at: usize,
    /// Spans taken off the queue and not yet exported or dropped (held for their trace,
    /// waiting for a full batch, or being exported). Written by the export thread only.
    pub(crate) in_flight: AtomicUsize,
    pub(crate) dropped: AtomicU64,
    /// Traces (or parts of traces) dropped because the queue was full.
    pub(crate) dropped_traces: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) circuit_open: AtomicU64,
    /// Spans that ended after their trace was exported.
    pub(crate) late: AtomicU64,
    /// Annotations (attributes, events) made where no span of this thread was open.
    pub(crate) lost_annotations: AtomicU64,
    /// Exporter calls that panicked (each counted as a failed export).
    pub(crate) exporter_panics: AtomicU64,
    /// Trace ids of batches dropped on a full queue, for the export thread to drop the rest.
    pub(crate) doomed: Mutex<Vec<u128>>,
    /// The generation the pipeline was installed as (0 until then): the stages it takes.
    pub(crate) generation: AtomicU64,
    /// Spans the export thread took from stages and has not yet moved on (still counted as
    /// staged). Written by the export thread only.
    pub(crate) taken: AtomicUsize,
    /// Whether `doomed` may hold ids (so the export thread locks it only then).
    pub(crate) has_doomed: AtomicBool,
}

/// A thread's way back for the records it handed over, and its gauge of buffered spans.
/// Homes are reused by later threads once theirs exits; records name theirs by index.
///
/// The parts the export thread writes (`back`, for every batch it takes) and the parts the
/// thread writes (`stage`, per trace; `buffered`, per span) are on separate cache lines.
#[derive(Debug, Default)]
struct Home {
    back: Padded<Mutex<Returned>>,
    stage: Padded<Mutex<Stage>>,
    in_use: AtomicBool,
    /// How many ended spans the thread buffers now, for [`buffered_elsewhere`].
    buffered: AtomicUsize,
}

/// Whole traces a thread ended, waiting to be queued with more.
#[derive(Debug, Default)]
struct Stage {
    records: Vec<Box<SpanRecord>>,
    bytes: usize,
    /// The pipeline they were staged for.
    generation: u64,
}

/// What the export thread gave back to a thread: records to reuse, and the emptied vectors
/// its batches travelled in.
#[derive(Debug, Default)]
struct Returned {
    records: Vec<Box<SpanRecord>>,
    vecs: Vec<Vec<Box<SpanRecord>>>,
}

static HOMES: RwLock<Vec<Arc<Home>>> = RwLock::new(Vec::new());

/// Returns records to the threads that recorded them (export thread side), to be cleared and
/// reused there; frees what is over a thread's bound.
pub(crate) fn give_back(records: &mut Vec<Box<SpanRecord>>) {
    if records.is_empty() {
        return;
    }
    let homes = HOMES.read().unwrap_or_else(PoisonError::into_inner);
    let mut rest = records.drain(..).peekable();
    while let Some(first) = rest.next() {
        let index = first.home as usize;
        let Some(home) = homes.get(index) else {
            continue;
        };
        let mut back = home.back.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut back.records;
        if slot.len() < MAX_RECYCLED {
            slot.push(first);
        }
        while let Some(next) = rest.next_if(|r| r.home as usize == index) {
            if slot.len() < MAX_RECYCLED {
                slot.push(next);
            }
        }
    }
}

/// Returns the emptied vector of a batch to the thread that handed it over (export thread
/// side), for its next hand-over.
pub(crate) fn give_back_vec(home: u32, mut records: Vec<Box<SpanRecord>>) {
    if records.capacity() == 0 {
        return;
    }
    // Normally empty already (the assembler drained it); what is left goes back as records.
    give_back(&mut records);
    let homes = HOMES.read().unwrap_or_else(PoisonError::into_inner);
    let Some(home) = homes.get(home as usize) else {
        return;
    };
    let mut back = home.back.lock().unwrap_or_else(PoisonError::into_inner);
    if back.vecs.len() < MAX_RECYCLED_VECS {
        back.vecs.push(records);
    }
}

/// A batch of ended spans from one thread.
pub(crate) struct Batch {
    pub(crate) records: Vec<Box<SpanRecord>>,
    pub(crate) bytes: usize,
    /// The home of the thread that handed it over, which gets the emptied vector back
    /// ([`give_back_vec`]).
    pub(crate) home: u32,
}

pub(crate) enum Msg {
    Spans(Batch),
    Flush(mpsc::SyncSender<()>),
    /// Export what is left and stop; exporters are given until the deadline to shut down.
    Shutdown(mpsc::SyncSender<()>, std::time::Instant),
}

#[derive(Clone)]
pub(crate) struct Sink {
    pub(crate) generation: u64,
    pub(crate) tx: SyncSender<Msg>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) export_thread: Thread,
}

impl Sink {
    fn send(&self, mut batch: Batch) -> Result<(), Batch> {
        let n = batch.records.len();
        let bytes = batch.bytes;
        let c = &self.counters;
        let before = c.queued.spans.fetch_add(n, Ordering::Relaxed);
        let before_bytes = c.queued.bytes.fetch_add(bytes, Ordering::Relaxed);
        if before + n > c.capacity || before_bytes + bytes > c.capacity_bytes {
            c.queued.spans.fetch_sub(n, Ordering::Relaxed);
            c.queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(batch);
        }
        // Never blocks: the channel has a slot for every span the queue admits (see
        // `export::MAX_CHANNEL_SLOTS`); full beyond that, the batch is refused like on a full
        // queue.
        if let Err(e) = self.tx.try_send(Msg::Spans(batch)) {
            // Refused either way (a full channel, or an export thread that is gone): the
            // caller counts it (`refuse`).
            let (TrySendError::Full(msg) | TrySendError::Disconnected(msg)) = e;
            if let Msg::Spans(b) = msg {
                c.queued.spans.fetch_sub(n, Ordering::Relaxed);
                c.queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
                batch = b;
                return Err(batch);
            }
        }
        // The export thread sleeps until its next scheduled export and is woken early only when
        // a batch's worth is waiting: waking it for every trace cost a futex syscall and a
        // context switch per trace, more than all the spans in it.
        let wake_at = c.wake_at;
        if before < wake_at && before + n >= wake_at {
            self.export_thread.unpark();
        }
        Ok(())
    }

    /// Counts a refused batch and marks the traces of which other parts exist, so that those
    /// parts (handed over earlier or later, from this thread or another) are dropped on the
    /// export thread instead of arriving as orphans. A trace that ends in this batch with its
    /// root, of which this thread handed nothing over before (`open_parts`) and whose scope was
    /// not carried elsewhere, has no other parts: it is only counted.
    #[cold]
    fn refuse(&self, batch: &Batch, open_parts: &[u128]) {
        let c = &self.counters;
        c.dropped
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        let mut traces = 0;
        let mut partial = Vec::new();
        for run in batch.records.chunk_by(|a, b| a.trace_id == b.trace_id) {
            traces += 1;
            let last = &run[run.len() - 1];
            let alone =
                last.is_local_root() && !last.lingers && !open_parts.contains(&last.trace_id);
            if !alone {
                partial.push(last.trace_id);
            }
        }
        c.dropped_traces.fetch_add(traces, Ordering::Relaxed);
        if partial.is_empty() {
            return;
        }
        let mut doomed = c.doomed.lock().unwrap_or_else(PoisonError::into_inner);
        doomed.extend(partial);
        // Bounded: the export thread drains it; under a flood the oldest marks go first.
        if doomed.len() > MAX_DOOMED {
            let over = doomed.len() - MAX_DOOMED / 2;
            doomed.drain(..over);
        }
        c.has_doomed.store(true, Ordering::Release);
    }
}

/// Installs `sink` as the global one; returns its generation.
pub(crate) fn install(tx: SyncSender<Msg>, counters: Arc<Counters>, export_thread: Thread) -> u64 {
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = Some(Sink {
        generation,
        tx,
        counters,
        export_thread,
    });
    GENERATION.store(generation, Ordering::Release);
    ACTIVE.store(true, Ordering::Release);
    generation
}

/// Removes the sink of `generation`, if it is still the installed one.
pub(crate) fn uninstall(generation: u64) {
    let mut sink = SINK.write().unwrap_or_else(PoisonError::into_inner);
    if sink.as_ref().map(|s| s.generation) == Some(generation) {
        *sink = None;
        ACTIVE.store(false, Ordering::Release);
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
}

/// The installed sink's counters, if any.
pub(crate) fn counters() -> Option<Arc<Counters>> {
    SINK.read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|s| Arc::clone(&s.counters))
}

/// Counts an annotation made where no span of this thread could take it.
pub(crate) fn lost_annotation() {
    lost_annotations(1);
}

/// Counts `n` annotations that could not reach a span.
pub(crate) fn lost_annotations(n: usize) {
    if let Some(c) = cached(|s| Arc::clone(&s.counters)) {
        c.lost_annotations
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Per thread: the cached sink, the spans it buffers, the records to reuse, and its home.
struct Local {
    sink: Option<Sink>,
    /// Ended spans waiting to be handed over, and their size.
    finished: Vec<Box<SpanRecord>>,
    finished_bytes: usize,
    spare: Vec<Box<SpanRecord>>,
    /// Emptied batch vectors to hand the next batch over in.
    spare_vecs: Vec<Vec<Box<SpanRecord>>>,
    home: Arc<Home>,
    home_index: u32,
    /// Traces of which this thread handed over a part before their root ended (async tasks
    /// interleave, so there may be several): if the rest is refused, those parts are doomed.
    open_parts: Vec<u128>,
    /// Whether this thread may have traces staged (the export thread may have taken them
    /// since): a hand-over queues them first, so that its traces arrive in the order they
    /// ended.
    staged: bool,
    /// [`limits`] of the cached sink.
    limits: (usize, usize),
}

/// Open traces a thread remembers at most (the oldest is forgotten beyond).
const MAX_OPEN_PARTS: usize = 256;

impl Drop for Local {
    fn drop(&mut self) {
        // The thread is ending inside traced code (a span guard kept in another thread-local,
        // or forgotten): what it buffered goes to the queue rather than away uncounted.
        if !self.finished.is_empty() {
            let generation = GENERATION.load(Ordering::Acquire);
            refresh(self, generation);
            hand_over_local(self);
        }
        self.home.buffered.store(0, Ordering::Relaxed);
        self.home.in_use.store(false, Ordering::Release);
    }
}

fn new_local() -> Local {
    let mut homes = HOMES.write().unwrap_or_else(PoisonError::into_inner);
    let free = homes.iter().position(|h| {
        h.in_use
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    let index = free.unwrap_or_else(|| {
        homes.push(Arc::new(Home {
            in_use: AtomicBool::new(true),
            ..Home::default()
        }));
        homes.len() - 1
    });
    let home = Arc::clone(&homes[index]);
    drop(homes);
    Local {
        sink: None,
        finished: Vec::new(),
        finished_bytes: 0,
        spare: Vec::new(),
        spare_vecs: Vec::new(),
        home,
        home_index: u32::try_from(index).unwrap_or(u32::MAX),
        open_parts: Vec::new(),
        staged: false,
        limits: limits(None),
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(new_local());
}

/// `f` on the installed sink: this thread's copy, or the shared one when this thread's is out
/// of reach (its thread-locals are being destroyed, or it is in use further up the stack).
fn cached<R>(f: impl FnOnce(&Sink) -> R) -> Option<R> {
    let generation = GENERATION.load(Ordering::Acquire);
    let mut f = Some(f);
    let reached = LOCAL.try_with(|local| {
        let mut local = local.try_borrow_mut().ok()?;
        refresh(&mut local, generation);
        Some(
            local
                .sink
                .as_ref()
                .and_then(|sink| f.take().map(|f| f(sink))),
        )
    });
    match reached {
        Ok(Some(out)) => out,
        _ => f.and_then(|f| {
            SINK.read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(f)
        }),
    }
}

/// Queues one ended span by itself, for a thread whose buffer is out of reach (see
/// [`cached`]): its trace is assembled on the export thread like any other. Refused, it is
/// counted as dropped.
#[cold]
fn queue_alone(record: Box<SpanRecord>) {
    let sink = SINK.read().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(sink) = sink else {
        // No pipeline: nothing records spans, nothing counts them.
        return;
    };
    let bytes = record.bytes();
    let batch = Batch {
        records: vec![record],
        bytes,
        // No home: the export thread frees the record.
        home: u32::MAX,
    };
    if let Err(batch) = sink.send(batch) {
        sink.refuse(&batch, &[]);
    }
}

fn refresh(local: &mut Local, generation: u64) {
    if local.sink.as_ref().map(|s| s.generation) != Some(generation) {
        retire(local);
        local
            .sink
            .clone_from(&SINK.read().unwrap_or_else(PoisonError::into_inner));
        local.limits = limits(local.sink.as_ref());
    }
}

/// Before this thread takes up another pipeline: what it staged or buffered for the one it
/// cached goes to that one (queued while it runs; refused and counted there once it is shut
/// down), so that no span reaches the next pipeline, which would export spans the earlier
/// one counted as lost, or lose spans staged for one still running.
fn retire(local: &mut Local) {
    if local.sink.is_none() {
        return;
    }
    // `finished` is for the cached pipeline: its first span refreshed the cache (`finish`).
    hand_over_local(local);
    // The traces it left open are the old pipeline's.
    local.open_parts.clear();
}

/// Ended spans buffered on threads other than this one (inside a root that is still open,
/// or on a thread that has not left traced code): at shutdown they cannot be handed over and
/// are counted as lost.
pub(crate) fn buffered_elsewhere() -> usize {
    let own = LOCAL
        .try_with(|l| l.try_borrow().map(|l| l.home_index).ok())
        .ok()
        .flatten();
    HOMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .enumerate()
        .filter(|(i, _)| u32::try_from(*i).ok() != own)
        .map(|(_, h)| h.buffered.load(Ordering::Relaxed))
        .sum()
}

/// The index of this thread's home, for records it allocates.
pub(crate) fn home_index() -> u32 {
    LOCAL
        .try_with(|l| l.try_borrow().map_or(u32::MAX, |l| l.home_index))
        .unwrap_or(u32::MAX)
}

/// A record to fill: a recycled one of this thread, else a new one.
#[inline]
pub(crate) fn take_record() -> Option<Box<SpanRecord>> {
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            if let Some(r) = local.spare.pop() {
                // The next span's record came back from the export thread's core: asked for
                // now, it is here when that span starts.
                if let Some(next) = local.spare.last() {
                    crate::record::prefetch(&**next);
                }
                return Some(r);
            }
            let home = Arc::clone(&local.home);
            let mut back = home.back.lock().unwrap_or_else(PoisonError::into_inner);
            if back.records.is_empty() {
                return None;
            }
            std::mem::swap(&mut local.spare, &mut back.records);
            drop(back);
            local.spare.pop()
        })
        .ok()
        .flatten()
}

/// Buffers an ended span; hands the buffer over when `hand_over` (the thread has left traced
/// code) or when it is as large as a share of the queue, so the queue sees one message per
/// trace (or per stage of small traces, see [`stage_or_hand_over`]) rather than one per span,
/// and a buffer always fits the queue.
#[inline]
pub(crate) fn finish(record: Box<SpanRecord>, hand_over: bool) {
    let generation = GENERATION.load(Ordering::Acquire);
    let mut record = Some(record);
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        let Some(record) = record.take() else {
            return;
        };
        if local.finished.is_empty() {
            // What it buffers from now on goes to the pipeline installed now (see `retire`).
            refresh(&mut local, generation);
        }
        local.finished_bytes += record.bytes();
        local.finished.push(record);
        if hand_over {
            refresh(&mut local, generation);
            stage_or_hand_over(&mut local);
        } else if local.finished.len() >= local.limits.0 {
            refresh(&mut local, generation);
            hand_over_local(&mut local);
        } else {
            let n = local.finished.len();
            local.home.buffered.store(n, Ordering::Relaxed);
        }
    });
    if let Some(record) = record {
        queue_alone(record);
    }
}

/// How many spans, and bytes, a thread buffers or stages at most before it queues them: a
/// share of the queue's capacity, so that what it queues fits. Kept in [`Local`] (read per
/// span, it would share a cache line with counters the export thread writes).
fn limits(sink: Option<&Sink>) -> (usize, usize) {
    sink.map_or((512, usize::MAX), |s| {
        (
            (s.counters.capacity / 4).clamp(1, 512),
            (s.counters.capacity_bytes / 4).max(1),
        )
    })
}

/// Hands this thread's ended spans to the export thread now (or stages them, when they are
/// whole traces: the export thread takes stages at flush and shutdown).
pub(crate) fn flush_thread() {
    let generation = GENERATION.load(Ordering::Acquire);
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut()
            && !local.finished.is_empty()
        {
            refresh(&mut local, generation);
            stage_or_hand_over(&mut local);
        }
    });
}

/// At shutdown: hands this thread's ended spans over as [`flush_thread`] does, except those
/// of traces whose root is still open here (shutdown from inside traced code): exported
/// without their root they would be orphans, so they stay and are counted as lost, as the
/// spans other threads buffer inside open roots are. Returns how many stay.
pub(crate) fn flush_thread_at_shutdown() -> usize {
    let generation = GENERATION.load(Ordering::Acquire);
    LOCAL
        .try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return 0;
            };
            if local.finished.is_empty() {
                return 0;
            }
            refresh(&mut local, generation);
            let local = &mut *local;
            let rooted: Vec<u128> = local
                .finished
                .iter()
                .filter(|r| r.is_local_root())
                .map(|r| r.trace_id)
                .collect();
            let open = |r: &SpanRecord| !rooted.contains(&r.trace_id);
            let mut held = Vec::new();
            let mut held_bytes = 0;
            let mut i = 0;
            while i < local.finished.len() {
                if open(&local.finished[i]) {
                    let r = local.finished.remove(i);
                    held_bytes += r.bytes();
                    held.push(r);
                } else {
                    i += 1;
                }
            }
            local.finished_bytes -= held_bytes;
            if !local.finished.is_empty() {
                stage_or_hand_over(local);
            }
            let stay = held.len();
            local.finished = held;
            local.finished_bytes = held_bytes;
            local.home.buffered.store(stay, Ordering::Relaxed);
            stay
        })
        .unwrap_or(0)
}

/// An emptied batch vector given back by the export thread, else a new one sized for a trace
/// like the last (so that it does not grow span by span).
fn next_vec(
    spare_vecs: &mut Vec<Vec<Box<SpanRecord>>>,
    home: &Home,
    len: usize,
) -> Vec<Box<SpanRecord>> {
    if let Some(v) = spare_vecs.pop() {
        return v;
    }
    let mut back = home.back.lock().unwrap_or_else(PoisonError::into_inner);
    std::mem::swap(spare_vecs, &mut back.vecs);
    drop(back);
    spare_vecs.pop().unwrap_or_else(|| Vec::with_capacity(len))
}

/// Stages the buffer when it holds only whole traces of which nothing was handed over
/// before (the common case of a thread that traces requests one at a time), and queues the
/// stage once it is as large as a share of the queue; else hands the buffer over now.
///
/// A staged trace costs no queue message, no write to the queue level the export thread
/// writes too, and no batch vector of its own: per small trace that was most of what the
/// caller paid beyond its spans.
fn stage_or_hand_over(local: &mut Local) {
    let whole = local.open_parts.is_empty()
        && local
            .finished
            .chunk_by(|a, b| a.trace_id == b.trace_id)
            .all(|run| run[run.len() - 1].is_local_root());
    let Some(generation) = local.sink.as_ref().map(|s| s.generation) else {
        hand_over_local(local);
        return;
    };
    if !whole {
        hand_over_local(local);
        return;
    }
    let (max_spans, max_bytes) = local.limits;
    let mut stage = local
        .home
        .stage
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if stage.generation != generation {
        // Left for a pipeline that is gone (its shutdown took what was staged in time):
        // nobody takes them.
        let room = MAX_RECYCLED.saturating_sub(local.spare.len());
        local.spare.extend(stage.records.drain(..).take(room));
        stage.bytes = 0;
        stage.generation = generation;
    }
    if stage.records.capacity() == 0 {
        stage.records = next_vec(&mut local.spare_vecs, &local.home, max_spans);
    }
    // The buffer keeps its vector (and capacity) for the next trace; the stage keeps its own
    // until it is queued (the export thread copies out what it takes, see `take_staged`).
    stage.records.append(&mut local.finished);
    stage.bytes += std::mem::take(&mut local.finished_bytes);
    local.home.buffered.store(0, Ordering::Relaxed);
    if stage.records.len() < max_spans && stage.bytes < max_bytes {
        local.staged = true;
        return;
    }
    let next = next_vec(&mut local.spare_vecs, &local.home, max_spans);
    let records = std::mem::replace(&mut stage.records, next);
    let bytes = std::mem::take(&mut stage.bytes);
    drop(stage);
    local.staged = false;
    queue(local, records, bytes);
}

/// Queues what this thread staged, if anything (before a hand-over of other spans).
fn queue_stage(local: &mut Local) {
    local.staged = false;
    let Some(generation) = local.sink.as_ref().map(|s| s.generation) else {
        return;
    };
    let mut stage = local
        .home
        .stage
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if stage.generation != generation || stage.records.is_empty() {
        return;
    }
    let next = next_vec(&mut local.spare_vecs, &local.home, stage.records.len());
    let records = std::mem::replace(&mut stage.records, next);
    let bytes = std::mem::take(&mut stage.bytes);
    drop(stage);
    queue(local, records, bytes);
}

/// Takes every thread's staged traces for the pipeline of `generation` into `out` (export
/// thread side: at each scheduled export, flush and shutdown), so that a thread that stopped
/// tracing keeps nothing staged. The records are copied out: each stage keeps its vector,
/// which its thread allocated.
pub(crate) fn take_staged(counters: &Counters, out: &mut Vec<Box<SpanRecord>>) {
    let generation = counters.generation.load(Ordering::Acquire);
    let homes = HOMES.read().unwrap_or_else(PoisonError::into_inner);
    for home in homes.iter() {
        let mut stage = home.stage.lock().unwrap_or_else(PoisonError::into_inner);
        if stage.generation != generation || stage.records.is_empty() {
            continue;
        }
        // Still counted as staged, from under the stage's lock, until the export thread
        // moves them on.
        counters
            .taken
            .fetch_add(stage.records.len(), Ordering::Relaxed);
        out.append(&mut stage.records);
        stage.bytes = 0;
    }
}

/// Spans staged for the pipeline of `generation`, on every thread (for its stats).
pub(crate) fn staged_spans(generation: u64) -> usize {
    HOMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|home| {
            let stage = home.stage.lock().unwrap_or_else(PoisonError::into_inner);
            if stage.generation == generation {
                stage.records.len()
            } else {
                0
            }
        })
        .sum()
}

fn hand_over_local(local: &mut Local) {
    if local.staged {
        queue_stage(local);
    }
    if local.finished.is_empty() {
        return;
    }
    let next = next_vec(&mut local.spare_vecs, &local.home, local.finished.len());
    let records = std::mem::replace(&mut local.finished, next);
    let bytes = std::mem::take(&mut local.finished_bytes);
    local.home.buffered.store(0, Ordering::Relaxed);
    queue(local, records, bytes);
}

/// Queues `records` (whole or refused whole) and keeps track of the traces it leaves open.
fn queue(local: &mut Local, records: Vec<Box<SpanRecord>>, bytes: usize) {
    // Which traces this batch ends and which it leaves open, before it is handed over.
    let mut ended: Vec<u128> = Vec::new();
    let mut opened: Vec<u128> = Vec::new();
    for run in records.chunk_by(|a, b| a.trace_id == b.trace_id) {
        let last = &run[run.len() - 1];
        if last.is_local_root() {
            if !local.open_parts.is_empty() {
                ended.push(last.trace_id);
            }
        } else {
            opened.push(last.trace_id);
        }
    }
    let refused = match local.sink.as_ref() {
        Some(sink) => match sink.send(Batch {
            records,
            bytes,
            home: local.home_index,
        }) {
            Ok(()) => None,
            Err(batch) => {
                sink.refuse(&batch, &local.open_parts);
                Some(batch.records)
            }
        },
        // Uninstalled meanwhile: nobody takes them.
        None => Some(records),
    };
    local.open_parts.retain(|id| !ended.contains(id));
    for id in opened {
        if !local.open_parts.contains(&id) {
            if local.open_parts.len() >= MAX_OPEN_PARTS {
                local.open_parts.remove(0);
            }
            local.open_parts.push(id);
        }
    }
    let Some(refused) = refused else {
        return;
    };
    let room = MAX_RECYCLED.saturating_sub(local.spare.len());
    local.spare.extend(refused.into_iter().take(room));
}

thread_local! {
    static EXPORT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as an export thread: spans opened here (a traced HTTP client inside an
/// exporter) are not recorded, or every export would make more spans to export.
pub(crate) fn mark_export_thread() {
    EXPORT_THREAD.with(|e| e.set(true));
}

/// Whether this thread is an export thread.
pub(crate) fn on_export_thread() -> bool {
    EXPORT_THREAD
        .try_with(std::cell::Cell::get)
        .unwrap_or(false)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use crate::record::{EventType, Meta, RootState, SpanRecord};
    use crate::span::Span;
    use crate::testing::Recorder;

    /// Counts this thread's allocations (the lib's unit tests run with it).
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    /// How many times this thread has allocated so far.
    pub(crate) fn allocations() -> usize {
        ALLOCATIONS.with(Cell::get)
    }

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    static ROOT: Meta = Meta {
        name: "hand_over_root",
        event_type: EventType::Chain,
        sample_rate: None,
        attr_capacity: 0,
        root: RootState::new(),
    };
    static CHILD: Meta = Meta {
        name: "hand_over_child",
        event_type: EventType::Tool,
        sample_rate: None,
        attr_capacity: 0,
        root: RootState::new(),
    };

    /// A root and one child: one hand-over when the root ends.
    fn small_trace() {
        let _root = Span::enter(&ROOT);
        let _child = Span::enter(&CHILD);
    }

    /// This thread's allocations over 32 calls of `f`, after 64 calls and a flush (every batch
    /// taken: the records and the vectors they travelled in are back here).
    fn allocations_in_32_after_warm_up(recorder: &Recorder, f: impl Fn()) -> usize {
        counted_after_warm_up(recorder, || {
            let before = allocations();
            f();
            allocations() - before
        })
    }

    /// The sum of what 32 calls of `step` count (each its own allocations, of the part it
    /// measures), after 64 calls and a flush, as [`allocations_in_32_after_warm_up`].
    pub(crate) fn counted_after_warm_up(recorder: &Recorder, step: impl Fn() -> usize) -> usize {
        for _ in 0..64 {
            step();
        }
        assert!(recorder.guard().force_flush());
        (0..32).map(|_| step()).sum()
    }

    #[test]
    fn a_hand_over_reuses_what_the_export_thread_gave_back() {
        let recorder = Recorder::start();
        let allocations = allocations_in_32_after_warm_up(&recorder, small_trace);
        // A new vector per hand-over, or a channel that allocates as it is sent to, shows here.
        assert_eq!(
            allocations, 0,
            "32 small traces allocated {allocations} times"
        );
        assert!(recorder.guard().force_flush());
        let spans = recorder.spans();
        assert_eq!(spans.all("hand_over_root").count(), 96);
        assert_eq!(spans.all("hand_over_child").count(), 96);
        let root = spans.all("hand_over_root").last().expect("a root");
        assert_eq!(spans.children_of(root).len(), 1);
    }

    #[test]
    fn a_span_annotated_on_every_call_allocates_nothing_for_it() {
        let recorder = Recorder::start();
        let annotated = || {
            let _root = Span::enter(&ROOT);
            let _child = Span::enter(&CHILD);
            for (i, key) in ["hand_over.a", "hand_over.b", "hand_over.c"]
                .into_iter()
                .enumerate()
            {
                crate::span::current_set_attribute(key, || {
                    opentelemetry::Value::I64(i64::try_from(i).unwrap_or(0))
                });
            }
        };
        let allocations = allocations_in_32_after_warm_up(&recorder, annotated);
        // A buffer of annotations given away at each span end grows again on the next span.
        assert_eq!(
            allocations, 0,
            "32 annotated traces allocated {allocations} times"
        );
        assert!(recorder.guard().force_flush());
        let spans = recorder.spans();
        let child = spans.all("hand_over_child").last().expect("a child");
        assert_eq!(child.i64("hand_over.a"), Some(0));
        assert_eq!(child.i64("hand_over.c"), Some(2));
    }

    /// A record of `trace`, as a span guard would leave it.
    fn record(trace: u128, span: u64, parent: u64) -> Box<SpanRecord> {
        Box::new(SpanRecord {
            trace_id: trace,
            span_id: span,
            parent_id: parent,
            parent_remote: false,
            meta: if parent == 0 { &ROOT } else { &CHILD },
            start: 1,
            end: 2,
            attrs: Vec::new(),
            events: Vec::new(),
            status: opentelemetry::trace::Status::Unset,
            root_sample_rate: None,
            threshold: None,
            local_root: parent == 0,
            randomness: None,
            lingers: false,
            opened_unwinding: false,
            home: 0,
            name: None,
            kind: None,
        })
    }

    #[test]
    fn whole_traces_pass_the_assembler_without_allocating() {
        use crate::export::assembler::{Assembler, Limits};
        let mut assembler = Assembler::new(Limits::default(), None);
        let (mut out, mut dropped) = (Vec::with_capacity(16), Vec::new());
        let mut batch = Vec::with_capacity(64);
        let mut pool: Vec<Box<SpanRecord>> = Vec::with_capacity(64);
        for round in 0..4u64 {
            // Eight traces of a root and two children, children first, as a stage holds them.
            for t in 0..8u64 {
                let trace = u128::from(round * 8 + t + 1);
                for (span, parent) in [(2, 1), (3, 1), (1, 0)] {
                    let mut r = pool.pop().unwrap_or_else(|| record(trace, span, parent));
                    r.trace_id = trace;
                    r.span_id = span;
                    r.parent_id = parent;
                    r.local_root = parent == 0;
                    batch.push(r);
                }
            }
            let before = ALLOCATIONS.with(Cell::get);
            assembler.accept(&mut batch, 3, &mut out, &mut dropped);
            let mut sent = 0;
            for trace in out.drain(..) {
                let mut spans = trace.spans;
                sent += spans.len();
                pool.append(&mut spans);
                assembler.recycle(spans);
            }
            let allocations = ALLOCATIONS.with(Cell::get) - before;
            assert_eq!(sent, 24, "every trace passes straight through");
            // A trace vector allocated per trace shows here once the first rounds are done.
            if round >= 2 {
                assert_eq!(allocations, 0, "round {round}: {allocations} allocations");
            }
        }
        assert!(dropped.is_empty());
    }
}
