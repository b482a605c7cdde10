use honeyhive_runtime::retry;

// Nested, each attempt of the outer retry would be three of the inner: 9 calls.
#[retry]
#[retry(max_attempts = 2)]
fn fetch(url: &str) -> Result<usize, String> {
    Ok(url.len())
}

fn main() {
    let _ = fetch("x");
}
