use honeyhive_runtime::trace;

#[trace(metadata(model = "gpt-4o", temperature = 0.2, model = "gpt-4o-mini"))]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
}
