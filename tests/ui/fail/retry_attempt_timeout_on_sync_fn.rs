use honeyhive_runtime::retry;

#[retry(attempt_timeout = 2s)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
