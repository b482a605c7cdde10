use honeyhive_runtime::retry;

#[retry(max_attempts = 3, backoff = constant(1s), max_attempts = 4)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
