use honeyhive_runtime::retry;

struct Request {
    prompt: String,
}

fn send(request: Request) -> Result<String, String> {
    Ok(request.prompt)
}

// Each attempt needs its own `request`: the fix is `#[retry(clone(request))]`.
#[retry]
fn complete(request: Request, attempt_budget: u32) -> Result<String, String> {
    let _ = attempt_budget;
    send(request)
}

fn main() {}
