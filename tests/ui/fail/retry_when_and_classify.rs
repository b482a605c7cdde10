use honeyhive_runtime::retry;
use honeyhive_runtime::retry::Decision;

fn transient(_: &String) -> bool {
    true
}

fn classify(_: &String) -> Decision {
    Decision::Retry
}

#[retry(when = transient, classify = classify)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {}
