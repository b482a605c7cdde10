use honeyhive_runtime::with_request_id;

#[with_request_id(new = true)]
fn handle() -> usize {
    1
}

fn main() {
    handle();
}
