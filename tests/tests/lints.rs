//! The expansion of `#[trace]` is clean in a user's crate under
//! `#![deny(warnings, clippy::pedantic)]` with the prelude's `Result`, `Option` and `Box`
//! shadowed. trybuild runs rustc only (see `ui/pass/shadowed_prelude.rs`), so this runs
//! `cargo clippy` on `lints-fixture/`, a crate outside the workspace with its own lint settings.
//!
//! The fixture builds in its own target directory (`target/lints-fixture`), cached between
//! runs, and offline: it resolves the workspace's `Cargo.lock`, whose crates are already
//! downloaded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A first, uncached run on a busy 2-core machine takes a few minutes; later runs seconds.
const TIMEOUT: Duration = Duration::from_mins(15);

#[test]
fn traced_code_is_clippy_pedantic_clean() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = manifest_dir.join("lints-fixture");
    let workspace = manifest_dir
        .parent()
        .expect("the tests crate is in the workspace");
    // The workspace's versions, so that nothing needs downloading.
    std::fs::copy(workspace.join("Cargo.lock"), fixture.join("Cargo.lock"))
        .expect("copy Cargo.lock to the fixture");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from)
        .join("lints-fixture");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["clippy", "--offline", "--quiet", "--manifest-path"])
        .arg(fixture.join("Cargo.toml"))
        .args(["--", "-D", "warnings", "-W", "clippy::pedantic"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run `cargo clippy`");

    // Diagnostics go to stderr; read them on a thread so that waiting can time out.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let mut output = String::new();
        let _ = stderr.read_to_string(&mut output);
        let _ = done.send(output);
    });
    let Ok(output) = finished.recv_timeout(TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`cargo clippy` on the lints fixture did not finish within {TIMEOUT:?}");
    };
    let status = child.wait().expect("wait for `cargo clippy`");
    assert!(
        status.success(),
        "clippy found problems in traced code ({status}):\n{output}"
    );
}
