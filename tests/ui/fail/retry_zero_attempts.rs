use honeyhive_runtime::retry;

#[retry(max_attempts = 0)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
