//! The observer that evaluates an alert rule ([`Builder::alert`](crate::Builder::alert)) on
//! the export thread.
//!
//! Each trace's spans go into the rule's window as they arrive; the rule is evaluated at
//! every scheduled export (`tick`, with its `now`) and at each flush, and the callback is
//! called when it starts breaching and when it recovers. A panicking callback is caught and
//! counted in the rule's stats; the rule goes on being evaluated.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::SystemTime;

use super::observe::{Observer, SpanView};
use crate::analysis::alerts::{AlertEvent, AlertRule, Monitor};
use crate::analysis::{self, Span};
use crate::llm::{gen_ai, openinference};

/// What the user's callback is given each change of state.
pub(crate) type AlertCallback = Box<dyn FnMut(&AlertEvent) + Send>;

/// The attributes a rule reads ([`Span::model`], [`Span::cost_usd`]).
const KEYS: [&str; 4] = [
    gen_ai::REQUEST_MODEL,
    gen_ai::RESPONSE_MODEL,
    openinference::LLM_MODEL_NAME,
    openinference::LLM_COST_TOTAL,
];

/// Evaluates one rule.
pub(crate) struct AlertObserver {
    monitor: Monitor,
    callback: AlertCallback,
}

impl AlertObserver {
    pub(crate) fn new(rule: AlertRule, callback: AlertCallback) -> AlertObserver {
        AlertObserver {
            monitor: Monitor::new(rule),
            callback,
        }
    }

    fn evaluate(&mut self, now: SystemTime) {
        let Some(event) = self.monitor.evaluate(now) else {
            return;
        };
        let callback = &mut self.callback;
        if catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
            self.monitor.rule().count_panic();
        }
    }
}

/// The span with only what a rule reads: cheaper than all its attributes.
fn light(view: &SpanView<'_>) -> Span {
    Span {
        trace_id: view.trace_id(),
        span_id: view.span_id(),
        parent_span_id: view.parent_id(),
        parent_remote: view.parent_remote(),
        name: view.name().to_owned(),
        kind: view.kind(),
        start_unix_nanos: view.start_unix_nanos(),
        end_unix_nanos: view.end_unix_nanos(),
        status: analysis::status_of(view.status()),
        attributes: KEYS
            .iter()
            .filter_map(|&key| Some((key.to_owned(), analysis::value_of(view.attr(key)?))))
            .collect(),
        events: Vec::new(),
    }
}

impl Observer for AlertObserver {
    fn trace(&mut self, spans: &[SpanView<'_>]) {
        for view in spans {
            self.monitor.observe(&light(view));
        }
    }

    fn tick(&mut self, now: SystemTime) {
        self.evaluate(now);
    }

    fn flush(&mut self) {
        self.evaluate(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use super::AlertObserver;
    use crate::analysis::alerts::{AlertRule, AlertState};
    use crate::export::observe::Observer;

    #[test]
    fn ticks_call_back_on_changes_only_and_a_panic_is_counted() {
        let rule = AlertRule::error_rate("errors", 0.05, Duration::from_mins(1));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::clone(&seen);
        let mut observer = AlertObserver::new(
            rule.clone(),
            Box::new(move |event| {
                calls.lock().unwrap().push(event.state);
                panic!("a callback's bug");
            }),
        );
        let now = SystemTime::now();
        let failed = crate::analysis::Span {
            status: crate::analysis::Status::Error("x".into()),
            ..crate::analysis::Span {
                trace_id: 1,
                span_id: 1,
                parent_span_id: 0,
                parent_remote: false,
                name: "request".into(),
                kind: crate::record::SpanKind::Server,
                start_unix_nanos: crate::clock::unix_nanos(now) - 5,
                end_unix_nanos: crate::clock::unix_nanos(now),
                status: crate::analysis::Status::Unset,
                attributes: Vec::new(),
                events: Vec::new(),
            }
        };
        observer.monitor.observe(&failed);
        observer.tick(now);
        observer.tick(now + Duration::from_secs(1));
        // Past the window: recovered, once.
        observer.tick(now + Duration::from_mins(2));
        observer.tick(now + Duration::from_secs(121));
        assert_eq!(
            *seen.lock().unwrap(),
            [AlertState::Breached, AlertState::Recovered]
        );
        let stats = rule.stats();
        assert_eq!(
            (stats.breaches, stats.recoveries, stats.callback_panics),
            (1, 1, 2)
        );
    }
}
