use honeyhive_runtime::trace;

trait Llm {
    #[trace]
    fn complete(&self, prompt: &str) -> String;
}

struct Echo;

impl Llm for Echo {
    fn complete(&self, prompt: &str) -> String {
        prompt.to_owned()
    }
}

fn main() {
    Echo.complete("hi");
}
