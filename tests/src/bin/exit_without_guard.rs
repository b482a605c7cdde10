//! A program that traces, then leaves without dropping its guard: `std::process::exit`, or
//! `main` returning with the guard leaked. Run by `tests/exit_hook.rs` against a local OTLP
//! receiver (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `HH_EXIT_HOOK=false` turns the hook off.

use honeyhive_runtime::trace;

#[trace(event_type = "tool")]
fn step(n: u32) -> u32 {
    n + 1
}

#[trace(event_type = "chain")]
fn job() -> u32 {
    step(1) + step(2)
}

fn main() {
    let guard = honeyhive_runtime::init();
    assert_eq!(job(), 5);
    match std::env::args().nth(1).as_deref() {
        Some("exit") => std::process::exit(0),
        _ => std::mem::forget(guard),
    }
}
