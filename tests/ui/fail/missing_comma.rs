use honeyhive_runtime::trace;

#[trace(name = "complete" event_type = "model")]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    complete("hi");
}
