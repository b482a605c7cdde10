use honeyhive_runtime::trace;

#[trace(sample_rate = 1.5)]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

#[trace(sample_rate = 25)]
fn complete_percent(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
    complete_percent("hi");
}
