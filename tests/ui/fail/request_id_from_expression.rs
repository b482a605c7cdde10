use honeyhive_runtime::with_request_id;

#[with_request_id(from = req.headers())]
fn handle(req: &str) -> usize {
    req.len()
}

fn main() {
    handle("r-1");
}
