//! async-openai, traced through its tower HTTP-service hook (`Client::with_http_service`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_openai::middleware::HttpRequestFactory;

use super::middleware::{Config, Traced};

/// A tower layer that traces the LLM calls of an [`async_openai::Client`] (cargo feature
/// `async-openai`), the way [`LlmMiddleware`](super::LlmMiddleware) does for reqwest: a model
/// span per HTTP request, the request and the response (or the stream, as it is read) recorded
/// as an [`LlmCall`](crate::LlmCall), W3C trace context in the request headers.
///
/// ```no_run
/// use async_openai::middleware::ReqwestService;
/// use async_openai::{Client, config::OpenAIConfig};
/// use honeyhive_runtime::integrations::LlmLayer;
/// use tower_layer::Layer as _;
///
/// let service = LlmLayer::new().layer(ReqwestService::new(reqwest::Client::new()));
/// let client = Client::with_config(OpenAIConfig::new()).with_http_service(service);
/// ```
///
/// Under a retry layer (async-openai's `OpenAIRetryLayer`, which the client uses when it is
/// given no service) each attempt is its own span, a rate-limited one marked failed:
/// `ServiceBuilder::new().layer(OpenAIRetryLayer::default()).layer(LlmLayer::new())`.
#[derive(Clone, Debug, Default)]
pub struct LlmLayer {
    config: Arc<Config>,
}

impl LlmLayer {
    /// A layer that knows the hosted APIs and the default ports of local servers.
    pub fn new() -> LlmLayer {
        LlmLayer::default()
    }

    /// Calls to `host` are to `provider`; see
    /// [`LlmMiddleware::provider_for_host`](super::LlmMiddleware::provider_for_host).
    #[must_use]
    pub fn provider_for_host(self, host: impl Into<String>, provider: &'static str) -> Self {
        LlmLayer {
            config: Arc::new((*self.config).clone().provider_for_host(host, provider)),
        }
    }
}

impl<S> tower_layer::Layer<S> for LlmLayer {
    type Service = LlmService<S>;

    fn layer(&self, inner: S) -> LlmService<S> {
        LlmService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`LlmLayer`] wraps around async-openai's HTTP service.
#[derive(Clone, Debug)]
pub struct LlmService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> tower_service::Service<HttpRequestFactory> for LlmService<S>
where
    S: tower_service::Service<HttpRequestFactory, Response = reqwest::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
{
    type Response = reqwest::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        // The service that was polled ready is the one called (tower's rule for clones).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            // The factory rebuilds the request on demand (it is replayed on retries): build
            // one to read, then hand the inner service a factory that adds the trace context
            // to the request it builds.
            let Ok(mut probe) = factory.build().await else {
                return inner.call(factory).await;
            };
            let Some(traced) = Traced::start(&config, &mut probe) else {
                return inner.call(factory).await;
            };
            let injected = probe.headers().clone();
            let traced_factory = HttpRequestFactory::new(move || {
                let factory = factory.clone();
                let injected = injected.clone();
                async move {
                    let mut request = factory.build().await?;
                    for name in ["traceparent", "tracestate", "baggage", "x-request-id"] {
                        if let Some(value) = injected.get(name) {
                            request.headers_mut().insert(name, value.clone());
                        }
                    }
                    Ok(request)
                }
            });
            match inner.call(traced_factory).await {
                Ok(response) => Ok(traced.response(response)),
                Err(error) => {
                    traced.failed(&error);
                    Err(error)
                }
            }
        })
    }
}
