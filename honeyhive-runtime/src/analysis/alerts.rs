//! Alert rules over recent spans: an error rate, a latency or a cost burn above a threshold
//! over a sliding window.
//!
//! Register a rule with [`Builder::alert`](crate::Builder::alert) and a callback: the export
//! thread evaluates the rule as traces arrive (at every scheduled export and at each flush,
//! off the callers' threads) and calls the callback once when the rule starts breaching and
//! once when it recovers. A callback that panics is caught and counted in
//! [`AlertRule::stats`]; tracing goes on.
//!
//! ```
//! use std::time::Duration;
//! use honeyhive_runtime::analysis::alerts::{AlertRule, AlertState};
//!
//! let window = Duration::from_mins(15);
//! let errors = AlertRule::error_rate("error rate", 0.05, window);
//! let slow = AlertRule::mean_latency("slow gpt-4o", Duration::from_secs(5), window).model("gpt-4o");
//! let burn = AlertRule::cost_burn("cost burn", 10.0, window);
//! let guard = honeyhive_runtime::Builder::new()
//!     .env(|_| None)
//!     .with_exporter(opentelemetry_sdk::trace::InMemorySpanExporter::default())
//!     .alert(errors.clone(), |event| {
//!         let verb = if event.state == AlertState::Breached { "breached" } else { "recovered" };
//!         eprintln!("{} {verb}: {:.3} (threshold {})", event.rule, event.value, event.threshold);
//!     })
//!     .alert(slow, |event| eprintln!("{event:?}"))
//!     .alert(burn, |event| eprintln!("{event:?}"))
//!     .install()
//!     .unwrap();
//! # drop(guard);
//! ```
//!
//! Which spans a rule looks at: with [`AlertRule::model`], the LLM calls of that model; with
//! [`AlertRule::span_name`], the spans of that name; with [`AlertRule::llm_calls`], every LLM
//! call; else the roots (one per request, [`Trace::roots`]) for error rates and latency, and
//! every priced call for the cost burn. A span counts at its end time. The same rules run
//! over traces of your own (a file, a store) with a [`Monitor`] and the time you give it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::{Span, Trace, percentile};

/// Samples a rule keeps at most (the oldest go first): bounds a busy process's window.
const MAX_SAMPLES: usize = 100_000;

/// What a rule measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Metric {
    /// Failed spans over spans, 0 to 1.
    ErrorRate,
    /// The mean duration, in seconds.
    MeanLatency,
    /// The 95th percentile duration, in seconds.
    P95Latency,
    /// The cost of the calls in the window, in USD per hour of window.
    CostPerHour,
}

/// A rule: a metric over a window, breached above a threshold. Cloning it shares its
/// [`stats`](AlertRule::stats).
#[derive(Clone, Debug)]
pub struct AlertRule {
    name: String,
    metric: Metric,
    threshold: f64,
    window: Duration,
    model: Option<String>,
    span_name: Option<String>,
    llm_calls: bool,
    min_samples: usize,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    breaches: AtomicU64,
    recoveries: AtomicU64,
    callback_panics: AtomicU64,
}

/// What a registered rule has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertStats {
    /// Times it started breaching.
    pub breaches: u64,
    /// Times it recovered.
    pub recoveries: u64,
    /// Callback calls that panicked (caught; the rule goes on).
    pub callback_panics: u64,
}

impl AlertRule {
    fn new(name: impl Into<String>, metric: Metric, threshold: f64, window: Duration) -> Self {
        AlertRule {
            name: name.into(),
            metric,
            threshold,
            window: window.max(Duration::from_millis(1)),
            model: None,
            span_name: None,
            llm_calls: false,
            min_samples: 1,
            counters: Arc::default(),
        }
    }

    /// Breached while more than `above` (0 to 1) of the spans in the last `window` failed.
    pub fn error_rate(name: impl Into<String>, above: f64, window: Duration) -> Self {
        AlertRule::new(name, Metric::ErrorRate, above, window)
    }

    /// Breached while the spans of the last `window` took more than `above` on average.
    pub fn mean_latency(name: impl Into<String>, above: Duration, window: Duration) -> Self {
        AlertRule::new(name, Metric::MeanLatency, above.as_secs_f64(), window)
    }

    /// Breached while the 95th percentile duration of the last `window` is above `above`.
    pub fn p95_latency(name: impl Into<String>, above: Duration, window: Duration) -> Self {
        AlertRule::new(name, Metric::P95Latency, above.as_secs_f64(), window)
    }

    /// Breached while the calls of the last `window` cost more than `usd_per_hour` per hour
    /// (their cost over the window's length).
    pub fn cost_burn(name: impl Into<String>, usd_per_hour: f64, window: Duration) -> Self {
        AlertRule::new(name, Metric::CostPerHour, usd_per_hour, window)
    }

    /// Only the LLM calls of `model` ([`Span::model`]).
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Only the spans named `name`.
    #[must_use]
    pub fn span_name(mut self, name: impl Into<String>) -> Self {
        self.span_name = Some(name.into());
        self
    }

    /// Only LLM calls (spans with a model), of any model.
    #[must_use]
    pub fn llm_calls(mut self) -> Self {
        self.llm_calls = true;
        self
    }

    /// Not breached on fewer than `n` spans in the window (default 1), so one failed
    /// request at a quiet hour is not a 100% error rate. The cost burn ignores it.
    #[must_use]
    pub fn min_samples(mut self, n: usize) -> Self {
        self.min_samples = n.max(1);
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it measures.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Its threshold (a rate, seconds or USD per hour, as [`Metric`] says).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Its window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Breaches, recoveries and panicking callbacks so far (shared by clones).
    pub fn stats(&self) -> AlertStats {
        AlertStats {
            breaches: self.counters.breaches.load(Ordering::Relaxed),
            recoveries: self.counters.recoveries.load(Ordering::Relaxed),
            callback_panics: self.counters.callback_panics.load(Ordering::Relaxed),
        }
    }

    /// Counts a callback that panicked.
    pub(crate) fn count_panic(&self) {
        self.counters
            .callback_panics
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the rule looks at `span`, taken alone: with nothing else of its trace known,
    /// a span under a remote parent counts as a root ([`Trace::roots`]).
    /// [`Monitor::observe_trace`] knows better: feedback on a request in the same trace is
    /// not a second request.
    pub fn matches(&self, span: &Span) -> bool {
        self.looks_at(span, super::is_root_among(span, |_| false))
    }

    /// Whether the rule looks at `span`, which is a root of its trace or not.
    fn looks_at(&self, span: &Span, root: bool) -> bool {
        if let Some(model) = &self.model {
            return span.model() == Some(model.as_str())
                && self.span_name.as_ref().is_none_or(|n| *n == span.name);
        }
        if let Some(name) = &self.span_name {
            return *name == span.name && (!self.llm_calls || span.model().is_some());
        }
        if self.llm_calls {
            return span.model().is_some();
        }
        match self.metric {
            Metric::CostPerHour => span.cost_usd().is_some(),
            _ => root,
        }
    }
}

/// Whether a rule started or stopped breaching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertState {
    /// The value went above the threshold.
    Breached,
    /// It came back to the threshold or below.
    Recovered,
}

/// A rule's change of state, given to the callback.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AlertEvent {
    /// The rule's name.
    pub rule: String,
    /// What it measures.
    pub metric: Metric,
    /// The value at the evaluation (a rate, seconds or USD per hour).
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Breached or recovered.
    pub state: AlertState,
    /// Spans in the window.
    pub samples: usize,
    /// When it was evaluated.
    pub at: SystemTime,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    end: u64,
    duration: u64,
    error: bool,
    cost: f64,
}

/// One rule's sliding window and state, fed spans and told the time.
#[derive(Debug)]
pub struct Monitor {
    rule: AlertRule,
    /// In arrival order, which is about end order.
    samples: VecDeque<Sample>,
    breaching: bool,
}

impl Monitor {
    /// A monitor of `rule`, not breaching.
    pub fn new(rule: AlertRule) -> Monitor {
        Monitor {
            rule,
            samples: VecDeque::new(),
            breaching: false,
        }
    }

    /// The rule.
    pub fn rule(&self) -> &AlertRule {
        &self.rule
    }

    /// Whether the rule was breaching at the last evaluation.
    pub fn is_breaching(&self) -> bool {
        self.breaching
    }

    /// Takes `span` into the window if the rule looks at it ([`AlertRule::matches`]: the
    /// span taken alone).
    pub fn observe(&mut self, span: &Span) {
        if self.rule.matches(span) {
            self.take(span);
        }
    }

    /// Takes every span of `trace` the rule looks at; its roots are [`Trace::roots`].
    pub fn observe_trace(&mut self, trace: &Trace) {
        for (span, root) in trace.spans.iter().zip(super::roots(&trace.spans)) {
            if self.rule.looks_at(span, root) {
                self.take(span);
            }
        }
    }

    fn take(&mut self, span: &Span) {
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            end: span.end_unix_nanos,
            duration: span.duration_nanos(),
            error: span.status.is_error(),
            cost: span.cost_usd().unwrap_or(0.0),
        });
    }

    /// The rule's value over the window ending at `now`, with the spans in it; `None` when
    /// there are too few spans to tell ([`AlertRule::min_samples`]).
    pub fn value(&self, now: SystemTime) -> (Option<f64>, usize) {
        let now = crate::clock::unix_nanos(now);
        let from =
            now.saturating_sub(u64::try_from(self.rule.window.as_nanos()).unwrap_or(u64::MAX));
        let in_window: Vec<&Sample> = self.samples.iter().filter(|s| s.end > from).collect();
        let n = in_window.len();
        #[allow(clippy::cast_precision_loss)] // counts and nanoseconds, as rates and seconds
        let value = match self.rule.metric {
            Metric::CostPerHour => {
                let cost: f64 = in_window.iter().map(|s| s.cost).sum();
                Some(cost / (self.rule.window.as_secs_f64() / 3600.0))
            }
            _ if n < self.rule.min_samples => None,
            Metric::ErrorRate => {
                Some(in_window.iter().filter(|s| s.error).count() as f64 / n as f64)
            }
            Metric::MeanLatency => {
                let total: u128 = in_window.iter().map(|s| u128::from(s.duration)).sum();
                Some(total as f64 / n as f64 / 1e9)
            }
            Metric::P95Latency => {
                let mut d: Vec<u64> = in_window.iter().map(|s| s.duration).collect();
                d.sort_unstable();
                Some(percentile(&d, 95.0) as f64 / 1e9)
            }
        };
        (value, n)
    }

    /// Evaluates the rule at `now`: the event when it starts breaching or recovers, else
    /// `None`. Spans that ended before the window are let go.
    pub fn evaluate(&mut self, now: SystemTime) -> Option<AlertEvent> {
        let (value, samples) = self.value(now);
        let at = crate::clock::unix_nanos(now);
        let from =
            at.saturating_sub(u64::try_from(self.rule.window.as_nanos()).unwrap_or(u64::MAX));
        self.samples.retain(|s| s.end > from);
        let breaching = value.is_some_and(|v| v > self.rule.threshold);
        if breaching == self.breaching {
            return None;
        }
        self.breaching = breaching;
        let state = if breaching {
            self.rule.counters.breaches.fetch_add(1, Ordering::Relaxed);
            AlertState::Breached
        } else {
            self.rule
                .counters
                .recoveries
                .fetch_add(1, Ordering::Relaxed);
            AlertState::Recovered
        };
        Some(AlertEvent {
            rule: self.rule.name.clone(),
            metric: self.rule.metric,
            value: value.unwrap_or(0.0),
            threshold: self.rule.threshold,
            state,
            samples,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::{Span, Status};
    use super::{AlertRule, AlertState, Monitor};
    use crate::enrich::Value;
    use crate::record::SpanKind;

    const MIN: u64 = 60 * 1_000_000_000;

    fn at(minutes: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_secs(minutes * 60)
    }

    fn request(end_minute: u64, ms: u64, error: bool) -> Span {
        let end = crate::clock::unix_nanos(at(0)) + end_minute * MIN;
        Span {
            trace_id: 1,
            span_id: 1,
            parent_span_id: 0,
            parent_remote: false,
            name: "request".into(),
            kind: SpanKind::Server,
            start_unix_nanos: end - ms * 1_000_000,
            end_unix_nanos: end,
            status: if error {
                Status::Error("x".into())
            } else {
                Status::Unset
            },
            attributes: Vec::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn an_error_rate_breaches_once_and_recovers_once_as_the_window_slides() {
        let rule = AlertRule::error_rate("errors", 0.05, Duration::from_mins(15));
        let mut monitor = Monitor::new(rule.clone());
        for i in 0..10 {
            monitor.observe(&request(1, 10, i < 2));
        }
        let event = monitor.evaluate(at(2)).expect("20% > 5%");
        assert_eq!(event.state, AlertState::Breached);
        assert!((event.value - 0.2).abs() < 1e-12);
        assert_eq!(event.samples, 10);
        // Still breaching: no second call.
        assert_eq!(monitor.evaluate(at(3)), None);
        for _ in 0..10 {
            monitor.observe(&request(10, 10, false));
        }
        // 2 errors in 20: still above 5%.
        assert_eq!(monitor.evaluate(at(11)), None);
        // At minute 17 the failures of minute 1 left the window.
        let event = monitor.evaluate(at(17)).expect("recovered");
        assert_eq!(event.state, AlertState::Recovered);
        assert!(event.value.abs() < f64::EPSILON);
        assert_eq!(monitor.evaluate(at(18)), None);
        assert_eq!(rule.stats().breaches, 1);
        assert_eq!(rule.stats().recoveries, 1);
    }

    #[test]
    fn latency_and_cost_rules() {
        let window = Duration::from_mins(15);
        let mut mean = Monitor::new(AlertRule::mean_latency(
            "mean",
            Duration::from_secs(5),
            window,
        ));
        let mut p95 = Monitor::new(AlertRule::p95_latency(
            "p95",
            Duration::from_secs(5),
            window,
        ));
        for i in 0..100 {
            let ms = if i < 6 { 60_000 } else { 100 };
            mean.observe(&request(1, ms, false));
            p95.observe(&request(1, ms, false));
        }
        // Mean 3.69 s is under 5 s; the p95 (60 s) is over.
        assert_eq!(mean.evaluate(at(2)), None);
        assert_eq!(
            p95.evaluate(at(2)).map(|e| e.state),
            Some(AlertState::Breached)
        );

        let burn = AlertRule::cost_burn("burn", 10.0, window).model("gpt-4o");
        let mut monitor = Monitor::new(burn);
        let call = |cost: f64, model: &str| Span {
            parent_span_id: 9,
            attributes: vec![
                ("gen_ai.request.model".into(), Value::from(model)),
                ("llm.cost.total".into(), Value::from(cost)),
            ],
            ..request(1, 100, false)
        };
        // $2 in 15 minutes is $8/h; another model's calls do not count.
        monitor.observe(&call(2.0, "gpt-4o"));
        monitor.observe(&call(50.0, "other"));
        assert_eq!(monitor.evaluate(at(2)), None);
        monitor.observe(&call(1.0, "gpt-4o"));
        let event = monitor.evaluate(at(2)).expect("$12/h > $10/h");
        assert!((event.value - 12.0).abs() < 1e-9);
        assert_eq!(
            monitor.evaluate(at(20)).map(|e| e.state),
            Some(AlertState::Recovered)
        );
    }

    #[test]
    fn too_few_samples_do_not_breach() {
        let rule = AlertRule::error_rate("errors", 0.05, Duration::from_mins(1)).min_samples(5);
        let mut monitor = Monitor::new(rule);
        monitor.observe(&request(1, 10, true));
        assert_eq!(monitor.evaluate(at(1)), None);
        assert_eq!(monitor.value(at(1)), (None, 1));
    }
}
