use honeyhive_runtime::trace;

#[trace(crate = "not a path")]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

#[trace(crate = honeyhive_runtime)]
fn complete_again(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
    complete_again("hi");
}
