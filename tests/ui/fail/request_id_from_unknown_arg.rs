use honeyhive_runtime::with_request_id;

#[with_request_id(from = header)]
fn handle(headers: &str, body: &str) -> usize {
    headers.len() + body.len()
}

fn main() {
    handle("r-1", "");
}
