//! User code that runs while a span records (an argument's or output's `Debug`, an error's
//! `Display` for the span and for each retry event, a `Drop`) may itself trace, enrich and
//! record LLM calls: nothing panics, and nothing it adds is lost.

use std::fmt;

use honeyhive_runtime::testing::{FinishedSpan, Recorder, Spans};
use honeyhive_runtime::{LlmCall, enrich_span, export_stats, retry, trace};

#[trace]
fn helper(n: u32) -> u32 {
    enrich_span().metadata("helper", n);
    n + 1
}

/// Traces, enriches and records an LLM call from its `Debug` and `Display`.
struct Sneaky(u32);

impl fmt::Debug for Sneaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = helper(self.0);
        enrich_span().metadata("from_format", h);
        LlmCall::new("gpt-4o-mini").usage(1, 1).record();
        write!(f, "Sneaky({h})")
    }
}

impl fmt::Display for Sneaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[trace]
fn takes(s: Sneaky) -> u32 {
    s.0
}

#[trace]
fn gives(n: u32) -> Sneaky {
    Sneaky(n)
}

#[trace]
fn fails(n: u32) -> Result<u32, Sneaky> {
    Err(Sneaky(n))
}

#[trace]
#[retry(max_attempts = 3, backoff = constant(0ms), jitter = none)]
fn retried(n: u32) -> Result<u32, Sneaky> {
    Err(Sneaky(n))
}

#[trace]
async fn takes_async(s: Sneaky) -> Sneaky {
    s
}

fn helpers_under<'a>(spans: &'a Spans, parent: &FinishedSpan) -> Vec<&'a FinishedSpan> {
    spans
        .children_of(parent)
        .into_iter()
        .filter(|s| s.0.name == "helper")
        .collect()
}

#[test]
fn what_user_code_adds_while_a_span_records_reaches_its_span() {
    let rec = Recorder::start();
    assert_eq!(takes(Sneaky(1)), 1);
    assert_eq!(gives(2).0, 2);
    assert!(fails(3).is_err());
    assert!(retried(4).is_err());
    assert_eq!(futures_executor::block_on(takes_async(Sneaky(5))).0, 5);
    assert!(rec.guard().force_flush());
    let spans = rec.spans();
    // How many times each span formats a `Sneaky`: the argument; the output; the error; the
    // error in the retry event of each of the three attempts, and the span's own; argument
    // and output.
    for (name, formats) in [
        ("takes", 1),
        ("gives", 1),
        ("fails", 1),
        ("retried", 4),
        ("takes_async", 2),
    ] {
        let span = spans.get(name);
        let helpers = helpers_under(&spans, span);
        assert_eq!(helpers.len(), formats, "{name}: {:?}", spans.names());
        for h in helpers {
            assert!(
                h.i64("honeyhive_metadata.helper").is_some(),
                "{name}: a helper span lost its enrichment"
            );
        }
        assert!(
            span.i64("honeyhive_metadata.from_format").is_some(),
            "{name}: the enrichment made while formatting is on the span"
        );
        assert_eq!(
            span.str("gen_ai.request.model"),
            Some("gpt-4o-mini"),
            "{name}"
        );
    }
    assert_eq!(export_stats().lost_annotations, 0);
}
