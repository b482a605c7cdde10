use honeyhive_runtime::retry;

#[retry(jitter = ful)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
