use std::future::Future;

use honeyhive_runtime::trace;

#[trace]
fn ready(n: u32) -> impl Future<Output = u32> + Clone {
    std::future::ready(n)
}

fn main() {
    let _ = ready(1);
}
