//! Queries over the spans of some traces: filters, a group-by and aggregates, as a plain
//! builder.
//!
//! ```
//! use std::time::Duration;
//! use honeyhive_runtime::EventType;
//! use honeyhive_runtime::analysis::{GroupBy, Query, Trace};
//!
//! # fn show(traces: &[Trace]) {
//! // p95 latency and error rate of the model calls slower than 100 ms, by model.
//! let groups = Query::over(traces)
//!     .event_type(EventType::Model)
//!     .min_duration(Duration::from_millis(100))
//!     .group_by(GroupBy::Model);
//! for group in groups {
//!     println!("{} {:?} {:.1}%", group.key, group.stats.p95, group.stats.error_rate() * 100.0);
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::{Span, Trace, percentile};
use crate::enrich::Value;
use crate::record::EventType;

/// The attribute our spans carry their event type in.
const EVENT_TYPE_KEY: &str = "honeyhive_event_type";

/// The spans of some traces that pass the filters so far. Each filter narrows the set.
#[derive(Clone, Debug, Default)]
pub struct Query {
    spans: Vec<Span>,
    /// Whether each span is a root ([`Trace::roots`]), decided over all the spans given, so
    /// that filters before [`Query::roots`] do not make children roots.
    roots: Vec<bool>,
}

/// What [`Query::group_by`] groups spans by.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupBy {
    /// The span's name.
    Name,
    /// The model called ([`Span::model`]); spans without one are left out.
    Model,
    /// The text of an attribute (numbers and flags as written); spans without it are left
    /// out.
    Attribute(String),
}

/// Aggregates over some spans.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Aggregate {
    /// Spans.
    pub count: usize,
    /// Spans that failed.
    pub errors: usize,
    /// Median duration.
    pub p50: Duration,
    /// 95th percentile duration.
    pub p95: Duration,
    /// 99th percentile duration.
    pub p99: Duration,
    /// Mean duration.
    pub mean: Duration,
    /// The longest.
    pub max: Duration,
    /// Input tokens of the LLM calls among them, summed (at most `u64::MAX`).
    pub input_tokens: u64,
    /// Output tokens, summed (at most `u64::MAX`).
    pub output_tokens: u64,
    /// Cost of the priced calls among them, USD.
    pub cost_usd: f64,
}

impl Aggregate {
    /// Errors over spans, 0 to 1 (0 for no spans).
    #[allow(clippy::cast_precision_loss)] // counts
    pub fn error_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }

    /// Of `spans`.
    pub fn of<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Aggregate {
        let mut agg = Aggregate::default();
        let mut durations = Vec::new();
        for span in spans {
            agg.count += 1;
            agg.errors += usize::from(span.status.is_error());
            // Saturating: a corrupt count (a file's, or `u64::MAX` recorded) must not wrap
            // the total or panic.
            agg.input_tokens = agg
                .input_tokens
                .saturating_add(span.input_tokens().unwrap_or(0));
            agg.output_tokens = agg
                .output_tokens
                .saturating_add(span.output_tokens().unwrap_or(0));
            agg.cost_usd += span.cost_usd().unwrap_or(0.0);
            durations.push(span.duration_nanos());
        }
        durations.sort_unstable();
        let total: u128 = durations.iter().map(|&d| u128::from(d)).sum();
        let mean = total
            .checked_div(durations.len() as u128)
            .map_or(0, |m| u64::try_from(m).unwrap_or(u64::MAX));
        agg.p50 = Duration::from_nanos(percentile(&durations, 50.0));
        agg.p95 = Duration::from_nanos(percentile(&durations, 95.0));
        agg.p99 = Duration::from_nanos(percentile(&durations, 99.0));
        agg.mean = Duration::from_nanos(mean);
        agg.max = Duration::from_nanos(durations.last().copied().unwrap_or(0));
        agg
    }
}

/// One group of [`Query::group_by`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Group {
    /// The name, model or attribute value the spans share.
    pub key: String,
    /// Aggregates over them.
    pub stats: Aggregate,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn unix_nanos(t: SystemTime) -> u64 {
    crate::clock::unix_nanos(t)
}

/// An attribute's value as group-by text.
fn text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        other => serde_json::Value::from(other).to_string(),
    }
}

impl Query {
    /// Every span of `traces`.
    pub fn over<'a>(traces: impl IntoIterator<Item = &'a Trace>) -> Query {
        Query::of_spans(traces.into_iter().flat_map(|t| t.spans.iter().cloned()))
    }

    /// The given spans (of any traces; a trace's roots are taken among its spans here).
    pub fn of_spans(spans: impl IntoIterator<Item = Span>) -> Query {
        let spans: Vec<Span> = spans.into_iter().collect();
        Query {
            roots: super::roots(&spans),
            spans,
        }
    }

    /// Keeps the spans `keep` says yes to.
    #[must_use]
    pub fn filter(self, keep: impl Fn(&Span) -> bool) -> Query {
        self.retain(|span, _| keep(span))
    }

    fn retain(self, keep: impl Fn(&Span, bool) -> bool) -> Query {
        let (spans, roots) = self
            .spans
            .into_iter()
            .zip(self.roots)
            .filter(|(span, root)| keep(span, *root))
            .unzip();
        Query { spans, roots }
    }

    /// Spans named `name`.
    #[must_use]
    pub fn name(self, name: &str) -> Query {
        self.filter(|s| s.name == name)
    }

    /// Spans whose name starts with `prefix`.
    #[must_use]
    pub fn name_prefix(self, prefix: &str) -> Query {
        self.filter(|s| s.name.starts_with(prefix))
    }

    /// Spans of our event type `event_type` (`#[trace(event_type = ..)]`, read from
    /// `honeyhive_event_type`).
    #[must_use]
    pub fn event_type(self, event_type: EventType) -> Query {
        self.filter(|s| s.str(EVENT_TYPE_KEY) == Some(event_type.as_str()))
    }

    /// Roots only (one per trace, usually: the requests), as [`Trace::roots`] has them:
    /// feedback on a request, in the request's trace, is not a second root.
    #[must_use]
    pub fn roots(self) -> Query {
        self.retain(|_, root| root)
    }

    /// Spans that took at least `min`.
    #[must_use]
    pub fn min_duration(self, min: Duration) -> Query {
        let min = nanos(min);
        self.filter(|s| s.duration_nanos() >= min)
    }

    /// Spans that took less than `max`.
    #[must_use]
    pub fn max_duration(self, max: Duration) -> Query {
        let max = nanos(max);
        self.filter(|s| s.duration_nanos() < max)
    }

    /// Spans that failed.
    #[must_use]
    pub fn errors(self) -> Query {
        self.filter(|s| s.status.is_error())
    }

    /// Spans that did not fail.
    #[must_use]
    pub fn ok(self) -> Query {
        self.filter(|s| !s.status.is_error())
    }

    /// Spans with attribute `key` equal to `value` (an integer matches an equal float).
    #[must_use]
    pub fn attr_eq(self, key: &str, value: impl Into<Value>) -> Query {
        let value = value.into();
        self.filter(|s| match (s.attr(key), &value) {
            (Some(Value::Int(a)), Value::Float(b)) | (Some(Value::Float(b)), Value::Int(a)) => {
                #[allow(clippy::cast_precision_loss)]
                let a = *a as f64;
                (a - b).abs() < f64::EPSILON
            }
            (Some(v), want) => v == want,
            (None, _) => false,
        })
    }

    /// Spans with attribute `key` set.
    #[must_use]
    pub fn attr_exists(self, key: &str) -> Query {
        self.filter(|s| s.attr(key).is_some())
    }

    /// LLM calls of model `model` ([`Span::model`]).
    #[must_use]
    pub fn model(self, model: &str) -> Query {
        self.filter(|s| s.model() == Some(model))
    }

    /// Spans that started at or after `from` and before `to`.
    #[must_use]
    pub fn started_between(self, from: SystemTime, to: SystemTime) -> Query {
        let (from, to) = (unix_nanos(from), unix_nanos(to));
        self.filter(|s| (from..to).contains(&s.start_unix_nanos))
    }

    /// The spans that passed, in their order.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The spans that passed, taken.
    pub fn into_spans(self) -> Vec<Span> {
        self.spans
    }

    /// How many passed.
    pub fn count(&self) -> usize {
        self.spans.len()
    }

    /// Aggregates over the spans that passed.
    pub fn aggregate(&self) -> Aggregate {
        Aggregate::of(&self.spans)
    }

    /// The spans that passed, grouped, with aggregates per group: the largest group first
    /// (then by key).
    pub fn group_by(&self, by: GroupBy) -> Vec<Group> {
        type KeyOf = Box<dyn Fn(&Span) -> Option<String>>;
        let key_of: KeyOf = match by {
            GroupBy::Name => Box::new(|span| Some(span.name.clone())),
            GroupBy::Model => Box::new(|span| span.model().map(str::to_owned)),
            GroupBy::Attribute(key) => Box::new(move |span| span.attr(&key).map(text)),
        };
        let mut groups: HashMap<String, Vec<&Span>> = HashMap::new();
        for span in &self.spans {
            if let Some(key) = key_of(span) {
                groups.entry(key).or_default().push(span);
            }
        }
        let mut groups: Vec<Group> = groups
            .into_iter()
            .map(|(key, spans)| Group {
                key,
                stats: Aggregate::of(spans),
            })
            .collect();
        groups.sort_by(|a, b| b.stats.count.cmp(&a.stats.count).then(a.key.cmp(&b.key)));
        groups
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::{Span, Status, Trace};
    use super::{GroupBy, Query};
    use crate::enrich::Value;
    use crate::record::EventType;
    use crate::record::SpanKind;

    const MS: u64 = 1_000_000;

    fn span(id: u64, name: &str, start_ms: u64, ms: u64, attrs: Vec<(&str, Value)>) -> Span {
        Span {
            trace_id: u128::from(id % 3),
            span_id: id,
            parent_span_id: u64::from(id >= 14),
            parent_remote: false,
            name: name.to_owned(),
            kind: SpanKind::Internal,
            start_unix_nanos: start_ms * MS,
            end_unix_nanos: (start_ms + ms) * MS,
            status: Status::Unset,
            attributes: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            events: Vec::new(),
        }
    }

    fn traces() -> Vec<Trace> {
        let mut spans = Vec::new();
        for i in 0..100u64 {
            let mut s = span(
                i + 10,
                if i % 2 == 0 { "search" } else { "chat" },
                i * 10,
                i + 1,
                vec![
                    (
                        "honeyhive_event_type",
                        Value::from(if i % 2 == 0 { "tool" } else { "model" }),
                    ),
                    ("user", Value::from(if i < 30 { "ann" } else { "bob" })),
                    ("retries", Value::from(i % 4)),
                ],
            );
            if i % 10 == 0 {
                s.status = Status::Error("boom".into());
            }
            spans.push(s);
        }
        Trace::group(spans)
    }

    #[test]
    fn filters_narrow_and_compose() {
        let traces = traces();
        assert_eq!(Query::over(&traces).count(), 100);
        assert_eq!(Query::over(&traces).name("chat").count(), 50);
        assert_eq!(Query::over(&traces).name_prefix("se").count(), 50);
        assert_eq!(Query::over(&traces).event_type(EventType::Tool).count(), 50);
        // Durations are i + 1 ms: 50 ms <= d < 60 ms is i in 49..59.
        let q = Query::over(&traces)
            .min_duration(Duration::from_millis(50))
            .max_duration(Duration::from_millis(60));
        assert_eq!(q.count(), 10);
        assert_eq!(Query::over(&traces).errors().count(), 10);
        assert_eq!(Query::over(&traces).ok().count(), 90);
        assert_eq!(Query::over(&traces).attr_eq("user", "ann").count(), 30);
        assert_eq!(Query::over(&traces).attr_eq("retries", 3).count(), 25);
        assert_eq!(Query::over(&traces).attr_exists("user").count(), 100);
        assert_eq!(Query::over(&traces).attr_exists("nope").count(), 0);
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(
            Query::over(&traces)
                .started_between(at(100), at(200))
                .count(),
            10
        );
        let q = Query::over(&traces)
            .name("chat")
            .attr_eq("user", "bob")
            .errors();
        assert_eq!(q.count(), 0, "errors are the even i: searches");
        assert_eq!(Query::over(&traces).roots().count(), 4);
    }

    #[test]
    fn aggregates_and_groups() {
        let traces = traces();
        let all = Query::over(&traces).aggregate();
        assert_eq!(all.count, 100);
        assert!((all.error_rate() - 0.1).abs() < 1e-12);
        assert_eq!(all.p50, Duration::from_millis(50));
        assert_eq!(all.p95, Duration::from_millis(95));
        assert_eq!(all.p99, Duration::from_millis(99));
        assert_eq!(all.max, Duration::from_millis(100));
        assert_eq!(all.mean, Duration::from_micros(50_500));

        let by_name = Query::over(&traces).group_by(GroupBy::Name);
        assert_eq!(by_name.len(), 2);
        let search = by_name.iter().find(|g| g.key == "search").unwrap();
        assert_eq!((search.stats.count, search.stats.errors), (50, 10));
        let by_user = Query::over(&traces).group_by(GroupBy::Attribute("user".into()));
        assert_eq!(by_user[0].key, "bob");
        assert_eq!(by_user[0].stats.count, 70);
        assert_eq!(by_user[1].key, "ann");
        let by_retries = Query::over(&traces).group_by(GroupBy::Attribute("retries".into()));
        assert_eq!(
            by_retries
                .iter()
                .map(|g| g.key.as_str())
                .collect::<Vec<_>>(),
            ["0", "1", "2", "3"]
        );
        assert!(Query::over(&traces).group_by(GroupBy::Model).is_empty());
    }

    #[test]
    fn token_totals_saturate() {
        let huge = |id| {
            let mut s = span(id, "chat", 0, 1, vec![]);
            s.attributes = vec![
                ("gen_ai.usage.input_tokens".into(), Value::from(i64::MAX)),
                ("llm.token_count.completion".into(), Value::from(i64::MAX)),
            ];
            s
        };
        let agg = Query::of_spans([huge(1), huge(2), huge(3)]).aggregate();
        assert_eq!((agg.input_tokens, agg.output_tokens), (u64::MAX, u64::MAX));
    }

    #[test]
    fn a_span_under_a_remote_parent_in_the_same_trace_is_not_a_root() {
        // A request, feedback on it (its parent is remote: the feedback was sent from
        // elsewhere), and a request that came from another service.
        let request = span(1, "request", 0, 10, vec![]);
        let feedback = Span {
            trace_id: request.trace_id,
            parent_span_id: 1,
            parent_remote: true,
            ..span(2, "feedback user_feedback", 20, 1, vec![])
        };
        let server = Span {
            trace_id: request.trace_id,
            parent_span_id: 99,
            parent_remote: true,
            ..span(3, "server", 0, 5, vec![])
        };
        let traces = Trace::group([request, feedback, server]);
        let names = |q: Query| q.spans().iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(Query::over(&traces).roots()), ["request", "server"]);
        // Filters before `roots` do not make the feedback a root.
        assert_eq!(
            names(Query::over(&traces).name_prefix("feedback").roots()),
            Vec::<String>::new()
        );
        let roots: Vec<&str> = traces[0].roots().map(|s| s.name.as_str()).collect();
        assert_eq!(roots, ["request", "server"]);
        assert_eq!(traces[0].root().map(|s| s.name.as_str()), Some("request"));
    }
}
