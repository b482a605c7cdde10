use honeyhive_runtime::with_request_id;

#[with_request_id]
struct Handler;

fn main() {
    let _ = Handler;
}
