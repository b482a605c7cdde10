//! Another process with nothing but a span reference: sends feedback for the reference given
//! as its argument, with settings from the environment (`HH_API_KEY`, `HH_API_URL`), and exits
//! by dropping its guard. Run by `tests/feedback.rs`.

use honeyhive_runtime::{SpanRef, feedback};

fn main() {
    let guard = honeyhive_runtime::init();
    let text = std::env::args().nth(1).unwrap_or_default();
    let span_ref: SpanRef = text.parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    feedback(&span_ref)
        .score(0.5)
        .comment("from another process")
        .send();
    // Waits for the feedback still being sent, then exports the spans.
    drop(guard);
}
