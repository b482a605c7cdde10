//! What the export thread adds to each span of an assembled trace before it is encoded: LLM
//! conventions and cost ([`crate::llm`]), token and cost totals on the root, session
//! enrichment moved to its span ([`crate::enrich`]), then key lists, redaction and the
//! attribute budget ([`crate::redact`]).
//!
//! It works on whole traces from the [assembler](super::assembler), so roll-ups do not depend
//! on the order spans arrive in: each span's usage is summed into its ancestors up to the
//! trace's root in this process (no parent, or a remote one), which gets `honeyhive.total.*`;
//! session enrichment goes to the nearest `session` span above it, else to that root. A part
//! of a trace sent without its root (it timed out, or ended after its root was sent) is
//! rendered span by span, without totals.
//!
//! The records are read, never consumed: they go back to the threads that recorded them, which
//! free what they own, so nothing a caller allocated is freed here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{Array, KeyValue, StringValue, Value};

use super::assembler::{IdHasher, Trace};
use crate::enrich::SESSION_MARK;
use crate::llm::{self, Conventions, PriceTable, Usage};
use crate::record::Attr;
use crate::redact::{Privacy, Redactor};
use crate::span::{EventType, SpanRecord};

/// One span, rendered: the attributes, events and status to send. Attributes rendering left
/// as they were are read from the span's record in place (`'a`).
#[derive(Debug, Default)]
pub(crate) struct Rendered<'a> {
    /// The span's name, when redaction changed it.
    pub(crate) name: Option<String>,
    pub(crate) attrs: Vec<Attr<'a>>,
    pub(crate) events: Vec<Event>,
    pub(crate) status: Status,
    pub(crate) dropped_attributes: u32,
    pub(crate) dropped_events: u32,
    /// `ot=th:<threshold>`, when the span was kept with a known probability below 1.
    pub(crate) trace_state: Option<String>,
}

/// The export thread's per-span processing.
#[derive(Debug)]
pub(crate) struct Semantics {
    conventions: Conventions,
    prices: PriceTable,
    redactor: Redactor,
    cap: usize,
    /// GenAI's `{operation} {model}` span names instead of the function names.
    genai_span_names: bool,
    /// Attribute lists of spans already encoded, emptied, for the next spans to reuse.
    spare: Vec<Vec<Attr<'static>>>,
    /// Each span's own usage, per trace (kept for the next trace).
    usages: Vec<Usage>,
}

/// Lists kept for reuse at most, and the largest kept: enough for a batch of ordinary spans.
const MAX_SPARE: usize = 4096;
const MAX_SPARE_CAPACITY: usize = 256;

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
            cap: crate::capture::DEFAULT_CAPTURE_CAP,
            genai_span_names: false,
            spare: Vec::new(),
            usages: Vec::new(),
        })
    }

    pub(crate) fn set_capture_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Takes back the attribute list of a rendered span that was encoded and is no longer needed.
    pub(crate) fn recycle(&mut self, mut attrs: Vec<Attr<'_>>) {
        if self.spare.len() < MAX_SPARE && attrs.capacity() <= MAX_SPARE_CAPACITY {
            attrs.clear();
            self.spare.push(unborrowed(attrs));
        }
    }

    /// Renders every span of `trace`, in its order, into `out` (cleared first).
    pub(crate) fn render_trace<'a>(&mut self, trace: &'a Trace, out: &mut Vec<Rendered<'a>>) {
        out.clear();
        let mut usages = std::mem::take(&mut self.usages);
        usages.clear();
        let mut sessions: Vec<(usize, Vec<KeyValue>)> = Vec::new();
        for (i, record) in trace.spans.iter().enumerate() {
            if let Some(next) = trace.spans.get(i + 1) {
                // A caller's thread wrote them on the other core: asked for while this one
                // is rendered.
                crate::record::prefetch(&*next.attrs);
            }
            let mut attrs = self.spare.pop().unwrap_or_default();
            attrs.reserve(record.attrs.len() + 12);
            core_attributes(record, trace.factor, self.conventions, &mut attrs);
            let mut session = Vec::new();
            let mut messages = llm::RecordedMessages::default();
            // The span's own content is scrubbed, in its order, before the conventions copy it.
            for kv in &record.attrs {
                let key = kv.key.as_str();
                if let Some(key) = key.strip_prefix(SESSION_MARK) {
                    session.push(KeyValue::new(key.to_owned(), kv.value.clone()));
                } else if let Some(slot) = messages.slot(key)
                    && self.redactor.keeps_key(key)
                {
                    // Messages are rendered from the record: only what redaction changes is
                    // copied. A value that is no list of texts holds no messages.
                    *slot = Some(if let Value::Array(Array::String(items)) = &kv.value {
                        bounded_strings(self.redactor.scrub_strings(key, items), self.cap)
                    } else {
                        // Scrubbed all the same: the mask sees every value.
                        self.redactor.redact_attribute(&mut kv.clone());
                        Cow::Borrowed(&[])
                    });
                } else {
                    // Read in place unless redaction or the cap changes it.
                    attrs.push(bounded_attr(
                        match self.redactor.redacted_attribute(kv) {
                            Some(changed) => Attr::Owned(changed),
                            None => Attr::Borrowed(kv),
                        },
                        self.cap,
                    ));
                }
            }
            let (mut events, dropped_events) = self.redactor.kept_events(&record.events);
            let mut status = record.status.clone();
            self.redactor.scrub(&mut [], &mut events, &mut status);
            self.redactor
                .scrub(&mut session, &mut [], &mut Status::Unset);
            bound_events_and_status(&mut events, &mut status, self.cap);
            for kv in &mut session {
                if let Attr::Owned(cut) = bounded_attr(Attr::Borrowed(kv), self.cap) {
                    *kv = cut;
                }
            }
            if !session.is_empty() {
                sessions.push((i, session));
            }
            let event_type = record.meta.event_type;
            let mut usage = llm::render(
                &mut attrs,
                messages,
                event_type,
                self.conventions,
                &self.prices,
                self.cap,
            );
            // Documents, tools, agents, metadata, tags; embeddings apart in the totals.
            let genai_name = llm::spans::render(
                &mut attrs,
                &mut usage,
                record.name(),
                event_type,
                self.conventions,
                self.genai_span_names,
                self.cap,
            );
            usages.push(usage);
            out.push(Rendered {
                name: self.span_name(record, genai_name),
                attrs,
                events,
                status,
                dropped_attributes: 0,
                dropped_events,
                trace_state: trace_state(record),
            });
        }
        if usages.iter().any(|u| !u.is_empty()) || !sessions.is_empty() {
            let moved = !sessions.is_empty();
            // Totals a root gets from its own call alone repeat that call's keys: only
            // HoneyHive's keys (`Both`) carry them anyway.
            let lone_totals = self.conventions == Conventions::Both;
            roll_up(&trace.spans, &usages, sessions, lone_totals, out);
            if moved {
                // Session enrichment joins the tags and metadata of the span it moved to.
                for r in out.iter_mut() {
                    llm::spans::merge_session(&mut r.attrs, self.conventions, self.cap);
                }
            }
        }
        for r in out.iter_mut() {
            r.dropped_attributes += self.redactor.limit(&mut r.attrs);
        }
        self.usages = usages;
    }
}

impl Semantics {
    /// The name to send in place of the record's, if any: GenAI's, else the record's own,
    /// with secrets replaced and cut at the cap.
    fn span_name(&self, record: &SpanRecord, genai_name: Option<String>) -> Option<String> {
        let name = match genai_name {
            Some(name) => Some(self.redactor.redact_name(&name).into_owned()),
            // A function's own name is the same span after span: decided once.
            None if record.name.is_none() => self.redactor.redacted_static_name(record.meta.name),
            None => match self.redactor.redact_name(record.name()) {
                Cow::Owned(name) => Some(name),
                Cow::Borrowed(_) => None,
            },
        };
        match name {
            Some(name) => Some(bounded_text(&name, self.cap).unwrap_or(name)),
            None => bounded_text(record.name(), self.cap),
        }
    }
}

/// What every span carries: event type, and on a root the probability it was kept with. The
/// event name is the span's name, sent once (HoneyHive reads it from there); the duration,
/// which repeats the span's start and end, and a probability of 1 only when HoneyHive's keys
/// are sent (`Both`).
fn core_attributes(
    record: &SpanRecord,
    factor: f64,
    conventions: Conventions,
    attrs: &mut Vec<Attr<'_>>,
) {
    let meta = record.meta;
    attrs.push(Attr::Owned(KeyValue::new(
        "honeyhive_event_type",
        meta.event_type.as_str(),
    )));
    let honeyhive = conventions == Conventions::Both;
    if honeyhive {
        #[allow(clippy::cast_precision_loss)] // sub-nanosecond precision is not needed for ms
        let duration_ms = record.end.saturating_sub(record.start) as f64 / 1e6;
        attrs.push(Attr::Owned(KeyValue::new(
            "honeyhive_duration_ms",
            duration_ms,
        )));
    }
    if let Some(rate) = record.root_sample_rate {
        // A rate known with its threshold has the tail's folded in already.
        let factor = if record.threshold.is_some() {
            1.0
        } else {
            factor
        };
        let rate = rate * factor;
        // A rate of 1 is what a reader assumes without one (as OpenTelemetry does without
        // `ot=th`): only HoneyHive's keys say it.
        if honeyhive || rate < 1.0 {
            attrs.push(Attr::Owned(KeyValue::new("honeyhive.sample_rate", rate)));
        }
    }
}

/// How far past the cap a text may run before it is cut here: a value cut on the caller's
/// side carries its marker (`…[truncated N bytes]`) beyond the cap, and is not cut again.
const MARKER_ROOM: usize = 64;

/// `text` cut at `cap` with the truncation marker, when it runs past the cap and its marker's
/// room; `None` when it is within bounds.
///
/// What a span carries is bounded by the capture cap wherever it comes from: what the macro
/// captures is cut on the caller's thread, and texts handed to us whole (a panic's message, a
/// dynamic span's name, events and error, enrichment, `LlmCall` fields, evaluations) are cut
/// here, after redaction saw them whole.
fn bounded_text(text: &str, cap: usize) -> Option<String> {
    (text.len() > cap.saturating_add(MARKER_ROOM)).then(|| {
        crate::capture::truncated_text(text, cap)
            .as_str()
            .to_owned()
    })
}

/// The attribute with its key and texts within bounds ([`bounded_text`]); a copy only when one
/// was cut.
fn bounded_attr(attr: Attr<'_>, cap: usize) -> Attr<'_> {
    // A raw value of the typed APIs (`\0llm.tool_call`) is rendered into other keys, which
    // the renderers bound as they build them (JSON as JSON): cut here, a JSON text in it
    // would no longer parse. What the caller's side gave it is bounded there.
    if attr.key.as_str().starts_with('\0') {
        return attr;
    }
    let key = bounded_text(attr.key.as_str(), cap);
    let value = match &attr.value {
        Value::String(s) if llm::json::shrinks_as_json(attr.key.as_str()) => {
            // A JSON value given whole (an `input.value` set by hand) stays JSON.
            let text = s.as_str();
            (text.len() > cap.saturating_add(MARKER_ROOM))
                .then(|| Value::String(llm::json::cut_rendered(text, cap).0))
        }
        Value::String(s) => bounded_text(s.as_str(), cap).map(Value::from),
        Value::Array(Array::String(items)) => match bounded_strings(Cow::Borrowed(items), cap) {
            Cow::Owned(items) => Some(Value::Array(Array::String(items))),
            Cow::Borrowed(_) => None,
        },
        _ => None,
    };
    if key.is_none() && value.is_none() {
        return attr;
    }
    Attr::Owned(KeyValue::new(
        key.map_or_else(|| attr.key.clone(), opentelemetry::Key::from),
        value.unwrap_or_else(|| attr.value.clone()),
    ))
}

/// The list with each text within bounds; borrowed when none was cut.
fn bounded_strings(items: Cow<'_, [StringValue]>, cap: usize) -> Cow<'_, [StringValue]> {
    if items
        .iter()
        .all(|s| s.as_str().len() <= cap.saturating_add(MARKER_ROOM))
    {
        return items;
    }
    Cow::Owned(
        items
            .iter()
            .map(|s| bounded_text(s.as_str(), cap).map_or_else(|| s.clone(), StringValue::from))
            .collect(),
    )
}

/// Events' names and attributes and the status's description within bounds.
fn bound_events_and_status(events: &mut [Event], status: &mut Status, cap: usize) {
    for event in events {
        if let Some(name) = bounded_text(&event.name, cap) {
            event.name = Cow::Owned(name);
        }
        for kv in &mut event.attributes {
            if let Attr::Owned(cut) = bounded_attr(Attr::Borrowed(kv), cap) {
                *kv = cut;
            }
        }
    }
    if let Status::Error { description } = status
        && let Some(cut) = bounded_text(description, cap)
    {
        *description = Cow::Owned(cut);
    }
}

/// The span's OTLP `trace_state`: the threshold it was kept with (what an adjusted count
/// needs, as OpenTelemetry stores it), the tail sampler's included (`tail::Verdict::apply`).
fn trace_state(record: &SpanRecord) -> Option<String> {
    let t = record.threshold.filter(|&t| t > 0)?;
    Some(format!(
        "ot=th:{}",
        crate::sampling::consistent::encode_threshold(t)
    ))
}

/// Sums usage into ancestors, totals on local roots, session enrichment to the nearest
/// session span or local root. Works in any arrival order: each span walks up its parents.
/// Without `lone_totals`, a root whose only call is its own gets no totals (they would repeat
/// its call's keys).
fn roll_up(
    spans: &[Box<SpanRecord>],
    usages: &[Usage],
    sessions: Vec<(usize, Vec<KeyValue>)>,
    lone_totals: bool,
    out: &mut [Rendered<'_>],
) {
    // Small traces look their parents up by a scan; a map pays off only for larger ones.
    let index: Option<HashMap<u64, usize, BuildHasherDefault<IdHasher>>> =
        (spans.len() > 16).then(|| {
            spans
                .iter()
                .enumerate()
                .map(|(i, r)| (r.span_id, i))
                .collect()
        });
    let parent_of = |i: usize| -> Option<usize> {
        let r = &spans[i];
        if r.is_local_root() {
            return None;
        }
        match &index {
            Some(index) => index.get(&r.parent_id).copied(),
            None => spans.iter().position(|s| s.span_id == r.parent_id),
        }
    };
    // Totals belong to spans that are roots here; a span whose parent is not in this trace
    // (a part sent without its root) is not one, so its usage is not totalled.
    let mut totals: Vec<Usage> = vec![Usage::default(); spans.len()];
    // Whether a root's totals hold a call other than its own.
    let mut from_below = vec![lone_totals; spans.len()];
    let mut top_of = WalkEnds::new(spans.len());
    for (i, usage) in usages.iter().enumerate() {
        if usage.is_empty() {
            continue;
        }
        let at = top_of.of(i, &parent_of);
        if spans[at].is_local_root() {
            totals[at].add(*usage);
            from_below[at] |= at != i;
        }
    }
    for (i, total) in totals.iter().enumerate() {
        if !total.is_empty() && from_below[i] {
            out[i]
                .attrs
                .extend(total.totals().into_iter().map(Attr::Owned));
        }
    }
    // Session enrichment moves up to the nearest session span (itself, if it is one), else to
    // the top.
    let mut session_of = WalkEnds::new(spans.len());
    for (i, attrs) in sessions {
        let at = session_of.of(i, |at| {
            if spans[at].meta.event_type == EventType::Session {
                None
            } else {
                parent_of(at)
            }
        });
        out[at].attrs.extend(attrs.into_iter().map(Attr::Owned));
    }
}

/// Where a walk up a trace from each span ends (the root, the highest span whose parent is
/// not in the trace, or the first span a stop condition picks), found by stepping once per
/// span: a walk remembers where it ended for every span it passed, so a later walk from
/// below stops where it meets one. A deep chain with a call or a session enrichment at each
/// level is rolled up in linear time, not in its depth times their number.
struct WalkEnds {
    end: Vec<usize>,
    path: Vec<usize>,
}

impl WalkEnds {
    const UNKNOWN: usize = usize::MAX;

    fn new(spans: usize) -> WalkEnds {
        WalkEnds {
            end: vec![WalkEnds::UNKNOWN; spans],
            path: Vec::new(),
        }
    }

    /// Where the walk from span `i` ends, `up` giving the span above one, or `None` where
    /// the walk stops (the same `up` on every call). Ids that loop (a malformed trace) end
    /// the walk after as many steps as there are spans.
    fn of(&mut self, i: usize, mut up: impl FnMut(usize) -> Option<usize>) -> usize {
        self.path.clear();
        let mut at = i;
        let end = loop {
            if self.end[at] != WalkEnds::UNKNOWN {
                break self.end[at];
            }
            self.path.push(at);
            match up(at) {
                Some(p) if self.path.len() <= self.end.len() => at = p,
                _ => break at,
            }
        };
        for &passed in &self.path {
            self.end[passed] = end;
        }
        end
    }
}

/// An emptied list of attributes, kept beyond the records it borrowed from: the same
/// allocation (collected in place), since it holds nothing.
fn unborrowed(mut list: Vec<Attr<'_>>) -> Vec<Attr<'static>> {
    list.clear();
    list.into_iter()
        .map(|_| -> Attr<'static> { unreachable!("the list is empty") })
        .collect()
}

/// The same for a trace's list of rendered spans, kept for the next trace.
pub(crate) fn unborrowed_spans(mut list: Vec<Rendered<'_>>) -> Vec<Rendered<'static>> {
    list.clear();
    list.into_iter()
        .map(|_| -> Rendered<'static> { unreachable!("the list is empty") })
        .collect()
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
    /// Name spans as GenAI does (`chat gpt-4o`, `execute_tool get_weather`).
    pub(crate) genai_span_names: bool,
    /// OTLP endpoints added with `Builder::with_phoenix`, which read OpenInference keys.
    pub(crate) phoenix_endpoints: Vec<String>,
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
                .merge_json(&text)
                .map_err(|e| format!("price file {}: {e}", path.display()))?;
        }
        for (model, price) in self.model_prices {
            prices.insert(model, price);
        }
        let mut semantics = Semantics::new(conventions, prices, privacy)?;
        semantics.genai_span_names = self.genai_span_names;
        Ok(semantics)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::Status;
    use opentelemetry::{KeyValue, Value};

    use super::{Rendered, Semantics, WalkEnds, unborrowed_spans};
    use crate::export::assembler::Trace;
    use crate::llm::{Conventions, PriceTable};
    use crate::record::{Attr, EventType, Meta, RootState, SpanRecord};
    use crate::redact::Privacy;

    /// A call at every level of a 10,000-deep chain: each span's parent is looked up once in
    /// all, not once per call below it (50 million lookups before).
    #[test]
    fn the_tops_of_a_deep_chain_take_one_lookup_per_span() {
        let n = 10_000;
        let mut lookups = 0;
        let mut tops = WalkEnds::new(n);
        for i in (0..n).rev() {
            let top = tops.of(i, |at| {
                lookups += 1;
                at.checked_sub(1)
            });
            assert_eq!(top, 0, "span {i} is under the root");
        }
        assert!(lookups <= n, "{lookups} parent lookups for {n} spans");
    }

    /// Two subtrees, one whose parent is not in the trace, and ids that loop: each span gets
    /// its own top, and a loop ends.
    #[test]
    fn tops_are_found_per_subtree_and_a_loop_of_ids_ends() {
        // 0 is the root; 1 and 2 under it; 3 under 2; 4 has a parent not here; 5 under 4;
        // 6 and 7 are each other's parents.
        let parents = [
            None,
            Some(0),
            Some(0),
            Some(2),
            None,
            Some(4),
            Some(7),
            Some(6),
        ];
        let mut tops = WalkEnds::new(parents.len());
        let mut found = vec![0; parents.len()];
        for i in (0..parents.len()).rev() {
            found[i] = tops.of(i, |at| parents[at]);
        }
        assert_eq!(&found[..6], &[0, 0, 0, 0, 4, 4]);
        assert!(
            found[6] >= 6 && found[7] >= 6,
            "a loop's top is one of its own: {found:?}"
        );
    }

    /// A stop condition (the nearest session span): walks from below it end there, walks
    /// from above it at the root, each span looked up once.
    #[test]
    fn walks_end_at_the_first_span_their_stop_picks() {
        let n = 1_000;
        let session = 400;
        let mut lookups = 0;
        let mut ends = WalkEnds::new(n);
        for i in (0..n).rev() {
            let end = ends.of(i, |at| {
                lookups += 1;
                if at == session {
                    None
                } else {
                    at.checked_sub(1)
                }
            });
            assert_eq!(end, if i >= session { session } else { 0 }, "span {i}");
        }
        assert!(lookups <= n, "{lookups} lookups for {n} spans");
    }

    static STEP: Meta = Meta {
        name: "step",
        event_type: EventType::Tool,
        sample_rate: None,
        attr_capacity: 2,
        root: RootState::new(),
    };

    fn record(span: u64, parent: u64, query: &str) -> Box<SpanRecord> {
        Box::new(SpanRecord {
            trace_id: 7,
            span_id: span,
            parent_id: parent,
            parent_remote: false,
            meta: &STEP,
            start: 1,
            end: 2,
            attrs: vec![
                KeyValue::new("honeyhive_inputs.query", query.to_owned()),
                KeyValue::new("honeyhive_inputs.n", 3),
            ],
            events: Vec::new(),
            status: Status::Unset,
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

    /// A span's captured attributes go out as the record holds them: read in place, not copied
    /// (nothing the export thread allocates per attribute, and nothing it frees); only what
    /// redaction changes is a copy.
    #[test]
    fn attributes_redaction_leaves_alone_are_read_from_the_record() {
        let mut semantics =
            Semantics::new(Conventions::GenAi, PriceTable::empty(), &Privacy::default())
                .expect("default privacy compiles");
        let trace = Trace {
            spans: (1..=6)
                .map(|i| record(i, u64::from(i != 1), "what is rust"))
                .collect(),
            factor: 1.0,
        };
        let mut out: Vec<Rendered<'_>> = Vec::new();
        // Warm: the key decisions, the lists kept for reuse.
        semantics.render_trace(&trace, &mut out);
        for r in out.drain(..) {
            semantics.recycle(r.attrs);
        }
        let before = crate::sink::tests::allocations();
        semantics.render_trace(&trace, &mut out);
        let allocations = crate::sink::tests::allocations() - before;
        assert_eq!(
            allocations, 0,
            "rendering 6 spans allocated {allocations} times"
        );
        for (r, record) in out.iter().zip(&trace.spans) {
            let query = r
                .attrs
                .iter()
                .find(|kv| kv.key.as_str() == "honeyhive_inputs.query")
                .expect("the argument is sent");
            assert!(
                matches!(query, Attr::Borrowed(kv) if std::ptr::eq(*kv, std::ptr::from_ref(&record.attrs[0]))),
                "{query:?} is not the record's own attribute"
            );
        }
        let _ = unborrowed_spans(out);

        // A value redaction changes is a copy; the record keeps what the caller wrote.
        let secret = "token sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9o";
        let leaky = Trace {
            spans: vec![record(1, 0, secret)],
            factor: 1.0,
        };
        let mut out = Vec::new();
        semantics.render_trace(&leaky, &mut out);
        let query = out[0]
            .attrs
            .iter()
            .find(|kv| kv.key.as_str() == "honeyhive_inputs.query")
            .expect("the argument is sent");
        assert!(matches!(query, Attr::Owned(_)));
        assert!(!query.value.as_str().contains("sk-proj"), "{query:?}");
        assert_eq!(leaky.spans[0].attrs[0].value, Value::from(secret));
    }
}
