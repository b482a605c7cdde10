use honeyhive_runtime::{retry, trace};

// `#[trace]` expands first and runs `#[retry]` inside its span: the error is still reported once,
// at the user's tokens.
#[trace]
#[retry(max_attempts = 0)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
