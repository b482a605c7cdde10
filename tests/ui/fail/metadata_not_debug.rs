use honeyhive_runtime::trace;

struct Model {
    id: &'static str,
}

const MODEL: Model = Model { id: "gpt-4o" };

#[trace(metadata(model = MODEL, temperature = 0.2))]
fn complete(prompt: &str) -> String {
    format!("{}: {prompt}", MODEL.id)
}

fn main() {
    complete("hi");
}
