use honeyhive_runtime::retry;

#[derive(Debug)]
struct ApiError(u16);

// Takes the error by value and returns a number: not `fn(&E) -> bool`.
fn transient(e: ApiError) -> u16 {
    e.0
}

#[retry(max_attempts = 3, when = transient)]
fn call() -> Result<u32, ApiError> {
    Err(ApiError(503))
}

fn main() {
    let _ = call();
}
