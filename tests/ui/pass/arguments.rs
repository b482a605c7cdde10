//! Every argument of `#[trace]`: `name`, every event type, `sample_rate`, `skip`, `skip_all`,
//! `skip_output`, `metadata` and `crate`.

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

const MODEL: &str = "gpt-4o";

#[trace(name = "llm.complete", event_type = "model")]
fn complete(prompt: &str) -> String {
    prompt.to_uppercase()
}

#[trace(event_type = "tool")]
fn tool() {}
#[trace(event_type = "chain")]
fn chain() {}
#[trace(event_type = "session")]
fn session() {}
#[trace(event_type = "agent")]
fn agent() {}
#[trace(event_type = "retriever")]
fn retriever() {}
#[trace(event_type = "embedding")]
fn embedding() {}
#[trace(event_type = "evaluator")]
fn evaluator() {}
#[trace(event_type = "guardrail")]
fn guardrail() {}

#[trace(sample_rate = 0.0)]
fn never() {}
#[trace(sample_rate = 1.0)]
fn always() {}
#[trace(sample_rate = 0.25)]
fn quarter() {}
#[trace(sample_rate = 1)]
fn always_int() {}

#[trace(skip(api_key, client_id))]
fn call(prompt: &str, api_key: &str, client_id: u64) -> usize {
    prompt.len() + api_key.len() + usize::try_from(client_id).unwrap()
}

#[trace(skip_all)]
fn secret(api_key: &str, password: &str) -> usize {
    api_key.len() + password.len()
}

#[trace(skip_output)]
fn token(user: &str) -> String {
    format!("token-for-{user}")
}

#[trace(metadata(model = MODEL, temperature = 0.2, max_tokens = 256, streaming = false, prompt_len = prompt.len()))]
fn with_metadata(prompt: &str) -> String {
    prompt.to_owned()
}

#[trace(crate = "honeyhive_runtime")]
fn crate_path() {}

#[trace(crate = "::honeyhive_runtime")]
async fn crate_absolute_path() {}

#[trace(
    name = "everything",
    event_type = "retriever",
    sample_rate = 1.0,
    skip(top_k),
    skip_output,
    metadata(index = "docs"),
    crate = "honeyhive_runtime"
)]
async fn everything(query: &str, top_k: usize) -> Vec<String> {
    vec![query.to_owned(); top_k]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recorder = Recorder::start();
    assert_eq!(complete("hi"), "HI");
    tool();
    chain();
    session();
    agent();
    retriever();
    embedding();
    evaluator();
    guardrail();
    never();
    always();
    quarter();
    always_int();
    assert_eq!(call("ab", "key", 1), 6);
    assert_eq!(secret("k", "p"), 2);
    assert_eq!(token("ada"), "token-for-ada");
    with_metadata("hello");
    crate_path();
    crate_absolute_path().await;
    assert_eq!(everything("q", 2).await.len(), 2);

    let spans = recorder.spans();
    let complete = spans.get("llm.complete");
    assert_eq!(complete.str("honeyhive_event_type"), Some("model"));
    assert_eq!(complete.str("honeyhive_outputs.result"), Some("HI"));
    for (name, event_type) in [
        ("tool", "tool"),
        ("chain", "chain"),
        ("session", "session"),
        ("agent", "agent"),
        ("retriever", "retriever"),
        ("embedding", "embedding"),
        ("evaluator", "evaluator"),
        ("guardrail", "guardrail"),
    ] {
        assert_eq!(
            spans.get(name).str("honeyhive_event_type"),
            Some(event_type)
        );
    }
    assert_eq!(spans.all("never").count(), 0);
    spans.get("always");
    spans.get("always_int");
    let call = spans.get("call");
    assert_eq!(call.str("honeyhive_inputs.prompt"), Some("ab"));
    assert!(call.attr("honeyhive_inputs.api_key").is_none());
    assert!(call.attr("honeyhive_inputs.client_id").is_none());
    let secret = spans.get("secret");
    assert!(secret.attr("honeyhive_inputs.api_key").is_none());
    assert!(secret.attr("honeyhive_inputs.password").is_none());
    assert_eq!(secret.i64("honeyhive_outputs.result"), Some(2));
    let token = spans.get("token");
    assert_eq!(token.str("honeyhive_inputs.user"), Some("ada"));
    assert!(token.attr("honeyhive_outputs.result").is_none());
    let meta = spans.get("with_metadata");
    assert_eq!(meta.str("honeyhive_metadata.model"), Some("gpt-4o"));
    assert_eq!(meta.f64("honeyhive_metadata.temperature"), Some(0.2));
    assert_eq!(meta.i64("honeyhive_metadata.max_tokens"), Some(256));
    assert_eq!(meta.bool("honeyhive_metadata.streaming"), Some(false));
    assert_eq!(meta.i64("honeyhive_metadata.prompt_len"), Some(5));
    spans.get("crate_path");
    spans.get("crate_absolute_path");
    let everything = spans.get("everything");
    assert_eq!(everything.str("honeyhive_event_type"), Some("retriever"));
    assert_eq!(everything.str("honeyhive_inputs.query"), Some("q"));
    assert!(everything.attr("honeyhive_inputs.top_k").is_none());
    assert!(everything.attr("honeyhive_outputs.result").is_none());
    assert_eq!(everything.str("honeyhive_metadata.index"), Some("docs"));
}
