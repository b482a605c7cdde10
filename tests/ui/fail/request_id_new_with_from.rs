use honeyhive_runtime::with_request_id;

#[with_request_id(new, from = id)]
fn handle(id: &str) -> usize {
    id.len()
}

fn main() {
    handle("r-1");
}
