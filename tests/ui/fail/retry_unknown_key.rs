use honeyhive_runtime::retry;

#[retry(max_attempt = 3)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
