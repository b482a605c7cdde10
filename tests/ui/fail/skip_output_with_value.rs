use honeyhive_runtime::trace;

#[trace(skip_output = true)]
fn token(user: &str) -> String {
    format!("token-for-{user}")
}

fn main() {
    token("ada");
}
