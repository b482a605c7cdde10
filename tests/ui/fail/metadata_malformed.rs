use honeyhive_runtime::trace;

#[trace(metadata(model))]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

#[trace(metadata("model" = "gpt-4o"))]
fn complete_again(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
    complete_again("hi");
    complete_once_more("hi");
}

#[trace(metadata(model = ))]
fn complete_once_more(prompt: &str) -> String {
    prompt.to_owned()
}
