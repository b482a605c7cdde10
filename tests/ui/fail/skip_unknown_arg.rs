use honeyhive_runtime::trace;

#[trace(skip(api_kye))]
fn complete(prompt: &str, api_key: &str) -> String {
    format!("{prompt}{api_key}")
}

fn main() {
    complete("hi", "secret");
}
