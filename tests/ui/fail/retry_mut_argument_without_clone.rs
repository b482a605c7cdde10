use honeyhive_runtime::retry;

// Each attempt starts from the caller's `prompt`, so a `mut` owned argument needs its own
// value per attempt: `#[retry(clone(prompt))]`.
#[retry]
fn complete(mut prompt: String) -> Result<String, String> {
    prompt.push_str(" (retried)");
    Ok(prompt)
}

fn main() {}
