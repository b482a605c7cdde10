//! Throughput: what reaches the backend, what it costs, and what the caller pays while
//! everything is delivered; `#[trace]` and the OpenTelemetry SDK side by side in one process.
//!
//! A local OTLP/HTTP receiver (`support/receiver.rs`, in this process, on 127.0.0.1) counts the
//! spans and body bytes it gets. Our pipeline is `Builder::new().with_otlp_http(receiver)`, a
//! generic OTLP endpoint, so it sends GenAI keys (`Conventions` by destination); the
//! SDK's is an `SdkTracerProvider` with a default `BatchSpanProcessor` and the
//! `opentelemetry-otlp` HTTP/protobuf exporter (blocking reqwest client) to the same receiver.
//! Rounds interleave the peers (ours first in even rounds, the SDK first in odd ones), and every
//! figure is the median over rounds with the min-max spread in brackets; ratios are taken within
//! a round, then their median.
//!
//! Parts (`HH_BENCH_PARTS=ceiling,delivered,cpu,caller`, all by default):
//!
//! - `ceiling`: the receiver alone, fed pre-encoded bodies, so a reader can check that it is not
//!   what limits the figures below.
//! - `delivered`: a loop traces flat out for `HH_BENCH_SECS` seconds (default 1; the issue used
//!   5) on 1 and 2 caller threads. "plain": a 6-span request (a root and five children, two
//!   recorded arguments per span, as in `overhead.rs`). "LLM": one span per call with one
//!   `LlmCall` (model, provider, a system and a user message of about 300 bytes each, a
//!   completion of about 300 bytes, token usage, finish reason); the SDK span gets the same
//!   content as GenAI attributes (`gen_ai.operation.name`, `gen_ai.provider.name`,
//!   `gen_ai.request.model`, `gen_ai.usage.*`, `gen_ai.response.finish_reasons`, and
//!   `gen_ai.input.messages` / `gen_ai.output.messages` as JSON, built per call). Delivered
//!   spans/s is what the receiver counted during the loop, over the loop's time; dropped is
//!   ours' own count (`ShutdownReport`, the same counters as `export_stats()`) and, for the SDK,
//!   spans made minus spans received after shutdown; bytes per span is body bytes over spans.
//! - `cpu`: CPU per delivered span at a paced rate both peers sustain (`HH_BENCH_PACED_RATE`,
//!   default 100,000 plain spans/s, and `HH_BENCH_PACED_LLM_RATE`, default 10,000 LLM spans/s,
//!   on 2 caller threads, for `HH_BENCH_PACED_SECS`, default 1). Process CPU
//!   (`getrusage(RUSAGE_SELF)`, user + system, every thread: callers, export threads, the HTTP
//!   client's) from after install until shutdown has flushed, minus the receiver's connection
//!   threads' own CPU (each reads `CLOCK_THREAD_CPUTIME_ID` after every request), over the
//!   spans received. The table also splits out the caller threads' own CPU and counts spans
//!   lost, which shows whether a peer did sustain the rate; `HH_BENCH_THREADS=1` prints every
//!   live thread's CPU time before each shutdown (export thread, HTTP client). Each round
//!   also runs the same paced loop untraced (the request's functions without `#[trace]`, an
//!   LLM call without recording it): its CPU per span (the pacing's sleeps and wake-ups, on
//!   this 2-core VM 10-20 µs each, every 16 units) is in both peers' totals, so the table also
//!   gives the ratio of what each adds to it, which is what the goal is judged on.
//! - `caller`: caller CPU per span while everything is delivered: one caller thread paced at
//!   `HH_BENCH_CALLER_RATE` spans/s (default 50,000) for `HH_BENCH_CALLER_SECS` (default 0.3),
//!   the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) read around each burst of traced calls
//!   (about 512 spans; the sleeps between bursts are not counted), divided by spans. Peers:
//!   ours, the SDK (exporting to the receiver as above), fastrace `#[trace]` without properties
//!   and with them (fastrace's reporter counts every span it is given). By trace size (a root
//!   and 1, 10, 100, 1,000 children, two attributes per span) and by attribute count (a root and
//!   nine children, 0, 1, 10, 50 integer attributes per span: ours `#[trace(metadata(..))]`, the
//!   SDK `set_attribute`, fastrace `properties`; paced at `HH_BENCH_CALLER_ATTR_RATE`, default
//!   20,000, since the SDK's export drops spans of 50 attributes at 50,000/s). A cell where a
//!   peer lost spans is marked.
//!
//! - `caller-ours` (not in the default set): ours alone, the `caller` part's trace-size cells
//!   (`HH_BENCH_CALLER_CHILDREN`, default `1,10,100,1000` children per root), so that a
//!   profiler sees only our caller and export threads: e.g.
//!   `HH_BENCH_PARTS=caller-ours HH_BENCH_CALLER_CHILDREN=1 HH_BENCH_CALLER_SECS=10 perf record
//!   -g target/release/deps/throughput-<hash> --bench`.
//!
//! `HH_BENCH_ROUNDS` sets the rounds (default 3). The defaults run in about a minute and a half
//! on a 2-core machine. `OTEL_*` variables are ignored by ours (`Builder::env(|_| None)`) but
//! read by the SDK's batch processor and exporter, so leave them unset; the bench warns if any
//! is set. A closing table compares the medians with the goals of issue 10.
//!
//! Run: `cargo bench -p honeyhive-runtime --bench throughput`; the issue's setting is
//! `HH_BENCH_SECS=5 cargo bench -p honeyhive-runtime --bench throughput`.

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/table.rs"]
mod table;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SdkTracer;

use receiver::{Counts, Receiver};
use table::{Samples, Table};

/// The text argument of plain spans.
const QUERY: &str = "what is the capital of France?";
/// LLM content: about 300 bytes each.
const SYSTEM_PROMPT: &str = "You are a careful assistant for a travel company. Answer questions \
    about destinations, visas, weather and local customs. Keep answers short, cite the official \
    source when you state a rule, and say plainly when you are not sure. Never invent prices or \
    opening hours; suggest where the user can check them instead.";
const USER_MESSAGE: &str = "I am planning a week in Portugal in late October with my partner \
    and our two kids, aged 7 and 10. We would like to split the time between Lisbon and \
    somewhere by the sea that is calm enough to swim. What would you suggest, how should we get \
    between the two, and is the weather still warm enough for the beach then?";
const COMPLETION: &str = "For late October I would suggest four nights in Lisbon and three in \
    the Algarve, around Lagos or Tavira, where the sea is calmer. Trains from Lisbon Oriente \
    reach Faro or Tunes in about three hours; book on the official CP site. Days are often \
    20-23 C, but the water is cool and some beach services close after mid-October.";
const MODEL: &str = "gpt-4o-mini";
const INPUT_TOKENS: u64 = 160;
const OUTPUT_TOKENS: u64 = 70;

/// Spans in one trace of the attribute-count shape.
const ATTR_TRACE_SPANS: u64 = 10;

/// The work every traced function does: almost none.
#[inline]
fn leaf(query: &str, n: u64) -> u64 {
    black_box(n).wrapping_add(query.len() as u64)
}

#[inline]
fn leaf_n(n: u64) -> u64 {
    black_box(n).wrapping_mul(2_654_435_761)
}

/// Defines `root` and its five children with the given attributes on each function.
macro_rules! request {
    ($(#[$attr:meta])*) => {
        $(#[$attr])*
        #[inline(never)]
        pub(crate) fn root(query: &str, n: u64) -> u64 {
            retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
        }

        $(#[$attr])*
        #[inline(never)]
        fn retrieve(query: &str, n: u64) -> u64 {
            embed(query, n) ^ search(query, n + 1)
        }

        $(#[$attr])*
        #[inline(never)]
        fn embed(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }

        $(#[$attr])*
        #[inline(never)]
        fn search(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }

        $(#[$attr])*
        #[inline(never)]
        fn rerank(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }

        $(#[$attr])*
        #[inline(never)]
        fn complete(query: &str, n: u64) -> u64 {
            leaf(query, n)
        }
    };
}

/// Ours: `#[trace]` records both arguments, not the return value.
mod ours {
    use honeyhive_runtime::{LlmCall, trace};

    use super::{COMPLETION, INPUT_TOKENS, MODEL, OUTPUT_TOKENS, SYSTEM_PROMPT, USER_MESSAGE};
    use super::{leaf, leaf_n};

    request!(#[trace(skip_output)]);

    /// One LLM call: one span.
    #[trace(event_type = "model", skip_all, skip_output)]
    #[inline(never)]
    pub(crate) fn chat(n: u64) -> u64 {
        LlmCall::new(MODEL)
            .provider("openai")
            .message("system", SYSTEM_PROMPT)
            .message("user", USER_MESSAGE)
            .completion(COMPLETION)
            .usage(INPUT_TOKENS, OUTPUT_TOKENS)
            .finish_reason("stop")
            .record();
        leaf_n(n)
    }

    #[trace(skip_output)]
    #[inline(never)]
    fn child(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    /// A root with `children` children.
    #[trace(skip(children), skip_output)]
    #[inline(never)]
    pub(crate) fn wide(query: &str, n: u64, children: u64) -> u64 {
        (0..children).fold(leaf(query, n), |acc, i| acc ^ child(query, n + i))
    }
}

/// The plain request without tracing: what the paced loop costs by itself.
mod untraced {
    use super::leaf;

    request!();
}

/// The raw OpenTelemetry SDK, as it documents itself: per span `tracer.start`, the attributes
/// with `set_attribute`, and a `Context` attach that makes it the parent of what runs inside.
mod sdk {
    use std::cell::RefCell;
    use std::fmt::Write as _;

    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _};
    use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
    use opentelemetry_sdk::trace::SdkTracer;

    use super::{COMPLETION, INPUT_TOKENS, KEYS, MODEL, OUTPUT_TOKENS, SYSTEM_PROMPT};
    use super::{USER_MESSAGE, leaf, leaf_n};

    thread_local! {
        /// The tracer of the provider installed for the current run.
        static TRACER: RefCell<Option<SdkTracer>> = const { RefCell::new(None) };
    }

    pub(crate) fn set_tracer(tracer: Option<SdkTracer>) {
        TRACER.with(|t| *t.borrow_mut() = tracer);
    }

    fn start(name: &'static str) -> opentelemetry_sdk::trace::Span {
        TRACER.with(|t| {
            t.borrow()
                .as_ref()
                .expect("a tracer is installed")
                .start(name)
        })
    }

    #[inline]
    fn in_span<R>(name: &'static str, query: &str, n: u64, body: impl FnOnce() -> R) -> R {
        let mut span = start(name);
        span.set_attribute(KeyValue::new("query", query.to_owned()));
        span.set_attribute(KeyValue::new("n", i64::try_from(n).unwrap_or(i64::MAX)));
        let _attached = Context::current_with_span(span).attach();
        body()
    }

    /// A span with `count` integer attributes.
    #[inline]
    pub(crate) fn with_attrs<R>(
        name: &'static str,
        n: u64,
        count: usize,
        body: impl FnOnce() -> R,
    ) -> R {
        let mut span = start(name);
        let value = i64::try_from(n).unwrap_or(i64::MAX);
        for &key in &KEYS[..count] {
            span.set_attribute(KeyValue::new(key, value));
        }
        let _attached = Context::current_with_span(span).attach();
        body()
    }

    #[inline(never)]
    pub(crate) fn root(query: &str, n: u64) -> u64 {
        in_span("root", query, n, || {
            retrieve(query, n) ^ rerank(query, n + 1) ^ complete(query, n + 2)
        })
    }

    #[inline(never)]
    fn retrieve(query: &str, n: u64) -> u64 {
        in_span("retrieve", query, n, || {
            embed(query, n) ^ search(query, n + 1)
        })
    }

    #[inline(never)]
    fn embed(query: &str, n: u64) -> u64 {
        in_span("embed", query, n, || leaf(query, n))
    }

    #[inline(never)]
    fn search(query: &str, n: u64) -> u64 {
        in_span("search", query, n, || leaf(query, n))
    }

    #[inline(never)]
    fn rerank(query: &str, n: u64) -> u64 {
        in_span("rerank", query, n, || leaf(query, n))
    }

    #[inline(never)]
    fn complete(query: &str, n: u64) -> u64 {
        in_span("complete", query, n, || leaf(query, n))
    }

    /// A GenAI message list as the conventions write it, built per call as an application
    /// would serialize its messages.
    fn messages_json(messages: &[(&str, &str)], finish_reason: Option<&str>) -> String {
        let mut out = String::from("[");
        for (i, (role, content)) in messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                r#"{{"role":"{role}","parts":[{{"type":"text","content":"{content}"}}]"#
            );
            if let Some(reason) = finish_reason {
                let _ = write!(out, r#","finish_reason":"{reason}""#);
            }
            out.push('}');
        }
        out.push(']');
        out
    }

    /// One LLM call: one span with the same content as ours' `LlmCall`.
    #[inline(never)]
    pub(crate) fn chat(n: u64) -> u64 {
        let mut span = start("chat");
        span.set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
        span.set_attribute(KeyValue::new("gen_ai.provider.name", "openai"));
        span.set_attribute(KeyValue::new("gen_ai.request.model", MODEL));
        span.set_attribute(KeyValue::new(
            "gen_ai.usage.input_tokens",
            i64::try_from(INPUT_TOKENS).unwrap_or(0),
        ));
        span.set_attribute(KeyValue::new(
            "gen_ai.usage.output_tokens",
            i64::try_from(OUTPUT_TOKENS).unwrap_or(0),
        ));
        span.set_attribute(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(vec![StringValue::from("stop")])),
        ));
        span.set_attribute(KeyValue::new(
            "gen_ai.input.messages",
            messages_json(&[("system", SYSTEM_PROMPT), ("user", USER_MESSAGE)], None),
        ));
        span.set_attribute(KeyValue::new(
            "gen_ai.output.messages",
            messages_json(&[("assistant", COMPLETION)], Some("stop")),
        ));
        let _attached = Context::current_with_span(span).attach();
        leaf_n(n)
    }

    /// A root with `children` children.
    #[inline(never)]
    pub(crate) fn wide(query: &str, n: u64, children: u64) -> u64 {
        in_span("wide", query, n, || {
            (0..children).fold(leaf(query, n), |acc, i| {
                acc ^ in_span("child", query, n + i, || leaf(query, n + i))
            })
        })
    }
}

/// fastrace `#[trace]`: spans are recorded under a root `Span` set as the local parent, as a
/// service does at its request boundary, so the root is written by hand.
mod fastrace_bare {
    use fastrace::prelude::{Span, SpanContext};

    use super::leaf;

    #[fastrace::trace]
    #[inline(never)]
    fn child(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[inline(never)]
    pub(crate) fn wide(query: &str, n: u64, children: u64) -> u64 {
        let root = Span::root("wide", SpanContext::random());
        let _parent = root.set_local_parent();
        (0..children).fold(leaf(query, n), |acc, i| acc ^ child(query, n + i))
    }
}

/// fastrace `#[trace]` with both arguments as properties.
mod fastrace_props {
    use fastrace::prelude::{Span, SpanContext};

    use super::leaf;

    #[fastrace::trace(properties = { "query": "{query}", "n": "{n}" })]
    #[inline(never)]
    fn child(query: &str, n: u64) -> u64 {
        leaf(query, n)
    }

    #[inline(never)]
    pub(crate) fn wide(query: &str, n: u64, children: u64) -> u64 {
        let root = Span::root("wide", SpanContext::random())
            .with_properties(|| [("query", query.to_owned()), ("n", n.to_string())]);
        let _parent = root.set_local_parent();
        (0..children).fold(leaf(query, n), |acc, i| acc ^ child(query, n + i))
    }
}

/// Spans with 0 attribute(s) each: a root and nine children.
mod attrs_0 {
    use fastrace::prelude::{Span, SpanContext};

    use super::{KEYS, leaf_n, sdk};

    pub(crate) const COUNT: usize = 0;

    #[honeyhive_runtime::trace(skip_all, skip_output)]
    #[inline(never)]
    pub(crate) fn ours_root(n: u64) -> u64 {
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ ours_child(n + i))
    }

    #[honeyhive_runtime::trace(skip_all, skip_output)]
    #[inline(never)]
    fn ours_child(n: u64) -> u64 {
        leaf_n(n)
    }

    #[inline(never)]
    pub(crate) fn sdk_root(n: u64) -> u64 {
        sdk::with_attrs("root", n, COUNT, || {
            (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ sdk_child(n + i))
        })
    }

    #[inline(never)]
    fn sdk_child(n: u64) -> u64 {
        sdk::with_attrs("child", n, COUNT, || leaf_n(n))
    }

    #[inline(never)]
    pub(crate) fn fastrace_root(n: u64) -> u64 {
        let root = Span::root("root", SpanContext::random())
            .with_properties(|| KEYS[..COUNT].iter().map(|&k| (k, n.to_string())));
        let _parent = root.set_local_parent();
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ fastrace_child(n + i))
    }

    #[fastrace::trace]
    #[inline(never)]
    fn fastrace_child(n: u64) -> u64 {
        leaf_n(n)
    }
}

/// Spans with 1 attribute(s) each: a root and nine children.
mod attrs_1 {
    use fastrace::prelude::{Span, SpanContext};

    use super::{KEYS, leaf_n, sdk};

    pub(crate) const COUNT: usize = 1;

    #[honeyhive_runtime::trace(skip_all, skip_output, metadata(a0 = n))]
    #[inline(never)]
    pub(crate) fn ours_root(n: u64) -> u64 {
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ ours_child(n + i))
    }

    #[honeyhive_runtime::trace(skip_all, skip_output, metadata(a0 = n))]
    #[inline(never)]
    fn ours_child(n: u64) -> u64 {
        leaf_n(n)
    }

    #[inline(never)]
    pub(crate) fn sdk_root(n: u64) -> u64 {
        sdk::with_attrs("root", n, COUNT, || {
            (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ sdk_child(n + i))
        })
    }

    #[inline(never)]
    fn sdk_child(n: u64) -> u64 {
        sdk::with_attrs("child", n, COUNT, || leaf_n(n))
    }

    #[inline(never)]
    pub(crate) fn fastrace_root(n: u64) -> u64 {
        let root = Span::root("root", SpanContext::random())
            .with_properties(|| KEYS[..COUNT].iter().map(|&k| (k, n.to_string())));
        let _parent = root.set_local_parent();
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ fastrace_child(n + i))
    }

    #[fastrace::trace(properties = { "a0": "{n}" })]
    #[inline(never)]
    fn fastrace_child(n: u64) -> u64 {
        leaf_n(n)
    }
}

/// Spans with 10 attribute(s) each: a root and nine children.
mod attrs_10 {
    use fastrace::prelude::{Span, SpanContext};

    use super::{KEYS, leaf_n, sdk};

    pub(crate) const COUNT: usize = 10;

    #[honeyhive_runtime::trace(skip_all, skip_output, metadata(a0 = n, a1 = n, a2 = n, a3 = n, a4 = n, a5 = n, a6 = n, a7 = n, a8 = n, a9 = n))]
    #[inline(never)]
    pub(crate) fn ours_root(n: u64) -> u64 {
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ ours_child(n + i))
    }

    #[honeyhive_runtime::trace(skip_all, skip_output, metadata(a0 = n, a1 = n, a2 = n, a3 = n, a4 = n, a5 = n, a6 = n, a7 = n, a8 = n, a9 = n))]
    #[inline(never)]
    fn ours_child(n: u64) -> u64 {
        leaf_n(n)
    }

    #[inline(never)]
    pub(crate) fn sdk_root(n: u64) -> u64 {
        sdk::with_attrs("root", n, COUNT, || {
            (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ sdk_child(n + i))
        })
    }

    #[inline(never)]
    fn sdk_child(n: u64) -> u64 {
        sdk::with_attrs("child", n, COUNT, || leaf_n(n))
    }

    #[inline(never)]
    pub(crate) fn fastrace_root(n: u64) -> u64 {
        let root = Span::root("root", SpanContext::random())
            .with_properties(|| KEYS[..COUNT].iter().map(|&k| (k, n.to_string())));
        let _parent = root.set_local_parent();
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ fastrace_child(n + i))
    }

    #[fastrace::trace(properties = { "a0": "{n}", "a1": "{n}", "a2": "{n}", "a3": "{n}", "a4": "{n}", "a5": "{n}", "a6": "{n}", "a7": "{n}", "a8": "{n}", "a9": "{n}" })]
    #[inline(never)]
    fn fastrace_child(n: u64) -> u64 {
        leaf_n(n)
    }
}

/// Spans with 50 attribute(s) each: a root and nine children.
mod attrs_50 {
    use fastrace::prelude::{Span, SpanContext};

    use super::{KEYS, leaf_n, sdk};

    pub(crate) const COUNT: usize = 50;

    #[honeyhive_runtime::trace(skip_all, skip_output, metadata(a0 = n, a1 = n, a2 = n, a3 = n, a4 = n, a5 = n, a6 = n, a7 = n, a8 = n, a9 = n, a10 = n, a11 = n, a12 = n, a13 = n, a14 = n, a15 = n, a16 = n, a17 = n, a18 = n, a19 = n, a20 = n, a21 = n, a22 = n, a23 = n, a24 = n, a25 = n, a26 = n, a27 = n, a28 = n, a29 = n, a30 = n, a31 = n, a32 = n, a33 = n, a34 = n, a35 = n, a36 = n, a37 = n, a38 = n, a39 = n, a40 = n, a41 = n, a42 = n, a43 = n, a44 = n, a45 = n, a46 = n, a47 = n, a48 = n, a49 = n))]
    #[inline(never)]
    pub(crate) fn ours_root(n: u64) -> u64 {
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ ours_child(n + i))
    }

    #[honeyhive_runtime::trace(skip_all, skip_output, metadata(a0 = n, a1 = n, a2 = n, a3 = n, a4 = n, a5 = n, a6 = n, a7 = n, a8 = n, a9 = n, a10 = n, a11 = n, a12 = n, a13 = n, a14 = n, a15 = n, a16 = n, a17 = n, a18 = n, a19 = n, a20 = n, a21 = n, a22 = n, a23 = n, a24 = n, a25 = n, a26 = n, a27 = n, a28 = n, a29 = n, a30 = n, a31 = n, a32 = n, a33 = n, a34 = n, a35 = n, a36 = n, a37 = n, a38 = n, a39 = n, a40 = n, a41 = n, a42 = n, a43 = n, a44 = n, a45 = n, a46 = n, a47 = n, a48 = n, a49 = n))]
    #[inline(never)]
    fn ours_child(n: u64) -> u64 {
        leaf_n(n)
    }

    #[inline(never)]
    pub(crate) fn sdk_root(n: u64) -> u64 {
        sdk::with_attrs("root", n, COUNT, || {
            (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ sdk_child(n + i))
        })
    }

    #[inline(never)]
    fn sdk_child(n: u64) -> u64 {
        sdk::with_attrs("child", n, COUNT, || leaf_n(n))
    }

    #[inline(never)]
    pub(crate) fn fastrace_root(n: u64) -> u64 {
        let root = Span::root("root", SpanContext::random())
            .with_properties(|| KEYS[..COUNT].iter().map(|&k| (k, n.to_string())));
        let _parent = root.set_local_parent();
        (1..super::ATTR_TRACE_SPANS).fold(leaf_n(n), |acc, i| acc ^ fastrace_child(n + i))
    }

    #[fastrace::trace(properties = { "a0": "{n}", "a1": "{n}", "a2": "{n}", "a3": "{n}", "a4": "{n}", "a5": "{n}", "a6": "{n}", "a7": "{n}", "a8": "{n}", "a9": "{n}", "a10": "{n}", "a11": "{n}", "a12": "{n}", "a13": "{n}", "a14": "{n}", "a15": "{n}", "a16": "{n}", "a17": "{n}", "a18": "{n}", "a19": "{n}", "a20": "{n}", "a21": "{n}", "a22": "{n}", "a23": "{n}", "a24": "{n}", "a25": "{n}", "a26": "{n}", "a27": "{n}", "a28": "{n}", "a29": "{n}", "a30": "{n}", "a31": "{n}", "a32": "{n}", "a33": "{n}", "a34": "{n}", "a35": "{n}", "a36": "{n}", "a37": "{n}", "a38": "{n}", "a39": "{n}", "a40": "{n}", "a41": "{n}", "a42": "{n}", "a43": "{n}", "a44": "{n}", "a45": "{n}", "a46": "{n}", "a47": "{n}", "a48": "{n}", "a49": "{n}" })]
    #[inline(never)]
    fn fastrace_child(n: u64) -> u64 {
        leaf_n(n)
    }
}

const KEYS: [&str; 50] = [
    "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12", "a13", "a14",
    "a15", "a16", "a17", "a18", "a19", "a20", "a21", "a22", "a23", "a24", "a25", "a26", "a27",
    "a28", "a29", "a30", "a31", "a32", "a33", "a34", "a35", "a36", "a37", "a38", "a39", "a40",
    "a41", "a42", "a43", "a44", "a45", "a46", "a47", "a48", "a49",
];

/// fastrace's reporter: counts the spans it is given.
struct CountingReporter(Arc<AtomicU64>);

impl fastrace::collector::Reporter for CountingReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        self.0.fetch_add(spans.len() as u64, Ordering::AcqRel);
    }
}

/// Settings, from `HH_BENCH_*` variables.
struct Config {
    rounds: usize,
    secs: f64,
    paced_secs: f64,
    paced_rate: f64,
    paced_llm_rate: f64,
    caller_rate: f64,
    caller_attr_rate: f64,
    caller_secs: f64,
    parts: Vec<String>,
}

impl Config {
    fn from_env() -> Config {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
                Err(_) => default,
            }
        }
        Config {
            rounds: var("HH_BENCH_ROUNDS", 3usize).max(1),
            secs: var("HH_BENCH_SECS", 1.0),
            paced_secs: var("HH_BENCH_PACED_SECS", 1.0),
            paced_rate: var("HH_BENCH_PACED_RATE", 100_000.0),
            paced_llm_rate: var("HH_BENCH_PACED_LLM_RATE", 10_000.0),
            caller_rate: var("HH_BENCH_CALLER_RATE", 50_000.0),
            caller_attr_rate: var("HH_BENCH_CALLER_ATTR_RATE", 20_000.0),
            caller_secs: var("HH_BENCH_CALLER_SECS", 0.3),
            parts: std::env::var("HH_BENCH_PARTS")
                .unwrap_or_else(|_| "ceiling,delivered,cpu,caller".to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
        }
    }

    fn part(&self, name: &str) -> bool {
        self.parts.iter().any(|p| p == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Ours,
    Sdk,
}

impl Peer {
    /// Both peers, ours first in even rounds.
    fn order(round: usize) -> [Peer; 2] {
        if round.is_multiple_of(2) {
            [Peer::Ours, Peer::Sdk]
        } else {
            [Peer::Sdk, Peer::Ours]
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// The 6-span request.
    Plain,
    /// One span with one LLM call.
    Llm,
}

impl Work {
    fn spans(self) -> u64 {
        match self {
            Work::Plain => 6,
            Work::Llm => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Work::Plain => "plain",
            Work::Llm => "LLM",
        }
    }
}

/// One unit of work (a request or an LLM call) traced by `peer`, or untraced (`None`: the
/// same functions without `#[trace]`, and an LLM call without recording it).
#[inline]
fn unit(peer: Option<Peer>, work: Work, n: u64) -> u64 {
    match (peer, work) {
        (Some(Peer::Ours), Work::Plain) => ours::root(black_box(QUERY), n),
        (Some(Peer::Ours), Work::Llm) => ours::chat(n),
        (Some(Peer::Sdk), Work::Plain) => sdk::root(black_box(QUERY), n),
        (Some(Peer::Sdk), Work::Llm) => sdk::chat(n),
        (None, Work::Plain) => untraced::root(black_box(QUERY), n),
        (None, Work::Llm) => leaf_n(n),
    }
}

/// An installed export pipeline of one peer, sending to the receiver.
enum Pipeline {
    Ours(honeyhive_runtime::Guard),
    Sdk(opentelemetry_sdk::trace::SdkTracerProvider),
}

/// What a pipeline counted itself at shutdown (ours only).
struct Shutdown {
    dropped: Option<u64>,
    exported: Option<u64>,
}

impl Pipeline {
    fn install(peer: Peer, url: &str) -> Pipeline {
        match peer {
            Peer::Ours => Pipeline::Ours(
                honeyhive_runtime::Builder::new()
                    .env(|_| None)
                    .with_otlp_http(url)
                    .shutdown_timeout(Duration::from_mins(1))
                    .install()
                    .expect("our pipeline installs"),
            ),
            Peer::Sdk => {
                use opentelemetry_otlp::{Protocol, WithExportConfig as _};
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url)
                    .build()
                    .expect("the SDK's OTLP exporter builds");
                Pipeline::Sdk(
                    opentelemetry_sdk::trace::SdkTracerProvider::builder()
                        .with_span_processor(
                            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
                        )
                        .build(),
                )
            }
        }
    }

    fn tracer(&self) -> Option<SdkTracer> {
        use opentelemetry::trace::TracerProvider as _;
        match self {
            Pipeline::Ours(_) => None,
            Pipeline::Sdk(provider) => Some(provider.tracer("bench")),
        }
    }

    /// Flushes what is queued and stops.
    fn shutdown(self) -> Shutdown {
        match self {
            Pipeline::Ours(guard) => {
                let report = guard.shutdown();
                Shutdown {
                    dropped: Some(report.dropped + report.lost_at_deadline),
                    exported: Some(report.exported),
                }
            }
            Pipeline::Sdk(provider) => {
                let _ = provider.shutdown();
                Shutdown {
                    dropped: None,
                    exported: None,
                }
            }
        }
    }
}

/// How the caller threads run.
#[derive(Clone, Copy)]
enum Mode {
    /// As fast as they can, for this long.
    FlatOut(Duration),
    /// This many units per second per thread, for this long.
    Paced { per_thread: f64, duration: Duration },
}

/// Runs `threads` caller threads of `work` for `peer` (`None`: untraced); returns the units
/// made, the receiver's counts when the callers stopped, and the caller threads' CPU time.
fn drive(
    peer: Option<Peer>,
    work: Work,
    threads: u64,
    tracer: Option<&SdkTracer>,
    mode: Mode,
    receiver: &Receiver,
) -> (u64, Counts, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, tracer) = (Arc::clone(&stop), tracer.cloned());
            std::thread::spawn(move || {
                sdk::set_tracer(tracer);
                let mut acc = 0u64;
                let mut units = 0u64;
                let base = t << 40;
                match mode {
                    Mode::FlatOut(_) => {
                        while !stop.load(Ordering::Relaxed) {
                            acc ^= unit(peer, work, base + units);
                            units += 1;
                        }
                    }
                    Mode::Paced {
                        per_thread,
                        duration,
                    } => {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let total = (per_thread * duration.as_secs_f64()) as u64;
                        while units < total {
                            acc ^= unit(peer, work, base + units);
                            units += 1;
                            if units.is_multiple_of(16) {
                                #[allow(clippy::cast_precision_loss)]
                                let due =
                                    started + Duration::from_secs_f64(units as f64 / per_thread);
                                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                            }
                        }
                    }
                }
                sdk::set_tracer(None);
                black_box(acc);
                (units, cpu::thread())
            })
        })
        .collect();
    let mut at_stop = None;
    if let Mode::FlatOut(duration) = mode {
        std::thread::sleep(duration);
        at_stop = Some(receiver.counts());
        stop.store(true, Ordering::Relaxed);
    }
    let (mut units, mut caller_cpu) = (0, Duration::ZERO);
    for w in workers {
        let (u, c) = w.join().expect("a caller thread panicked");
        units += u;
        caller_cpu += c;
    }
    (
        units,
        at_stop.unwrap_or_else(|| receiver.counts()),
        caller_cpu,
    )
}

/// Waits until the receiver has answered every request it got (its counters are written
/// right after the answer).
fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

#[allow(clippy::cast_precision_loss)] // figures
fn per(x: u64, y: u64) -> f64 {
    x as f64 / y.max(1) as f64
}

/// The issue's goals against what this run measured, printed last.
#[derive(Default)]
struct Goals(Vec<[String; 3]>);

impl Goals {
    fn add(&mut self, goal: &str, figure: String, met: bool) {
        self.0.push([
            goal.to_owned(),
            figure,
            if met { "yes" } else { "**no**" }.to_owned(),
        ]);
    }

    fn print(&self) {
        if self.0.is_empty() {
            return;
        }
        let mut t = Table::new(["goal (issue 10)", "this run (medians)", "met"]).text();
        for row in &self.0 {
            t.row(row.iter().cloned());
        }
        println!("### Goals\n\n{}", t.render());
    }
}

/// Part `ceiling`.
fn ceiling(receiver: &Receiver) {
    eprintln!("[ceiling] receiver alone, pre-encoded bodies");
    let mut t = Table::new([
        "receiver fed pre-encoded bodies",
        "spans/s counted",
        "MB/s counted",
        "receiver CPU ns/span",
        "spans/s per receiver core",
    ]);
    for (clients, spans, extra) in [(1usize, 512u64, 0usize), (2, 512, 0), (2, 64, 4096)] {
        let c = receiver::ceiling(receiver, clients, spans, extra, Duration::from_millis(700));
        t.row([
            format!(
                "{clients} client connection{}, {spans} spans of {:.0} bytes per body",
                if clients == 1 { "" } else { "s" },
                c.bytes_per_span
            ),
            table::rate(c.spans_per_sec),
            format!("{:.0}", c.bytes_per_sec / 1e6),
            table::ns(c.cpu_ns_per_span),
            table::rate(1e9 / c.cpu_ns_per_span),
        ]);
    }
    println!("### Receiver ceiling\n\n{}", t.render());
}

/// One cell's figures over rounds, per peer.
#[derive(Default)]
struct Delivered {
    rate: [Samples; 2],
    made_rate: [Samples; 2],
    dropped: [Samples; 2],
    bytes: [Samples; 2],
    ratio: Samples,
}

fn idx(peer: Peer) -> usize {
    match peer {
        Peer::Ours => 0,
        Peer::Sdk => 1,
    }
}

/// A row of the delivered table: its label and how a cell is written.
type DeliveredRow = (&'static str, Box<dyn Fn(&Delivered) -> String>);

/// Part `delivered`.
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)] // figures; one table
fn delivered(cfg: &Config, receiver: &Receiver, goals: &mut Goals) {
    let cells = [
        (Work::Plain, 1u64),
        (Work::Plain, 2),
        (Work::Llm, 1),
        (Work::Llm, 2),
    ];
    let mut results: Vec<Delivered> = cells.iter().map(|_| Delivered::default()).collect();
    let mut layouts = Vec::new();
    let duration = Duration::from_secs_f64(cfg.secs);
    for round in 0..cfg.rounds {
        for (cell, &(work, threads)) in cells.iter().enumerate() {
            let mut rates = [0.0; 2];
            for peer in Peer::order(round) {
                let pipeline = Pipeline::install(peer, &receiver.traces_url());
                let tracer = pipeline.tracer();
                let sample = round == 0 && threads == 1;
                if sample {
                    receiver.sample_next();
                }
                let before = receiver.counts();
                let started = Instant::now();
                let (units, at_stop, _) = drive(
                    Some(peer),
                    work,
                    threads,
                    tracer.as_ref(),
                    Mode::FlatOut(duration),
                    receiver,
                );
                let window = started.elapsed().as_secs_f64();
                drop(tracer);
                let shutdown = pipeline.shutdown();
                settle();
                if sample
                    && let Some(layout) = receiver
                        .take_sample()
                        .as_deref()
                        .and_then(receiver::first_span_layout)
                {
                    layouts.push((peer, work, layout));
                }
                let all = receiver.counts() - before;
                let made = units * work.spans();
                let in_window = (at_stop - before).spans;
                let dropped = shutdown
                    .dropped
                    .unwrap_or_else(|| made.saturating_sub(all.spans));
                let r = &mut results[cell];
                let rate = in_window as f64 / cfg.secs;
                rates[idx(peer)] = rate;
                r.rate[idx(peer)].push(rate);
                r.made_rate[idx(peer)].push(made as f64 / window);
                r.dropped[idx(peer)].push(100.0 * per(dropped, made));
                r.bytes[idx(peer)].push(per(all.bytes, all.spans));
                eprintln!(
                    "[delivered] round {round} {} {threads}t {peer:?}: made {made}, received \
                     {} in {} requests ({} in the loop's {:.2} s), dropped {dropped}, {:.0} \
                     B/span{}",
                    work.name(),
                    all.spans,
                    all.requests,
                    in_window,
                    cfg.secs,
                    per(all.bytes, all.spans),
                    check_ours(&shutdown, &all, made),
                );
            }
            results[cell].ratio.push(rates[0] / rates[1]);
        }
    }
    let mut t = Table::new(
        std::iter::once(format!(
            "flat out for {} s, median of {} rounds (min-max)",
            cfg.secs, cfg.rounds
        ))
        .chain(cells.iter().map(|(w, th)| {
            format!(
                "{}, {th} thread{}",
                w.name(),
                if *th == 1 { "" } else { "s" }
            )
        })),
    );
    let rows: [DeliveredRow; 9] = [
        (
            "delivered spans/s, ours",
            Box::new(|d| d.rate[0].show(table::rate)),
        ),
        (
            "delivered spans/s, OTel SDK",
            Box::new(|d| d.rate[1].show(table::rate)),
        ),
        ("**ours / SDK**", Box::new(|d| d.ratio.show(table::ratio))),
        (
            "dropped, ours (its own count)",
            Box::new(|d| d.dropped[0].show(table::percent)),
        ),
        (
            "dropped, OTel SDK (made - received)",
            Box::new(|d| d.dropped[1].show(table::percent)),
        ),
        (
            "bytes/span on the wire, ours",
            Box::new(|d| d.bytes[0].show(|x| format!("{x:.0}"))),
        ),
        (
            "bytes/span on the wire, OTel SDK",
            Box::new(|d| d.bytes[1].show(|x| format!("{x:.0}"))),
        ),
        (
            "spans/s made by the callers, ours",
            Box::new(|d| d.made_rate[0].show(table::rate)),
        ),
        (
            "spans/s made by the callers, OTel SDK",
            Box::new(|d| d.made_rate[1].show(table::rate)),
        ),
    ];
    for (label, f) in rows {
        t.row(std::iter::once(label.to_owned()).chain(results.iter().map(&f)));
    }
    println!("### Delivered spans/s (receiver count)\n\n{}", t.render());
    print_layouts(&layouts);

    let plain2 = results[1].rate[0].median();
    goals.add(
        "delivered >= 1,000,000 plain spans/s, 2 caller threads",
        table::rate(plain2),
        plain2 >= 1e6,
    );
    let llm = results[2].rate[0].median().min(results[3].rate[0].median());
    goals.add(
        "delivered >= 200,000 LLM spans/s (1 and 2 threads)",
        format!("{} (the lower of the two)", table::rate(llm)),
        llm >= 2e5,
    );
    let worst = results
        .iter()
        .map(|d| d.ratio.median())
        .fold(f64::INFINITY, f64::min);
    goals.add(
        "delivered >= 2x the SDK in every cell",
        format!("{} in the worst cell", table::ratio(worst)),
        worst >= 2.0,
    );
    let bytes = |cell: usize| results[cell].bytes[0].median() / results[cell].bytes[1].median();
    goals.add(
        "bytes/span on the wire <= the SDK's for the same content",
        format!(
            "plain {:.0} vs {:.0} ({}), LLM {:.0} vs {:.0} ({})",
            results[1].bytes[0].median(),
            results[1].bytes[1].median(),
            table::ratio(bytes(1)),
            results[3].bytes[0].median(),
            results[3].bytes[1].median(),
            table::ratio(bytes(3)),
        ),
        bytes(1) <= 1.0 && bytes(3) <= 1.0,
    );
}

/// Where the bytes of one span go, per peer and workload: the first span of one request.
fn print_layouts(layouts: &[(Peer, Work, receiver::SpanLayout)]) {
    if layouts.is_empty() {
        return;
    }
    println!("What one span carries on the wire (the first span of one request, encoded bytes):\n");
    for (peer, work, l) in layouts {
        let attrs: usize = l.attributes.iter().map(|(_, n)| n).sum();
        let keys: Vec<String> = l
            .attributes
            .iter()
            .map(|(k, n)| format!("`{}` {n}", k.replace('\0', "\\0")))
            .collect();
        println!(
            "- {}, {} (span `{}`, {} B): ids, name, kind, times, status {} B; events {} B; {} \
             attributes {} B: {}",
            match peer {
                Peer::Ours => "ours",
                Peer::Sdk => "OTel SDK",
            },
            work.name(),
            l.name,
            l.total,
            l.rest,
            l.events,
            l.attributes.len(),
            attrs,
            keys.join(", ")
        );
    }
    println!();
}

/// For ours: a note if the receiver did not get what the pipeline says it exported.
fn check_ours(shutdown: &Shutdown, all: &Counts, made: u64) -> String {
    let mut notes = String::new();
    if let (Some(exported), Some(dropped)) = (shutdown.exported, shutdown.dropped) {
        if exported != all.spans {
            let _ = write!(
                notes,
                "; MISMATCH: pipeline exported {exported}, receiver got {}",
                all.spans
            );
        }
        if exported + dropped != made {
            let _ = write!(
                notes,
                "; UNCOUNTED: made {made}, exported {exported} + dropped {dropped}"
            );
        }
    }
    if all.malformed > 0 {
        let _ = write!(notes, "; {} malformed bodies", all.malformed);
    }
    notes
}

/// Part `cpu`.
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)] // figures; one table
fn cpu_per_span(cfg: &Config, receiver: &Receiver, goals: &mut Goals) {
    const THREADS: u64 = 2;
    let cells = [
        (Work::Plain, cfg.paced_rate),
        (Work::Llm, cfg.paced_llm_rate),
    ];
    // [cell] -> (ns per span per peer, ratio, receiver ns per span per peer, delivered share)
    let mut ns = vec![[Samples::default(), Samples::default()]; cells.len()];
    let mut recv_ns = vec![[Samples::default(), Samples::default()]; cells.len()];
    let mut caller_ns = vec![[Samples::default(), Samples::default()]; cells.len()];
    let mut lost = vec![[0u64; 2]; cells.len()];
    let mut ratio = vec![Samples::default(); cells.len()];
    // The same paced loop untraced (its sleeps and wake-ups, the functions' own work), per
    // span, and the ratio of what tracing adds to it.
    let mut loop_ns = vec![Samples::default(); cells.len()];
    let mut net_ratio = vec![Samples::default(); cells.len()];
    let duration = Duration::from_secs_f64(cfg.paced_secs);
    for round in 0..cfg.rounds {
        for (cell, &(work, rate)) in cells.iter().enumerate() {
            let per_thread = rate / work.spans() as f64 / THREADS as f64;
            let paced = Mode::Paced {
                per_thread,
                duration,
            };
            let cpu_before = cpu::process();
            let (units, _, _) = drive(None, work, THREADS, None, paced, receiver);
            let untraced = cpu::process().saturating_sub(cpu_before).as_nanos() as f64
                / (units * work.spans()).max(1) as f64;
            loop_ns[cell].push(untraced);
            let mut this = [0.0; 2];
            for peer in Peer::order(round) {
                let pipeline = Pipeline::install(peer, &receiver.traces_url());
                let tracer = pipeline.tracer();
                settle();
                let before = receiver.counts();
                let cpu_before = cpu::process();
                let (units, _, caller_cpu) =
                    drive(Some(peer), work, THREADS, tracer.as_ref(), paced, receiver);
                drop(tracer);
                if std::env::var_os("HH_BENCH_THREADS").is_some() {
                    // Diagnostics: every live thread's CPU since it started.
                    eprintln!("[cpu] threads before shutdown: {:?}", cpu::threads());
                }
                let shutdown = pipeline.shutdown();
                settle();
                let cpu_total = cpu::process().saturating_sub(cpu_before);
                let got = receiver.counts() - before;
                let made = units * work.spans();
                let ours_cpu = (cpu_total.as_nanos() as f64 - got.cpu_ns as f64).max(0.0);
                let per_span = ours_cpu / got.spans.max(1) as f64;
                this[idx(peer)] = per_span;
                ns[cell][idx(peer)].push(per_span);
                recv_ns[cell][idx(peer)].push(per(got.cpu_ns, got.spans));
                caller_ns[cell][idx(peer)].push(caller_cpu.as_nanos() as f64 / made.max(1) as f64);
                lost[cell][idx(peer)] += made.saturating_sub(got.spans);
                eprintln!(
                    "[cpu] round {round} {} @{rate} {peer:?}: made {made}, received {}, process \
                     CPU {:.1} ms, receiver {:.1} ms: {per_span:.0} ns/span{}",
                    work.name(),
                    got.spans,
                    cpu_total.as_secs_f64() * 1e3,
                    got.cpu_ns as f64 / 1e6,
                    check_ours(&shutdown, &got, made),
                );
            }
            ratio[cell].push(this[0] / this[1]);
            net_ratio[cell].push((this[0] - untraced).max(0.0) / (this[1] - untraced).max(1.0));
            eprintln!(
                "[cpu] round {round} {} @{rate} untraced loop: {untraced:.0} ns/span",
                work.name()
            );
        }
    }
    let mut t = Table::new([
        format!(
            "CPU ns per delivered span, {THREADS} caller threads, paced, {} s, median of {} (min-max)",
            cfg.paced_secs, cfg.rounds
        ),
        "ours".to_owned(),
        "OTel SDK".to_owned(),
        "**ours / SDK**".to_owned(),
        "of which caller threads (ns per span made), ours / SDK".to_owned(),
        "receiver's own ns/span (excluded), ours / SDK".to_owned(),
        "spans lost over all rounds, ours / SDK".to_owned(),
        "the loop untraced, ns per span".to_owned(),
        "**ours / SDK, net of the loop**".to_owned(),
    ]);
    for (cell, &(work, rate)) in cells.iter().enumerate() {
        t.row([
            format!("{} at {} spans/s", work.name(), table::rate(rate)),
            ns[cell][0].show(table::ns),
            ns[cell][1].show(table::ns),
            ratio[cell].show(table::ratio),
            format!(
                "{} / {}",
                table::ns(caller_ns[cell][0].median()),
                table::ns(caller_ns[cell][1].median())
            ),
            format!(
                "{} / {}",
                table::ns(recv_ns[cell][0].median()),
                table::ns(recv_ns[cell][1].median())
            ),
            format!("{} / {}", lost[cell][0], lost[cell][1]),
            loop_ns[cell].show(table::ns),
            net_ratio[cell].show(table::ratio),
        ]);
    }
    println!(
        "### Total CPU per delivered span (getrusage, minus the receiver)\n\n{}",
        t.render()
    );
    for (cell, &(work, rate)) in cells.iter().enumerate() {
        let r = ratio[cell].median();
        let net = net_ratio[cell].median();
        goals.add(
            &format!(
                "total CPU per delivered span <= 0.25x the SDK's ({} at {} spans/s)",
                work.name(),
                table::rate(rate)
            ),
            format!(
                "{} ({} vs {} ns); net of the untraced loop ({} ns): {}",
                table::ratio(r),
                table::ns(ns[cell][0].median()),
                table::ns(ns[cell][1].median()),
                table::ns(loop_ns[cell].median()),
                table::ratio(net)
            ),
            net <= 0.25,
        );
    }
}

/// Who traces in the caller-cost part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Ours,
    Sdk,
    FastraceBare,
    FastraceProps,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// A root with this many children, two attributes per span.
    Children(u64),
    /// A root and nine children, this many attributes per span.
    Attrs(usize),
}

impl Shape {
    fn spans(self) -> u64 {
        match self {
            Shape::Children(c) => c + 1,
            Shape::Attrs(_) => ATTR_TRACE_SPANS,
        }
    }
}

/// One trace of `shape` traced by `caller`.
fn trace_once(caller: Caller, shape: Shape, n: u64) -> u64 {
    let q = black_box(QUERY);
    match (caller, shape) {
        (Caller::Ours, Shape::Children(c)) => ours::wide(q, n, c),
        (Caller::Sdk, Shape::Children(c)) => sdk::wide(q, n, c),
        (Caller::FastraceBare, Shape::Children(c)) => fastrace_bare::wide(q, n, c),
        (Caller::FastraceProps, Shape::Children(c)) => fastrace_props::wide(q, n, c),
        (caller, Shape::Attrs(a)) => {
            let f: [fn(u64) -> u64; 3] = match a {
                0 => [
                    attrs_0::ours_root,
                    attrs_0::sdk_root,
                    attrs_0::fastrace_root,
                ],
                1 => [
                    attrs_1::ours_root,
                    attrs_1::sdk_root,
                    attrs_1::fastrace_root,
                ],
                10 => [
                    attrs_10::ours_root,
                    attrs_10::sdk_root,
                    attrs_10::fastrace_root,
                ],
                50 => [
                    attrs_50::ours_root,
                    attrs_50::sdk_root,
                    attrs_50::fastrace_root,
                ],
                _ => unreachable!("attribute counts are 0, 1, 10, 50"),
            };
            match caller {
                Caller::Ours => f[0](n),
                Caller::Sdk => f[1](n),
                Caller::FastraceBare | Caller::FastraceProps => f[2](n),
            }
        }
    }
}

/// Caller CPU ns per span of `shape` by `caller`, paced; and the spans it lost.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn caller_cost(
    cfg: &Config,
    receiver: &Receiver,
    reported: &AtomicU64,
    caller: Caller,
    shape: Shape,
) -> (f64, u64) {
    let pipeline = match caller {
        Caller::Ours => Some(Pipeline::install(Peer::Ours, &receiver.traces_url())),
        Caller::Sdk => Some(Pipeline::install(Peer::Sdk, &receiver.traces_url())),
        Caller::FastraceBare | Caller::FastraceProps => None,
    };
    let tracer = pipeline.as_ref().and_then(Pipeline::tracer);
    let spans_per_trace = shape.spans();
    let per_burst = 512u64.div_ceil(spans_per_trace);
    let rate = match shape {
        Shape::Children(_) => cfg.caller_rate,
        Shape::Attrs(_) => cfg.caller_attr_rate,
    };
    let total = ((rate * cfg.caller_secs) as u64).max(per_burst * spans_per_trace);
    settle();
    let before = receiver.counts();
    let reported_before = reported.load(Ordering::Acquire);
    let (cpu_ns, made) = std::thread::spawn(move || {
        sdk::set_tracer(tracer);
        let mut n = 0u64;
        let mut acc = 0u64;
        // Warm-up burst, not measured.
        for _ in 0..per_burst {
            acc ^= trace_once(caller, shape, n);
            n += 1;
        }
        let mut made = per_burst * spans_per_trace;
        let mut measured = 0u64;
        let mut cpu = Duration::ZERO;
        let started = Instant::now();
        while measured < total {
            let t0 = cpu::thread();
            for _ in 0..per_burst {
                acc ^= trace_once(caller, shape, n);
                n += 1;
            }
            cpu += cpu::thread().saturating_sub(t0);
            measured += per_burst * spans_per_trace;
            let due = started + Duration::from_secs_f64(measured as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        made += measured;
        sdk::set_tracer(None);
        black_box(acc);
        (cpu.as_nanos() as f64 / measured as f64, made)
    })
    .join()
    .expect("the caller thread panicked");
    let delivered = if let Some(p) = pipeline {
        p.shutdown();
        settle();
        (receiver.counts() - before).spans
    } else {
        // fastrace's collector hands spans over after `flush` returns: wait until the count
        // stops moving.
        let mut last = u64::MAX;
        loop {
            fastrace::flush();
            settle();
            let now = reported.load(Ordering::Acquire);
            if now == last {
                break now - reported_before;
            }
            last = now;
        }
    };
    (cpu_ns, made.saturating_sub(delivered))
}

/// Part `caller`.
#[allow(clippy::too_many_lines)]
fn caller(cfg: &Config, receiver: &Receiver, reported: &AtomicU64, goals: &mut Goals) {
    use Caller::{FastraceBare, FastraceProps, Ours, Sdk};
    let sizes = [1u64, 10, 100, 1000];
    let size_peers = [Ours, Sdk, FastraceBare, FastraceProps];
    let counts = [0usize, 1, 10, 50];
    let count_peers = [Ours, Sdk, FastraceProps];
    let mut by_size = vec![vec![Samples::default(); size_peers.len()]; sizes.len()];
    let mut lost_size = vec![vec![0u64; size_peers.len()]; sizes.len()];
    let mut by_count = vec![vec![Samples::default(); count_peers.len()]; counts.len()];
    let mut lost_count = vec![vec![0u64; count_peers.len()]; counts.len()];
    for round in 0..cfg.rounds {
        for (i, &c) in sizes.iter().enumerate() {
            for k in 0..size_peers.len() {
                // Rotate the order per round.
                let p = (k + round) % size_peers.len();
                let (ns, lost) =
                    caller_cost(cfg, receiver, reported, size_peers[p], Shape::Children(c));
                eprintln!(
                    "[caller] round {round} children {c} {:?}: {ns:.0} ns/span, lost {lost}",
                    size_peers[p]
                );
                by_size[i][p].push(ns);
                lost_size[i][p] += lost;
            }
        }
        for (i, &a) in counts.iter().enumerate() {
            for k in 0..count_peers.len() {
                let p = (k + round) % count_peers.len();
                let (ns, lost) =
                    caller_cost(cfg, receiver, reported, count_peers[p], Shape::Attrs(a));
                eprintln!(
                    "[caller] round {round} attrs {a} {:?}: {ns:.0} ns/span, lost {lost}",
                    count_peers[p]
                );
                by_count[i][p].push(ns);
                lost_count[i][p] += lost;
            }
        }
    }
    let cell = |s: &Samples, lost: u64| {
        let mut out = s.show(table::ns);
        if lost > 0 {
            let _ = write!(out, " (LOST {lost})");
        }
        out
    };
    let ratio = |a: &Samples, b: &Samples| {
        let r: Vec<f64> = a.0.iter().zip(&b.0).map(|(x, y)| x / y).collect();
        Samples(r).show(table::ratio)
    };

    let mut t = Table::new([
        format!(
            "caller CPU ns per span, paced at {} spans/s, median of {} (min-max)",
            table::rate(cfg.caller_rate),
            cfg.rounds
        )
        .as_str(),
        "ours",
        "OTel SDK",
        "fastrace, no properties",
        "fastrace, 2 properties",
        "**ours / SDK**",
        "**ours / fastrace no props**",
    ]);
    for (i, &c) in sizes.iter().enumerate() {
        let row = &by_size[i];
        t.row(
            std::iter::once(format!(
                "root + {c} child{} (2 attributes each)",
                if c == 1 { "" } else { "ren" }
            ))
            .chain((0..size_peers.len()).map(|p| cell(&row[p], lost_size[i][p])))
            .chain([ratio(&row[0], &row[1]), ratio(&row[0], &row[2])]),
        );
    }
    let flat = |p: usize| {
        let last = sizes.len() - 1;
        table::ratio(by_size[last][p].median() / by_size[0][p].median())
    };
    t.row(
        std::iter::once("1,000 children vs 1 (flat: within 1.2x)".to_owned())
            .chain((0..size_peers.len()).map(flat))
            .chain([String::new(), String::new()]),
    );
    println!(
        "### Caller cost per span by trace size (everything delivered)\n\n{}",
        t.render()
    );

    let mut t = Table::new([
        format!(
            "caller CPU ns per span, root + 9 children, paced at {} spans/s, median of {} (min-max)",
            table::rate(cfg.caller_attr_rate),
            cfg.rounds
        )
        .as_str(),
        "ours (`metadata(..)`)",
        "OTel SDK (`set_attribute`)",
        "fastrace (`properties`)",
        "**ours / SDK**",
    ]);
    for (i, &a) in counts.iter().enumerate() {
        let row = &by_count[i];
        t.row(
            std::iter::once(format!(
                "{a} attribute{} per span",
                if a == 1 { "" } else { "s" }
            ))
            .chain((0..count_peers.len()).map(|p| cell(&row[p], lost_count[i][p])))
            .chain([ratio(&row[0], &row[1])]),
        );
    }
    let last = counts.len() - 1;
    let per_attr = |p: usize| {
        // Per round, then the median.
        let r: Vec<f64> = by_count[last][p]
            .0
            .iter()
            .zip(&by_count[0][p].0)
            .map(|(x, y)| (x - y) / 50.0)
            .collect();
        Samples(r)
    };
    let (ours_attr, sdk_attr) = (per_attr(0), per_attr(1));
    t.row([
        "ns per added attribute ((50 - 0) / 50)".to_owned(),
        ours_attr.show(table::ns),
        sdk_attr.show(table::ns),
        per_attr(2).show(table::ns),
        table::ratio(ours_attr.median() / sdk_attr.median()),
    ]);
    println!(
        "### Caller cost per span by attribute count (everything delivered)\n\n{}",
        t.render()
    );

    let worst = |other: usize| {
        by_size
            .iter()
            .map(|row| {
                let r: Vec<f64> = row[0]
                    .0
                    .iter()
                    .zip(&row[other].0)
                    .map(|(x, y)| x / y)
                    .collect();
                Samples(r).median()
            })
            .fold(0.0, f64::max)
    };
    let (vs_sdk, vs_fastrace) = (worst(1), worst(2));
    goals.add(
        "caller cost per span <= 0.2x the SDK, everything delivered",
        format!("{} at the worst trace size", table::ratio(vs_sdk)),
        vs_sdk <= 0.2,
    );
    goals.add(
        "caller cost per span below fastrace `#[trace]` without properties",
        format!("{} at the worst trace size", table::ratio(vs_fastrace)),
        vs_fastrace < 1.0,
    );
    let medians: Vec<f64> = by_size.iter().map(|row| row[0].median()).collect();
    let (lo, hi) = medians
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    goals.add(
        "caller cost flat within 20% from 1 to 1,000 children per trace",
        format!(
            "{}-{} ns: highest / lowest {}",
            table::ns(lo),
            table::ns(hi),
            table::ratio(hi / lo)
        ),
        hi / lo <= 1.2,
    );
    goals.add(
        "each added attribute costs no more than it costs the SDK",
        format!(
            "{} vs {} ns per attribute ({})",
            table::ns(ours_attr.median()),
            table::ns(sdk_attr.median()),
            table::ratio(ours_attr.median() / sdk_attr.median())
        ),
        ours_attr.median() <= sdk_attr.median(),
    );
}

/// Part `caller-ours`: ours alone, by trace size.
fn caller_ours(cfg: &Config, receiver: &Receiver, reported: &AtomicU64) {
    let sizes: Vec<u64> = std::env::var("HH_BENCH_CALLER_CHILDREN")
        .unwrap_or_else(|_| "1,10,100,1000".to_owned())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .unwrap_or_else(|_| panic!("HH_BENCH_CALLER_CHILDREN: {c} is not a number"))
        })
        .collect();
    let mut by_size = vec![Samples::default(); sizes.len()];
    let mut lost_size = vec![0u64; sizes.len()];
    for round in 0..cfg.rounds {
        for (i, &c) in sizes.iter().enumerate() {
            let (ns, lost) = caller_cost(cfg, receiver, reported, Caller::Ours, Shape::Children(c));
            eprintln!("[caller-ours] round {round} children {c}: {ns:.0} ns/span, lost {lost}");
            by_size[i].push(ns);
            lost_size[i] += lost;
        }
    }
    let mut t = Table::new([
        format!(
            "ours alone: caller CPU ns per span, paced at {} spans/s, median of {} (min-max)",
            table::rate(cfg.caller_rate),
            cfg.rounds
        )
        .as_str(),
        "ours",
        "spans lost",
    ]);
    for (i, &c) in sizes.iter().enumerate() {
        t.row([
            format!("root + {c}"),
            by_size[i].show(table::ns),
            lost_size[i].to_string(),
        ]);
    }
    println!(
        "### Caller cost per span by trace size, ours alone\n\n{}",
        t.render()
    );
}

fn main() {
    let cfg = Config::from_env();
    let otel: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("OTEL_"))
        .collect();
    if !otel.is_empty() {
        eprintln!("[throughput] warning: the SDK peer reads {otel:?}; unset them for its defaults");
    }
    let reported = Arc::new(AtomicU64::new(0));
    fastrace::set_reporter(
        CountingReporter(Arc::clone(&reported)),
        fastrace::collector::Config::default(),
    );
    let receiver = Receiver::start();
    let started = Instant::now();
    let mut goals = Goals::default();
    println!(
        "## throughput bench: {} rounds; flat out {} s; paced {} s at {} plain / {} LLM spans/s; \
         caller cost {} s per cell at {} spans/s ({} with attributes); {} CPUs\n",
        cfg.rounds,
        cfg.secs,
        cfg.paced_secs,
        table::rate(cfg.paced_rate),
        table::rate(cfg.paced_llm_rate),
        cfg.caller_secs,
        table::rate(cfg.caller_rate),
        table::rate(cfg.caller_attr_rate),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );
    if cfg.part("ceiling") {
        ceiling(&receiver);
    }
    if cfg.part("delivered") {
        delivered(&cfg, &receiver, &mut goals);
    }
    if cfg.part("cpu") {
        cpu_per_span(&cfg, &receiver, &mut goals);
    }
    if cfg.part("caller") {
        caller(&cfg, &receiver, &reported, &mut goals);
    }
    if cfg.part("caller-ours") {
        caller_ours(&cfg, &receiver, &reported);
    }
    goals.print();
    eprintln!(
        "[throughput] done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
