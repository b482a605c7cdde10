//! The trace assembler: the one place on the export thread where ended spans become whole
//! traces, for tail sampling, token and cost roll-ups, session moves, the console and the
//! encoders alike.
//!
//! A trace is complete when its root here (its first span in this process: no parent, or a
//! remote one) has ended. Most traces arrive whole in one batch, children first and the root
//! last, and pass straight through. Otherwise their spans are held until the root comes, with
//! three exceptions, each counted:
//! - a root whose scope was carried elsewhere (a spawned task, another thread) waits a little
//!   ([`Limits::linger`]) so that work ending after it still joins its trace;
//! - spans whose root does not come within [`Limits::root_timeout`] are sent as they are (the
//!   root may still be open: a long session), and so are traces evicted because what is held
//!   is over [`Limits::max_bytes`], [`Limits::max_traces`] or [`Limits::max_trace_spans`];
//! - traces the queue refused part of are dropped whole ([`Assembler::doom`]).
//!
//! Memory is bounded in bytes. Hashing is by trace id, which is random already.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use opentelemetry::trace::Status;

use super::tail::{Policy, Verdict};
use crate::span::SpanRecord;

/// Hashes a trace id by folding it: ids are random, so no mixing is needed.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, n: u128) {
        #[allow(clippy::cast_possible_truncation)] // folding is the point
        let folded = (n as u64) ^ ((n >> 64) as u64);
        self.0 ^= folded;
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

type IdMap<V> = HashMap<u128, V, BuildHasherDefault<IdHasher>>;

/// How much the assembler may hold, and for how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Bytes of held spans, over all traces.
    pub(crate) max_bytes: usize,
    /// Traces held at once.
    pub(crate) max_traces: usize,
    /// Spans held for one trace.
    pub(crate) max_trace_spans: usize,
    /// How long spans wait for their root.
    pub(crate) root_timeout: Duration,
    /// How long a root whose scope was carried elsewhere waits for that work.
    pub(crate) linger: Duration,
    /// How long a part of a trace under a remote parent waits for the rest of the trace in
    /// this process (one-process distributed demos on the console); zero: not at all.
    pub(crate) merge_remote: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_traces: 100_000,
            max_trace_spans: 100_000,
            root_timeout: Duration::from_secs(30),
            linger: Duration::from_millis(500),
            merge_remote: Duration::ZERO,
        }
    }
}

/// A trace, or the part of one, ready to be processed and sent.
#[derive(Debug)]
pub(crate) struct Trace {
    pub(crate) spans: Vec<Box<SpanRecord>>,
    /// The probability the tail sampler kept it with (1 without tail sampling), for its spans
    /// whose threshold is not known: the others carry the tail's threshold (`Verdict::apply`).
    pub(crate) factor: f64,
}

/// Why a held trace was sent before it was complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Early {
    SpanLimit,
    TraceLimit,
    Timeout,
    Flush,
}

struct Held {
    spans: Vec<Box<SpanRecord>>,
    bytes: usize,
    since: u64,
    seq: u64,
    error: bool,
    /// When its root ended, if it did: the trace is sent at `ready_at`.
    ready_at: Option<u64>,
    /// How long the root lasted.
    root_ns: u64,
}

/// A decision, remembered for spans that end after it.
#[derive(Clone, Copy, Debug)]
struct Decided {
    verdict: Verdict,
    /// Dropped because the queue refused part of the trace (not a sampling decision).
    doomed: bool,
    at: u64,
    seq: u64,
}

/// What the assembler did, for [`super::ExportStats`] and `tail_stats()`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AssemblerStats {
    pub(crate) held_spans: usize,
    pub(crate) held_bytes: usize,
    pub(crate) early: [u64; 4],
    pub(crate) late: u64,
    pub(crate) doomed_spans: u64,
}

/// The export thread's trace assembler.
pub(crate) struct Assembler {
    limits: Limits,
    held: IdMap<Held>,
    /// Held traces, oldest first, as `(trace id, seq)`; stale entries are skipped.
    order: VecDeque<(u128, u64)>,
    /// Traces decided recently (tail verdicts, doomed traces, traces sent early), so that
    /// their later spans follow the same decision.
    decided: IdMap<Decided>,
    decided_order: VecDeque<(u128, u64)>,
    /// Held traces whose root has ended, by when they are due: `(ready_at, trace id)`; stale
    /// entries are skipped.
    due: BinaryHeap<Reverse<(u64, u128)>>,
    seq: u64,
    held_bytes: usize,
    held_spans: usize,
    tail: Option<Policy>,
    pub(crate) stats: AssemblerStats,
    /// Emptied trace vectors (allocated here, on the export thread) for the next traces, so
    /// that a whole trace passing through costs no allocation of its own.
    runs: Vec<Vec<Box<SpanRecord>>>,
}

/// Emptied trace vectors the assembler keeps at most.
const MAX_SPARE_RUNS: usize = 64;

impl Assembler {
    pub(crate) fn new(limits: Limits, tail: Option<Policy>) -> Assembler {
        Assembler {
            limits,
            held: IdMap::default(),
            order: VecDeque::new(),
            decided: IdMap::default(),
            decided_order: VecDeque::new(),
            due: BinaryHeap::new(),
            seq: 0,
            held_bytes: 0,
            held_spans: 0,
            tail,
            stats: AssemblerStats::default(),
            runs: Vec::new(),
        }
    }

    /// Takes back the vector of a trace that was sent, emptied, for a later trace.
    pub(crate) fn recycle(&mut self, spans: Vec<Box<SpanRecord>>) {
        if spans.is_empty() && spans.capacity() > 0 && self.runs.len() < MAX_SPARE_RUNS {
            self.runs.push(spans);
        }
    }

    /// Spans held now.
    pub(crate) fn held_spans(&self) -> usize {
        self.held_spans
    }

    fn ns(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The clock of the tail policy if there is one (tests drive it), else monotonic time.
    pub(crate) fn now(&self) -> u64 {
        match &self.tail {
            Some(t) => t.now_ns(),
            None => crate::clock::now(),
        }
    }

    /// Takes a batch of ended spans; sends complete traces to `out` and what is to be dropped
    /// to `dropped`.
    pub(crate) fn accept(
        &mut self,
        batch: &mut Vec<Box<SpanRecord>>,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) {
        let mut records = batch.drain(..).peekable();
        let mut run: Vec<Box<SpanRecord>> = self.runs.pop().unwrap_or_default();
        while let Some(first) = records.next() {
            let id = first.trace_id;
            run.push(first);
            while let Some(next) = records.next_if(|r| r.trace_id == id) {
                run.push(next);
            }
            self.accept_run(id, &mut run, now, out, dropped);
            if run.capacity() == 0 {
                // Sent on as a trace: the next one starts in a recycled vector.
                run = self.runs.pop().unwrap_or_default();
            }
        }
        drop(records);
        self.recycle(run);
        self.tick(now, out, dropped);
    }

    /// The spans of one trace that arrived together, in the order they ended.
    fn accept_run(
        &mut self,
        id: u128,
        run: &mut Vec<Box<SpanRecord>>,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) {
        if let Some(d) = self.decided.get(&id).copied() {
            if d.verdict.keep {
                self.stats.late += run.len() as u64;
                d.verdict.apply(run);
                out.push(Trace {
                    spans: std::mem::take(run),
                    factor: d.verdict.factor,
                });
            } else {
                if d.doomed {
                    self.stats.doomed_spans += run.len() as u64;
                } else if let Some(tail) = &self.tail {
                    tail.count_late_dropped(run.len());
                }
                dropped.append(run);
            }
            return;
        }
        let root = run.iter().rposition(|r| r.is_local_root());
        if !self.held.contains_key(&id)
            && let Some(root) = root
        {
            let r = &run[root];
            if root == run.len() - 1 && run.len() <= self.limits.max_trace_spans && !self.waits(r) {
                // The common case: a whole trace in one batch, its root last.
                let error = run.iter().any(|r| is_error(r));
                let root_ns = r.end.saturating_sub(r.start);
                let spans = std::mem::take(run);
                self.decide_whole(id, spans, error, root_ns, now, out, dropped);
                return;
            }
        }
        self.hold(id, run, now);
        let full = self
            .held
            .get(&id)
            .is_some_and(|h| h.spans.len() >= self.limits.max_trace_spans);
        if full {
            self.send_early(id, Early::SpanLimit, now, out, dropped);
        }
        while self.held_bytes > self.limits.max_bytes || self.held.len() > self.limits.max_traces {
            if !self.evict_oldest(now, out, dropped) {
                break;
            }
        }
    }

    /// Whether a trace whose root is `root` waits before it is sent.
    fn waits(&self, root: &SpanRecord) -> bool {
        (root.lingers && !self.limits.linger.is_zero())
            || (root.parent_remote && !self.limits.merge_remote.is_zero())
    }

    fn hold(&mut self, id: u128, run: &mut Vec<Box<SpanRecord>>, now: u64) {
        let bytes: usize = run.iter().map(|r| r.bytes()).sum();
        let n = run.len();
        let seq = self.seq + 1;
        let held = self.held.entry(id).or_insert_with(|| Held {
            spans: Vec::new(),
            bytes: 0,
            since: now,
            seq,
            error: false,
            ready_at: None,
            root_ns: 0,
        });
        if held.seq == seq {
            self.seq = seq;
            self.order.push_back((id, seq));
        }
        for r in run.iter() {
            held.error |= is_error(r);
            if r.is_local_root() {
                let true_root = r.local_root && !r.parent_remote;
                let wait = if r.lingers {
                    Self::ns(self.limits.linger)
                } else if r.parent_remote {
                    Self::ns(self.limits.merge_remote)
                } else {
                    0
                };
                // A true root ends the wait of a part under a remote parent, not a linger.
                let ready = now.saturating_add(wait);
                held.ready_at = Some(match held.ready_at {
                    Some(at) if true_root && !r.lingers => at.min(ready),
                    Some(at) => at.max(ready),
                    None => ready,
                });
                if true_root || held.root_ns == 0 {
                    held.root_ns = r.end.saturating_sub(r.start);
                }
            }
        }
        if let Some(at) = held.ready_at {
            self.due.push(Reverse((at, id)));
        }
        held.spans.append(run);
        held.bytes += bytes;
        self.held_bytes += bytes;
        self.held_spans += n;
    }

    /// Sends what is due: traces whose wait is over, spans whose root did not come in time.
    pub(crate) fn tick(
        &mut self,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) {
        while let Some(&Reverse((at, id))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            // Stale when the trace was sent meanwhile, or its wait was moved.
            if self.held.get(&id).and_then(|h| h.ready_at) == Some(at)
                && let Some(h) = self.held.remove(&id)
            {
                self.release_held(&h);
                let root_ns = h.root_ns;
                self.decide_whole(id, h.spans, h.error, root_ns, now, out, dropped);
            }
        }
        if self.due.len() > 2 * self.held.len() + 64 {
            let held = &self.held;
            self.due
                .retain(|Reverse((at, id))| held.get(id).and_then(|h| h.ready_at) == Some(*at));
        }
        let timeout = Self::ns(self.limits.root_timeout);
        while let Some(&(id, seq)) = self.order.front() {
            match self.held.get(&id) {
                Some(h) if h.seq == seq => {
                    if now.saturating_sub(h.since) < timeout {
                        break;
                    }
                    self.order.pop_front();
                    self.send_early(id, Early::Timeout, now, out, dropped);
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
        while let Some(&(id, seq)) = self.decided_order.front() {
            match self.decided.get(&id) {
                Some(d) if d.seq == seq => {
                    if now.saturating_sub(d.at) < timeout
                        && self.decided.len() <= self.limits.max_traces
                    {
                        break;
                    }
                    self.decided.remove(&id);
                    self.decided_order.pop_front();
                }
                _ => {
                    self.decided_order.pop_front();
                }
            }
        }
        self.compact();
        self.publish();
    }

    fn publish(&mut self) {
        self.stats.held_spans = self.held_spans;
        self.stats.held_bytes = self.held_bytes;
        if let Some(tail) = &self.tail {
            tail.gauge(self.held.len());
        }
    }

    /// Sends everything held (flush and shutdown).
    pub(crate) fn drain(
        &mut self,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) {
        let ids: Vec<u128> = self.order.drain(..).map(|(id, _)| id).collect();
        for id in ids {
            let Some(h) = self.held.get(&id) else {
                continue;
            };
            if h.ready_at.is_some() {
                let h = self.held.remove(&id).expect("held trace");
                self.release_held(&h);
                let root_ns = h.root_ns;
                self.decide_whole(id, h.spans, h.error, root_ns, now, out, dropped);
            } else {
                self.send_early(id, Early::Flush, now, out, dropped);
            }
        }
        self.publish();
    }

    /// Drops the traces the queue refused part of: what is held of them now and what comes
    /// later.
    pub(crate) fn doom(&mut self, ids: &[u128], now: u64, dropped: &mut Vec<Box<SpanRecord>>) {
        for &id in ids {
            if let Some(h) = self.held.remove(&id) {
                self.release_held(&h);
                self.stats.doomed_spans += h.spans.len() as u64;
                dropped.extend(h.spans);
            }
            self.remember(id, Verdict::DROP, now);
            if let Some(d) = self.decided.get_mut(&id) {
                d.doomed = true;
            }
        }
    }

    fn release_held(&mut self, h: &Held) {
        self.held_bytes -= h.bytes;
        self.held_spans -= h.spans.len();
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_whole(
        &mut self,
        id: u128,
        spans: Vec<Box<SpanRecord>>,
        error: bool,
        root_ns: u64,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) {
        let Some(tail) = self.tail.as_mut() else {
            out.push(Trace { spans, factor: 1.0 });
            return;
        };
        let verdict = tail.verdict(id, error, Some(root_ns), &spans);
        self.remember(id, verdict, now);
        if verdict.keep {
            let mut spans = spans;
            verdict.apply(&mut spans);
            out.push(Trace {
                spans,
                factor: verdict.factor,
            });
        } else {
            let mut spans = spans;
            dropped.append(&mut spans);
        }
    }

    fn send_early(
        &mut self,
        id: u128,
        why: Early,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) {
        let Some(h) = self.held.remove(&id) else {
            return;
        };
        self.release_held(&h);
        self.stats.early[why as usize] += 1;
        let verdict = match self.tail.as_mut() {
            Some(tail) => {
                tail.count_early(why);
                tail.verdict(id, h.error, None, &h.spans)
            }
            None => Verdict::KEEP,
        };
        self.remember(id, verdict, now);
        if verdict.keep {
            let mut spans = h.spans;
            verdict.apply(&mut spans);
            out.push(Trace {
                spans,
                factor: verdict.factor,
            });
        } else {
            dropped.extend(h.spans);
        }
    }

    fn evict_oldest(
        &mut self,
        now: u64,
        out: &mut Vec<Trace>,
        dropped: &mut Vec<Box<SpanRecord>>,
    ) -> bool {
        while let Some((id, seq)) = self.order.pop_front() {
            if self.held.get(&id).is_some_and(|h| h.seq == seq) {
                self.send_early(id, Early::TraceLimit, now, out, dropped);
                return true;
            }
        }
        false
    }

    fn remember(&mut self, id: u128, verdict: Verdict, now: u64) {
        self.seq += 1;
        self.decided.insert(
            id,
            Decided {
                verdict,
                doomed: false,
                at: now,
                seq: self.seq,
            },
        );
        self.decided_order.push_back((id, self.seq));
    }

    /// Drops order entries of traces decided meanwhile, once they outnumber live ones.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.held.len() + 64 {
            let held = &self.held;
            self.order
                .retain(|(id, seq)| held.get(id).is_some_and(|h| h.seq == *seq));
        }
        if self.decided_order.len() > 2 * self.decided.len() + 64 {
            let decided = &self.decided;
            self.decided_order
                .retain(|(id, seq)| decided.get(id).is_some_and(|d| d.seq == *seq));
        }
    }
}

fn is_error(r: &SpanRecord) -> bool {
    matches!(r.status, Status::Error { .. })
}
