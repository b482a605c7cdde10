use honeyhive_runtime::retry;

#[retry(max_attempts = 5000000000)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
