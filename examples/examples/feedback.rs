//! Feedback after the fact: a traced request hands out its span reference with the answer; a
//! moment later (on another thread, as a frontend's thumbs-up would arrive) feedback is sent
//! for it from nothing but that string.
//!
//! ```text
//! cargo run -p honeyhive-examples --example feedback
//! ```
//!
//! On the console by default: the request's trace, then the feedback's span under it. With
//! `PHOENIX_COLLECTOR_ENDPOINT=http://127.0.0.1:6006` (and `HH_PROJECT`), spans go to that
//! Phoenix over OTLP and the feedback also becomes a span annotation there. With
//! `HH_API_KEY`, spans and feedback go to HoneyHive.

use std::time::Duration;

use honeyhive_runtime::feedback::{self, SpanRef};
use honeyhive_runtime::{Builder, current_span_ref, trace};

/// What a chat endpoint returns: the answer, and the reference the UI keeps for feedback.
struct Reply {
    answer: String,
    feedback_ref: Option<String>,
}

#[trace(event_type = "model")]
fn generate(question: &str) -> String {
    format!("It is sunny in Paris today (asked: {question})")
}

#[trace(event_type = "chain")]
fn chat(question: &str) -> Reply {
    let answer = generate(question);
    Reply {
        answer,
        feedback_ref: current_span_ref().map(|r| r.to_string()),
    }
}

fn main() {
    let mut builder = Builder::new();
    if let Ok(phoenix) = std::env::var("PHOENIX_COLLECTOR_ENDPOINT") {
        // Phoenix takes OTLP and annotations at one base URL.
        let base = phoenix.trim_end_matches('/').to_owned();
        builder = builder
            .with_otlp_http(format!("{base}/v1/traces"))
            .phoenix_annotations(base);
    }
    let guard = builder.install().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });

    let reply = chat("What is the weather in Paris?");
    println!("answer: {}", reply.answer);
    let Some(text) = reply.feedback_ref else {
        println!("this request was not sampled: no feedback to give");
        return;
    };
    println!("span ref: {text}");
    // The request's trace is complete and exported before the user reacts.
    guard.force_flush();

    // The user clicks thumbs up: the frontend posts the string back, handled on another thread.
    std::thread::spawn(move || match text.parse::<SpanRef>() {
        Ok(span_ref) => feedback::feedback(&span_ref)
            .name("helpfulness")
            .score(1.0)
            .label("thumbs_up")
            .comment("accurate and short")
            .attribute("user", "user-123")
            .send(),
        Err(e) => eprintln!("bad span ref from the frontend: {e}"),
    })
    .join()
    .expect("the feedback handler");

    // The guard waits for feedback still being sent when dropped; waiting here lets us report.
    let sent = feedback::flush(Duration::from_secs(30));
    let stats = feedback::stats();
    println!(
        "feedback recorded; backends: {} delivered, {} failed{}",
        stats.delivered,
        stats.failed,
        if sent { "" } else { " (still sending)" }
    );
    drop(guard);
}
