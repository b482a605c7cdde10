use honeyhive_runtime::trace;

#[trace(resources = true)]
fn work(n: u64) -> u64 {
    n * 2
}

fn main() {
    work(1);
}
