use honeyhive_runtime::retry;

struct Request {
    prompt: String,
}

fn send(request: Request) -> Result<String, String> {
    Ok(request.prompt)
}

// The attempts share `request`, and the body consumes it: the error points at the move. The
// fix is `#[retry(clone(request))]` (or a body that borrows it).
#[retry]
fn complete(request: Request, attempt_budget: u32) -> Result<String, String> {
    let _ = attempt_budget;
    send(request)
}

#[retry(sleep = no_wait)]
async fn complete_async(request: Request) -> Result<String, String> {
    send(request)
}

async fn no_wait(_: std::time::Duration) {}

fn main() {}
