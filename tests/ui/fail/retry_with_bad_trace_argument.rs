use honeyhive_runtime::{retry, trace};

// `#[retry]` expands first and traces each attempt: `#[trace]`'s own errors still show.
#[retry]
#[trace(event_type = "modle")]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
