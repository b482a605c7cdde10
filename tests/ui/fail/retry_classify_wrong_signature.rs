use honeyhive_runtime::retry;

#[derive(Debug)]
struct ApiError(u16);

// Returns a bool: that is `when`'s signature, not `classify`'s.
fn transient(e: &ApiError) -> bool {
    e.0 >= 500
}

#[retry(classify = transient)]
fn call() -> Result<u32, ApiError> {
    Err(ApiError(503))
}

fn main() {
    let _ = call();
}
