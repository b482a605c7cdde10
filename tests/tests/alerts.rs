//! Alert rules (`Builder::alert`) on real spans: a callback once when a rule starts
//! breaching and once when it recovers, evaluated on the export thread; a panicking callback
//! caught and counted; and the window sliding by span timestamps and the `now` given to a
//! `Monitor`, never by sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use honeyhive_runtime::analysis::alerts::{AlertEvent, AlertRule, AlertState, Monitor};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{LlmCall, trace};

#[trace(event_type = "chain")]
fn checkout(fail: bool) -> Result<u32, String> {
    if fail {
        Err("payment declined".to_owned())
    } else {
        Ok(42)
    }
}

#[trace(event_type = "model", name = "chat")]
fn chat(model: &'static str, cost: f64) -> String {
    LlmCall::new(model)
        .provider("openai")
        .usage(1_000, 100)
        .cost_usd(cost)
        .record();
    format!("{model} answered")
}

type Seen = Arc<Mutex<Vec<AlertEvent>>>;

fn collect() -> (Seen, impl FnMut(&AlertEvent) + Send + 'static) {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    (seen, move |event: &AlertEvent| {
        sink.lock().unwrap().push(event.clone());
    })
}

fn states(seen: &Seen) -> Vec<AlertState> {
    seen.lock().unwrap().iter().map(|e| e.state).collect()
}

#[test]
fn an_error_rate_rule_calls_back_once_on_breach_and_once_on_recovery() {
    let rule = AlertRule::error_rate("checkout errors", 0.05, Duration::from_mins(15));
    let (seen, callback) = collect();
    let rec = Recorder::with(|b| b.alert(rule.clone(), callback));

    assert_eq!(checkout(false), Ok(42));
    assert_eq!(checkout(true), Err("payment declined".to_owned()));
    assert!(rec.guard().force_flush());
    assert_eq!(states(&seen), [AlertState::Breached]);
    {
        let seen = seen.lock().unwrap();
        let event = &seen[0];
        assert_eq!(event.rule, "checkout errors");
        assert!((event.value - 0.5).abs() < 1e-12, "{event:?}");
        assert!((event.threshold - 0.05).abs() < 1e-12);
        assert_eq!(event.samples, 2);
    }
    // Still breaching: no second call, however often it is evaluated.
    assert!(checkout(true).is_err());
    assert!(rec.guard().force_flush());
    assert!(rec.guard().force_flush());
    assert_eq!(states(&seen), [AlertState::Breached]);

    // 2 failures in 60 requests is 3.3%: recovered, once.
    for _ in 0..57 {
        assert_eq!(checkout(false), Ok(42));
    }
    assert!(rec.guard().force_flush());
    assert!(rec.guard().force_flush());
    assert_eq!(states(&seen), [AlertState::Breached, AlertState::Recovered]);
    // (A scheduled evaluation may have seen the recovery a few requests earlier.)
    let last = seen.lock().unwrap()[1].clone();
    assert!(last.value <= 0.05, "{last:?}");
    let stats = rule.stats();
    assert_eq!(
        (stats.breaches, stats.recoveries, stats.callback_panics),
        (1, 1, 0)
    );
    assert_eq!(rec.spans().len(), 60);
}

#[test]
fn a_panicking_callback_is_caught_and_counted_and_tracing_goes_on() {
    let rule = AlertRule::error_rate("errors", 0.05, Duration::from_mins(15));
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let rec = Recorder::with(|b| {
        b.alert(rule.clone(), move |_| {
            *counted.lock().unwrap() += 1;
            panic!("a bug in the alert callback");
        })
    });
    assert!(checkout(true).is_err());
    assert!(rec.guard().force_flush());
    assert_eq!(rule.stats().callback_panics, 1);
    // The rule is still evaluated: its recovery calls the callback (which panics again).
    for _ in 0..30 {
        assert_eq!(checkout(false), Ok(42));
    }
    assert!(rec.guard().force_flush());
    assert_eq!(*calls.lock().unwrap(), 2);
    let stats = rule.stats();
    assert_eq!(
        (stats.breaches, stats.recoveries, stats.callback_panics),
        (1, 1, 2)
    );
    // Nothing was lost, and the panics were not the exporters'.
    assert_eq!(rec.spans().len(), 31);
    assert_eq!(rec.guard().export_stats().exporter_panics, 0);
}

#[test]
fn a_cost_burn_rule_for_one_model_breaches_above_its_hourly_rate() {
    // $10/h over 15 minutes: $2.50 of gpt-4o in the window is the threshold.
    let rule = AlertRule::cost_burn("gpt-4o burn", 10.0, Duration::from_mins(15)).model("gpt-4o");
    let (seen, callback) = collect();
    let rec = Recorder::with(|b| b.alert(rule.clone(), callback));
    chat("gpt-4o", 1.0);
    chat("gpt-4o-mini", 50.0);
    assert!(rec.guard().force_flush());
    assert!(
        states(&seen).is_empty(),
        "$4/h of gpt-4o; the other model does not count"
    );
    chat("gpt-4o", 2.0);
    assert!(rec.guard().force_flush());
    assert_eq!(states(&seen), [AlertState::Breached]);
    let value = seen.lock().unwrap()[0].value;
    assert!((value - 12.0).abs() < 1e-9, "{value}");
}

#[test]
fn the_window_slides_with_span_timestamps_and_the_time_given() {
    // The same rules over recorded traces, evaluated at times we choose.
    let rec = Recorder::start();
    assert!(checkout(true).is_err());
    assert!(checkout(false).is_ok());
    chat("gpt-4o", 0.5);
    let traces = rec.spans().traces();
    let last_end = traces
        .iter()
        .flat_map(|t| &t.spans)
        .map(|s| s.end_unix_nanos)
        .max()
        .unwrap();
    let at =
        |after_last: Duration| SystemTime::UNIX_EPOCH + Duration::from_nanos(last_end) + after_last;

    let rule = AlertRule::error_rate("errors", 0.05, Duration::from_mins(15));
    let mut errors = Monitor::new(rule);
    let mut slow = Monitor::new(
        AlertRule::p95_latency("slow chat", Duration::from_nanos(1), Duration::from_mins(5))
            .span_name("chat"),
    );
    for trace in &traces {
        errors.observe_trace(trace);
        slow.observe_trace(trace);
    }
    let breach = errors
        .evaluate(at(Duration::from_mins(1)))
        .expect("1 in 3 failed");
    assert_eq!(breach.state, AlertState::Breached);
    assert_eq!(breach.samples, 3, "the roots: two checkouts and a chat");
    assert_eq!(errors.evaluate(at(Duration::from_mins(14))), None);
    // Sixteen minutes after the last span, the window is empty: recovered, once.
    let recovery = errors
        .evaluate(at(Duration::from_mins(16)))
        .expect("the failure left the window");
    assert_eq!(recovery.state, AlertState::Recovered);
    assert_eq!(recovery.samples, 0);
    assert_eq!(errors.evaluate(at(Duration::from_mins(17))), None);

    // Only the chat span, and its p95 is above 1 ns until it leaves its 5-minute window.
    assert_eq!(slow.value(at(Duration::ZERO)).1, 1);
    assert_eq!(
        slow.evaluate(at(Duration::ZERO)).map(|e| e.state),
        Some(AlertState::Breached)
    );
    assert_eq!(
        slow.evaluate(at(Duration::from_mins(6))).map(|e| e.state),
        Some(AlertState::Recovered)
    );
}
