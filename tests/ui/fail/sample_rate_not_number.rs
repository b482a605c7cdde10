use honeyhive_runtime::trace;

const RATE: f64 = 0.5;

#[trace(sample_rate = "0.5")]
fn complete(prompt: &str) -> String {
    prompt.to_owned()
}

#[trace(sample_rate = RATE)]
fn complete_const(prompt: &str) -> String {
    prompt.to_owned()
}

fn main() {
    let _ = RATE;
    complete("hi");
    complete_const("hi");
}
