//! Two real HTTP services on 127.0.0.1: A's traced handler calls B over HTTP; B's spans join
//! A's trace with A's span as parent and the same request id, and B keeps A's decision: when A
//! does not sample a request, B records nothing of it, though B's own root sampler samples
//! every root.

use std::net::SocketAddr;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use honeyhive_runtime::propagation::{extract, inject};
use honeyhive_runtime::sampling::{self, RootSampler, Rule, Sampler};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{trace, with_request_id};

#[trace(event_type = "tool")]
async fn b_lookup(city: String) -> String {
    tokio::task::yield_now().await;
    format!("sunny in {city}")
}

#[with_request_id]
#[trace(event_type = "chain")]
async fn b_handle(city: String) -> String {
    b_lookup(city).await
}

/// Replies with the weather and, after a `|`, the `traceparent` B received.
async fn service_b(headers: HeaderMap) -> String {
    let received = headers
        .get("traceparent")
        .map_or("none", |v| v.to_str().unwrap())
        .to_owned();
    let weather = extract(&headers)
        .instrument(b_handle("Paris".to_owned()))
        .await;
    format!("{weather}|{received}")
}

#[trace(event_type = "tool")]
async fn call_b(client: &reqwest::Client, base: &str) -> Result<String, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    inject(&mut headers);
    let resp = client
        .get(format!("{base}/weather"))
        .headers(headers)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    resp.text().await.map_err(|e| e.to_string())
}

#[with_request_id(from = headers)]
#[trace(event_type = "chain", skip(headers))]
async fn a_handle(headers: HeaderMap, b_base: String) -> String {
    let client = reqwest::Client::new();
    call_b(&client, &b_base).await.unwrap_or_else(|e| e)
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Runs A and B on 127.0.0.1, sends one request to A; returns B's reply through A.
fn call_a_then_b() -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reply = rt.block_on(async {
        let b = serve(Router::new().route("/weather", get(service_b))).await;
        let b_base = format!("http://{b}");
        let a = serve(Router::new().route(
            "/ask",
            get(move |headers: HeaderMap| a_handle(headers, b_base.clone())),
        ))
        .await;
        reqwest::Client::new()
            .get(format!("http://{a}/ask"))
            .header("x-request-id", "edge-123")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    drop(rt);
    reply
}

#[test]
fn b_joins_as_trace_with_as_span_as_parent_and_the_same_request_id() {
    let rec = Recorder::start();
    let reply = call_a_then_b();
    let spans = rec.spans();
    let a = spans.get("a_handle");
    let call = spans.get("call_b");
    let b = spans.get("b_handle");
    let b_child = spans.get("b_lookup");
    assert_eq!(
        reply,
        format!("sunny in Paris|00-{}-{}-03", a.trace_id(), call.span_id()),
        "B received A's trace, A's client span as parent, sampled, a random trace id"
    );
    assert!(a.is_root() && !a.parent_span_is_remote);
    assert_eq!(call.parent_span_id, a.span_id());
    assert_eq!(b.trace_id(), a.trace_id(), "B joined A's trace");
    assert_eq!(
        b.parent_span_id,
        call.span_id(),
        "A's client span is B's parent"
    );
    assert!(b.parent_span_is_remote);
    assert_eq!(b_child.parent_span_id, b.span_id());
    for span in [a, call, b, b_child] {
        assert_eq!(
            span.str("honeyhive.request_id"),
            Some("edge-123"),
            "{}",
            span.name
        );
    }
    assert_eq!(a.str("honeyhive.request_id.source"), Some("argument"));
    assert_eq!(b.str("honeyhive.request_id.source"), Some("header"));
}

#[test]
fn an_unsampled_decision_at_a_reaches_b_and_b_records_nothing() {
    // A's root is not sampled (a rule); B's root sampler alone would sample every root.
    let rec = Recorder::with(|b| {
        b.sampler(Sampler::ParentBased(RootSampler::AlwaysOn))
            .sampling_rule(Rule::new(0.0).name("a_handle"))
    });
    let reply = call_a_then_b();
    let (weather, received) = reply.split_once('|').unwrap();
    assert_eq!(
        weather, "sunny in Paris",
        "tracing changed nothing for the program"
    );
    let parts: Vec<&str> = received.split('-').collect();
    assert_eq!(parts.len(), 4, "B received a traceparent: {received}");
    assert_ne!(parts[1], "0".repeat(32), "with a real trace id");
    assert_eq!(parts[3], "02", "marked not sampled (and a random trace id)");
    assert!(
        rec.spans().is_empty(),
        "B recorded no fragment of A's trace"
    );
    let stats = sampling::sampling_stats();
    assert_eq!((stats["a_handle"].seen, stats["a_handle"].sampled), (1, 0));
    assert_eq!(
        (stats["b_handle"].seen, stats["b_handle"].sampled),
        (1, 0),
        "B's root took A's decision"
    );
}
