use honeyhive_runtime::retry;

// Every bad duration is reported, not only the first.
#[retry(backoff = constant(500), max_delay = 5sec, max_elapsed = "1m")]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
