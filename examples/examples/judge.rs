//! An LLM-as-judge evaluator: `#[trace(evaluate(async faithfulness))]` has a judge model score
//! every sampled answer for faithfulness to its context, off the caller's task. The answers are
//! simulated model calls (`LlmCall`); the judge is a real HTTP call, made with async-openai
//! (traced by `LlmLayer`), to a fake OpenAI-compatible judge that this example serves on
//! 127.0.0.1, so it needs no network and no API key:
//!
//! ```text
//! cargo run -p honeyhive-examples --example judge
//! ```
//!
//! The console waterfall shows, under each answer, its model call and the evaluator's span
//! with its result (the `gen_ai.evaluation.result` event: `eval faithfulness=1 faithful`),
//! and below that the judge's own model call with its tokens and cost. Against a real judge, drop `with_api_base` and
//! `provider_for_host`, and set `OPENAI_API_KEY`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequestArgs, ResponseFormat,
};
use honeyhive_runtime::evaluate::{self, EvalInput, Evaluation};
use honeyhive_runtime::integrations::LlmLayer;
use honeyhive_runtime::{LlmCall, trace};
use serde_json::{Value, json};
use tower_layer::Layer as _;

type JudgeClient = Client<OpenAIConfig>;

/// The judge's client, set once in `main`: an async evaluator takes only the call's inputs.
static JUDGE: OnceLock<JudgeClient> = OnceLock::new();

const RUBRIC: &str = "You grade answers for faithfulness: is every claim of the answer \
    supported by the context? Reply with JSON: {\"score\": 0..1, \"label\": \"faithful\" or \
    \"unfaithful\", \"explanation\": \"...\"}.";

/// The answer under test: one (simulated) model call on the retrieved context. The evaluator
/// judges what this returns, from the inputs and output its span captured.
#[trace(event_type = "chain", evaluate(async faithfulness))]
async fn answer(question: &str, context: &str) -> String {
    generate(question, context).await
}

#[trace(event_type = "model", name = "openai.chat")]
async fn generate(question: &str, context: &str) -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let completion = if question.contains("Eiffel") {
        // The model embellishes: the judge should catch what the context does not say.
        "The Eiffel Tower is 450 metres tall and was built in 1789."
    } else {
        "Paris is the capital of France."
    };
    LlmCall::new("gpt-4o-mini")
        .provider("openai")
        .message("system", format!("Answer from this context: {context}"))
        .message("user", question)
        .completion(completion)
        .usage(42, 12)
        .finish_reason("stop")
        .record();
    completion.to_owned()
}

/// The evaluator: asks the judge model, and records its score, label and explanation.
async fn faithfulness(input: EvalInput) -> Result<Evaluation, String> {
    let client = JUDGE.get().ok_or("no judge client")?;
    let context = input.text("context").unwrap_or_default();
    let answer = input.output_text().unwrap_or_default();
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o")
        .temperature(0.0)
        .response_format(ResponseFormat::JsonObject)
        .messages([
            ChatCompletionRequestSystemMessage::from(RUBRIC).into(),
            ChatCompletionRequestUserMessage::from(format!(
                "Context:\n{context}\n\nAnswer:\n{answer}"
            ))
            .into(),
        ])
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .chat()
        .create(request)
        .await
        .map_err(|e| e.to_string())?;
    let verdict = response
        .choices
        .first()
        .and_then(|c| c.message.content.as_deref())
        .ok_or("the judge gave no verdict")?;
    let verdict: Value = serde_json::from_str(verdict).map_err(|e| e.to_string())?;
    let score = verdict["score"]
        .as_f64()
        .ok_or("the verdict has no score")?;
    let mut evaluation = Evaluation::score(score);
    if let Some(label) = verdict["label"].as_str() {
        evaluation = evaluation.with_label(label);
    }
    if let Some(explanation) = verdict["explanation"].as_str() {
        evaluation = evaluation.with_explanation(explanation);
    }
    Ok(evaluation)
}

fn main() {
    let judge_url = serve_fake_judge();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    // Console waterfall by default; OTEL_EXPORTER_OTLP_ENDPOINT or HH_API_KEY send spans elsewhere.
    let guard = honeyhive_runtime::init();

    let service = LlmLayer::new()
        .provider_for_host("127.0.0.1", "openai")
        .layer(ReqwestService::new(reqwest::Client::new()));
    let config = OpenAIConfig::new()
        .with_api_base(judge_url)
        .with_api_key("sk-fake");
    let _ = JUDGE.set(Client::with_config(config).with_http_service(service));

    let questions = [
        (
            "What is the capital of France?",
            "Paris is the capital and largest city of France.",
        ),
        (
            "How tall is the Eiffel Tower?",
            "The Eiffel Tower in Paris is 330 metres tall.",
        ),
    ];
    runtime.block_on(async {
        for (question, context) in questions {
            // The evaluator runs on the runtime, after `answer` returned to us.
            println!("{question} -> {}", answer(question, context).await);
        }
    });
    println!();
    // Judges still running finish (and are exported) before the guard flushes.
    if !evaluate::wait(Duration::from_secs(10)) {
        println!("some judges did not finish in time");
    }
    drop(guard);
}

/// Serves a fake OpenAI-compatible judge on 127.0.0.1 (one thread, one request per
/// connection) and returns its API base. It grades like the rubric asks: the share of the
/// answer's words (longer than three letters, or numbers) that the context contains.
fn serve_fake_judge() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
    let base = format!(
        "http://{}/v1",
        listener.local_addr().expect("a bound address")
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A client that sends garbage gets no answer; the judge keeps serving.
            let _ = serve_one(&stream);
        }
    });
    base
}

fn serve_one(stream: &TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let prompt = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let verdict = grade(prompt);
    let response = json!({
        "id": "chatcmpl-judge-1",
        "object": "chat.completion",
        "created": 1_764_700_000,
        "model": request["model"].as_str().unwrap_or("gpt-4o"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": verdict.to_string(), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 96, "completion_tokens": 31, "total_tokens": 127},
        "system_fingerprint": "fp_judge"
    })
    .to_string();
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{response}",
        response.len()
    )
}

/// The verdict on `Context:\n...\n\nAnswer:\n...`.
fn grade(prompt: &str) -> Value {
    let (context, answer) = prompt
        .strip_prefix("Context:\n")
        .and_then(|rest| rest.split_once("\n\nAnswer:\n"))
        .unwrap_or(("", prompt));
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 3 || (!w.is_empty() && w.chars().all(|c| c.is_ascii_digit())))
            .map(str::to_lowercase)
            .collect()
    };
    let known = words(context);
    let claimed = words(answer);
    let unsupported: Vec<&str> = claimed
        .iter()
        .filter(|w| !known.contains(w))
        .map(String::as_str)
        .collect();
    #[allow(clippy::cast_precision_loss)] // a handful of words
    let score = if claimed.is_empty() {
        0.0
    } else {
        1.0 - unsupported.len() as f64 / claimed.len() as f64
    };
    let score = (score * 100.0).round() / 100.0;
    if unsupported.is_empty() {
        json!({"score": score, "label": "faithful", "explanation": "every claim is in the context"})
    } else {
        json!({
            "score": score,
            "label": "unfaithful",
            "explanation": format!("not in the context: {}", unsupported.join(", "))
        })
    }
}
