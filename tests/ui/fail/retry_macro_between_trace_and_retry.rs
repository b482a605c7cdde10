use honeyhive_runtime::{retry, trace};

// Written between `#[trace]` and `#[retry]`, `instrument` would run once per attempt in
// Rust's order, but `#[trace] #[retry]` runs the attempts inside one span.
#[trace]
#[tracing::instrument]
#[retry]
fn fetch(url: &str) -> Result<usize, String> {
    Ok(url.len())
}

// Rust's own attributes between them are fine.
#[trace]
#[allow(clippy::needless_pass_by_value)]
#[inline]
#[retry]
fn fine(url: String) -> Result<usize, String> {
    Ok(url.len())
}

fn main() {
    let _ = fetch("x");
    let _ = fine(String::new());
}
