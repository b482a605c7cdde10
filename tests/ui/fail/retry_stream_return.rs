use honeyhive_runtime::retry;

#[retry]
fn tokens(prompt: &str) -> impl Iterator<Item = String> {
    prompt.split(' ').map(str::to_owned).collect::<Vec<_>>().into_iter()
}

fn main() {}
