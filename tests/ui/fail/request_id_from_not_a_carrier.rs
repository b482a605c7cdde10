use honeyhive_runtime::with_request_id;

struct Request {
    id: u64,
}

#[with_request_id(from = req)]
fn handle(req: &Request) -> u64 {
    req.id
}

fn main() {
    handle(&Request { id: 1 });
}
