use honeyhive_runtime::trace;

#[trace(skip(api_key), skip(token))]
fn complete(prompt: &str, api_key: &str, token: &str) -> String {
    format!("{prompt}{api_key}{token}")
}

fn main() {
    complete("hi", "secret", "t");
}
