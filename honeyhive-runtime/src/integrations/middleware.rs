//! The reqwest-middleware integration and the traced response body it shares with
//! async-openai.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use http_body::{Body as HttpBody, Frame, SizeHint};
use reqwest::ResponseBuilderExt as _;

use super::{Api, Endpoint, LlmExchange};
use crate::capture::{capture_cap, display_text};
use crate::span::EventType;
use crate::{ActiveSpan, SpanBuilder, propagation};

/// A `reqwest-middleware` middleware that traces the LLM API calls of any reqwest client
/// (cargo feature `reqwest`).
///
/// ```no_run
/// use honeyhive_runtime::integrations::LlmMiddleware;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(LlmMiddleware::new().provider_for_host("gpu-box.internal", "vllm"))
///     .build();
/// let answer = client
///     .post("https://api.openai.com/v1/chat/completions")
///     .header("content-type", "application/json")
///     .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
///     .send()
///     .await?
///     .text()
///     .await?;
/// # Ok(()) }
/// ```
///
/// For a request to a known LLM API ([`Endpoint::detect`]; other requests pass untouched) the
/// middleware opens a model span (span kind CLIENT; an embedding span for embeddings) under
/// the current span, named `{provider}.{api}` (`openai.chat`, `anthropic.messages`,
/// `llm.chat` for an unknown provider), writes W3C trace context into the request headers, and
/// records the call as an [`LlmCall`](crate::LlmCall) while the caller reads the response: a
/// JSON body or an event stream is read chunk by chunk as it passes, never held back, and the
/// span ends when the body ends, fails or is dropped (then marked `honeyhive.cancelled`). The
/// status, headers and body the caller sees are the server's.
///
/// Stack it inside a generic HTTP client middleware, so the LLM span is the inner one:
/// `.with(http_spans).with(LlmMiddleware::new())`.
#[derive(Clone, Debug, Default)]
pub struct LlmMiddleware {
    config: Config,
}

/// What the integrations share: providers set by host.
#[derive(Clone, Debug, Default)]
pub(crate) struct Config {
    hosts: Vec<(String, &'static str)>,
}

impl LlmMiddleware {
    /// A middleware that knows the hosted APIs and the default ports of local servers.
    pub fn new() -> LlmMiddleware {
        LlmMiddleware::default()
    }

    /// Calls to `host` are to `provider` (GenAI's name: `vllm`, `ollama`, `openai`, ...):
    /// for self-hosted servers and gateways that [`Endpoint::detect`] cannot tell.
    #[must_use]
    pub fn provider_for_host(mut self, host: impl Into<String>, provider: &'static str) -> Self {
        self.config = self.config.provider_for_host(host, provider);
        self
    }
}

impl Config {
    pub(crate) fn provider_for_host(
        mut self,
        host: impl Into<String>,
        provider: &'static str,
    ) -> Self {
        self.hosts
            .push((host.into().to_ascii_lowercase(), provider));
        self
    }

    fn endpoint(&self, url: &reqwest::Url, headers: &http::HeaderMap) -> Option<Endpoint> {
        let host = url.host_str()?;
        let mut endpoint = Endpoint::detect(host, url.port(), url.path(), headers)?;
        if let Some((_, provider)) = self
            .hosts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
        {
            endpoint.provider = Some(provider);
        }
        Some(endpoint)
    }
}

/// An LLM call being traced: its span and what was read so far.
pub(crate) struct Traced {
    span: ActiveSpan,
    /// `None` when the span is not recorded: nothing is parsed then.
    exchange: Option<LlmExchange>,
}

impl Traced {
    /// Opens the span for `request` when it goes to a known LLM API, and injects trace context
    /// into its headers.
    pub(crate) fn start(config: &Config, request: &mut reqwest::Request) -> Option<Traced> {
        // Every call of these APIs is a POST; a GET of the same path lists stored completions
        // or responses, which is no model call.
        if request.method() != reqwest::Method::POST {
            return None;
        }
        let endpoint = config.endpoint(request.url(), request.headers())?;
        let api = match endpoint.api {
            Api::ChatCompletions => "chat",
            Api::AnthropicMessages => "messages",
            Api::Responses => "responses",
            Api::Embeddings => "embeddings",
        };
        let name = format!("{}.{api}", endpoint.provider.unwrap_or("llm"));
        let event_type = if endpoint.api == Api::Embeddings {
            EventType::Embedding
        } else {
            EventType::Model
        };
        let mut span = SpanBuilder::new(Cow::Owned(name))
            .event_type(event_type)
            .start();
        span.in_scope(|| propagation::inject(request.headers_mut()));
        if !span.is_recording() {
            return Some(Traced {
                span,
                exchange: None,
            });
        }
        let url = request.url();
        span.set_attribute("http.request.method", request.method().as_str().to_owned());
        // Without credentials or query (an API key may sit in either).
        let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(port) = url.port() {
            shown.push(':');
            shown.push_str(&port.to_string());
        }
        shown.push_str(url.path());
        span.set_attribute("url.full", shown);
        span.set_attribute(
            "server.address",
            url.host_str().unwrap_or_default().to_owned(),
        );
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default();
        let exchange = catch_unwind(AssertUnwindSafe(|| LlmExchange::new(endpoint, body))).ok();
        Some(Traced { span, exchange })
    }

    /// Wraps `response` so its body is read into the call as the caller consumes it.
    pub(crate) fn response(mut self, response: reqwest::Response) -> reqwest::Response {
        let Some(exchange) = &mut self.exchange else {
            // Unrecorded: the span ends now; the response is the server's, untouched.
            return response;
        };
        exchange.response_head(response.status().as_u16(), response.headers());
        let url = response.url().clone();
        let http: http::Response<reqwest::Body> = response.into();
        let (mut parts, body) = http.into_parts();
        if let Ok(with_url) = http::Response::builder().url(url).body(()) {
            parts.extensions.extend(with_url.into_parts().0.extensions);
        }
        let body = TracedBody {
            inner: body,
            traced: Mutex::new(Some(self)),
        };
        reqwest::Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
    }

    /// The request failed before a response (connection refused, timeout, ...): the call is
    /// recorded from its request (model, provider, messages) with the error.
    pub(crate) fn failed(mut self, error: &dyn std::fmt::Display) {
        self.record_exchange();
        self.set_error("HttpError", display_text(error, capture_cap()).as_str());
    }

    fn finish(mut self, body_error: Option<String>, cancelled: bool) {
        self.record_exchange();
        if let Some(error) = body_error {
            self.set_error("HttpBodyError", &error);
        }
        if cancelled {
            self.span.set_attribute("honeyhive.cancelled", true);
        }
    }

    /// What the exchange read, on the span; once.
    fn record_exchange(&mut self) {
        if let Some(exchange) = self.exchange.take()
            && let Ok(record) = catch_unwind(AssertUnwindSafe(|| exchange.finish()))
        {
            self.span.in_scope(|| record.record());
        }
    }

    /// A failure of the transport, with its kind as `error.type` as an API's error has.
    fn set_error(&mut self, kind: &str, message: &str) {
        self.span.set_error(kind, message);
        self.span.set_attribute("error.type", kind.to_owned());
    }
}

/// Dropped before a response or a failure (the caller gave up waiting, a timeout around the
/// call): the call is recorded from its request, and the span marked cancelled.
impl Drop for Traced {
    fn drop(&mut self) {
        if self.exchange.is_some() {
            self.record_exchange();
            self.span.set_attribute("honeyhive.cancelled", true);
        }
    }
}

/// A response body that feeds every chunk to the exchange on its way to the caller.
struct TracedBody<B> {
    inner: B,
    /// In a `Mutex` only so the body is `Sync` as reqwest asks; it is reached through
    /// `&mut self`, never locked.
    traced: Mutex<Option<Traced>>,
}

impl<B> TracedBody<B> {
    fn traced(&mut self) -> &mut Option<Traced> {
        match self.traced.get_mut() {
            Ok(traced) => traced,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn finish(&mut self, body_error: Option<String>, cancelled: bool) {
        if let Some(traced) = self.traced().take() {
            traced.finish(body_error, cancelled);
        }
    }
}

impl<B> HttpBody for TracedBody<B>
where
    B: HttpBody + Unpin,
    B::Data: AsRef<[u8]>,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Some(traced) = this.traced()
                    && let Some(exchange) = &mut traced.exchange
                {
                    let read =
                        catch_unwind(AssertUnwindSafe(|| exchange.body_chunk(data.as_ref())));
                    if read.is_err() {
                        // A chunk the reader choked on: stop reading, keep the span.
                        traced.exchange = None;
                    }
                }
                // A consumer may stop at the last frame without polling for the end.
                if this.inner.is_end_stream() {
                    this.finish(None, false);
                }
            }
            Poll::Ready(Some(Err(error))) => this.finish(
                Some(display_text(&error, capture_cap()).as_str().to_owned()),
                false,
            ),
            Poll::Ready(None) => this.finish(None, false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for TracedBody<B> {
    fn drop(&mut self) {
        // Dropped before its end: the caller stopped reading, unless the stream's last event
        // was read (a client such as async-openai stops at `[DONE]`, before the body's end).
        let read_whole = self
            .traced()
            .as_ref()
            .and_then(|t| t.exchange.as_ref())
            .is_some_and(LlmExchange::stream_ended);
        self.finish(None, !read_whole);
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for LlmMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(traced) = Traced::start(&self.config, &mut request) else {
            return next.run(request, extensions).await;
        };
        match next.run(request, extensions).await {
            Ok(response) => Ok(traced.response(response)),
            Err(error) => {
                traced.failed(&error);
                Err(error)
            }
        }
    }
}
