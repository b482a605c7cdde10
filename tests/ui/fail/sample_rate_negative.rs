use honeyhive_runtime::trace;

#[trace(sample_rate = -0.5)]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
}
