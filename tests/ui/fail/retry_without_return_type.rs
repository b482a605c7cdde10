use honeyhive_runtime::retry;

#[retry]
fn fire_and_forget(message: &str) {
    let _ = message;
}

fn main() {}
