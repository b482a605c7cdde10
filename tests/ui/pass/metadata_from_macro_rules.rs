//! `metadata(..)`, argument types and whole traced fns written by `macro_rules!`: the
//! expansion's own names resolve whatever the hygiene of the user's tokens.

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

macro_rules! traced_with_model {
    ($name:ident, $model:expr) => {
        #[trace(metadata(model = $model, version = 2))]
        fn $name(prompt: &str) -> usize {
            prompt.len()
        }
    };
}

traced_with_model!(complete, "gpt-4o");

macro_rules! model_name {
    () => {
        "claude"
    };
}

#[trace(metadata(model = model_name!()))]
fn summarize(text: &str) -> usize {
    text.len()
}

macro_rules! traced_fn {
    ($name:ident($arg:ident: $ty:ty) $body:block) => {
        #[trace]
        fn $name($arg: $ty) -> usize $body
    };
}

traced_fn!(count(items: Vec<u8>) { items.len() });

fn main() {
    let rec = Recorder::start();
    complete("hi");
    summarize("text");
    count(vec![1, 2, 3]);
    let spans = rec.spans();
    assert_eq!(spans.get("complete").str("honeyhive_metadata.model"), Some("gpt-4o"));
    assert_eq!(spans.get("complete").i64("honeyhive_metadata.version"), Some(2));
    assert_eq!(spans.get("summarize").str("honeyhive_metadata.model"), Some("claude"));
    assert_eq!(spans.get("count").str("honeyhive_inputs.items"), Some("[1, 2, 3]"));
}
