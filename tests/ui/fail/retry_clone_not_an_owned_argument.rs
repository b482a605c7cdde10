use honeyhive_runtime::retry;

struct Client;

impl Client {
    #[retry(clone(self, prompt, model, model))]
    fn complete(&self, prompt: &str, model: String) -> Result<String, String> {
        Ok(format!("{model}: {prompt}"))
    }
}

#[retry(clone(prompt))]
fn complete(message: String) -> Result<String, String> {
    Ok(message)
}

fn main() {}
