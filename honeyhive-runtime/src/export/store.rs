//! The observer that keeps recent traces in a [`TraceStore`]
//! ([`Builder::trace_store`](crate::Builder::trace_store)).
//!
//! On the export thread, each whole trace is converted to the analysis model (its rendered
//! attributes, as the backends get them) and put in the store, which evicts its oldest
//! traces by bytes.

use super::observe::{Observer, SpanView};
use crate::analysis::{Trace, TraceStore};

/// Feeds a [`TraceStore`].
pub(crate) struct StoreObserver {
    store: TraceStore,
}

impl StoreObserver {
    pub(crate) fn new(store: TraceStore) -> StoreObserver {
        StoreObserver { store }
    }
}

impl Observer for StoreObserver {
    fn trace(&mut self, spans: &[SpanView<'_>]) {
        if spans.is_empty() {
            return;
        }
        self.store
            .insert(Trace::new(spans.iter().map(|s| s.to_span()).collect()));
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::TraceStore;
    use crate::testing::Recorder;
    use crate::{Parent, SpanBuilder};

    #[test]
    fn every_whole_trace_goes_into_the_store_as_the_exporters_got_it() {
        let store = TraceStore::new(1 << 20);
        let rec = Recorder::with(|b| b.trace_store(store.clone()));
        let mut root = SpanBuilder::new("request").start();
        root.in_scope(|| {
            SpanBuilder::new("child")
                .parent(Parent::Current)
                .start()
                .end();
        });
        root.end();
        assert!(rec.guard().force_flush());
        let traces = store.traces();
        assert_eq!(traces.len(), 1);
        let mut names: Vec<&str> = traces[0].spans.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["child", "request"]);
        // Rendered attributes: the event type the semantics add.
        assert!(traces[0].spans[0].str("honeyhive_event_type").is_some());
        assert_eq!(rec.spans().0.len(), 2);
    }
}
