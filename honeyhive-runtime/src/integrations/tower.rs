//! A tower [`Layer`] for HTTP servers (axum, tonic, hyper): one SERVER span per request.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use honeyhive_runtime::integrations::tower::ServerLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "ok" }))
//!     .layer(ServerLayer::new());
//! # }
//! ```
//!
//! For each request the layer:
//! - reads the caller's context from the headers as [`propagation::extract`] does (W3C
//!   `traceparent`, `tracestate`, `baggage`, and `x-request-id`; anything malformed is ignored,
//!   an invalid request id is replaced);
//! - opens a root span of this service (kind SERVER, a child of the caller's span if one came),
//!   named as OpenTelemetry's HTTP conventions say: `{method} {route}` when the route is known
//!   (axum's matched route, `/users/{id}`, with the `axum` feature when the layer runs inside
//!   the router: `Router::layer`), else `{method}` alone (never the path, which holds ids); a
//!   method the layer does not know (see [`ServerLayer::known_methods`]) is recorded as
//!   `_OTHER`, with `http.request.method_original`, and names the span `HTTP`, so clients
//!   cannot make span names without end. The span starts with its name, so sampling rules
//!   and [`sampling_stats`] see it (`Rule::new(0.0).name("GET /health")`);
//! - runs the inner service, and the response body, with that span current and the request's
//!   correlation (request id, session, user, baggage) in scope, so `#[trace]` calls in the
//!   handler are children of it and carry the request id;
//! - records `http.request.method`, `http.request.method_original` (for an `_OTHER` method),
//!   `url.path`, `url.scheme`, `http.route` (only when the route is known), `server.address`,
//!   `server.port`, `user_agent.original`,
//!   `network.protocol.version` and `http.response.status_code`; a 5xx status, an error from the
//!   inner service, a panic or a failing response body mark it failed (a 4xx does not: the
//!   server did its job, as OpenTelemetry's HTTP conventions say);
//! - for a gRPC call (`content-type: application/grpc...`, as tonic serves them), follows
//!   OpenTelemetry's RPC conventions: the span is named `{service}/{method}` from the path
//!   (`/helloworld.Greeter/SayHello`), records `rpc.system = "grpc"`, `rpc.service`,
//!   `rpc.method` and `rpc.grpc.status_code` (from the `grpc-status` response header of a
//!   trailers-only response, else from the trailers at the end of the body), and is marked
//!   failed, with `error.type` the code's name and `grpc-message` as the message, for the codes
//!   the conventions count as a server's error: `UNKNOWN`, `DEADLINE_EXCEEDED`,
//!   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` (a caller's mistake such as
//!   `INVALID_ARGUMENT` or `NOT_FOUND` is recorded, not marked, like an HTTP 4xx);
//! - sets `x-request-id` on the response: the one that came in if valid, else a generated one
//!   (the same id every span of the request carries). A response that already has an
//!   `x-request-id` keeps it; nothing else in the response changes.
//!
//! The span ends when the response body ends (its last frame, an error, or when the server drops
//! it), so a streamed response is timed whole. A request dropped before the response is ready,
//! or a body dropped before its last frame (the client went away), ends it marked
//! `honeyhive.cancelled`.
//!
//! [`propagation::extract`]: crate::propagation::extract
//! [`sampling_stats`]: crate::sampling::sampling_stats

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::header::{HOST, USER_AGENT};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

use crate::capture::{ErrDisplay, capture_cap, display_text};
use crate::carry::Carried;
use crate::correlation::{RequestId, RequestIdSource, new_request_id};
use crate::dynamic::{ActiveSpan, SpanBuilder, SpanKind};
use crate::propagation::{X_REQUEST_ID, extract};
use crate::span::EventType;

/// The methods OpenTelemetry's HTTP conventions know by default: RFC 9110's and `PATCH`.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Traces every request of the service it wraps; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct ServerLayer {
    event_type: EventType,
    known_methods: &'static [&'static str],
}

impl ServerLayer {
    /// Request spans of event type [`EventType::Chain`]: the root of what the handler does.
    pub fn new() -> ServerLayer {
        ServerLayer {
            event_type: EventType::Chain,
            known_methods: KNOWN_METHODS,
        }
    }

    /// The request methods recorded and named as they are, in place of the default ones
    /// (RFC 9110's and `PATCH`), e.g. to add `PROPFIND` (`WebDAV`). Methods are case-sensitive;
    /// any other is recorded as `_OTHER` (with `http.request.method_original`) and names the
    /// span `HTTP`, as OpenTelemetry's HTTP conventions say.
    #[must_use]
    pub fn known_methods(mut self, methods: &'static [&'static str]) -> ServerLayer {
        self.known_methods = methods;
        self
    }

    /// Another event type for the request spans, e.g. [`EventType::Session`] so that each
    /// request starts a session.
    #[must_use]
    pub fn event_type(mut self, event_type: EventType) -> ServerLayer {
        self.event_type = event_type;
        self
    }
}

impl Default for ServerLayer {
    fn default() -> ServerLayer {
        ServerLayer::new()
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            event_type: self.event_type,
            known_methods: self.known_methods,
        }
    }
}

/// The service [`ServerLayer`] makes.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    event_type: EventType,
    known_methods: &'static [&'static str],
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
    S::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> ResponseFuture<S::Future> {
        let mut remote = extract(req.headers());
        // Every request gets an id (the valid one that came, else a new one), and the response
        // tells the caller which.
        let request_id = Arc::clone(
            &remote
                .request_id
                .get_or_insert_with(|| RequestId {
                    id: Arc::from(new_request_id()),
                    source: RequestIdSource::Generated,
                })
                .id,
        );
        let carried = remote.carried();
        let grpc = is_grpc(&req);
        let grpc_call = grpc.then(|| grpc_call(req.uri().path())).flatten();
        let method = self
            .known_methods
            .iter()
            .copied()
            .find(|&known| known == req.method().as_str());
        // Named before it starts: the sampler decides a root by its name.
        let name = span_name(&req, method, grpc_call);
        let mut span = carried.run(|| {
            SpanBuilder::new(name)
                .event_type(self.event_type)
                .kind(SpanKind::Server)
                .start()
        });
        if span.is_recording() {
            describe_request(&mut span, &req, method);
            if grpc {
                describe_grpc(&mut span, grpc_call);
            }
        }
        let head = req.method() == http::Method::HEAD;
        // Some services work in `call` already (routers route there): it runs in scope too.
        let inner = carried.run(|| span.in_scope(|| self.inner.call(req)));
        ResponseFuture {
            inner,
            pending: Some(Pending {
                span,
                carried,
                request_id,
                grpc,
                head,
            }),
        }
    }
}

/// The span's name, of few values whatever the clients send: `{service}/{method}` for a gRPC
/// call, else `{method} {route}`, or `{method}` when no route is known (OpenTelemetry's HTTP
/// conventions: never the path), with `HTTP` for a method not known (`method` is `None`).
fn span_name<B>(
    req: &Request<B>,
    method: Option<&'static str>,
    grpc_call: Option<(&str, &str)>,
) -> Cow<'static, str> {
    if let Some((service, method)) = grpc_call {
        return Cow::Owned(format!("{service}/{method}"));
    }
    let method = method.unwrap_or("HTTP");
    match route(req) {
        Some(route) => Cow::Owned(format!("{method} {route}")),
        None => Cow::Borrowed(method),
    }
}

/// Records what the request says about itself; `method` is its method if known.
fn describe_request<B>(span: &mut ActiveSpan, req: &Request<B>, method: Option<&'static str>) {
    let path = req.uri().path();
    if let Some(route) = route(req) {
        span.set_attribute("http.route", route);
    }
    span.set_attribute("http.request.method", method.unwrap_or("_OTHER"));
    if method.is_none() {
        span.set_attribute("http.request.method_original", req.method().as_str());
    }
    span.set_attribute("url.path", path);
    // HTTP/1 requests name no scheme; behind TLS termination this crate cannot tell.
    span.set_attribute("url.scheme", req.uri().scheme_str().unwrap_or("http"));
    let authority = req.uri().authority().cloned().or_else(|| {
        req.headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
    });
    if let Some(authority) = authority {
        span.set_attribute("server.address", authority.host());
        if let Some(port) = authority.port_u16() {
            span.set_attribute("server.port", i64::from(port));
        }
    }
    if let Some(agent) = req.headers().get(USER_AGENT).and_then(|h| h.to_str().ok()) {
        span.set_attribute("user_agent.original", agent);
    }
    if let Some(version) = protocol_version(req.version()) {
        span.set_attribute("network.protocol.version", version);
    }
}

/// Whether the request is a gRPC call (`application/grpc`, `application/grpc+proto`, ...).
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.get(.."application/grpc".len()))
        .is_some_and(|h| h.eq_ignore_ascii_case("application/grpc"))
}

/// A gRPC call's service and method, from its path `/{service}/{method}`.
fn grpc_call(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Records a gRPC call's system, service and method.
fn describe_grpc(span: &mut ActiveSpan, call: Option<(&str, &str)>) {
    span.set_attribute("rpc.system", "grpc");
    if let Some((service, method)) = call {
        span.set_attribute("rpc.service", service.to_owned());
        span.set_attribute("rpc.method", method.to_owned());
    }
}

/// Records a gRPC call's status, if `headers` (the response's, or its trailers) carry one;
/// returns whether they did.
fn record_grpc_status(span: &mut ActiveSpan, headers: &http::HeaderMap) -> bool {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().parse::<u16>().ok())
    else {
        return false;
    };
    span.set_attribute("rpc.grpc.status_code", i64::from(code));
    // OpenTelemetry's gRPC conventions for SERVER spans: these codes are the server's failure;
    // the others (INVALID_ARGUMENT, NOT_FOUND, ...) are the caller's and leave the status unset.
    let name = match code {
        2 => "UNKNOWN",
        4 => "DEADLINE_EXCEEDED",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        _ => return true,
    };
    span.set_attribute("error.type", name);
    let message = headers
        .get("grpc-message")
        .map(|h| percent_decode(h.as_bytes()))
        .filter(|m| !m.is_empty());
    let message = match message {
        Some(message) => format!("gRPC {name}: {message}"),
        None => format!("gRPC {name}"),
    };
    span.set_error(name, &message);
    true
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2: "Percent-Encoded").
fn percent_decode(bytes: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits: at most 0xff.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The route the router matched, when the layer runs inside an axum router.
#[cfg(feature = "axum")]
fn route<B>(req: &Request<B>) -> Option<&str> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

/// Without the `axum` feature no router tells the layer its route.
#[cfg(not(feature = "axum"))]
fn route<B>(_req: &Request<B>) -> Option<&str> {
    None
}

fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// What a request in flight holds until its response is ready.
#[derive(Debug)]
struct Pending {
    span: ActiveSpan,
    carried: Carried,
    request_id: Arc<str>,
    /// A gRPC call, whose status comes in the response headers or trailers.
    grpc: bool,
    /// A `HEAD` request, whose response body is never sent.
    head: bool,
}

/// The response future of [`ServerService`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<F> {
    // Declared first, so dropped first: the handler's spans end before the request's.
    inner: F,
    pending: Option<Pending>,
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: never moved out of `self` (nor by `Drop`);
        // `pending` is not pinned and may be taken.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let Some(mut pending) = this.pending.take() else {
            panic!("`ResponseFuture` polled after completion");
        };
        // A panic in the handler marks the span (see `ActiveSpan::in_scope`) and unwinds on,
        // ending it.
        let poll = pending
            .carried
            .run(|| pending.span.in_scope(|| inner.poll(cx)));
        let Poll::Ready(result) = poll else {
            this.pending = Some(pending);
            return Poll::Pending;
        };
        let Pending {
            mut span,
            carried,
            request_id,
            grpc,
            head,
        } = pending;
        Poll::Ready(match result {
            Ok(mut response) => {
                let status = response.status();
                if span.is_recording() {
                    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
                    if status.is_server_error() {
                        span.set_attribute("error.type", status.as_str());
                        span.set_error(
                            status.as_str(),
                            &format!(
                                "HTTP {} {}",
                                status.as_str(),
                                status.canonical_reason().unwrap_or("")
                            ),
                        );
                    }
                }
                // A trailers-only response (tonic's for an error) has the status already.
                let grpc = grpc && !record_grpc_status(&mut span, response.headers());
                if !response.headers().contains_key(X_REQUEST_ID)
                    && let Ok(value) = HeaderValue::from_str(&request_id)
                {
                    response
                        .headers_mut()
                        .insert(http::HeaderName::from_static(X_REQUEST_ID), value);
                }
                // A body the server does not send (HTTP forbids one here, or it is empty) is
                // not cut short when it is dropped unread.
                let sent = !head
                    && !status.is_informational()
                    && status != StatusCode::NO_CONTENT
                    && status != StatusCode::NOT_MODIFIED
                    && !response.body().is_end_stream();
                Ok(response.map(|inner| ResponseBody {
                    inner,
                    open: Some(Open {
                        span,
                        carried,
                        grpc,
                        sent,
                    }),
                }))
            }
            Err(err) => {
                // As `#[trace]` describes an error: short type name, guarded and capped text.
                let info = ErrDisplay.describe(&err, capture_cap());
                span.set_attribute("error.type", info.type_name.as_str().to_owned());
                span.set_error(info.type_name.as_str(), info.message.as_str());
                Err(err)
            }
        })
    }
}

impl<F> Drop for ResponseFuture<F> {
    fn drop(&mut self) {
        if let Some(pending) = &mut self.pending {
            pending.span.set_attribute("honeyhive.cancelled", true);
        }
    }
}

/// The request's span and scope while its body is sent.
#[derive(Debug)]
struct Open {
    span: ActiveSpan,
    carried: Carried,
    /// A gRPC call whose status is still to come, in the trailers.
    grpc: bool,
    /// Whether the server sends the body: dropped unfinished, it was cut short.
    sent: bool,
}

/// The response body of [`ServerService`]: the inner body, unchanged, with the request's span
/// current while it is polled; the span ends with the body.
#[derive(Debug)]
pub struct ResponseBody<B> {
    inner: B,
    open: Option<Open>,
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        // SAFETY: `inner` is structurally pinned: never moved out of `self`; `open` is not
        // pinned and may be taken.
        let this = unsafe { self.get_unchecked_mut() };
        let mut inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let Some(open) = this.open.as_mut() else {
            return inner.poll_frame(cx);
        };
        let poll = open
            .carried
            .run(|| open.span.in_scope(|| inner.as_mut().poll_frame(cx)));
        if open.grpc
            && let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(trailers) = frame.trailers_ref()
        {
            open.grpc = !record_grpc_status(&mut open.span, trailers);
        }
        match &poll {
            Poll::Ready(Some(Ok(_))) if !inner.is_end_stream() => {}
            Poll::Ready(Some(Err(err))) => {
                open.span.set_error(
                    "http.response.body",
                    display_text(err, capture_cap()).as_str(),
                );
                this.open = None;
            }
            // The last frame: the server need not poll again before dropping the body.
            Poll::Ready(_) => this.open = None,
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ResponseBody<B> {
    fn drop(&mut self) {
        // Dropped before its last frame: the client went away (or the server gave up) midway,
        // as a traced future dropped before it completes.
        if let Some(open) = &mut self.open
            && open.sent
        {
            open.span.set_attribute("honeyhive.cancelled", true);
        }
    }
}
