//! The server layer (`integrations::tower`) in a real axum server and the client middleware
//! (`integrations::reqwest`) in a real reqwest client, on 127.0.0.1: one trace from the client
//! span through the server span to the handler, the request id echoed, credentials kept out of
//! `url.full`, failures marked on the side that saw them.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use honeyhive_runtime::integrations::reqwest::ClientMiddleware;
use honeyhive_runtime::integrations::tower::ServerLayer;
use honeyhive_runtime::sampling::{self, Rule};
use honeyhive_runtime::testing::{FinishedSpan, Recorder, Spans};
use honeyhive_runtime::{SpanKind, is_valid_request_id, trace, with_request_id};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::sync::Notify;

#[trace(event_type = "tool")]
async fn load_user(id: String) -> String {
    tokio::task::yield_now().await;
    format!("user {id}")
}

async fn user(uri: Uri) -> String {
    let id = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    load_user(id).await
}

async fn broken() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "database is down")
}

async fn panics() -> &'static str {
    panic!("boom in the handler")
}

#[trace(event_type = "tool")]
fn chunk(i: u32) -> String {
    format!("{i},")
}

/// A response body made while it is sent: each chunk is made by a traced call.
struct Chunks(u32);

impl futures_core::Stream for Chunks {
    type Item = Result<String, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0 == 3 {
            return Poll::Ready(None);
        }
        self.0 += 1;
        Poll::Ready(Some(Ok(chunk(self.0))))
    }
}

async fn stream() -> Body {
    Body::from_stream(Chunks(0))
}

fn routes() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/broken", get(broken))
        .route("/panic", get(panics))
        .route("/stream", get(stream))
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn traced_server() -> SocketAddr {
    serve(routes().layer(ServerLayer::new())).await
}

fn client() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(ClientMiddleware::new())
        .build()
}

/// What the client saw: status, the response's `x-request-id`, the body.
type Reply = (u16, Option<String>, String);

#[with_request_id(from = request_id)]
#[trace(event_type = "chain", skip(client))]
async fn fetch(
    client: &ClientWithMiddleware,
    url: String,
    request_id: Option<&str>,
) -> Result<Reply, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, id, body))
}

/// Runs `f` on a runtime of its own, then drops the runtime: the server's tasks end with it,
/// and so do the spans of responses it was still sending.
fn run<T>(f: impl Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(f);
    drop(rt);
    out
}

fn parent_of<'a>(spans: &'a Spans, span: &FinishedSpan) -> &'a FinishedSpan {
    spans
        .parent_of(span)
        .unwrap_or_else(|| panic!("{} has no parent among {:?}", span.name, spans.names()))
}

fn holds(span: &FinishedSpan, needle: &str) -> bool {
    span.attributes
        .iter()
        .map(|kv| kv.value.to_string())
        .chain(
            span.events
                .iter()
                .flat_map(|e| e.attributes.iter().map(|kv| kv.value.to_string())),
        )
        .any(|v| v.contains(needle))
}

#[test]
fn one_trace_runs_from_the_client_span_through_the_server_span_to_the_handler() {
    let rec = Recorder::start();
    let (reply, port) = run(async {
        let addr = traced_server().await;
        let url = format!("http://alice:s3cret@{addr}/users/42?api_key=sk-live-123&page=2");
        let reply = fetch(&client(), url, Some("edge-123")).await;
        (reply, addr.port())
    });
    assert_eq!(
        reply,
        Ok((200, Some("edge-123".to_owned()), "user 42".to_owned()))
    );
    let spans = rec.spans();
    let root = spans.get("fetch");
    let client = spans.get("GET 127.0.0.1");
    let server = spans.get("GET /users/{id}");
    let handler = spans.get("load_user");
    assert_eq!(parent_of(&spans, client).span_id(), root.span_id());
    assert_eq!(server.parent_span_id, client.span_id(), "across the wire");
    assert!(server.parent_span_is_remote);
    assert_eq!(parent_of(&spans, handler).span_id(), server.span_id());
    for span in [root, client, server, handler] {
        assert_eq!(span.trace_id(), root.trace_id(), "{}", span.name);
        assert_eq!(
            span.str("honeyhive.request_id"),
            Some("edge-123"),
            "{}",
            span.name
        );
    }
    for span in [client, server] {
        assert!(
            !holds(span, "s3cret") && !holds(span, "sk-live"),
            "{span:?}"
        );
    }
    assert_eq!(client.kind(), SpanKind::Client);
    assert_eq!(client.str("http.request.method"), Some("GET"));
    // reqwest sends the user and password as an `Authorization` header (not recorded); the
    // secret query value is masked.
    assert_eq!(
        client.str("url.full"),
        Some(format!("http://127.0.0.1:{port}/users/42?api_key=REDACTED&page=2").as_str())
    );
    assert_eq!(client.str("server.address"), Some("127.0.0.1"));
    assert_eq!(client.i64("server.port"), Some(i64::from(port)));
    assert_eq!(client.i64("http.response.status_code"), Some(200));
    assert!(!client.is_error());

    assert_eq!(server.kind(), SpanKind::Server);
    assert_eq!(server.str("honeyhive_event_type"), Some("chain"));
    assert_eq!(server.str("http.request.method"), Some("GET"));
    assert_eq!(server.str("http.route"), Some("/users/{id}"));
    assert_eq!(server.str("url.path"), Some("/users/42"));
    assert_eq!(server.str("url.scheme"), Some("http"));
    assert_eq!(server.str("server.address"), Some("127.0.0.1"));
    assert_eq!(server.i64("server.port"), Some(i64::from(port)));
    assert_eq!(server.str("network.protocol.version"), Some("1.1"));
    assert_eq!(server.i64("http.response.status_code"), Some(200));
    assert!(!server.is_error());
}

#[test]
fn the_response_is_unchanged_but_for_the_request_id() {
    let _rec = Recorder::start();
    let headers = |addr: SocketAddr| async move {
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/users/7"))
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = response
            .headers()
            .keys()
            .map(ToString::to_string)
            .filter(|k| k != "date")
            .collect();
        names.sort();
        (response.status(), names, response.text().await.unwrap())
    };
    let (traced, plain) = run(async {
        let traced = traced_server().await;
        let plain = serve(routes()).await;
        (headers(traced).await, headers(plain).await)
    });
    let mut expected = plain.1.clone();
    expected.push("x-request-id".to_owned());
    expected.sort();
    assert_eq!(traced.0, plain.0);
    assert_eq!(traced.1, expected);
    assert_eq!(traced.2, plain.2);
}

#[test]
fn a_request_without_a_valid_id_gets_a_generated_one_that_its_spans_carry() {
    let rec = Recorder::start();
    let ids = run(async {
        let addr = traced_server().await;
        let mut ids = Vec::new();
        for sent in [None, Some("not a valid id")] {
            let mut request =
                reqwest::Client::new().get(format!("http://{addr}/users/{}", ids.len()));
            if let Some(sent) = sent {
                request = request.header("x-request-id", sent);
            }
            let response = request.send().await.unwrap();
            let id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            ids.push(id);
        }
        ids
    });
    let spans = rec.spans();
    let servers: Vec<_> = spans.all("GET /users/{id}").collect();
    assert_eq!(servers.len(), 2);
    for (i, (id, server)) in ids.iter().zip(&servers).enumerate() {
        assert!(is_valid_request_id(id), "{id}");
        assert_eq!(server.str("url.path"), Some(format!("/users/{i}").as_str()));
        assert_eq!(server.str("honeyhive.request_id"), Some(id.as_str()));
        assert_eq!(server.str("honeyhive.request_id.source"), Some("generated"));
        let handler = spans
            .children_of(server)
            .into_iter()
            .next()
            .expect("the handler's span");
        assert_eq!(handler.str("honeyhive.request_id"), Some(id.as_str()));
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        servers[0].bool("honeyhive.request_id.replaced_invalid"),
        None
    );
    assert_eq!(
        servers[1].bool("honeyhive.request_id.replaced_invalid"),
        Some(true)
    );
}

#[test]
fn a_5xx_fails_both_sides_and_a_4xx_only_the_client() {
    let rec = Recorder::start();
    let (broken_reply, missing_reply) = run(async {
        let addr = traced_server().await;
        let client = client();
        (
            fetch(&client, format!("http://{addr}/broken"), None).await,
            fetch(&client, format!("http://{addr}/nowhere"), None).await,
        )
    });
    let broken_reply = broken_reply.unwrap();
    assert_eq!(
        (broken_reply.0, broken_reply.2.as_str()),
        (500, "database is down")
    );
    assert_eq!(missing_reply.unwrap().0, 404);
    let spans = rec.spans();
    let broken = spans.get("GET /broken");
    assert!(broken.is_error());
    assert_eq!(broken.str("error.type"), Some("500"));
    assert_eq!(broken.i64("http.response.status_code"), Some(500));
    // No route matched: the span is named by its method alone, with no `http.route`.
    let missing = spans.get("GET");
    assert_eq!(missing.str("url.path"), Some("/nowhere"));
    assert_eq!(missing.str("http.route"), None);
    assert_eq!(missing.i64("http.response.status_code"), Some(404));
    assert!(!missing.is_error(), "a 4xx is the client's failure");
    let clients: Vec<_> = spans.all("GET 127.0.0.1").collect();
    assert_eq!(clients.len(), 2);
    for (client, status) in clients.iter().zip(["500", "404"]) {
        assert!(client.is_error());
        assert_eq!(client.str("error.type"), Some(status));
    }
}

#[test]
fn a_refused_connection_fails_the_client_span_without_leaking_the_credentials() {
    let rec = Recorder::start();
    let reply = run(async {
        // Nothing listens on it while `down` lives.
        let down = honeyhive_runtime::testing::RefusingPort::bind();
        let addr = down.addr();
        // `key=` is not a name the export's secret scan knows: only the middleware masks it.
        let url = format!("http://bob:hunter2@{addr}/x?key=k-999-live");
        fetch(&client(), url, None).await
    });
    assert!(reply.is_err(), "{reply:?}");
    let spans = rec.spans();
    let client = spans.get("GET 127.0.0.1");
    assert!(client.is_error());
    assert_eq!(client.str("error.type"), Some("connect"));
    assert_eq!(client.i64("http.response.status_code"), None);
    let message = client.error_message().unwrap();
    assert!(message.contains("/x?key=REDACTED"), "{message}");
    assert!(
        !holds(client, "hunter2") && !holds(client, "k-999"),
        "{client:?}"
    );
}

#[test]
fn a_panicking_handler_fails_the_server_span() {
    let rec = Recorder::start();
    let reply = run(async {
        let addr = traced_server().await;
        fetch(&client(), format!("http://{addr}/panic"), None).await
    });
    assert!(reply.is_err(), "the connection closed: {reply:?}");
    let spans = rec.spans();
    let server = spans.get("GET /panic");
    assert!(server.is_error());
    assert!(
        server
            .error_message()
            .is_some_and(|m| m.contains("boom in the handler")),
        "{server:?}"
    );
}

#[test]
fn a_streamed_body_is_made_inside_the_server_span_which_ends_with_it() {
    let rec = Recorder::start();
    let reply = run(async {
        let addr = traced_server().await;
        fetch(&client(), format!("http://{addr}/stream"), None).await
    });
    assert_eq!(reply.unwrap().2, "1,2,3,");
    let spans = rec.spans();
    let server = spans.get("GET /stream");
    let chunks: Vec<_> = spans.all("chunk").collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(server.bool("honeyhive.cancelled"), None, "sent whole");
    for chunk in chunks {
        assert_eq!(chunk.parent_span_id, server.span_id());
        assert!(
            chunk.end_time <= server.end_time,
            "the span covers the body"
        );
    }
}

#[test]
fn a_request_dropped_before_its_response_ends_its_span_cancelled() {
    let rec = Recorder::start();
    run(async {
        let started = Arc::new(Notify::new());
        let handler_started = Arc::clone(&started);
        let hang = move || {
            let handler_started = Arc::clone(&handler_started);
            async move {
                handler_started.notify_one();
                std::future::pending::<&'static str>().await
            }
        };
        let addr = serve(
            Router::new()
                .route("/hang", get(hang))
                .layer(ServerLayer::new()),
        )
        .await;
        let request = tokio::spawn(
            reqwest::Client::new()
                .get(format!("http://{addr}/hang"))
                .send(),
        );
        started.notified().await;
        request.abort();
    });
    // Dropping the runtime dropped the server's task, and the request still in it.
    let spans = rec.spans();
    let hang = spans.get("GET /hang");
    assert_eq!(hang.bool("honeyhive.cancelled"), Some(true));
    assert_eq!(hang.i64("http.response.status_code"), None);
}

/// tonic's server takes the layer too (built with the tests' `grpc` feature, which brings
/// tonic's server): the layered server future is made, with every bound tonic puts on it.
#[cfg(feature = "grpc")]
#[test]
fn tonics_server_takes_the_layer() {
    fn is_send<T: Send>(_: &T) -> bool {
        true
    }
    let serve = tonic::transport::Server::builder()
        .layer(ServerLayer::new())
        .add_routes(tonic::service::Routes::default())
        .serve("127.0.0.1:0".parse().unwrap());
    assert!(is_send(&serve));
}

/// An error whose `Display` panics, as a service's error type may.
#[derive(Debug, PartialEq)]
struct Grenade;

impl std::fmt::Display for Grenade {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("boom in display")
    }
}

/// A service that fails every request.
struct Failing;

impl tower_service::Service<axum::http::Request<String>> for Failing {
    type Response = axum::http::Response<String>;
    type Error = Grenade;
    type Future = std::future::Ready<Result<Self::Response, Grenade>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Grenade>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::http::Request<String>) -> Self::Future {
        std::future::ready(Err(Grenade))
    }
}

#[test]
fn a_service_error_whose_display_panics_is_returned_and_marked_with_its_short_type() {
    use tower_layer::Layer as _;
    use tower_service::Service as _;
    let rec = Recorder::start();
    let mut service = ServerLayer::new().layer(Failing);
    let out = futures_executor::block_on(service.call(axum::http::Request::new(String::new())));
    assert_eq!(
        out.err(),
        Some(Grenade),
        "the service's own error comes back"
    );
    let spans = rec.spans();
    let server = spans
        .0
        .iter()
        .find(|s| s.kind() == SpanKind::Server)
        .expect("a server span");
    assert!(server.is_error());
    assert_eq!(server.str("error.type"), Some("Grenade"));
    let event = server
        .events_named("exception")
        .next()
        .expect("an exception event");
    assert_eq!(
        FinishedSpan::event_attr(event, "exception.type"),
        Some(&opentelemetry::Value::from("Grenade"))
    );
    let message = FinishedSpan::event_attr(event, "exception.message").expect("a message");
    assert!(
        message.as_str().contains("panicked while formatting"),
        "{message:?}"
    );
}

/// An error that is its own cause, forever.
#[derive(Debug)]
struct OwnCause;

static OWN_CAUSE: OwnCause = OwnCause;

impl std::fmt::Display for OwnCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota check failed")
    }
}

impl std::error::Error for OwnCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&OWN_CAUSE)
    }
}

/// A user's middleware below ours that fails every request with the error it makes.
struct Refuses(fn() -> anyhow::Error);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Refuses {
    async fn handle(
        &self,
        _: reqwest::Request,
        _: &mut http::Extensions,
        _: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::Middleware((self.0)()))
    }
}

#[test]
fn a_middleware_error_with_an_endless_chain_of_causes_is_described_in_bounded_text() {
    let rec = Recorder::start();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ClientMiddleware::new())
        .with(Refuses(|| anyhow::Error::new(OwnCause)))
        .build();
    let reply = run(fetch(&client, "http://127.0.0.1:9/x".to_owned(), None));
    assert!(reply.unwrap_err().contains("quota check failed"));
    let spans = rec.spans();
    let span = spans.get("GET 127.0.0.1");
    assert_eq!(span.str("error.type"), Some("middleware"));
    let message = span.error_message().expect("a message");
    assert!(message.starts_with("quota check failed"), "{message}");
    assert!(message.len() <= 8 * 1024, "{}", message.len());
}

#[test]
fn a_middleware_error_whose_display_panics_fails_the_request_not_the_caller() {
    let rec = Recorder::start();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ClientMiddleware::new())
        .with(Refuses(|| anyhow::Error::msg(Grenade)))
        .build();
    // Not formatted here: its Display panics.
    let failed = run(async { client.get("http://127.0.0.1:9/x").send().await.is_err() });
    assert!(failed, "the middleware's error comes back");
    let spans = rec.spans();
    let span = spans.get("GET 127.0.0.1");
    assert_eq!(span.str("error.type"), Some("middleware"));
    let message = span.error_message().expect("a message");
    assert!(message.contains("panicked while formatting"), "{message}");
}

/// The context headers a request arrived with, as `traceparent|tracestate|baggage`.
async fn context_headers(headers: axum::http::HeaderMap) -> String {
    let get = |k: &str| {
        headers
            .get(k)
            .map_or("-", |v| v.to_str().unwrap())
            .to_owned()
    };
    format!(
        "{}|{}|{}",
        get("traceparent"),
        get("tracestate"),
        get("baggage")
    )
}

#[trace(event_type = "chain", skip(client))]
async fn call_with_stale_context(client: &ClientWithMiddleware, url: String) -> String {
    client
        .get(url)
        .header("tracestate", "stale=1")
        .header(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )
        .header("baggage", "theirs=1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_tracestate_the_request_held_does_not_go_with_the_client_spans_traceparent() {
    let _rec = Recorder::start();
    let seen = run(async {
        let addr = serve(Router::new().route("/context", get(context_headers))).await;
        call_with_stale_context(&client(), format!("http://{addr}/context")).await
    });
    let parts: Vec<&str> = seen.split('|').collect();
    assert!(
        parts[0].starts_with("00-") && !parts[0].contains("1111111111"),
        "{seen}"
    );
    // The caller's tracestate named another trace's span: it is gone; its baggage stays.
    assert_eq!(parts[1], "-", "{seen}");
    assert_eq!(parts[2], "theirs=1", "{seen}");
}

#[test]
fn a_sampling_rule_naming_a_route_applies_to_its_server_spans() {
    let rec = Recorder::with(|b| b.sampling_rule(Rule::new(0.0).name("GET /health")));
    run(async {
        let addr = serve(
            routes()
                .route("/health", get(|| async { "ok" }))
                .layer(ServerLayer::new()),
        )
        .await;
        for path in ["/health", "/health", "/users/1"] {
            reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        }
    });
    let spans = rec.spans();
    assert!(spans.0.iter().all(|s| s.name != "GET /health"));
    assert_eq!(spans.get("GET /users/{id}").kind(), SpanKind::Server);
    let stats = sampling::sampling_stats();
    let counts = |name: &str| stats.get(name).map(|s| (s.seen, s.sampled));
    assert_eq!(counts("GET /health"), Some((2, 0)), "{stats:?}");
    assert_eq!(counts("GET /users/{id}"), Some((1, 1)), "{stats:?}");
}

#[test]
fn a_sampling_rule_naming_a_host_applies_to_client_roots() {
    let rec = Recorder::with(|b| b.sampling_rule(Rule::new(0.0).name("DELETE 127.0.0.1")));
    run(async {
        // An untraced server: only the client's spans, each a root.
        let addr = serve(routes().route("/health", get(|| async { "ok" }))).await;
        for method in [
            reqwest::Method::DELETE,
            reqwest::Method::DELETE,
            reqwest::Method::GET,
        ] {
            let url = format!("http://{addr}/health");
            client().request(method, url).send().await.unwrap();
        }
    });
    let spans = rec.spans();
    assert_eq!(spans.names(), ["GET 127.0.0.1"]);
    assert_eq!(spans.get("GET 127.0.0.1").kind(), SpanKind::Client);
    let stats = sampling::sampling_stats();
    let counts = |name: &str| stats.get(name).map(|s| (s.seen, s.sampled));
    assert_eq!(counts("DELETE 127.0.0.1"), Some((2, 0)), "{stats:?}");
    assert_eq!(counts("GET 127.0.0.1"), Some((1, 1)), "{stats:?}");
}

/// Sends `request` as is and reads the reply's status line (the request asks the server to
/// close the connection).
async fn send_raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    reply.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn without_a_route_the_span_is_named_by_its_method_and_unknown_methods_are_other() {
    let rec = Recorder::start();
    let statuses = run(async {
        let addr = serve(
            Router::new()
                .route("/x", axum::routing::any(|| async { "ok" }))
                .layer(ServerLayer::new()),
        )
        .await;
        let webdav = serve(
            Router::new()
                .route("/x", axum::routing::any(|| async { "ok" }))
                .layer(ServerLayer::new().known_methods(&["GET", "PROPFIND"])),
        )
        .await;
        let mut statuses = Vec::new();
        for id in ["8f2a0c9e-1b2c", "77aa01", "0001"] {
            let url = format!("http://{addr}/orders/{id}/items");
            statuses.push(reqwest::get(url).await.unwrap().status().as_u16());
        }
        for (addr, method) in [(addr, "XYZ1"), (addr, "XYZ2"), (webdav, "PROPFIND")] {
            let request = format!("{method} /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
            statuses.push(match send_raw(addr, &request).await.as_str() {
                "HTTP/1.1 200 OK" => 200,
                other => panic!("{other}"),
            });
        }
        statuses
    });
    assert_eq!(statuses, [404, 404, 404, 200, 200, 200]);
    let spans = rec.spans();
    let unrouted: Vec<_> = spans.0.iter().filter(|s| s.name == "GET").collect();
    assert_eq!(unrouted.len(), 3, "{:?}", spans.names());
    for span in unrouted {
        assert_eq!(span.str("http.route"), None);
        assert!(span.str("url.path").unwrap().starts_with("/orders/"));
    }
    let other: Vec<_> = spans.all("HTTP /x").collect();
    assert_eq!(other.len(), 2, "{:?}", spans.names());
    for (span, original) in other.iter().zip(["XYZ1", "XYZ2"]) {
        assert_eq!(span.str("http.request.method"), Some("_OTHER"));
        assert_eq!(span.str("http.request.method_original"), Some(original));
    }
    let propfind = spans.get("PROPFIND /x");
    assert_eq!(propfind.str("http.request.method"), Some("PROPFIND"));
    assert_eq!(propfind.str("http.request.method_original"), None);
}

/// One chunk, then nothing more, ever: the body is still being sent when its client goes.
struct Stalls(bool);

impl futures_core::Stream for Stalls {
    type Item = Result<String, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok("first,".to_owned())))
    }
}

#[test]
fn a_body_dropped_before_its_end_ends_its_span_cancelled_and_one_not_sent_does_not() {
    let rec = Recorder::start();
    run(async {
        let addr = serve(
            routes()
                .route(
                    "/stalls",
                    get(|| async { Body::from_stream(Stalls(false)) }),
                )
                .route("/empty", get(|| async {}))
                .route("/none", get(|| async { StatusCode::NO_CONTENT }))
                .layer(ServerLayer::new()),
        )
        .await;
        let mut response = reqwest::get(format!("http://{addr}/stalls")).await.unwrap();
        assert_eq!(
            response.chunk().await.unwrap().as_deref(),
            Some(&b"first,"[..])
        );
        drop(response);
        let client = reqwest::Client::new();
        client
            .head(format!("http://{addr}/users/1"))
            .send()
            .await
            .unwrap();
        for path in ["/empty", "/none", "/stream"] {
            client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
    });
    // Dropping the runtime dropped the stalled body, if the server had not already.
    let spans = rec.spans();
    let stalled = spans.get("GET /stalls");
    assert_eq!(stalled.bool("honeyhive.cancelled"), Some(true));
    assert_eq!(stalled.i64("http.response.status_code"), Some(200));
    for name in ["HEAD /users/{id}", "GET /empty", "GET /none", "GET /stream"] {
        assert_eq!(spans.get(name).bool("honeyhive.cancelled"), None, "{name}");
    }
}
