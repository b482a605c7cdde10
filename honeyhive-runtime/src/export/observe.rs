//! Observers: what else the export thread does with each whole trace once it is rendered
//! (metrics, the store of recent traces, alerts, files), without a pass of its own.
//!
//! An observer sees every trace the exporters are sent, complete and after the semantics and
//! redaction: the same attributes a backend gets. It runs on the export thread, so it must be
//! quick and never block; a panicking observer is caught, counted and dropped.

#![allow(dead_code)] // the hook lands before its first users (metrics, store, files)

use std::time::SystemTime;

use opentelemetry::trace::{Event, Status};

use super::semantics::Rendered;
use crate::analysis;
use crate::clock;
use crate::record::Attr;
use crate::record::{EventType, SpanKind, SpanRecord};

/// One span of a whole trace, as rendered for the exporters.
#[derive(Clone, Copy)]
pub(crate) struct SpanView<'a> {
    pub(crate) record: &'a SpanRecord,
    pub(crate) rendered: &'a Rendered<'a>,
    /// The probability the trace was kept with by tail sampling (1 without it).
    pub(crate) factor: f64,
}

impl SpanView<'_> {
    pub(crate) fn trace_id(&self) -> u128 {
        self.record.trace_id
    }
    pub(crate) fn span_id(&self) -> u64 {
        self.record.span_id
    }
    /// 0 for a root.
    pub(crate) fn parent_id(&self) -> u64 {
        self.record.parent_id
    }
    pub(crate) fn parent_remote(&self) -> bool {
        self.record.parent_remote
    }
    /// The span's name as the backends get it.
    pub(crate) fn name(&self) -> &str {
        match (&self.rendered.name, &self.record.name) {
            (Some(n), _) => n,
            (None, Some(n)) => n,
            (None, None) => self.record.meta.name,
        }
    }
    pub(crate) fn event_type(&self) -> EventType {
        self.record.meta.event_type
    }
    pub(crate) fn kind(&self) -> SpanKind {
        self.record.kind()
    }
    /// Nanoseconds since the Unix epoch.
    pub(crate) fn start_unix_nanos(&self) -> u64 {
        clock::to_unix_nanos(self.record.start)
    }
    /// Nanoseconds since the Unix epoch; never before the start.
    pub(crate) fn end_unix_nanos(&self) -> u64 {
        clock::to_unix_nanos(self.record.end.max(self.record.start))
    }
    pub(crate) fn start_time(&self) -> SystemTime {
        clock::to_system_time(self.record.start)
    }
    pub(crate) fn end_time(&self) -> SystemTime {
        clock::to_system_time(self.record.end.max(self.record.start))
    }
    pub(crate) fn duration_nanos(&self) -> u64 {
        self.record.end.saturating_sub(self.record.start)
    }
    /// Rendered attributes: the span's own, the conventions' keys, cost and roll-ups.
    pub(crate) fn attrs(&self) -> &[Attr<'_>] {
        &self.rendered.attrs
    }
    pub(crate) fn attr(&self, key: &str) -> Option<&opentelemetry::Value> {
        self.rendered
            .attrs
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }
    pub(crate) fn events(&self) -> &[Event] {
        &self.rendered.events
    }
    pub(crate) fn status(&self) -> &Status {
        &self.rendered.status
    }
    /// The OTLP `trace_state` (`ot=th:..`) when the span was kept with a known probability.
    pub(crate) fn trace_state(&self) -> Option<&str> {
        self.rendered.trace_state.as_deref()
    }
    /// The probability this span was recorded with (head sampling, by threshold or rate,
    /// times the tail sampler's keep probability): weight estimates by its inverse.
    pub(crate) fn probability(&self) -> f64 {
        let p = match (self.record.threshold, self.record.root_sample_rate) {
            // The tail's threshold is folded into the span's (`tail::Verdict::apply`).
            (Some(t), _) => crate::sampling::consistent::probability(t),
            (None, Some(rate)) => rate * self.factor,
            (None, None) => self.factor,
        };
        p.clamp(f64::MIN_POSITIVE, 1.0)
    }

    /// The span as the analysis model's plain data.
    pub(crate) fn to_span(self) -> analysis::Span {
        analysis::Span {
            trace_id: self.trace_id(),
            span_id: self.span_id(),
            parent_span_id: self.parent_id(),
            parent_remote: self.parent_remote(),
            name: self.name().to_owned(),
            kind: self.kind(),
            start_unix_nanos: self.start_unix_nanos(),
            end_unix_nanos: self.end_unix_nanos(),
            status: analysis::status_of(self.status()),
            attributes: analysis::attributes_of(self.attrs()),
            events: analysis::events_of(self.events()),
        }
    }
}

/// Something the export thread feeds whole traces to.
pub(crate) trait Observer: Send {
    /// One whole trace (or what was sent of it: a late span, an evicted part), in arrival
    /// order; the root, when present, is usually last.
    fn trace(&mut self, spans: &[SpanView<'_>]);
    /// Called at every scheduled export (about every `scheduled_delay`) and before a flush.
    fn tick(&mut self, _now: SystemTime) {}
    /// Called on `force_flush` and before shutdown, after the traces were fed.
    fn flush(&mut self) {}
    /// Called once, at shutdown, after `flush`.
    fn shutdown(&mut self) {}
}

/// Builds an observer on the export thread.
pub(crate) type ObserverFactory = Box<dyn FnOnce() -> Box<dyn Observer> + Send>;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{Observer, SpanView};
    use crate::testing::Recorder;
    use crate::{Parent, SpanBuilder};

    /// Keeps, per trace it is fed, the names of the spans.
    struct Collect(Arc<Mutex<Vec<Vec<String>>>>);

    impl Observer for Collect {
        fn trace(&mut self, spans: &[SpanView<'_>]) {
            let names = spans.iter().map(|s| s.name().to_owned()).collect();
            self.0.lock().unwrap().push(names);
        }
    }

    struct Panics;

    impl Observer for Panics {
        fn trace(&mut self, _: &[SpanView<'_>]) {
            panic!("an observer's bug");
        }
    }

    fn request(name: &'static str) {
        let mut root = SpanBuilder::new(name).start();
        root.in_scope(|| {
            SpanBuilder::new("child")
                .parent(Parent::Current)
                .start()
                .end();
        });
        root.end();
    }

    #[test]
    fn observers_see_whole_traces_and_a_panicking_one_is_counted_and_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let collect = Arc::clone(&seen);
        let rec = Recorder::with(move |b| {
            b.observer(Box::new(|| Box::new(Panics)))
                .observer(Box::new(move || Box::new(Collect(collect))))
        });
        request("first");
        assert!(rec.guard().force_flush());
        request("second");
        assert!(rec.guard().force_flush());

        let mut traces = seen.lock().unwrap().clone();
        for names in &mut traces {
            names.sort();
        }
        assert_eq!(traces, [["child", "first"], ["child", "second"]]);
        // One panic: the faulty observer was dropped after it, and export went on.
        assert_eq!(rec.guard().export_stats().exporter_panics, 1);
        assert_eq!(rec.spans().0.len(), 4);
    }
}
