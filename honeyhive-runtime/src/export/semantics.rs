//! What the export thread adds to each span before it is exported: LLM conventions and cost
//! ([`crate::llm`]), session enrichment moved to its span ([`crate::enrich`]), token and cost
//! totals on the root, then key lists, redaction and the attribute budget ([`crate::redact`]).
//!
//! Roll-ups rely on the order spans end in: a child ends before its parent, so when a span
//! arrives every child it waited for has arrived. Each span adds its own usage to what its
//! children left under its id and leaves the sum under its parent's id, until the root of the
//! trace in this process (no parent, or a remote one) takes the total. The same path carries
//! session enrichment up to the nearest `session` span or the root. A span that ends after its
//! root (a stream consumed after the function that returned it ended, a detached task) is not
//! counted in that root's totals. What waits for a parent that never comes (its parent was not
//! sampled here, or was dropped) is evicted oldest first beyond [`MAX_WAITING`] entries.

use std::collections::{HashMap, VecDeque};

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;

use crate::enrich::SESSION_MARK;
use crate::llm::{self, Conventions, PriceTable, Usage};
use crate::redact::{Privacy, Redactor};
use crate::span::EventType;

/// Parents waited for at most; beyond, the oldest are forgotten.
pub(crate) const MAX_WAITING: usize = 16 * 1024;

/// The export thread's per-span processing and its per-trace state.
#[derive(Debug)]
pub(crate) struct Semantics {
    conventions: Conventions,
    prices: PriceTable,
    redactor: Redactor,
    /// What the children of a span left for it, by (trace id, span id).
    waiting: HashMap<(u128, u64), Waiting>,
    /// Insertion order of `waiting`, for eviction; may hold keys already taken.
    order: VecDeque<(u128, u64)>,
}

#[derive(Debug, Default)]
struct Waiting {
    usage: Usage,
    session: Vec<KeyValue>,
}

impl Semantics {
    pub(crate) fn new(
        conventions: Conventions,
        prices: PriceTable,
        privacy: &Privacy,
    ) -> Result<Semantics, String> {
        Ok(Semantics {
            conventions,
            prices,
            redactor: Redactor::new(privacy)?,
            waiting: HashMap::new(),
            order: VecDeque::new(),
        })
    }

    /// Adds conventions, cost, roll-ups and session enrichment to `span`, then applies the key
    /// lists, redaction and the budget.
    pub(crate) fn process(&mut self, span: &mut SpanData, event_type: EventType) {
        let mut session = Vec::new();
        span.attributes.retain_mut(|kv| {
            let Some(key) = kv.key.as_str().strip_prefix(SESSION_MARK) else {
                return true;
            };
            session.push(KeyValue::new(key.to_owned(), kv.value.clone()));
            false
        });
        let own = llm::render(
            &mut span.attributes,
            event_type,
            self.conventions,
            &self.prices,
            super::capture_cap(),
        );

        let trace_id = u128::from_be_bytes(span.span_context.trace_id().to_bytes());
        let span_id = u64::from_be_bytes(span.span_context.span_id().to_bytes());
        let from_children = self
            .waiting
            .remove(&(trace_id, span_id))
            .unwrap_or_default();
        let mut usage = own;
        usage.add(from_children.usage);
        session.extend(from_children.session);

        let is_root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        if is_root || event_type == EventType::Session {
            span.attributes.append(&mut session);
        }
        if is_root {
            if !usage.is_empty() {
                span.attributes.extend(usage.totals());
            }
        } else if !usage.is_empty() || !session.is_empty() {
            let parent = u64::from_be_bytes(span.parent_span_id.to_bytes());
            self.leave_for(trace_id, parent, usage, session);
        }

        let dropped = self.redactor.apply(
            &mut span.attributes,
            &mut span.events.events,
            &mut span.status,
        );
        span.dropped_attributes_count += dropped;
        if let std::borrow::Cow::Owned(name) = self.redactor.redact_name(&span.name) {
            span.name = std::borrow::Cow::Owned(name);
        }
    }

    fn leave_for(&mut self, trace_id: u128, parent: u64, usage: Usage, session: Vec<KeyValue>) {
        let key = (trace_id, parent);
        let waiting = self.waiting.entry(key).or_insert_with(|| {
            self.order.push_back(key);
            Waiting::default()
        });
        waiting.usage.add(usage);
        waiting.session.extend(session);
        while self.waiting.len() > MAX_WAITING {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.waiting.remove(&oldest);
        }
        // Keys already taken pile up in `order` when traces complete normally; drop them.
        if self.order.len() > 2 * MAX_WAITING.max(self.waiting.len()) {
            self.order.retain(|k| self.waiting.contains_key(k));
        }
    }
}

/// What the builder was told about semantics, privacy and prices.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) conventions: Option<Conventions>,
    pub(crate) privacy: Privacy,
    /// Replaces the built-in table.
    pub(crate) prices: Option<PriceTable>,
    /// Added on top, last.
    pub(crate) model_prices: Vec<(String, crate::llm::ModelPrice)>,
    pub(crate) price_file: Option<std::path::PathBuf>,
}

impl Options {
    /// Builds the export thread's processing; reads the price file, if any (a local file, at
    /// init, never on a traced thread).
    pub(crate) fn build(
        self,
        conventions: Conventions,
        privacy: &Privacy,
        price_file: Option<&std::path::Path>,
    ) -> Result<Semantics, String> {
        let mut prices = self.prices.unwrap_or_else(PriceTable::builtin);
        if let Some(path) = price_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read price file {}: {e}", path.display()))?;
            prices
                .merge_litellm_json(&text)
                .map_err(|e| format!("price file {}: {e}", path.display()))?;
        }
        for (model, price) in self.model_prices {
            prices.insert(model, price);
        }
        Semantics::new(conventions, prices, privacy)
    }
}
