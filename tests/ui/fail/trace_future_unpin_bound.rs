use std::future::Future;

use honeyhive_runtime::trace;

#[trace]
fn ready(n: u32) -> impl Future<Output = u32> + Unpin {
    std::future::ready(n)
}

fn main() {
    let _ = ready(1);
}
