//! A [reqwest-middleware] [`Middleware`] for HTTP clients: one CLIENT span per request, and the
//! trace context sent along.
//!
//! ```
//! use honeyhive_runtime::integrations::reqwest::ClientMiddleware;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(ClientMiddleware::new())
//!     .build();
//! ```
//!
//! For each request the middleware:
//! - opens a span (kind CLIENT) under the current span, named `{METHOD} {host}`
//!   (`GET api.example.com`);
//! - writes the trace context and correlation into the request headers as
//!   [`propagation::inject`] does, the span as the parent: `traceparent` and `tracestate`
//!   always, `x-request-id` and `baggage` unless the request already has its own;
//! - records `http.request.method`, `url.full`, `server.address`, `server.port`,
//!   `network.protocol.version` and `http.response.status_code`; the span's duration is the time
//!   to the response headers (the body is read after the middleware returns);
//! - marks the span failed on a 4xx or 5xx status and on a failed request (`error.type`
//!   `connect`, `timeout`, ..., as OpenTelemetry's HTTP client conventions say), and returns
//!   the response or error unchanged.
//!
//! `url.full` never holds credentials: a user and password in the URL are recorded as
//! `REDACTED:REDACTED`, and the values of query parameters that carry secrets (`api_key`,
//! `key`, `token`, `access_token`, `signature`, `password`, names ending in `_key`, `_token`,
//! `_secret`, ...) as `REDACTED`. Error messages are recorded with the same URL.
//!
//! Middleware added after this one runs inside its span.
//!
//! [reqwest-middleware]: https://docs.rs/reqwest-middleware
//! [`propagation::inject`]: crate::propagation::inject

use std::future::poll_fn;

use ::reqwest::header::HeaderMap;
use ::reqwest::{Request, Response, Url, Version};
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::capture::{capture_cap, display_text};
use crate::dynamic::{ActiveSpan, SpanBuilder, SpanKind};
use crate::propagation::{TRACEPARENT, TRACESTATE, inject};
use crate::span::EventType;

/// Traces every request of a reqwest-middleware client; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct ClientMiddleware {
    event_type: EventType,
}

impl ClientMiddleware {
    /// Request spans of event type [`EventType::Tool`]: a call to another service.
    pub fn new() -> ClientMiddleware {
        ClientMiddleware {
            event_type: EventType::Tool,
        }
    }

    /// Another event type for the request spans.
    #[must_use]
    pub fn event_type(mut self, event_type: EventType) -> ClientMiddleware {
        self.event_type = event_type;
        self
    }
}

impl Default for ClientMiddleware {
    fn default() -> ClientMiddleware {
        ClientMiddleware::new()
    }
}

#[async_trait::async_trait]
impl Middleware for ClientMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        // Named before it starts: a root is sampled by its name (`Rule::name("GET api.*")`).
        // Without a pipeline nothing is recorded: no name to make.
        let name: std::borrow::Cow<'static, str> = match req.url().host_str() {
            _ if !crate::sink::is_active() => "HTTP".into(),
            Some(host) => format!("{} {host}", req.method().as_str()).into(),
            None => req.method().as_str().to_owned().into(),
        };
        let mut span = SpanBuilder::new(name)
            .event_type(self.event_type)
            .kind(SpanKind::Client)
            .start();
        // Only for a recorded span: the URL as sent, and as recorded (in error messages too).
        let urls = span.is_recording().then(|| {
            let redacted = redacted_url(req.url());
            describe_request(&mut span, &req, &redacted);
            (req.url().as_str().to_owned(), redacted)
        });
        let mut outgoing = HeaderMap::new();
        span.in_scope(|| inject(&mut outgoing));
        add_context(req.headers_mut(), &outgoing);
        let mut sent = next.run(req, extensions);
        let result = poll_fn(|cx| span.in_scope(|| sent.as_mut().poll(cx))).await;
        if let Some((raw, redacted)) = &urls {
            match &result {
                Ok(response) => describe_response(&mut span, response),
                Err(err) => describe_error(&mut span, err, raw, redacted),
            }
        }
        result
    }
}

/// Our context headers on the request: `traceparent` and `tracestate` name this span, so they
/// replace any the caller set (a caller's `tracestate` is removed when this span has none:
/// it belongs to another `traceparent`); the caller's own `x-request-id` and `baggage` win.
fn add_context(headers: &mut HeaderMap, outgoing: &HeaderMap) {
    if outgoing.contains_key(TRACEPARENT) && !outgoing.contains_key(TRACESTATE) {
        headers.remove(TRACESTATE);
    }
    for (name, value) in outgoing {
        let ours = name == TRACEPARENT || name == TRACESTATE;
        if ours || !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
}

fn describe_request(span: &mut ActiveSpan, req: &Request, url_full: &str) {
    let method = req.method().as_str();
    let url = req.url();
    span.set_attribute("http.request.method", method);
    span.set_attribute("url.full", url_full);
    if let Some(host) = url.host_str() {
        span.set_attribute("server.address", host);
    }
    if let Some(port) = url.port_or_known_default() {
        span.set_attribute("server.port", i64::from(port));
    }
}

fn describe_response(span: &mut ActiveSpan, response: &Response) {
    let status = response.status();
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if let Some(version) = protocol_version(response.version()) {
        span.set_attribute("network.protocol.version", version);
    }
    // A client asked for something it did not get: 4xx and 5xx both fail the call.
    if status.is_client_error() || status.is_server_error() {
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

/// Causes of a failed request's error that its message lists at most.
const MAX_CAUSES: usize = 16;

/// Records a failed request: what failed, and the error's message with its causes, the `raw`
/// URL in it replaced by the `redacted` one.
fn describe_error(
    span: &mut ActiveSpan,
    err: &reqwest_middleware::Error,
    raw: &str,
    redacted: &str,
) {
    let kind = match err {
        reqwest_middleware::Error::Middleware(_) => "middleware",
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(e) if e.is_redirect() => "redirect",
        reqwest_middleware::Error::Reqwest(e) if e.is_body() => "body",
        reqwest_middleware::Error::Reqwest(e) if e.is_builder() => "builder",
        reqwest_middleware::Error::Reqwest(e) if e.is_request() => "request",
        reqwest_middleware::Error::Reqwest(_) => "reqwest::Error",
    };
    // A middleware's error is the user's: its text is formatted up to the cap and a panic
    // in it is a marker; its chain of causes is followed a bounded number of steps.
    let cap = capture_cap();
    let mut message = display_text(err, cap).as_str().to_owned();
    let mut source = std::error::Error::source(err);
    for _ in 0..MAX_CAUSES {
        let Some(cause) = source else { break };
        if message.len() >= cap {
            break;
        }
        let text = display_text(cause, cap - message.len());
        // Errors that wrap another often repeat its message in their own.
        if !message.contains(text.as_str()) {
            message.push_str(": ");
            message.push_str(text.as_str());
        }
        source = cause.source();
    }
    let message = message.replace(raw, redacted);
    span.set_attribute("error.type", kind);
    span.set_error(kind, &message);
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

/// Query parameters whose values are secrets, by their whole (lowercase) name.
const SECRET_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "api-key",
    "key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "sig",
    "signature",
    "code",
    "awsaccesskeyid",
    "x-amz-credential",
    "x-amz-signature",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];

/// Endings of parameter names whose values are secrets (`openai_api_key`, `session_token`).
const SECRET_SUFFIXES: &[&str] = &[
    "_key",
    "-key",
    "_token",
    "-token",
    "_secret",
    "-secret",
    "_password",
    "_signature",
];

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str()) || SECRET_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `url` as `url.full` may show it: credentials and secret query values replaced by
/// `REDACTED`.
fn redacted_url(url: &Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Both fail only for URLs that cannot hold credentials, which then have none.
        let _ = url.set_username("REDACTED");
        let _ = url.set_password(Some("REDACTED"));
    }
    if let Some(query) = url.query()
        && query
            .split('&')
            .any(|pair| is_secret_param(pair.split_once('=').map_or(pair, |(k, _)| k)))
    {
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect();
        url.set_query(Some(&redacted.join("&")));
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(url: &str) -> String {
        redacted_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn credentials_and_secret_query_values_are_redacted() {
        assert_eq!(
            redact("https://alice:s3cret@api.example.com/v1/x?api_key=sk-123&page=2"),
            "https://REDACTED:REDACTED@api.example.com/v1/x?api_key=REDACTED&page=2"
        );
        assert_eq!(
            redact("http://h/p?KEY=abc&Token=t&openai_api_key=k&q=key&monkey=1"),
            "http://h/p?KEY=REDACTED&Token=REDACTED&openai_api_key=REDACTED&q=key&monkey=1"
        );
        assert_eq!(redact("http://h/p?flag&q=1"), "http://h/p?flag&q=1");
        assert_eq!(redact("http://user@h/"), "http://REDACTED:REDACTED@h/");
    }
}
