use honeyhive_runtime::trace;

#[trace(skip_all, skip(api_key))]
fn complete(prompt: &str, api_key: &str) -> String {
    format!("{prompt}{api_key}")
}

fn main() {
    complete("hi", "secret");
}
