use honeyhive_runtime::trace;

#[trace(skip(secret))]
fn login((user, secret): (&str, &str)) -> usize {
    user.len() + secret.len()
}

fn main() {
    login(("ann", "pw"));
}
