//! The in-process store of recent traces, bounded in bytes.
//!
//! Opt in with [`Builder::trace_store`](crate::Builder::trace_store): the export thread puts
//! every whole trace it sends (rendered as the backends get it) into the store, and the
//! oldest traces are evicted when the store is over its size. The application asks the store
//! what happened lately, with the rest of this module's analysis:
//!
//! ```
//! use honeyhive_runtime::analysis::{GroupBy, TraceStore};
//!
//! let store = TraceStore::new(16 << 20);
//! let guard = honeyhive_runtime::Builder::new()
//!     .env(|_| None)
//!     .with_exporter(opentelemetry_sdk::trace::InMemorySpanExporter::default())
//!     .trace_store(store.clone())
//!     .install()
//!     .unwrap();
//! // ... traced work ...
//! guard.force_flush();
//! for group in store.query().roots().group_by(GroupBy::Name) {
//!     println!("{}: {} calls, p95 {:?}", group.key, group.stats.count, group.stats.p95);
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Query, Span, SpanEvent, Trace};
use crate::enrich::Value;

/// A bounded store of recent whole traces; a cheap handle, clone it to share.
#[derive(Clone, Debug)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    max_bytes: usize,
    bytes: usize,
    /// By when each was last put in (`added` then), oldest first, with the bytes each is
    /// counted for.
    traces: BTreeMap<u64, (Trace, usize)>,
    /// Each held trace's key in `traces`: one entry per trace id, however late a part comes.
    by_id: HashMap<u128, u64>,
    added: u64,
    evicted: u64,
    evicted_bytes: u64,
    rejected: u64,
}

/// What a [`TraceStore`] holds and has let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Traces held.
    pub traces: usize,
    /// Spans held.
    pub spans: usize,
    /// Their estimated size in bytes; never above `max_bytes`.
    pub bytes: usize,
    /// The bound.
    pub max_bytes: usize,
    /// Traces (and late parts of traces) put in so far.
    pub added: u64,
    /// Traces evicted, oldest first, to make room.
    pub evicted: u64,
    /// Bytes evicted.
    pub evicted_bytes: u64,
    /// Traces larger than the whole store, never held (also in `evicted`).
    pub rejected: u64,
}

impl TraceStore {
    /// An empty store that holds at most about `max_bytes` of traces (estimated from their
    /// names, attributes and events; see [`TraceStore::stats`]).
    pub fn new(max_bytes: usize) -> TraceStore {
        TraceStore {
            inner: Arc::new(Mutex::new(Inner {
                max_bytes,
                bytes: 0,
                traces: BTreeMap::new(),
                by_id: HashMap::new(),
                added: 0,
                evicted: 0,
                evicted_bytes: 0,
                rejected: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a trace in, evicting the oldest traces while the store is over its bound. Spans
    /// of a trace already held (a late span, feedback sent an hour later) join it, and the
    /// trace counts as put in now. The export thread calls this; traces of your own (read
    /// from a file) can go in too.
    pub fn insert(&self, trace: Trace) {
        let size = trace_bytes(&trace);
        let mut inner = self.lock();
        inner.added += 1;
        let held = inner.by_id.remove(&trace.trace_id);
        match held.and_then(|key| inner.traces.remove(&key)) {
            Some((mut merged, old_size)) => {
                inner.bytes -= old_size;
                merged.spans.extend(trace.spans);
                inner.push(merged, old_size + size);
            }
            None => inner.push(trace, size),
        }
    }

    /// Copies of the traces held, oldest first.
    pub fn traces(&self) -> Vec<Trace> {
        self.lock()
            .traces
            .values()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The trace with id `trace_id`, if held: all of its spans, late parts included.
    pub fn get(&self, trace_id: u128) -> Option<Trace> {
        let inner = self.lock();
        let key = inner.by_id.get(&trace_id)?;
        inner.traces.get(key).map(|(t, _)| t.clone())
    }

    /// A query over every span held (see [`Query`]).
    pub fn query(&self) -> Query {
        let inner = self.lock();
        Query::of_spans(
            inner
                .traces
                .values()
                .flat_map(|(t, _)| t.spans.iter().cloned()),
        )
    }

    /// How much is held, and how much was let go.
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            traces: inner.traces.len(),
            spans: inner.traces.values().map(|(t, _)| t.spans.len()).sum(),
            bytes: inner.bytes,
            max_bytes: inner.max_bytes,
            added: inner.added,
            evicted: inner.evicted,
            evicted_bytes: inner.evicted_bytes,
            rejected: inner.rejected,
        }
    }

    /// Empties the store (the counters stay).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.traces.clear();
        inner.by_id.clear();
        inner.bytes = 0;
    }
}

impl Inner {
    fn push(&mut self, trace: Trace, size: usize) {
        if size > self.max_bytes {
            self.rejected += 1;
            self.evicted += 1;
            self.evicted_bytes += size as u64;
            return;
        }
        while self.bytes + size > self.max_bytes {
            let Some((_, (old, old_size))) = self.traces.pop_first() else {
                break;
            };
            self.by_id.remove(&old.trace_id);
            self.bytes -= old_size;
            self.evicted += 1;
            self.evicted_bytes += old_size as u64;
        }
        self.bytes += size;
        self.by_id.insert(trace.trace_id, self.added);
        self.traces.insert(self.added, (trace, size));
    }
}

/// The estimated heap and inline size of a trace.
fn trace_bytes(trace: &Trace) -> usize {
    std::mem::size_of::<Trace>() + trace.spans.iter().map(span_bytes).sum::<usize>()
}

pub(crate) fn span_bytes(span: &Span) -> usize {
    std::mem::size_of::<Span>()
        + span.name.len()
        + match &span.status {
            super::Status::Error(e) => e.len(),
            _ => 0,
        }
        + attributes_bytes(&span.attributes)
        + span.events.iter().map(event_bytes).sum::<usize>()
}

fn event_bytes(event: &SpanEvent) -> usize {
    std::mem::size_of::<SpanEvent>() + event.name.len() + attributes_bytes(&event.attributes)
}

fn attributes_bytes(attrs: &[(String, Value)]) -> usize {
    attrs
        .iter()
        .map(|(k, v)| std::mem::size_of::<(String, Value)>() + k.len() + value_bytes(v))
        .sum()
}

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.len(),
        Value::List(items) => items
            .iter()
            .map(|v| std::mem::size_of::<Value>() + value_bytes(v))
            .sum(),
        Value::Map(entries) => attributes_bytes(entries),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Span, Status, Trace};
    use super::{TraceStore, trace_bytes};
    use crate::record::SpanKind;

    fn trace(id: u128, spans: u64) -> Trace {
        Trace::new(
            (0..spans)
                .map(|i| Span {
                    trace_id: id,
                    span_id: i + 1,
                    parent_span_id: i,
                    parent_remote: false,
                    name: format!("span-{i}"),
                    kind: SpanKind::Internal,
                    start_unix_nanos: 0,
                    end_unix_nanos: 10,
                    status: Status::Unset,
                    attributes: vec![("k".into(), "v".repeat(100).into())],
                    events: Vec::new(),
                })
                .collect(),
        )
    }

    #[test]
    fn the_oldest_traces_are_evicted_to_stay_under_the_bound() {
        let one = trace_bytes(&trace(1, 3));
        let store = TraceStore::new(one * 3);
        for id in 1..=5 {
            store.insert(trace(id, 3));
        }
        let ids: Vec<u128> = store.traces().iter().map(|t| t.trace_id).collect();
        assert_eq!(ids, [3, 4, 5]);
        let stats = store.stats();
        assert_eq!((stats.traces, stats.spans, stats.evicted), (3, 9, 2));
        assert!(stats.bytes <= stats.max_bytes);
        assert_eq!(stats.evicted_bytes, 2 * one as u64);
        // A trace larger than the store is not held, and evicts nothing.
        store.insert(trace(9, 40));
        assert_eq!(store.stats().traces, 3);
        assert_eq!(store.stats().rejected, 1);
    }

    #[test]
    fn a_late_part_joins_its_trace() {
        let store = TraceStore::new(1 << 20);
        store.insert(trace(1, 2));
        store.insert(trace(2, 2));
        store.insert(trace(1, 1));
        let traces = store.traces();
        assert_eq!(traces.len(), 2);
        assert_eq!(store.get(1).unwrap().spans.len(), 3);
        assert_eq!(store.query().count(), 5);
        let clone = store.clone();
        clone.clear();
        assert_eq!(store.stats().traces, 0);
    }

    #[test]
    fn a_part_that_comes_after_many_traces_still_joins_its_trace() {
        // Feedback an hour later, after hundreds of other requests.
        let store = TraceStore::new(1 << 20);
        store.insert(trace(1, 2));
        for id in 2..300 {
            store.insert(trace(id, 1));
        }
        store.insert(trace(1, 1));
        let traces = store.traces();
        assert_eq!(traces.iter().filter(|t| t.trace_id == 1).count(), 1);
        assert_eq!(store.get(1).unwrap().spans.len(), 3);
        // Now the newest; the oldest is the next to go.
        assert_eq!(traces.last().unwrap().trace_id, 1);
        assert_eq!(traces[0].trace_id, 2);
        assert_eq!(store.stats().traces, 299);
    }
}
