use honeyhive_runtime::trace;

#[trace(name)]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

#[trace(event_type = )]
fn complete_again(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
    complete_again("hi");
}
