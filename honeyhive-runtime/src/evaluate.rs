//! Evaluators: `#[trace(evaluate = path)]` scores each sampled call and records the result on
//! its trace, as OpenTelemetry `gen_ai.evaluation.result` events and HoneyHive metrics.
//!
//! ```
//! use honeyhive_runtime::evaluate::{EvalInput, Evaluation};
//! use honeyhive_runtime::trace;
//!
//! /// A sync evaluator: the captured inputs and the real output, by reference.
//! fn mentions_city(input: &EvalInput, output: &String) -> Evaluation {
//!     let city = input.text("city").unwrap_or_default();
//!     let hit = output.contains(city.as_ref());
//!     Evaluation::score(if hit { 1.0 } else { 0.0 }).with_label(if hit { "hit" } else { "miss" })
//! }
//!
//! /// An async evaluator (`async` in the list): it owns what it reads, and runs off the
//! /// caller's task, so a slow LLM judge never delays the caller.
//! async fn not_empty(input: EvalInput) -> bool {
//!     input.output_text().is_some_and(|o| !o.is_empty())
//! }
//!
//! #[trace(evaluate(mentions_city, async not_empty))]
//! fn forecast(city: &str) -> String {
//!     format!("Sunny in {city}")
//! }
//!
//! # let recorder = honeyhive_runtime::testing::Recorder::start();
//! assert_eq!(forecast("Paris"), "Sunny in Paris");
//! # assert!(honeyhive_runtime::evaluate::wait(std::time::Duration::from_secs(10)));
//! # let spans = recorder.spans();
//! # assert_eq!(spans.get("forecast").f64("honeyhive_metrics.mentions_city"), Some(1.0));
//! # assert_eq!(spans.get("not_empty").f64("honeyhive_metrics.not_empty"), Some(1.0));
//! ```
//!
//! # Signatures
//!
//! - A sync evaluator is `fn(&EvalInput, &T) -> R`, where `T` is the function's return type
//!   (the real value, `Result` and all; a generic `fn<T: ?Sized>(&EvalInput, &T)` fits any
//!   function) and `R` is an [`IntoEvaluation`]: an [`Evaluation`], an `f64` score, a `bool`,
//!   an `Option` of one (`None`: nothing to record) or a `Result` of one (`Err`: the evaluator
//!   failed). It runs on the caller's thread right after the body, and its result lands on the
//!   traced span itself.
//! - An async evaluator, written `async path` in `evaluate(..)`, is
//!   `fn(EvalInput) -> impl Future<Output = R> + Send + 'static`, e.g. an `async fn` taking an
//!   [`EvalInput`]. The arguments were moved into the body and the output goes back to the
//!   caller, so it reads both as the span captured them ([`EvalInput::text`],
//!   [`EvalInput::output_text`]); nothing needs to be `Clone`.
//!
//! # Where the results go
//!
//! Evaluators run only for sampled calls, after the body, and never change what it returns; a
//! panic or an `Err` in an evaluator is recorded (`error.type`, `exception.message` on the
//! result event) and goes no further. A panic is still the program's: the panic hook sees it
//! (a crash reporter hears of it, the default hook prints it), and a span it unwinds through
//! inside the evaluator (a judge's own traced call) records its message.
//!
//! A sync evaluator's result is a `gen_ai.evaluation.result` event on the traced span, with
//! `gen_ai.evaluation.name`, `gen_ai.evaluation.score.value`, `gen_ai.evaluation.score.label`
//! and `gen_ai.evaluation.explanation`, and the span gets `honeyhive_metrics.<name>` (the
//! score, else the label).
//!
//! An async evaluator runs as a child span of the traced span, named after the evaluator, of
//! event type `evaluator`; the same event and `honeyhive_metrics.<name>` are on that child.
//! It is spawned on the current tokio runtime when there is one (the `tokio` feature), else on
//! a small worker thread of ours. Either way evaluations run concurrently, each polled when it
//! is woken: a slow or hung judge (an HTTP call without a timeout) delays only itself, and
//! holds one slot and keeps [`wait`] waiting until it ends. Nothing times an evaluator out, as
//! nothing times the traced code out: give a judge's calls their own timeouts. An evaluator
//! that blocks its thread (a blocking HTTP client inside an `async fn`) holds up what shares
//! that thread, ours or the runtime's. Spans the evaluator opens (an LLM judge's own model
//! call) are its children. The trace's root waits a little for the child (the trace
//! assembler's linger for carried work, 500 ms); a child that ends later still reaches the
//! exporters, as a late part of its trace. At most [`MAX_PENDING`] evaluations run at once:
//! past that, an evaluation is not started, the traced span says so (`error.type =
//! "dropped"`) and [`dropped_evaluations`] counts it. An evaluation dropped before it finished
//! (its runtime shut down) is counted there too, and its child span says so (`error.type =
//! "cancelled"`). [`wait`] blocks until every started evaluation has finished (before the
//! guard drops, or in tests); [`wait_async`] is its async form.

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use futures_executor::ThreadPool;
use opentelemetry::trace::Event;
use opentelemetry::{Key, KeyValue, StringValue, Value};

use crate::capture::{capture_cap, caught, display_text};
use crate::carry::Carried;
use crate::context::{self, Current};
use crate::correlation;
use crate::record::{EventType, Meta, RootState, SpanRecord};
use crate::span::Span;

/// The event OpenTelemetry's GenAI conventions record an evaluation as.
pub const EVENT: &str = "gen_ai.evaluation.result";
/// The evaluator's name.
pub const NAME: &str = "gen_ai.evaluation.name";
/// The score.
pub const SCORE: &str = "gen_ai.evaluation.score.value";
/// The label.
pub const LABEL: &str = "gen_ai.evaluation.score.label";
/// The explanation.
pub const EXPLANATION: &str = "gen_ai.evaluation.explanation";

/// How many async evaluations may be running at once.
pub const MAX_PENDING: usize = 1024;

/// The result of one evaluator.
///
/// ```
/// use honeyhive_runtime::evaluate::Evaluation;
///
/// let e = Evaluation::score(0.75).with_label("relevant").with_explanation("cites the source");
/// assert_eq!(e.score, Some(0.75));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Evaluation {
    /// The name it is recorded under; `None`: the evaluator's (the last segment of its path).
    pub name: Option<Cow<'static, str>>,
    /// A score, e.g. in `[0, 1]`. A score that is not finite (NaN, infinite) is not recorded,
    /// as [`Feedback::score`](crate::feedback::Feedback::score) ignores one: no backend can
    /// store it.
    pub score: Option<f64>,
    /// A label, e.g. `"relevant"`.
    pub label: Option<String>,
    /// Why, in words.
    pub explanation: Option<String>,
}

impl Evaluation {
    /// An empty result: add a score, label or explanation.
    pub fn new() -> Evaluation {
        Evaluation::default()
    }

    /// A result with this score (none if it is not finite).
    pub fn score(score: f64) -> Evaluation {
        Evaluation {
            score: finite_score(score),
            ..Evaluation::default()
        }
    }

    /// A result with this label.
    pub fn label(label: impl Into<String>) -> Evaluation {
        Evaluation {
            label: Some(label.into()),
            ..Evaluation::default()
        }
    }

    /// Sets the score (none if it is not finite).
    #[must_use]
    pub fn with_score(mut self, score: f64) -> Evaluation {
        self.score = finite_score(score);
        self
    }

    /// Sets the label.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Evaluation {
        self.label = Some(label.into());
        self
    }

    /// Sets the explanation.
    #[must_use]
    pub fn with_explanation(mut self, explanation: impl Into<String>) -> Evaluation {
        self.explanation = Some(explanation.into());
        self
    }

    /// Records it under `name` rather than the evaluator's name.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Evaluation {
        self.name = Some(name.into());
        self
    }
}

/// A score as it is recorded: `None` for one that is not finite (NaN, infinite), which no
/// backend can store. The one rule for evaluators' and feedback's scores.
pub(crate) fn finite_score(score: f64) -> Option<f64> {
    score.is_finite().then_some(score)
}

/// Why an evaluator gave no result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvalError {
    /// `error.type`: the error's type name, `"panic"`, or `"dropped"`.
    pub type_name: Cow<'static, str>,
    /// `exception.message`.
    pub message: String,
}

/// What an evaluator may return.
#[diagnostic::on_unimplemented(
    message = "an evaluator cannot return `{Self}`",
    label = "the evaluator's result must be an `Evaluation`, `f64`, `f32`, `bool`, or an `Option` or `Result` of one",
    note = "return `honeyhive_runtime::evaluate::Evaluation::score(..)` to give a score, label and explanation"
)]
pub trait IntoEvaluation {
    /// The result (`Ok(None)`: nothing to record).
    ///
    /// # Errors
    /// When the evaluator failed.
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError>;
}

impl IntoEvaluation for Evaluation {
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError> {
        Ok(Some(self))
    }
}

impl IntoEvaluation for f64 {
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError> {
        Ok(Some(Evaluation::score(self)))
    }
}

impl IntoEvaluation for f32 {
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError> {
        Ok(Some(Evaluation::score(f64::from(self))))
    }
}

/// A pass or fail: score 1 or 0, label `"pass"` or `"fail"`.
impl IntoEvaluation for bool {
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError> {
        Ok(Some(
            Evaluation::score(if self { 1.0 } else { 0.0 }).with_label(if self {
                "pass"
            } else {
                "fail"
            }),
        ))
    }
}

impl<T: IntoEvaluation> IntoEvaluation for Option<T> {
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError> {
        self.map_or(Ok(None), IntoEvaluation::into_evaluation)
    }
}

impl<T: IntoEvaluation, E: Display> IntoEvaluation for Result<T, E> {
    fn into_evaluation(self) -> Result<Option<Evaluation>, EvalError> {
        match self {
            Ok(v) => v.into_evaluation(),
            Err(e) => Err(EvalError {
                type_name: Cow::Borrowed(short_type_name::<E>()),
                message: display_text(&e, capture_cap()).as_str().to_owned(),
            }),
        }
    }
}

/// `my_crate::Error` for `my_crate::errors::Error`: as `exception.type` names error types.
fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    head.rsplit("::").next().unwrap_or(head)
}

/// What an evaluator reads: the call's arguments and output as its span captured them
/// (`honeyhive_inputs.<arg>`, `honeyhive_outputs.result`: text as text, numbers typed, other
/// values as their `Debug`, each cut at the capture cap). Skipped arguments (`skip`,
/// `skip_all`) and a skipped output (`skip_output`) are not here.
#[derive(Clone, Debug, Default)]
pub struct EvalInput {
    span_name: Cow<'static, str>,
    inputs: Vec<(String, Value)>,
    output: Option<Value>,
}

impl EvalInput {
    /// An input of your own, e.g. to test an evaluator.
    ///
    /// ```
    /// use honeyhive_runtime::evaluate::EvalInput;
    ///
    /// let input = EvalInput::new("answer").with_input("question", "Why?").with_output("Because.");
    /// assert_eq!(input.text("question").as_deref(), Some("Why?"));
    /// assert_eq!(input.output_text().as_deref(), Some("Because."));
    /// ```
    pub fn new(span_name: impl Into<Cow<'static, str>>) -> EvalInput {
        EvalInput {
            span_name: span_name.into(),
            ..EvalInput::default()
        }
    }

    /// Adds an argument.
    #[must_use]
    pub fn with_input(mut self, name: impl Into<String>, value: impl Into<Value>) -> EvalInput {
        self.inputs.push((name.into(), value.into()));
        self
    }

    /// Sets the output.
    #[must_use]
    pub fn with_output(mut self, value: impl Into<Value>) -> EvalInput {
        self.output = Some(value.into());
        self
    }

    /// The name of the traced span.
    pub fn span_name(&self) -> &str {
        &self.span_name
    }

    /// The argument `name` as captured, if it was.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.inputs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The argument `name` as text (a number or `Debug` value as it was written).
    pub fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(Value::as_str)
    }

    /// Every captured argument, in the order of the signature.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.inputs.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The output as captured (for a `Result`, the `Ok` value; none for an `Err`).
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }

    /// The output as text.
    pub fn output_text(&self) -> Option<Cow<'_, str>> {
        self.output.as_ref().map(Value::as_str)
    }

    fn from_record(record: &SpanRecord) -> EvalInput {
        let mut input = EvalInput::new(Cow::Borrowed(record.meta.name));
        if let Some(name) = &record.name {
            input.span_name.clone_from(name);
        }
        for kv in &record.attrs {
            let key = kv.key.as_str();
            if let Some(arg) = key.strip_prefix("honeyhive_inputs.") {
                input.inputs.push((arg.to_owned(), kv.value.clone()));
            } else if key == "honeyhive_outputs.result" {
                input.output = Some(kv.value.clone());
            }
        }
        input
    }
}

/// Records an outcome: the result event and `honeyhive_metrics.<name>`, or the failure.
fn record_outcome(
    record: &mut SpanRecord,
    name: &'static str,
    metric_key: &'static str,
    outcome: Result<Option<Evaluation>, EvalError>,
) {
    let (event_attrs, metric) = match outcome {
        Ok(None) => return,
        Ok(Some(e)) => {
            let (name, metric_key) = match e.name {
                Some(custom) => {
                    let key = Key::from(format!("honeyhive_metrics.{custom}"));
                    (StringValue::from(custom), key)
                }
                None => (StringValue::from(name), Key::from_static_str(metric_key)),
            };
            let mut attrs = vec![KeyValue::new(NAME, Value::String(name))];
            let mut metric = None;
            // The fields are public: a score set on one directly is checked here.
            if let Some(score) = e.score.and_then(finite_score) {
                attrs.push(KeyValue::new(SCORE, Value::F64(score)));
                metric = Some(KeyValue::new(metric_key.clone(), Value::F64(score)));
            }
            if let Some(label) = e.label {
                let label = StringValue::from(label);
                attrs.push(KeyValue::new(LABEL, Value::String(label.clone())));
                metric = metric.or(Some(KeyValue::new(metric_key, Value::String(label))));
            }
            if let Some(explanation) = e.explanation {
                attrs.push(KeyValue::new(EXPLANATION, Value::from(explanation)));
            }
            (attrs, metric)
        }
        Err(e) => (
            vec![
                KeyValue::new(NAME, Value::from(name)),
                KeyValue::new("error.type", Value::from(e.type_name)),
                KeyValue::new("exception.message", Value::from(e.message)),
            ],
            None,
        ),
    };
    record.events.push(Event::new(
        EVENT,
        std::time::SystemTime::now(),
        event_attrs,
        0,
    ));
    if let Some(metric) = metric {
        record.attrs.push(metric);
    }
}

/// A panic in an evaluator, as a failure.
fn panicked(message: String) -> EvalError {
    EvalError {
        type_name: Cow::Borrowed("panic"),
        message,
    }
}

/// What `evaluate = path` names, for a sync evaluator.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an evaluator must be a function `fn(&EvalInput, &{T}) -> R`, given the captured inputs and the output",
    label = "expected `fn(&honeyhive_runtime::evaluate::EvalInput, &{T}) -> R`",
    note = "`R` is an `Evaluation`, `f64`, `bool`, or an `Option` or `Result` of one; for an async evaluator taking an owned `EvalInput`, write `evaluate(async path)`"
)]
pub trait SyncEvaluator<T: ?Sized> {
    /// What it returns.
    type Output: IntoEvaluation;
    /// Runs it.
    fn hh_evaluate(self, input: &EvalInput, output: &T) -> Self::Output;
}

impl<T: ?Sized, F, R> SyncEvaluator<T> for F
where
    F: FnOnce(&EvalInput, &T) -> R,
    R: IntoEvaluation,
{
    type Output = R;
    fn hh_evaluate(self, input: &EvalInput, output: &T) -> R {
        self(input, output)
    }
}

/// What `evaluate(async path)` names.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an async evaluator must be a function `fn(EvalInput) -> impl Future<Output = R> + Send + 'static`",
    label = "expected an `async fn(honeyhive_runtime::evaluate::EvalInput) -> R`",
    note = "`R` is an `Evaluation`, `f64`, `bool`, or an `Option` or `Result` of one; a sync evaluator `fn(&EvalInput, &T) -> R` is written without `async`"
)]
pub trait AsyncEvaluator {
    /// The future it returns.
    type Future: Future<Output: IntoEvaluation> + Send + 'static;
    /// Starts it.
    fn hh_start(self, input: EvalInput) -> Self::Future;
}

impl<F, Fut> AsyncEvaluator for F
where
    F: FnOnce(EvalInput) -> Fut,
    Fut: Future<Output: IntoEvaluation> + Send + 'static,
{
    type Future = Fut;
    fn hh_start(self, input: EvalInput) -> Fut {
        self(input)
    }
}

/// The evaluators of one call, run by the expansion after the body, only for a recorded span.
#[doc(hidden)]
#[derive(Debug)]
pub struct Evaluations<'a> {
    span: &'a mut Span,
    input: EvalInput,
}

impl<'a> Evaluations<'a> {
    /// `None` when the span is not recorded: then nothing is evaluated.
    #[inline]
    pub fn new(span: &'a mut Span) -> Option<Evaluations<'a>> {
        let input = EvalInput::from_record(span.recording()?);
        Some(Evaluations { span, input })
    }

    /// Runs a sync evaluator now; its result goes on the span.
    pub fn run<T: ?Sized>(
        &mut self,
        evaluator: impl SyncEvaluator<T>,
        name: &'static str,
        metric_key: &'static str,
        output: &T,
    ) {
        let outcome = match caught(|| evaluator.hh_evaluate(&self.input, output)) {
            Ok(r) => caught(|| r.into_evaluation()).unwrap_or_else(|m| Err(panicked(m))),
            Err(message) => Err(panicked(message)),
        };
        if let Some(record) = self.span.recording() {
            record_outcome(record, name, metric_key, outcome);
        }
    }

    /// Starts an async evaluator as a child span, off the caller's task.
    pub fn spawn(
        &mut self,
        evaluator: impl AsyncEvaluator,
        name: &'static str,
        metric_key: &'static str,
    ) {
        let Some(scope) = self.span.scope_inner() else {
            return;
        };
        if !Pending::get().enter() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            if let Some(record) = self.span.recording() {
                let message = format!("{MAX_PENDING} evaluations were running already");
                let error = EvalError {
                    type_name: Cow::Borrowed("dropped"),
                    message,
                };
                record_outcome(record, name, metric_key, Err(error));
            }
            return;
        }
        let slot = PendingSlot;
        let mut child = open_child(scope, name);
        let input = self.input.clone();
        let future = match caught(|| evaluator.hh_start(input)) {
            Ok(future) => future,
            Err(message) => {
                if let Some(record) = child.recording() {
                    record_outcome(record, name, metric_key, Err(panicked(message)));
                }
                drop(child);
                drop(slot);
                return;
            }
        };
        let task = EvalTask {
            future: Some(Box::pin(future)),
            child: Some(child),
            slot: Some(slot),
            name,
            metric_key,
        };
        // Request id, session and user follow into the task; the span is the child's.
        let carried = Carried::from_parts(Current::IDLE, correlation::current());
        run_elsewhere(Box::pin(carried.instrument(task)));
    }
}

/// One async evaluation: its future, polled with its child span current, and the slot it
/// holds. Its result goes on the child; dropped before it finished (its runtime shut down, or
/// it could not be sent to our worker), it is recorded as cancelled and counted in
/// [`dropped_evaluations`]. Either way the child ends before the slot is freed, so that what
/// [`wait`] waited for has reached the exporters' queue.
struct EvalTask<F> {
    future: Option<Pin<Box<F>>>,
    child: Option<Span>,
    slot: Option<PendingSlot>,
    name: &'static str,
    metric_key: &'static str,
}

impl<F: Future<Output: IntoEvaluation>> Future for EvalTask<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let (Some(child), Some(future)) = (this.child.as_mut(), this.future.as_mut()) else {
            return Poll::Ready(());
        };
        // A panic while polling (or in the result's conversion) is the evaluator's outcome.
        let scope = child.poll_scope();
        let outcome = match caught(|| future.as_mut().poll(cx)) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(r)) => {
                caught(|| r.into_evaluation()).unwrap_or_else(|m| Err(panicked(m)))
            }
            Err(message) => Err(panicked(message)),
        };
        drop(scope);
        this.finish(outcome);
        Poll::Ready(())
    }
}

impl<F> EvalTask<F> {
    /// Records the outcome and ends the child, after the evaluator's future is gone (spans it
    /// still holds, a cancelled judge's own call, end first), then frees the slot.
    fn finish(&mut self, outcome: Result<Option<Evaluation>, EvalError>) {
        if let Some(future) = self.future.take() {
            // Its drop is the evaluator's code; a panic there must not reach our worker.
            let _ = caught(move || drop(future));
        }
        if let Some(mut child) = self.child.take() {
            if let Some(record) = child.recording() {
                record_outcome(record, self.name, self.metric_key, outcome);
            }
            drop(child);
        }
        drop(self.slot.take());
    }
}

impl<F> Drop for EvalTask<F> {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        DROPPED.fetch_add(1, Ordering::Relaxed);
        if let Some(record) = self.child.as_mut().and_then(Span::recording) {
            record.attr("honeyhive.cancelled", Value::Bool(true));
        }
        let cancelled = EvalError {
            type_name: Cow::Borrowed("cancelled"),
            message: "the evaluation was dropped before it finished".to_owned(),
        };
        self.finish(Err(cancelled));
    }
}

/// The child span an async evaluator runs in, opened under the traced span. The trace's root
/// is told its scope was carried elsewhere, so the assembler waits a little for the child.
fn open_child(scope: Current, name: &'static str) -> Span {
    let prev = context::replace(scope);
    crate::span::note_carried();
    let mut child = Span::detached(&EVALUATOR);
    context::set(prev);
    if let Some(record) = child.recording() {
        record.name = Some(Cow::Borrowed(name));
    }
    child
}

static EVALUATOR: Meta = Meta {
    name: "evaluate",
    event_type: EventType::Evaluator,
    sample_rate: None,
    attr_capacity: 4,
    root: RootState::new(),
};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// On the current tokio runtime if there is one, else on our worker thread.
fn run_elsewhere(task: Task) {
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        drop(handle.spawn(task));
        return;
    }
    worker_send(task);
}

/// Runs `task` on our worker thread, where evaluations run concurrently (each is polled when
/// it is woken), so a slow or hung one holds only its own slot.
fn worker_send(task: Task) {
    static WORKER: OnceLock<Option<ThreadPool>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        ThreadPool::builder()
            .pool_size(1)
            .name_prefix("honeyhive-evaluate-")
            .create()
            .ok()
    });
    // Without a worker the task is dropped here: that ends its child span as cancelled,
    // counts it and frees its slot.
    if let Some(worker) = worker {
        worker.spawn_ok(task);
    }
}

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Async evaluations that gave no result because they were not started ([`MAX_PENDING`] were
/// running, or the worker thread could not start) or were dropped before they finished (the
/// tokio runtime they ran on shut down), since the process began. A dropped one's child span
/// ends with `honeyhive.cancelled` and a result event with `error.type = "cancelled"`.
pub fn dropped_evaluations() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Async evaluations started and not yet finished.
pub fn pending() -> usize {
    Pending::get().count.load(Ordering::Acquire)
}

/// Blocks until every async evaluation started so far has finished, or `timeout` passed;
/// returns whether they all finished. Call it before dropping the guard so that their results
/// are exported, and in tests before reading spans. Not from inside a current-thread tokio
/// runtime whose tasks the evaluations are (they could not run meanwhile): await
/// [`wait_async`] there.
pub fn wait(timeout: Duration) -> bool {
    let pending = Pending::get();
    let deadline = crate::clock::after(timeout);
    let mut lock = pending.lock();
    while pending.count.load(Ordering::Acquire) > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        lock = pending
            .done
            .wait_timeout(lock, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    true
}

/// Completes when every async evaluation started so far has finished: [`wait`] for async
/// code, which lets the evaluations run on the same runtime meanwhile (a current-thread one
/// too). It has no timeout of its own; give it your runtime's, e.g.
/// `tokio::time::timeout(Duration::from_secs(10), evaluate::wait_async())`.
///
/// ```
/// # use honeyhive_runtime::evaluate::{self, EvalInput};
/// # use honeyhive_runtime::trace;
/// async fn judge(_: EvalInput) -> f64 {
///     1.0
/// }
///
/// #[trace(evaluate(async judge))]
/// async fn answer() -> u32 {
///     42
/// }
///
/// # let recorder = honeyhive_runtime::testing::Recorder::start();
/// // Any executor; on a current-thread tokio runtime, `judge` runs on this thread meanwhile.
/// futures_executor::block_on(async {
///     answer().await;
///     evaluate::wait_async().await;
/// });
/// # assert_eq!(evaluate::pending(), 0);
/// # assert_eq!(recorder.spans().get("judge").f64("honeyhive_metrics.judge"), Some(1.0));
/// ```
pub fn wait_async() -> impl Future<Output = ()> + Send + Unpin + 'static {
    WaitAll { id: None }
}

/// The future [`wait_async`] returns; `id`: its waker's entry, while it has one.
struct WaitAll {
    id: Option<u64>,
}

impl Future for WaitAll {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let pending = Pending::get();
        if pending.count.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        // Checked again under the lock the last slot is freed under: no wake-up is lost.
        let mut waiters = pending.lock();
        if pending.count.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        let id = *self.id.get_or_insert_with(|| {
            waiters.next_id += 1;
            waiters.next_id
        });
        match waiters.wakers.iter_mut().find(|(i, _)| *i == id) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => waiters.wakers.push((id, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for WaitAll {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            Pending::get().lock().wakers.retain(|(i, _)| *i != id);
        }
    }
}

/// The running evaluations.
struct Pending {
    count: AtomicUsize,
    waiters: Mutex<Waiters>,
    done: Condvar,
}

/// The tasks awaiting [`wait_async`], woken when the last evaluation finishes.
struct Waiters {
    next_id: u64,
    wakers: Vec<(u64, Waker)>,
}

impl Pending {
    fn get() -> &'static Pending {
        static PENDING: Pending = Pending {
            count: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters {
                next_id: 0,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        };
        &PENDING
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot, if one is free.
    fn enter(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PENDING).then_some(n + 1)
            })
            .is_ok()
    }
}

/// A running evaluation's slot, freed when its task ends or is dropped.
struct PendingSlot;

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let pending = Pending::get();
        let mut waiters = pending.lock();
        let woken = if pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            std::mem::take(&mut waiters.wakers)
        } else {
            Vec::new()
        };
        pending.done.notify_all();
        drop(waiters);
        // Woken outside the lock: a waker may run its task's poll right here.
        for (_, waker) in woken {
            waker.wake();
        }
    }
}
