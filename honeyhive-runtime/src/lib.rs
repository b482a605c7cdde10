//! Trace LLM applications the way the HoneyHive SDK does, on OpenTelemetry, at a few
//! nanoseconds per call.
//!
//! ```
//! use honeyhive_runtime::trace;
//!
//! #[trace(event_type = "tool")]
//! fn retrieve(question: &str) -> Vec<String> {
//!     vec![format!("doc about {question}")]
//! }
//!
//! #[trace(event_type = "chain")]
//! async fn answer(question: &str) -> Result<String, std::io::Error> {
//!     let docs = retrieve(question);
//!     Ok(format!("{} docs", docs.len()))
//! }
//!
//! // In `main`: keep the guard alive; dropping it flushes and stops tracing.
//! let _guard = honeyhive_runtime::init();
//! ```
//!
//! With nothing configured, each finished trace is printed to stdout as a waterfall. Set
//! `OTEL_EXPORTER_OTLP_ENDPOINT` to send spans to any OTLP backend (Phoenix, Jaeger, a
//! collector), or `HH_API_KEY` to send them to HoneyHive. See [`Builder`] for every setting.
//!
//! # What `#[trace]` records
//!
//! One span per call, named after the function (or `name = "..."`), with
//! `honeyhive_event_type` (the event name is the span name; `honeyhive_duration_ms` goes to
//! HoneyHive, see [`Conventions`]). Arguments are
//! recorded as `honeyhive_inputs.<arg>` and the return value as `honeyhive_outputs.result`:
//! strings as their text, numbers and bools as typed values, anything else through `Debug`,
//! each cut at a byte cap (8 KiB by default) with a visible `…[truncated N bytes]` marker
//! (`…[truncated N+ bytes]` when formatting stopped at the cap, so the rest was never
//! formatted: capturing any value costs about the cap's worth of formatting). A `Debug` or
//! `Display` impl that panics while its value is captured is recorded as
//! `<panicked while formatting: message>`; the call goes on unchanged.
//! An `Err` return marks the same span as ERROR with an `exception` event
//! (`exception.type`, `exception.message`) and `honeyhive_error`. A panic marks it ERROR with
//! the panic message and keeps unwinding. Nothing is captured, formatted or allocated for a
//! span that is not sampled.
//!
//! | argument | meaning |
//! |---|---|
//! | `name = "..."` | span name (default: the function's name) |
//! | `event_type = "model"` | `model`, `tool` (default), `chain`, `session`, `agent`, `retriever`, `embedding`, `evaluator`, `guardrail` |
//! | `sample_rate = 0.25` | keep this fraction of calls, with their whole subtree |
//! | `skip(a, b)`, `skip_all`, `skip_output` | what is not captured |
//! | `metadata(key = expr, ...)` | extra attributes `honeyhive_metadata.<key>`, evaluated only when recorded |
//! | `evaluate = path`, `evaluate(a, async b)` | evaluators scoring each sampled call (see [`evaluate`]) |
//! | `resources` | CPU time and resident memory per sampled call (see [`resources`]) |
//! | `crate = "path"` | where `honeyhive_runtime` is, if renamed |
//!
//! Function shapes:
//! - A sync fn returning `impl Future<Output = T>` (with `Send`, `Sync` and lifetimes),
//!   `Pin<Box<dyn Future<..>>>` or a `BoxFuture<..>` alias is traced like an `async fn`: the
//!   span covers the returned future's execution, spans opened inside it are its children, and
//!   `#[with_request_id]` reaches them. Other bounds on the future (`Unpin`, a trait of
//!   yours) are a compile error, since the wrapper could not promise them.
//! - Token streams: `impl Iterator` (and `DoubleEndedIterator`, `ExactSizeIterator`,
//!   `FusedIterator`, bare or under `std::iter`) and `impl Stream` (bare, or as `futures`,
//!   `futures_core`, `futures_util` or `tokio_stream` name it) keep the span open until the
//!   stream ends. A bare `Stream` that is a trait of your own is told apart by the returned
//!   value's type: a value that is not a `futures_core::Stream` is returned unchanged.
//! - `#[track_caller]` keeps working: the body of a sync `#[track_caller]` fn runs inline
//!   rather than in a closure, with its `return` and `?` (on `Result` and `Option`) rewritten
//!   to pass through the output capture (and, under `#[retry]`, to end only the attempt), in
//!   macros' arguments too (`vec![load()?]`, `format!("{}", f()?)`). A `return` that a macro
//!   writes itself (`anyhow::bail!`) leaves the function directly: the span still ends, without
//!   the value, and `#[retry]` makes no further attempt; write `return Err(anyhow!(..))`.
//! - A unit fn whose body diverges (`panic!`, `loop {}`, `process::exit`) is traced like any other.
//! - Inner attributes at the top of a body (`#![allow(..)]`) apply to the function, as
//!   without `#[trace]` (they become its outer attributes). Arguments under `#[cfg(..)]` are
//!   recorded when configured in and never named when configured out. A body that is one
//!   expression (`{ x }`) gets no `unused_braces` warning.
//! - Recording runs inside the span in every shape: a traced call made by an argument's or
//!   the output's `Debug`, or by a sync evaluator, is the span's child, and an `enrich_span`
//!   there lands on the span, in async fns and fns returning futures as in sync fns.
//! - Arguments named `_x` are captured; `_` and arguments bound by patterns are not.
//! - `#[trace]` is ours when written bare, as `honeyhive_runtime::trace`, or under the path
//!   given with `crate = ".."`; never by its last segment alone (`#[other::trace]` is not).
//!   `#[trace]` twice on one fn is an error; `#[trace] #[retry] #[trace]` is a span per call
//!   around a span per attempt.
//!
//! # Beyond `#[trace]`
//!
//! - [`macro@with_request_id`] gives every span of a scope a request id (inherited, from an
//!   argument, from incoming headers, or generated); [`Scope`] sets sessions and users; see
//!   also [`Carried`], [`bind_current`], [`spawn`] and [`propagation`] to carry context into
//!   tasks, threads and other services.
//! - [`macro@retry`] retries with backoff and records every attempt on the trace; see
//!   [`retry`](mod@retry).
//! - [`sampling`]: per-function rates, rules, adaptive and tail sampling.
//! - [`LlmCall`], [`enrich_span`] and [`enrich_session`] record LLM calls, tokens, cost and
//!   feedback; [`redact`] keeps secrets out.
//! - [`integrations`]: a tower layer for servers (axum, tonic; feature `tower`) and a
//!   reqwest-middleware middleware for clients (feature `reqwest`).
//! - [`testing::Recorder`] captures finished spans in your own tests.
//!
//! # Explanation
//!
//! `#[trace]` on a sync function keeps the signature and wraps the body:
//!
//! ```ignore
//! fn retrieve(question: &str) -> Vec<String> {
//!     static __HH_META: Meta = Meta { name: "retrieve", event_type: EventType::Tool, .. };
//!     let mut __hh_span = Span::enter(&__HH_META);   // sampling decision, current span
//!     if let Some(rec) = __hh_span.recording() {       // only when sampled
//!         rec.attr("honeyhive_inputs.question", capture(&question));
//!     }
//!     let __hh_ret = call_once(move || { /* the original body */ });
//!     // Two generic calls; which kinds of value and error they record is picked here:
//!     ok_kind(&__hh_ret).record(&mut __hh_span, &__hh_ret);  // honeyhive_outputs.result
//!     err_kind(&__hh_ret).record(&mut __hh_span, &__hh_ret); // Err: status, exception event
//!     __hh_ret                                          // the span ends when __hh_span drops
//! }
//! ```
//!
//! An `async fn` becomes a plain fn returning its traced future, which behaves as the
//! `async fn`'s did: nothing runs at the call; the first poll opens the span (its parent is
//! what is current there), records the arguments and starts the body, each argument is
//! moved into the body and dropped when it is done, and the span is current only while the
//! body is polled and while the arguments and the output are recorded, so it follows the
//! task across `.await` points and threads:
//!
//! ```ignore
//! fn answer(question: &str) -> impl Future<Output = Result<String, Error>> {
//!     static __HH_META: Meta = Meta { name: "answer", .. };
//!     TracedCall::new(
//!         &__HH_META,
//!         move |__hh_span: &mut Span| {                 // at the first poll
//!             /* record the arguments on __hh_span */
//!             async move { let question = question; /* the original body */ }
//!         },
//!         |__hh_span, __hh_ret| { /* record the output */ __hh_ret }, // when it is done
//!     )
//! }
//! ```
//!
//! That is one coroutine per traced fn (the body's) instead of two (the fn's own around the
//! body's), for compile time. The `impl Future` is written by the macro, so it captures every
//! lifetime in scope as an `async fn`'s future does, also in a crate on the 2021 edition;
//! rustdoc shows the fn as returning `impl Future<Output = ..>`. An `async fn` with another
//! attribute below `#[trace]` (`#[tokio::test]`, `#[retry]`, `#[with_request_id]`) stays an
//! `async fn`: its span opens in its first poll and awaits the body through `Scoped::run`.
//!
//! The span itself is a small record owned by the caller (recycled from earlier spans of the
//! same thread); it is moved to a per-thread buffer when it ends and handed to a background
//! thread when the thread leaves traced code. That thread assembles whole traces, renders the
//! LLM conventions and redaction, writes OTLP protobuf straight from the records (or builds
//! OpenTelemetry `SpanData` for other exporters), and hands the records back to their thread,
//! so no `SpanData`, wall-clock time or `Context` is built on the caller's thread.

// Span records are boxed once, by the span that owns them, and then only moved between lists
// (thread buffer, queue, assembler, back to their thread for reuse) as pointers.
#![allow(clippy::vec_box)]

pub mod analysis;
mod capture;
mod carry;
mod clock;
mod config;
mod context;
mod correlation;
mod dynamic;
pub mod enrich;
pub mod evaluate;
mod expand_support;
pub mod export;
pub mod feedback;
pub mod integrations;
pub mod llm;
pub mod metrics;
pub mod propagation;
mod record;
pub mod redact;
pub mod resources;
pub mod retry;
mod rng;
pub mod sampling;
mod secrets;
mod sink;
mod span;
mod stream;
pub mod testing;
#[cfg(feature = "tracing")]
#[path = "integrations/tracing.rs"]
pub mod tracing;

#[doc(inline)]
pub use honeyhive_macros::{retry, trace, with_request_id};

#[cfg(feature = "tokio")]
pub use carry::spawn;
pub use carry::{Carried, FutureExt, WithContext, bind_current};
pub use config::{
    Builder, DEFAULT_SERVER_URL, ExporterKind, Guard, InitError, Settings, ShutdownFuture, init,
};
pub use context::{current_span_ids, otel_context};
pub use correlation::{
    MAX_REQUEST_ID_LEN, RequestId, RequestIdCarrier, RequestIdSource, Scope, ScopeGuard,
    WithCorrelation, current_request_id, current_session_id, current_user_id, is_valid_request_id,
    new_request_id,
};
pub use dynamic::{ActiveSpan, Entered, InstrumentedBy, Parent, SpanBuilder, SpanKind};
pub use enrich::{Enrich, Value, enrich_session, enrich_span};
pub use export::{ExportStats, ShutdownReport, dropped_spans, export_stats};
pub use feedback::{SpanRef, current_span_ref, feedback};
pub use llm::{
    Conventions, Document, LlmCall, Message, ToolCall, ToolDefinition, record_documents,
    record_llm, record_tool_call,
};
pub use span::EventType;

/// Not public API. Referenced by macro-generated code.
#[doc(hidden)]
pub mod __private {
    // Hygienic names for the expansion, however the user's code shadows the prelude's.
    pub use crate::capture::{
        Capture, DebugProbe, ErrDebugProbe, ErrDisplayProbe, ErrOpaqueProbe, NumberProbe, TextProbe,
    };
    pub use crate::correlation::{CorrelationGuard, Policy, WithCorrelation, with_request_id};
    pub use crate::evaluate::{AsyncEvaluator, Evaluations, SyncEvaluator};
    pub use crate::expand_support::{
        Branch, ClassifyFn, FromResidual, IsStream, MaybeStream, MetadataValue, NotStream,
        NotStreamProbe, Returned, Scoped, ScopedRun, StreamProbe, TracedCall, TracedFuture, WhenFn,
        eval_metadata, fake, future_body, future_value, iter_body, iter_value, pass, probes,
        retry_classify, retry_when,
    };
    pub use crate::record::RootState;
    pub use crate::resources::{PollCpu, Usage};
    pub use crate::retry::Decision;
    pub use crate::retry::executor::{
        AsyncAttempt, AsyncTimer, DefaultTimer, PerAttempt, Retry, RetryResult, SyncAttempt,
        TimeoutError, async_attempt, retry_error, reuse, sync_attempt,
    };
    pub use crate::retry::policy::{Backoff, Jitter, Policy as RetryPolicy};
    pub use crate::span::{
        EventType, Instrumented, Meta, Span, SpanRecord, call_once, current_add_event,
        current_is_recording, current_set_attribute, current_set_error,
    };
    pub use crate::stream::{
        ItemOtherProbe, ItemResultProbe, ItemResultTextProbe, ItemTextProbe, StreamLog, TracedIter,
        TracedStream,
    };
    pub use ::core::option::Option::{None, Some};
    pub use opentelemetry::{KeyValue, Value};
}
