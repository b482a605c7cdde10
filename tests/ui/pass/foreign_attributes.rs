//! Another crate's attribute whose last path segment is `retry` or `trace` is not ours:
//! `#[trace]` neither expands it as a retry loop nor reports it as a second `#[trace]`.
//! (Here both are `tracing::instrument`, reached through a module that renames it.)

use std::cell::Cell;

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

mod other {
    pub use tracing::instrument as retry;
    pub use tracing::instrument as trace;
}

#[trace]
#[other::retry(skip_all)]
fn call(calls: &Cell<u32>) -> Result<(), String> {
    calls.set(calls.get() + 1);
    Err("no".to_owned())
}

#[trace]
#[other::trace(skip_all)]
fn lookup(city: &str) -> usize {
    city.len()
}

fn main() {
    let rec = Recorder::start();
    let calls = Cell::new(0);
    assert!(call(&calls).is_err());
    // Not retried: one call, and no retry attributes on the span.
    assert_eq!(calls.get(), 1);
    assert_eq!(lookup("Paris"), 5);
    let spans = rec.spans();
    assert_eq!(spans.get("call").i64("retry.attempts"), None);
    assert_eq!(spans.all("lookup").count(), 1);
}
