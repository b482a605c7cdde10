use honeyhive_runtime::trace;

#[trace]
async fn count(prompt: &str) -> u32 {
    prompt.len()
}

#[trace]
fn count_sync(prompt: &str) -> u32 {
    prompt.len()
}

fn main() {
    let _ = count("hi");
    count_sync("hi");
}
