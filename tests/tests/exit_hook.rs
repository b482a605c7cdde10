//! A process that calls `std::process::exit`, or returns from `main` with its guard leaked,
//! still flushes its spans within the deadline; `HH_EXIT_HOOK=false` opts out.

use std::process::Command;
use std::time::Duration;

fn run(how: &str, hook: bool) -> Vec<String> {
    let (url, rx) = honeyhive_tests::otlp_receiver();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exit_without_guard"));
    cmd.arg(how)
        .env_clear()
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url);
    if !hook {
        cmd.env("HH_EXIT_HOOK", "false");
    }
    let status = cmd.status().expect("the program runs");
    assert!(status.success(), "{status}");
    // The process has exited: whatever it sent has arrived.
    let mut names: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_millis(200)).ok())
            .flat_map(|req| req.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .map(|s| s.name)
            .collect();
    names.sort();
    names
}

#[test]
fn process_exit_still_flushes() {
    assert_eq!(run("exit", true), ["job", "step", "step"]);
}

#[test]
fn returning_from_main_with_the_guard_leaked_still_flushes() {
    assert_eq!(run("leak", true), ["job", "step", "step"]);
}

#[test]
fn the_exit_hook_can_be_turned_off() {
    assert!(run("exit", false).is_empty());
}
