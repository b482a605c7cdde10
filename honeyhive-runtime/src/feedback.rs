//! Feedback after the fact: a reference to a span that a frontend can hold as a string, and
//! scores, labels and comments recorded against it later, from any thread or process.
//!
//! ```
//! use honeyhive_runtime::{current_span_ref, feedback, trace, SpanRef};
//!
//! #[trace(event_type = "chain")]
//! fn answer(question: &str) -> (String, Option<SpanRef>) {
//!     // Hand the reference to the frontend with the answer.
//!     (format!("42, to {question}"), current_span_ref())
//! }
//!
//! # let recorder = honeyhive_runtime::testing::Recorder::start();
//! let (_, span_ref) = answer("why?");
//! let text = span_ref.expect("a sampled span").to_string(); // "hh1.<trace>.<span>"
//!
//! // Later, wherever the user clicks thumbs up (another thread, another process):
//! let span_ref: SpanRef = text.parse().expect("a span reference");
//! feedback(&span_ref).score(1.0).label("thumbs_up").comment("spot on").send();
//! # let spans = recorder.spans();
//! # let fb = spans.get("feedback user_feedback");
//! # assert_eq!(fb.f64("honeyhive_feedback.user_feedback"), Some(1.0));
//! # assert_eq!(spans.parent_of(fb).map(|p| p.name.as_ref()), Some("answer"));
//! ```
//!
//! # What is recorded
//!
//! The span the reference names was exported when it ended, so feedback cannot be added to
//! it. [`Feedback::send`] records a small child span of it instead, in the same trace, named
//! `feedback {name}`, of event type `evaluator`, always sampled. It belongs to that trace, not
//! to the scope that sends it: it carries the request id, session and user of the sender's
//! scope only when that scope is in the referenced trace (feedback sent during the request),
//! else none (a later request of another user does not stamp its own on it). It carries:
//!
//! - a `gen_ai.evaluation.result` event, as evaluators write it ([`crate::evaluate`]):
//!   `gen_ai.evaluation.name`, `gen_ai.evaluation.score.value`,
//!   `gen_ai.evaluation.score.label` and `gen_ai.evaluation.explanation` (the comment);
//! - `honeyhive_feedback.<name>` (the score, else the label), `honeyhive_feedback.label` (when
//!   there is a score too), `honeyhive_feedback.comment`, `honeyhive_feedback.<key>` for each
//!   [`Feedback::attribute`], and `honeyhive_metrics.<name>` (the score, else the label).
//!
//! # Backends
//!
//! When they are configured in the process that sends the feedback, it also goes, off the
//! caller's thread, to:
//!
//! - Phoenix ([`Builder::phoenix_annotations`](crate::Builder::phoenix_annotations)): a span
//!   annotation on the referenced span, `POST {phoenix}/v1/span_annotations?sync=true`,
//!   annotator kind `HUMAN`, the score, label and comment as its result and the attributes as
//!   its metadata.
//! - HoneyHive ([`Builder::with_honeyhive`](crate::Builder::with_honeyhive), or `HH_API_KEY`
//!   alone): `PUT {server_url}/events` with the API key, the event id of the referenced span
//!   ([`SpanRef::honeyhive_event_id`]) and the feedback as `feedback` (and the score as
//!   `metrics`).
//!
//! A small background thread sends them, one after another; a request the backend refuses or
//! does not answer is counted in [`stats`] and reported once on stderr, never propagated.
//! Dropping the [`Guard`](crate::Guard) waits for feedback still being sent (at most half its
//! shutdown timeout); [`flush`] waits for it too.

mod send;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use opentelemetry::{SpanId, TraceId};

use crate::context::State;
use crate::correlation::Correlation;
use crate::dynamic::{Parent, SpanBuilder};
use crate::enrich::Value;
use crate::evaluate::{EVENT, EXPLANATION, LABEL, NAME, SCORE};
use crate::propagation::{Remote, RemoteParent};
use crate::record::EventType;

pub(crate) use send::{Backends, HoneyHiveTarget, install, shutdown};
pub use send::{FeedbackStats, flush, stats};

/// The criterion feedback is recorded under when no [`Feedback::name`] is given.
pub const DEFAULT_NAME: &str = "user_feedback";

/// The version tag a [`SpanRef`] string starts with.
const VERSION: &str = "hh1";

/// A recorded span, by its trace id and span id: what feedback is tied to.
///
/// As text (`Display`, `FromStr`) it is `hh1.<32 hex digits of the trace id>.<16 hex digits of
/// the span id>`, 53 ASCII characters a frontend can keep next to the answer it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanRef {
    trace_id: TraceId,
    span_id: SpanId,
}

impl SpanRef {
    /// A reference to the span `span_id` of trace `trace_id`; `None` if either id is invalid
    /// (all zero).
    pub fn new(trace_id: TraceId, span_id: SpanId) -> Option<SpanRef> {
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID)
            .then_some(SpanRef { trace_id, span_id })
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The id HoneyHive's `PUT /events` is given for this span: the span id as a UUID, its
    /// eight bytes after eight zero bytes (`00000000-0000-0000-xxxx-xxxxxxxxxxxx`).
    pub fn honeyhive_event_id(&self) -> String {
        let hex = format!("{:016x}", u64::from_be_bytes(self.span_id.to_bytes()));
        format!("00000000-0000-0000-{}-{}", &hex[..4], &hex[4..])
    }
}

impl fmt::Display for SpanRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}.{:032x}.{:016x}",
            u128::from_be_bytes(self.trace_id.to_bytes()),
            u64::from_be_bytes(self.span_id.to_bytes())
        )
    }
}

/// Why a string is not a [`SpanRef`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseSpanRefError {
    /// Not three parts separated by `.`, starting with a version tag.
    Malformed,
    /// A version tag this build does not read (a reference from a newer version).
    UnknownVersion(String),
    /// The trace id is not 32 hex digits, or is all zero.
    TraceId,
    /// The span id is not 16 hex digits, or is all zero.
    SpanId,
}

impl fmt::Display for ParseSpanRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseSpanRefError::Malformed => write!(
                f,
                "not a span reference: expected `{VERSION}.<32 hex digits>.<16 hex digits>`"
            ),
            ParseSpanRefError::UnknownVersion(v) => write!(
                f,
                "span reference version `{v}` is not supported (this build reads `{VERSION}`)"
            ),
            ParseSpanRefError::TraceId => write!(
                f,
                "the trace id of a span reference must be 32 hex digits, not all zero"
            ),
            ParseSpanRefError::SpanId => write!(
                f,
                "the span id of a span reference must be 16 hex digits, not all zero"
            ),
        }
    }
}

impl std::error::Error for ParseSpanRefError {}

impl FromStr for SpanRef {
    type Err = ParseSpanRefError;

    fn from_str(s: &str) -> Result<SpanRef, ParseSpanRefError> {
        let mut parts = s.trim().split('.');
        let (Some(version), Some(trace), Some(span), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseSpanRefError::Malformed);
        };
        if version != VERSION {
            let tag = version.len() <= 8
                && version.starts_with("hh")
                && version[2..].bytes().all(|b| b.is_ascii_digit());
            return Err(if tag {
                ParseSpanRefError::UnknownVersion(version.to_owned())
            } else {
                ParseSpanRefError::Malformed
            });
        }
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u128::from_str_radix(s, 16).ok())
                .flatten()
                .filter(|&v| v != 0)
        };
        let trace_id = hex(trace, 32).ok_or(ParseSpanRefError::TraceId)?;
        let span_id = hex(span, 16).ok_or(ParseSpanRefError::SpanId)?;
        #[allow(clippy::cast_possible_truncation)] // 16 hex digits fit in 64 bits
        let span_id = span_id as u64;
        Ok(SpanRef {
            trace_id: TraceId::from(trace_id),
            span_id: SpanId::from(span_id),
        })
    }
}

/// The span current on this thread, if it is recorded (sampled): hand it out to tie feedback
/// to it later. `None` outside traced code, in an unsampled call, or with tracing off.
pub fn current_span_ref() -> Option<SpanRef> {
    let (trace_id, span_id) = crate::context::current_span_ids()?;
    SpanRef::new(trace_id, span_id)
}

/// Starts feedback on `span`: add a score, label or comment, then [`Feedback::send`].
pub fn feedback(span: &SpanRef) -> Feedback {
    Feedback {
        target: *span,
        name: Cow::Borrowed(DEFAULT_NAME),
        score: None,
        label: None,
        comment: None,
        attributes: Vec::new(),
    }
}

/// Puts the correlation of the scope back when dropped.
struct RestoreCorrelation(Option<Arc<Correlation>>);

impl Drop for RestoreCorrelation {
    fn drop(&mut self) {
        crate::correlation::replace(self.0.take());
    }
}

/// Feedback on one span; see [`feedback`] and the [module docs](self).
#[derive(Clone, Debug)]
#[must_use = "feedback is recorded only by `send`"]
pub struct Feedback {
    target: SpanRef,
    name: Cow<'static, str>,
    score: Option<f64>,
    label: Option<String>,
    comment: Option<String>,
    attributes: Vec<(String, Value)>,
}

impl Feedback {
    /// A score, e.g. 1 for thumbs up and 0 for thumbs down, or a rating. A score that is not
    /// finite (NaN, infinite) is ignored: no backend can store it.
    pub fn score(mut self, score: f64) -> Feedback {
        self.score = crate::evaluate::finite_score(score);
        self
    }

    /// A label, e.g. `"helpful"`.
    pub fn label(mut self, label: impl Into<String>) -> Feedback {
        self.label = Some(label.into());
        self
    }

    /// The user's words (`gen_ai.evaluation.explanation`, Phoenix's explanation).
    pub fn comment(mut self, comment: impl Into<String>) -> Feedback {
        self.comment = Some(comment.into());
        self
    }

    /// The criterion (default [`DEFAULT_NAME`], `"user_feedback"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Feedback {
        self.name = name.into();
        self
    }

    /// Anything else worth keeping with it (a user id, the UI that asked): a span attribute
    /// `honeyhive_feedback.<key>`, HoneyHive feedback field and Phoenix metadata.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Feedback {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// Records it (see the [module docs](self)) and queues it for the configured backends.
    /// Never blocks on the network and never fails: with tracing off, nothing is recorded.
    pub fn send(self) {
        self.record();
        send::enqueue(self);
    }

    /// The child span of the referenced span, with the result event and the keys.
    ///
    /// It belongs to the referenced trace, not to the scope that sends it (a later request,
    /// another user's session): it carries the current request id, session and user only when
    /// the current span is of that trace (feedback sent from within it), else none.
    fn record(&self) {
        let current = crate::context::current();
        let of_the_trace =
            current.state != State::Idle && TraceId::from(current.trace_id) == self.target.trace_id;
        if of_the_trace {
            self.record_in_scope();
            return;
        }
        // Outside the sender's correlation, which is back afterwards on every way out.
        let _restore = RestoreCorrelation(crate::correlation::replace(None));
        self.record_in_scope();
    }

    fn record_in_scope(&self) {
        let remote = Remote {
            parent: Some(RemoteParent {
                trace_id: self.target.trace_id,
                span_id: self.target.span_id,
                sampled: true,
                random_trace_id: false,
            }),
            ..Remote::default()
        };
        // Feedback is kept whatever the sampler says: someone asked for it to be recorded.
        crate::span::pin_next_roll(Some(crate::sampling::Pinned::Always));
        let mut span = SpanBuilder::new(format!("feedback {}", self.name))
            .event_type(EventType::Evaluator)
            .parent(Parent::Remote(&remote))
            .start();
        // Unused when no span rolled (no pipeline): it must not decide the next span here.
        crate::span::pin_next_roll(None);
        if !span.is_recording() {
            return;
        }
        let mut event = vec![(NAME, Value::from(self.name.to_string()))];
        if let Some(score) = self.score {
            event.push((SCORE, Value::Float(score)));
        }
        if let Some(label) = &self.label {
            event.push((LABEL, Value::from(label.as_str())));
        }
        if let Some(comment) = &self.comment {
            event.push((EXPLANATION, Value::from(comment.as_str())));
        }
        span.add_event(EVENT, event);
        for (key, value) in self.fields() {
            span.set_attribute(format!("honeyhive_feedback.{key}"), value);
        }
        if let Some(value) = self.value() {
            span.set_attribute(format!("honeyhive_metrics.{}", self.name), value);
        }
    }

    /// The score, else the label.
    fn value(&self) -> Option<Value> {
        match (self.score, &self.label) {
            (Some(score), _) => Some(Value::Float(score)),
            (None, Some(label)) => Some(Value::from(label.as_str())),
            (None, None) => None,
        }
    }

    /// The feedback as HoneyHive's fields: `<name>` (the score, else the label), `label`
    /// (when there is a score too), `comment`, then the attributes.
    fn fields(&self) -> Vec<(Cow<'_, str>, Value)> {
        let mut fields = Vec::new();
        if let Some(value) = self.value() {
            fields.push((Cow::Borrowed(self.name.as_ref()), value));
        }
        if let (Some(_), Some(label)) = (self.score, &self.label) {
            fields.push((Cow::Borrowed("label"), Value::from(label.as_str())));
        }
        if let Some(comment) = &self.comment {
            fields.push((Cow::Borrowed("comment"), Value::from(comment.as_str())));
        }
        for (key, value) in &self.attributes {
            fields.push((Cow::Borrowed(key.as_str()), value.clone()));
        }
        fields
    }
}
