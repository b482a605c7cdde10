use honeyhive_runtime::retry;

#[retry(backoff = linear(1s))]
fn linear() -> Result<(), String> {
    Ok(())
}

#[retry(backoff = exponential(initial = 1s, growth = 2))]
fn growth() -> Result<(), String> {
    Ok(())
}

#[retry(backoff = exponential(initial = 10s, max = 1s))]
fn max_below_initial() -> Result<(), String> {
    Ok(())
}

fn main() {}
