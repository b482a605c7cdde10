use honeyhive_runtime::trace;

struct Client {
    api_key: String,
}

#[trace]
fn complete(client: &Client, prompt: &str) -> String {
    format!("{}{prompt}", client.api_key)
}

fn main() {
    let client = Client {
        api_key: String::new(),
    };
    complete(&client, "hi");
}
