use honeyhive_runtime::retry;

#[retry]
fn count() -> u32 {
    1
}

#[retry]
async fn answer() -> Option<String> {
    None
}

fn main() {}
