//! The sink handle: how traced threads hand ended spans to the export thread.
//!
//! A thread buffers the spans it ends and hands them over as one batch when it leaves traced
//! code (or when the buffer is as large as a share of the queue). The queue is bounded in spans
//! and in bytes; a batch that does not fit is dropped whole and counted, and the traces it
//! belonged to are marked so that their other parts are dropped too: overload loses whole
//! traces, never parts of them.
//!
//! Records are recycled, never freed across threads: the export thread returns each batch's
//! records to the thread that recorded them, which clears and reuses them (what they own was
//! allocated there, so it is freed there).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
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
/// Refused trace ids waiting for the export thread at most.
const MAX_DOOMED: usize = 64 * 1024;

#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Counters shared by callers and the export thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queued: AtomicUsize,
    pub(crate) queued_bytes: AtomicUsize,
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
    /// Whether `doomed` may hold ids (so the export thread locks it only then).
    pub(crate) has_doomed: AtomicBool,
}

/// A thread's way back for the records it handed over, and its gauge of buffered spans.
/// Homes are reused by later threads once theirs exits; records name theirs by index.
#[derive(Debug, Default)]
struct Home {
    records: Mutex<Vec<Box<SpanRecord>>>,
    in_use: AtomicBool,
    /// How many ended spans the thread buffers now, for [`buffered_elsewhere`].
    buffered: AtomicUsize,
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
        let mut slot = home.records.lock().unwrap_or_else(PoisonError::into_inner);
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

/// A batch of ended spans from one thread.
pub(crate) struct Batch {
    pub(crate) records: Vec<Box<SpanRecord>>,
    pub(crate) bytes: usize,
}

pub(crate) enum Msg {
    Spans(Batch),
    Flush(mpsc::SyncSender<()>),
    Shutdown(mpsc::SyncSender<()>),
}

#[derive(Clone)]
pub(crate) struct Sink {
    pub(crate) generation: u64,
    pub(crate) tx: Sender<Msg>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) export_thread: Thread,
}

impl Sink {
    fn send(&self, mut batch: Batch) -> Result<(), Batch> {
        let n = batch.records.len();
        let bytes = batch.bytes;
        let c = &self.counters;
        let before = c.queued.fetch_add(n, Ordering::Relaxed);
        let before_bytes = c.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before + n > c.capacity || before_bytes + bytes > c.capacity_bytes {
            c.queued.fetch_sub(n, Ordering::Relaxed);
            c.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(batch);
        }
        if let Err(mpsc::SendError(Msg::Spans(b))) = self.tx.send(Msg::Spans(batch)) {
            c.queued.fetch_sub(n, Ordering::Relaxed);
            c.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            c.dropped.fetch_add(n as u64, Ordering::Relaxed);
            batch = b;
            return Err(batch);
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
pub(crate) fn install(tx: Sender<Msg>, counters: Arc<Counters>, export_thread: Thread) -> u64 {
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
    if let Some(c) = cached(|s| Arc::clone(&s.counters)) {
        c.lost_annotations.fetch_add(1, Ordering::Relaxed);
    }
}

/// Per thread: the cached sink, the spans it buffers, the records to reuse, and its home.
struct Local {
    sink: Option<Sink>,
    /// Ended spans waiting to be handed over, and their size.
    finished: Vec<Box<SpanRecord>>,
    finished_bytes: usize,
    spare: Vec<Box<SpanRecord>>,
    home: Arc<Home>,
    home_index: u32,
    /// Traces of which this thread handed over a part before their root ended (async tasks
    /// interleave, so there may be several): if the rest is refused, those parts are doomed.
    open_parts: Vec<u128>,
}

/// Open traces a thread remembers at most (the oldest is forgotten beyond).
const MAX_OPEN_PARTS: usize = 256;

impl Drop for Local {
    fn drop(&mut self) {
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
        home,
        home_index: u32::try_from(index).unwrap_or(u32::MAX),
        open_parts: Vec::new(),
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(new_local());
}

fn cached<R>(f: impl FnOnce(&Sink) -> R) -> Option<R> {
    let generation = GENERATION.load(Ordering::Acquire);
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            refresh(&mut local, generation);
            local.sink.as_ref().map(f)
        })
        .ok()
        .flatten()
}

fn refresh(local: &mut Local, generation: u64) {
    if local.sink.as_ref().map(|s| s.generation) != Some(generation) {
        local
            .sink
            .clone_from(&SINK.read().unwrap_or_else(PoisonError::into_inner));
    }
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
                return Some(r);
            }
            let home = Arc::clone(&local.home);
            let mut back = home.records.lock().unwrap_or_else(PoisonError::into_inner);
            if back.is_empty() {
                return None;
            }
            std::mem::swap(&mut local.spare, &mut *back);
            drop(back);
            local.spare.pop()
        })
        .ok()
        .flatten()
}

/// Buffers an ended span; hands the buffer over when `hand_over` (the thread has left traced
/// code) or when it is as large as a share of the queue, so the queue sees one message per
/// trace rather than one per span, and a buffer always fits the queue.
#[inline]
pub(crate) fn finish(record: Box<SpanRecord>, hand_over: bool) {
    let generation = GENERATION.load(Ordering::Acquire);
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        local.finished_bytes += record.bytes();
        local.finished.push(record);
        let limit = local
            .sink
            .as_ref()
            .map_or(512, |s| (s.counters.capacity / 4).clamp(1, 512));
        if hand_over || local.finished.len() >= limit {
            refresh(&mut local, generation);
            hand_over_local(&mut local);
        } else {
            let n = local.finished.len();
            local.home.buffered.store(n, Ordering::Relaxed);
        }
    });
}

/// Hands this thread's ended spans to the export thread now.
pub(crate) fn flush_thread() {
    let generation = GENERATION.load(Ordering::Acquire);
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut()
            && !local.finished.is_empty()
        {
            refresh(&mut local, generation);
            hand_over_local(&mut local);
        }
    });
}

fn hand_over_local(local: &mut Local) {
    // Sized for the next trace of the same shape, so it does not grow span by span.
    let next = Vec::with_capacity(local.finished.len());
    let records = std::mem::replace(&mut local.finished, next);
    let bytes = std::mem::take(&mut local.finished_bytes);
    local.home.buffered.store(0, Ordering::Relaxed);
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
        Some(sink) => match sink.send(Batch { records, bytes }) {
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
