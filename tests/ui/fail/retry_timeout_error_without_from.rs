use honeyhive_runtime::retry;

#[derive(Debug)]
struct ApiError;

#[retry(attempt_timeout = 30s)]
async fn complete() -> Result<String, ApiError> {
    Ok(String::new())
}

fn main() {}
