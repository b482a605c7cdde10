use honeyhive_runtime::trace;

#[trace(skip = api_key)]
fn complete(prompt: &str, api_key: &str) -> String {
    format!("{prompt}{api_key}")
}

#[trace(skip("api_key"))]
fn complete_again(prompt: &str, api_key: &str) -> String {
    format!("{prompt}{api_key}")
}

fn main() {
    complete("hi", "secret");
    complete_again("hi", "secret");
}
