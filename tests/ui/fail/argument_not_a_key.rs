use honeyhive_runtime::trace;

#[trace("complete")]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
}
