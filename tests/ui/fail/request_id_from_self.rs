use honeyhive_runtime::with_request_id;

#[with_request_id(from = self)]
fn handle(headers: &str) -> usize {
    headers.len()
}

fn main() {
    handle("r-1");
}
