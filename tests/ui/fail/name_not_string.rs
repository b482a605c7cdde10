use honeyhive_runtime::trace;

#[trace(name = complete_v2)]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
}
