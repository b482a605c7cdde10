use honeyhive_runtime::with_request_id;

#[with_request_id(from = a, from = b)]
fn handle(a: &str, b: &str) -> usize {
    a.len() + b.len()
}

fn main() {
    handle("r-1", "r-2");
}
