//! `init()` and its builder: settings from code and from `HH_*` / `OTEL_*` variables.
//!
//! Precedence, highest first: what the builder was told, then the environment, then defaults.
//! Resolution is a pure function ([`Builder::resolve`]) so every setting can be checked
//! without starting anything.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter;

use crate::export::assembler::Limits;
use crate::export::console::{ConsoleExporter, ConsoleTarget};
use crate::export::file::{FileExport, FileExporter};
use crate::export::http as transport;
use crate::export::semantics;
use crate::export::{
    CircuitBreaker, DEFAULT_CAPTURE_CAP, DynSpanExporter, ExportStats, Exporter, ExporterFactory,
    Pipeline, PipelineConfig, ShutdownReport,
};
use crate::llm::{Conventions, Destination, ModelPrice, PriceTable};
use crate::redact::Privacy;
use crate::sampling::{self, Adaptive, Rule, Sampler, TailSampling};

/// HoneyHive's API, when `HH_API_URL` / [`Builder::server_url`] is not set.
pub const DEFAULT_SERVER_URL: &str = "https://api.honeyhive.ai";

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    /// The console waterfall.
    Console,
    /// OTLP over HTTP with protobuf bodies.
    OtlpHttp {
        /// The full URL, including `/v1/traces`.
        endpoint: String,
        /// Extra request headers (e.g. `authorization`).
        headers: BTreeMap<String, String>,
    },
    /// OTLP over gRPC (feature `grpc`).
    OtlpGrpc {
        /// The collector's URL, e.g. `http://localhost:4317`.
        endpoint: String,
        /// Extra metadata.
        headers: BTreeMap<String, String>,
    },
    /// An exporter given to [`Builder::with_exporter`].
    Custom,
    /// OTLP JSON lines appended to a file ([`Builder::file`], `HH_TRACES_FILE`).
    File(FileExport),
}

/// Settings after resolving the builder against the environment.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// False when the kill switch is on (`OTEL_SDK_DISABLED=true` or [`Builder::disabled`]).
    pub enabled: bool,
    /// `service.name`.
    pub service_name: String,
    /// HoneyHive project (also `openinference.project.name`, the Phoenix project).
    pub project: Option<String>,
    /// HoneyHive source, e.g. `production`.
    pub source: String,
    /// Session name for the HoneyHive session.
    pub session_name: Option<String>,
    /// HoneyHive API key, if any.
    pub api_key: Option<String>,
    /// HoneyHive server URL.
    pub server_url: String,
    /// The exporters, in order.
    pub exporters: Vec<ExporterKind>,
    /// The global sampler.
    pub sampler: Sampler,
    /// Byte cap of one captured value.
    pub capture_max_bytes: usize,
    /// Spans that may wait for export before new ones are dropped.
    pub queue_capacity: usize,
    /// Bytes of span records that may wait for export before new ones are dropped.
    pub queue_max_bytes: usize,
    /// Bytes of spans the trace assembler may hold while their traces complete.
    pub assembler_max_bytes: usize,
    /// Whether the pipeline flushes when the process exits without dropping the guard.
    pub exit_hook: bool,
    /// Spans per export call: at least 1, at most `queue_capacity` and 65 536.
    pub max_export_batch: usize,
    /// How long spans may wait before a partial batch is exported: 1 ms to an hour.
    pub scheduled_delay: Duration,
    /// Timeout of one export call: 1 ms to an hour.
    pub export_timeout: Duration,
    /// How long the guard waits for the export thread when shutting down: up to an hour.
    pub shutdown_timeout: Duration,
    /// When to stop calling an exporter that keeps failing.
    pub circuit_breaker: CircuitBreaker,
    /// Which conventions LLM spans are written in (by default, what the exporters read).
    pub conventions: Conventions,
    /// Redaction, key lists and the per-span attribute budget.
    pub privacy: Privacy,
    /// A genai-prices or LiteLLM price file to load over the built-in prices (`HH_PRICE_FILE`).
    pub price_file: Option<PathBuf>,
    /// Problems found in the settings, from the environment or the builder: a value that
    /// cannot be read is ignored, one out of range replaced, a bad header left out; none is
    /// fatal. [`Builder::install`] prints each on stderr (`honeyhive: ...`).
    pub warnings: Vec<String>,
}

/// Why `install` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "honeyhive: cannot start tracing: {}", self.0)
    }
}

impl std::error::Error for InitError {}

type EnvSource = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Configures and starts tracing. See [`init`] for the defaults.
#[must_use = "call `.install()` to start tracing"]
pub struct Builder {
    project: Option<String>,
    source: Option<String>,
    session_name: Option<String>,
    api_key: Option<String>,
    server_url: Option<String>,
    service_name: Option<String>,
    entries: Vec<Entry>,
    console_target: Option<ConsoleTarget>,
    sampler: Option<Sampler>,
    sampling: sampling::Policy,
    tail_sampling: Option<TailSampling>,
    capture_max_bytes: Option<usize>,
    queue_capacity: Option<usize>,
    queue_max_bytes: Option<usize>,
    assembler_max_bytes: Option<usize>,
    exit_hook: Option<bool>,
    max_export_batch: Option<usize>,
    scheduled_delay: Option<Duration>,
    export_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
    circuit_breaker: Option<CircuitBreaker>,
    disabled: Option<bool>,
    semantics: semantics::Options,
    /// GenAI metrics over OTLP, when asked for ([`Builder::metrics`]).
    metrics: Option<crate::metrics::Metrics>,
    env: EnvSource,
    /// What else the export thread feeds whole traces to (metrics, the trace store, files).
    observers: Vec<crate::export::observe::ObserverFactory>,
    /// Phoenix's base URL, for feedback as span annotations.
    phoenix_annotations: Option<String>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("project", &self.project)
            .field("exporters", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// Starts tracing with settings from the environment and returns the guard that flushes and
/// stops it. Never fails: if the settings cannot be used, the problem is printed to stderr
/// and tracing stays off.
///
/// With nothing set, spans go to the console waterfall. `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) sends them over OTLP instead; `HH_API_KEY` sends them
/// to HoneyHive (`HH_API_URL`, default [`DEFAULT_SERVER_URL`]). `OTEL_SDK_DISABLED=true` turns
/// everything into no-ops.
pub fn init() -> Guard {
    Builder::new().install().unwrap_or_else(|e| {
        eprintln!("{e}");
        Guard::disabled()
    })
}

impl Builder {
    /// A builder that reads the process environment.
    pub fn new() -> Self {
        Builder {
            project: None,
            source: None,
            session_name: None,
            api_key: None,
            server_url: None,
            service_name: None,
            entries: Vec::new(),
            console_target: None,
            sampler: None,
            sampling: sampling::Policy::default(),
            tail_sampling: None,
            capture_max_bytes: None,
            queue_capacity: None,
            queue_max_bytes: None,
            assembler_max_bytes: None,
            exit_hook: None,
            max_export_batch: None,
            scheduled_delay: None,
            export_timeout: None,
            shutdown_timeout: None,
            circuit_breaker: None,
            disabled: None,
            semantics: semantics::Options::default(),
            metrics: None,
            env: Arc::new(|key| std::env::var(key).ok()),
            observers: Vec::new(),
            phoenix_annotations: None,
        }
    }

    /// Feeds every whole, rendered trace to an observer on the export thread (what the
    /// metrics, the trace store, alerts and the file exporter are built on).
    #[allow(dead_code)] // used by tests until the metrics and trace-store observers (branches) land
    pub(crate) fn observer(mut self, factory: crate::export::observe::ObserverFactory) -> Self {
        self.observers.push(factory);
        self
    }

    /// Computes the GenAI metrics (token usage, operation duration, time to first chunk, cost
    /// and errors by model) from the traces on the export thread, weighted by 1/sampling
    /// probability, and sends them over OTLP/HTTP (off by default). See
    /// [`metrics`](crate::metrics).
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Reads variables from `env` instead of the process environment (for tests, or to
    /// ignore the environment with `|_| None`).
    pub fn env(mut self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// HoneyHive project (`HH_PROJECT`).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// HoneyHive source, e.g. `production` (`HH_SOURCE`, default `dev`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Session name.
    pub fn session_name(mut self, name: impl Into<String>) -> Self {
        self.session_name = Some(name.into());
        self
    }

    /// HoneyHive API key (`HH_API_KEY`). With a key and no other exporter, spans go to
    /// HoneyHive.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// HoneyHive server URL (`HH_API_URL`).
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }

    /// `service.name` (`OTEL_SERVICE_NAME`; default the project, else `honeyhive-rs`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds the console waterfall on stdout.
    pub fn with_console(mut self) -> Self {
        self.entries.push(Entry::Kind(ExporterKind::Console));
        self
    }

    /// Adds the console waterfall, written to `target`.
    pub fn with_console_target(mut self, target: ConsoleTarget) -> Self {
        self.console_target = Some(target);
        self.entries.push(Entry::Kind(ExporterKind::Console));
        self
    }

    /// Adds OTLP over HTTP/protobuf to `endpoint` (the full URL, with `/v1/traces`).
    /// Credentials in it (`http://user:password@host:4318/v1/traces`) are sent as
    /// `Authorization: Basic` (unless an `authorization` header is set), never in `Host`,
    /// and messages show the password as `***`.
    pub fn with_otlp_http(mut self, endpoint: impl Into<String>) -> Self {
        self.entries.push(Entry::Kind(ExporterKind::OtlpHttp {
            endpoint: endpoint.into(),
            headers: BTreeMap::new(),
        }));
        self
    }

    /// Adds OTLP over gRPC to `endpoint` (needs the `grpc` feature at install).
    pub fn with_otlp_grpc(mut self, endpoint: impl Into<String>) -> Self {
        self.entries.push(Entry::Kind(ExporterKind::OtlpGrpc {
            endpoint: endpoint.into(),
            headers: BTreeMap::new(),
        }));
        self
    }

    /// Adds HoneyHive cloud: OTLP to `{server_url}/opentelemetry/v1/traces` with the API key.
    pub fn with_honeyhive(mut self) -> Self {
        // Resolved in `resolve`, where the key and URL are known.
        self.entries.push(Entry::HoneyHive);
        self
    }

    /// Sends [`feedback`](crate::feedback()) to Phoenix at `base_url` as span annotations
    /// (`POST {base_url}/v1/span_annotations`), besides recording it as a span. Off by default.
    /// Phoenix serves its REST API and its OTLP receiver at one base, so with
    /// `with_otlp_http("http://127.0.0.1:6006/v1/traces")` this is `http://127.0.0.1:6006`
    /// (an OTLP URL given here has its `/v1/traces` removed).
    pub fn phoenix_annotations(mut self, base_url: impl Into<String>) -> Self {
        let url: String = base_url.into();
        let base = url.trim_end_matches('/');
        let base = base.strip_suffix("/v1/traces").unwrap_or(base);
        self.phoenix_annotations = Some(base.to_owned());
        self
    }

    /// Adds a file of OTLP JSON lines, the format of the OpenTelemetry Collector's `file`
    /// exporter, for offline analysis ([`analysis::read_file`](crate::analysis::read_file),
    /// the `honeyhive-traces` tool). Takes a path, or a [`FileExport`] for rotation. With
    /// no exporter named in code, `HH_TRACES_FILE` does the same (and
    /// `HH_TRACES_FILE_MAX_BYTES` rotates it, keeping 5 old files); it replaces the console
    /// default and goes next to an OTLP or HoneyHive exporter set by the environment.
    ///
    /// The file is opened on the export thread at install; a path that cannot be opened
    /// fails [`install`](Builder::install).
    pub fn file(mut self, file: impl Into<FileExport>) -> Self {
        self.entries
            .push(Entry::Kind(ExporterKind::File(file.into())));
        self
    }

    /// Keeps recent whole traces in `store` (opt-in; bounded in bytes, the oldest evicted
    /// first), as the exporters get them, for the [`analysis`](crate::analysis) API:
    /// `store.traces()`, `store.query()`. The export thread converts and inserts them;
    /// callers' threads do nothing more. Pass a clone and keep the handle. The store is not
    /// an exporter: with none named, the console default stays.
    pub fn trace_store(self, store: crate::analysis::TraceStore) -> Self {
        self.observer(Box::new(move || {
            Box::new(crate::export::store::StoreObserver::new(store))
        }))
    }

    /// Evaluates an alert rule ([`analysis::alerts`](crate::analysis::alerts)) on the export
    /// thread, at every scheduled export and flush, and calls `callback` once when it starts
    /// breaching and once when it recovers. A callback that panics is caught and counted in
    /// the rule's [`stats`](crate::analysis::alerts::AlertRule::stats). Keep the callback
    /// quick (it runs on the export thread): hand the event to a channel for slow work. The
    /// window slides with time even when no traces come, so a quiet service recovers.
    pub fn alert(
        self,
        rule: crate::analysis::alerts::AlertRule,
        callback: impl FnMut(&crate::analysis::alerts::AlertEvent) + Send + 'static,
    ) -> Self {
        self.observer(Box::new(move || {
            Box::new(crate::export::alerting::AlertObserver::new(
                rule,
                Box::new(callback),
            ))
        }))
    }

    /// Adds any OpenTelemetry `SpanExporter` (stdout, in-memory, a vendor's).
    pub fn with_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.entries.push(Entry::Custom(Box::new(move || {
            Ok(Exporter::Spans(Box::new(exporter)))
        })));
        self
    }

    /// The global sampler (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`); see
    /// [`sampling`] for how it combines with the other settings below.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Adds a sampling rule for roots by name and/or event type; the first matching rule
    /// decides. See [`Rule`].
    pub fn sampling_rule(mut self, rule: Rule) -> Self {
        self.sampling.rules.push(rule);
        self
    }

    /// Always records traces started while one of these users is current (see
    /// [`Scope`](crate::Scope)).
    pub fn always_sample_users<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Arc<str>>,
    {
        self.sampling.add_users(ids.into_iter().map(Into::into));
        self
    }

    /// Always records traces started while one of these sessions is current.
    pub fn always_sample_sessions<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Arc<str>>,
    {
        self.sampling.add_sessions(ids.into_iter().map(Into::into));
        self
    }

    /// Adaptive sampling: a rate per root operation aiming at a number of traces per second.
    /// See [`Adaptive`].
    pub fn adaptive_sampling(mut self, adaptive: Adaptive) -> Self {
        self.sampling.adaptive = Some(adaptive);
        self
    }

    /// Tail sampling on the export thread: keep traces with errors or slow roots, and a
    /// fraction of the rest. See [`TailSampling`].
    pub fn tail_sampling(mut self, tail: TailSampling) -> Self {
        self.tail_sampling = Some(tail);
        self
    }

    /// Byte cap of one captured value (`HH_CAPTURE_MAX_BYTES`, default 8 KiB).
    pub fn capture_max_bytes(mut self, bytes: usize) -> Self {
        self.capture_max_bytes = Some(bytes);
        self
    }

    /// Which conventions LLM spans are written in: GenAI, OpenInference or both, for every
    /// exporter (`HH_CONVENTIONS=genai|openinference|both`). Without it they follow the
    /// destinations: GenAI for a generic OTLP endpoint, OpenInference for
    /// [`with_phoenix`](Builder::with_phoenix), both for HoneyHive, the console, files and
    /// your own exporters, the union when there are several. See [`llm`](crate::llm).
    pub fn conventions(mut self, conventions: Conventions) -> Self {
        self.semantics.conventions = Some(conventions);
        self
    }

    /// Adds Arize Phoenix at `base_url` (e.g. `http://127.0.0.1:6006`): OTLP/HTTP to
    /// `{base_url}/v1/traces`, a destination that reads OpenInference keys, so those are
    /// what it gets by default (see [`conventions`](Builder::conventions)).
    pub fn with_phoenix(self, base_url: impl Into<String>) -> Self {
        let url: String = base_url.into();
        let base = url.trim_end_matches('/');
        let endpoint = format!(
            "{}/v1/traces",
            base.strip_suffix("/v1/traces").unwrap_or(base)
        );
        let mut builder = self.with_otlp_http(endpoint.clone());
        builder.semantics.phoenix_endpoints.push(endpoint);
        builder
    }

    /// Names model, embedding, agent and tool spans as the GenAI conventions do
    /// (`{operation} {model}`: `chat gpt-4o-mini`, `embeddings text-embedding-3-small`,
    /// `invoke_agent planner`, `execute_tool get_weather`) instead of by function name (off by
    /// default: HoneyHive groups events by their function names). See [`llm`](crate::llm).
    pub fn genai_span_names(mut self, on: bool) -> Self {
        self.semantics.genai_span_names = on;
        self
    }

    /// Whether API keys, bearer tokens and secret-named keys are redacted before export
    /// (default on). See [`redact`](crate::redact).
    pub fn redact_secrets(mut self, on: bool) -> Self {
        self.semantics.privacy.redact_secrets = on;
        self
    }

    /// Redacts what matches `pattern` (a regular expression) in every exported string. A
    /// pattern that does not compile makes [`install`](Builder::install) fail.
    pub fn redact_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.semantics.privacy.redact_patterns.push(pattern.into());
        self
    }

    // --- capture/redaction helper (h/capture): masking callback ---
    /// Masks what no pattern can know: `mask(key, value)` returns `Some(replacement)` for a
    /// value to replace, `None` to keep it. Runs on the export thread, after the built-in
    /// redaction, on every string value (see [`Mask`](crate::redact::Mask)).
    ///
    /// ```
    /// let builder = honeyhive_runtime::Builder::new()
    ///     .mask(|key, value| (key.ends_with(".email") || value.contains('@')).then(|| "[EMAIL]".to_owned()));
    /// # drop(builder);
    /// ```
    pub fn mask(
        mut self,
        mask: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.semantics.privacy.mask = Some(crate::redact::Mask::new(mask));
        self
    }
    // --- end of capture/redaction helper block ---

    /// Exports only these keys (exact, or a prefix ending in `*`), plus the core keys.
    pub fn allow_keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        let keys = keys.into_iter().map(Into::into);
        self.semantics.privacy.allow_keys.extend(keys);
        self
    }

    /// Never exports these keys (exact, or a prefix ending in `*`); core keys are kept.
    pub fn deny_keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        let keys = keys.into_iter().map(Into::into);
        self.semantics.privacy.deny_keys.extend(keys);
        self
    }

    /// Attributes per span (default 256); captured content is evicted first, core keys never.
    pub fn max_span_attributes(mut self, n: usize) -> Self {
        self.semantics.privacy.max_attributes = n;
        self
    }

    /// Bytes of attribute keys and values per span (default 256 KiB).
    pub fn max_span_bytes(mut self, bytes: usize) -> Self {
        self.semantics.privacy.max_bytes = bytes;
        self
    }

    /// Events per span (default 128, as the OpenTelemetry SDK): the first ones and the last
    /// (a panic's exception, the final attempt) are sent, the rest counted in the span's
    /// dropped events.
    pub fn max_span_events(mut self, n: usize) -> Self {
        self.semantics.privacy.max_events = n;
        self
    }

    /// Replaces the built-in price table.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.semantics.prices = Some(prices);
        self
    }

    /// Sets the price of one model, over the table and any price file.
    pub fn model_price(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.semantics.model_prices.push((model.into(), price));
        self
    }

    /// Loads a price file at install, over the built-in prices (`HH_PRICE_FILE`): genai-prices'
    /// `data.json` or LiteLLM's, see [`PriceTable::from_path`]. An unreadable file makes
    /// [`install`](Builder::install) fail.
    pub fn price_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.semantics.price_file = Some(path.into());
        self
    }

    /// How many ended spans may wait for export; past that, spans are dropped and counted
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, default 8192; 0 is warned about and the default used).
    pub fn queue_capacity(mut self, spans: usize) -> Self {
        self.queue_capacity = Some(spans);
        self
    }

    /// Bytes of span records that may wait in the queue (default 64 MiB): whichever of this
    /// and [`queue_capacity`](Builder::queue_capacity) is reached first drops new traces.
    pub fn queue_max_bytes(mut self, bytes: usize) -> Self {
        self.queue_max_bytes = Some(bytes);
        self
    }

    /// Bytes of spans the trace assembler may hold on the export thread while their traces
    /// complete (default 64 MiB); beyond, the oldest incomplete trace is sent as it is.
    pub fn assembler_max_bytes(mut self, bytes: usize) -> Self {
        self.assembler_max_bytes = Some(bytes);
        self
    }

    /// Whether to flush at process exit when the guard was not dropped (`std::process::exit`,
    /// or `main` returning with the guard leaked), waiting at most the shutdown timeout
    /// (default on; also `HH_EXIT_HOOK=false`).
    pub fn exit_hook(mut self, on: bool) -> Self {
        self.exit_hook = Some(on);
        self
    }

    /// Spans per export call (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512). A batch is at
    /// most the queue's capacity, as OpenTelemetry specifies, and 65 536 spans (the export
    /// thread makes room for one when it starts); a larger value is cut to that, and 0
    /// replaced by the default, with a warning.
    pub fn max_export_batch(mut self, spans: usize) -> Self {
        self.max_export_batch = Some(spans);
        self
    }

    /// How long ended spans may wait before a partial batch goes out
    /// (`OTEL_BSP_SCHEDULE_DELAY`, default 500 ms), from 1 ms (below, the export thread would
    /// never rest) to an hour; a value outside is brought to the nearest, with a warning.
    pub fn scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = Some(delay);
        self
    }

    /// Timeout of one export request (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s), at most an
    /// hour. Zero, with which every export would fail, is warned about and the default used.
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// How long dropping the guard waits for queued spans to go out (default 5 s, at most an
    /// hour).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// When to stop calling an exporter that keeps failing, and when to try it again
    /// (default: after 3 failed exports, for 5 s growing to 60 s). See [`CircuitBreaker`].
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.circuit_breaker = Some(breaker);
        self
    }

    /// The kill switch (`OTEL_SDK_DISABLED=true`): every span becomes a no-op.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }

    /// The settings this builder would install, without starting anything.
    #[allow(clippy::too_many_lines)] // one variable after another, in the order they are read
    pub fn resolve(&self) -> Settings {
        let env = |key: &str| read_env(&*self.env, key);
        let mut warnings = Vec::new();
        let disabled = self.disabled.unwrap_or_else(|| {
            env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        });
        let project = self.project.clone().or_else(|| env("HH_PROJECT"));
        let source = self
            .source
            .clone()
            .or_else(|| env("HH_SOURCE"))
            .unwrap_or_else(|| "dev".to_owned());
        let api_key = self.api_key.clone().or_else(|| env("HH_API_KEY"));
        let server_url = self
            .server_url
            .clone()
            .or_else(|| env("HH_API_URL"))
            .unwrap_or_else(|| DEFAULT_SERVER_URL.to_owned());
        let service_name = self
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .or_else(|| project.clone())
            .unwrap_or_else(|| "honeyhive-rs".to_owned());

        // A number from the environment, and how a warning names it (`KEY=value`).
        let mut number = |key: &'static str| -> Option<(u64, String)> {
            let raw = env(key)?;
            let n = match raw.parse::<u64>() {
                Ok(n) => n,
                // Digits, more than fit: as large as it gets, for the bound to say so.
                Err(_) if raw.bytes().all(|b| b.is_ascii_digit()) => u64::MAX,
                Err(_) => {
                    warnings.push(format!("{key}={raw:?} is not a number; ignored"));
                    return None;
                }
            };
            Some((n, format!("{key}={raw}")))
        };
        let count = |(n, named): (u64, String)| (usize::try_from(n).unwrap_or(usize::MAX), named);
        let millis = |(n, named): (u64, String)| (Duration::from_millis(n), named);
        let capture_max_bytes = told("capture_max_bytes", self.capture_max_bytes)
            .or_else(|| number("HH_CAPTURE_MAX_BYTES").map(count))
            .map_or(DEFAULT_CAPTURE_CAP, |(n, _)| n);
        let queue_capacity = told("queue_capacity", self.queue_capacity)
            .or_else(|| number("OTEL_BSP_MAX_QUEUE_SIZE").map(count));
        let concurrent_exports = number("OTEL_BSP_MAX_CONCURRENT_EXPORTS");
        let max_export_batch = told("max_export_batch", self.max_export_batch)
            .or_else(|| number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").map(count));
        let scheduled_delay = told("scheduled_delay", self.scheduled_delay)
            .or_else(|| number("OTEL_BSP_SCHEDULE_DELAY").map(millis));
        let export_timeout = told("export_timeout", self.export_timeout).or_else(|| {
            number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
                .or_else(|| number("OTEL_EXPORTER_OTLP_TIMEOUT"))
                .or_else(|| number("OTEL_BSP_EXPORT_TIMEOUT"))
                .map(millis)
        });
        let shutdown_timeout = told("shutdown_timeout", self.shutdown_timeout);

        let queue_capacity = Bounds {
            min: 1,
            max: usize::MAX,
            below_min: (DEFAULT_QUEUE_CAPACITY, "a queue holds at least one span"),
            above_max: "",
        }
        .apply(queue_capacity, DEFAULT_QUEUE_CAPACITY, &mut warnings);
        let max_export_batch = Bounds {
            min: 1,
            max: queue_capacity.min(MAX_EXPORT_BATCH),
            below_min: (
                DEFAULT_EXPORT_BATCH.min(queue_capacity),
                "a batch holds at least one span",
            ),
            above_max: if queue_capacity < MAX_EXPORT_BATCH {
                "the queue's size: OpenTelemetry's limit for a batch"
            } else {
                "the largest batch the export thread makes room for"
            },
        }
        .apply(max_export_batch, DEFAULT_EXPORT_BATCH, &mut warnings);
        let scheduled_delay = Bounds {
            min: Duration::from_millis(1),
            max: MAX_WAIT,
            below_min: (
                Duration::from_millis(1),
                "the export thread would never rest",
            ),
            above_max: "the longest wait honoured",
        }
        .apply(scheduled_delay, DEFAULT_SCHEDULED_DELAY, &mut warnings);
        let export_timeout = Bounds {
            min: Duration::from_millis(1),
            max: MAX_WAIT,
            below_min: (DEFAULT_EXPORT_TIMEOUT, "every export would time out"),
            above_max: "the longest wait honoured",
        }
        .apply(export_timeout, DEFAULT_EXPORT_TIMEOUT, &mut warnings);
        let shutdown_timeout = Bounds {
            min: Duration::ZERO,
            max: MAX_WAIT,
            below_min: (Duration::ZERO, ""),
            above_max: "the longest wait honoured",
        }
        .apply(shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT, &mut warnings);
        let queue_max_bytes = self.queue_max_bytes.unwrap_or(64 * 1024 * 1024);
        let assembler_max_bytes = self.assembler_max_bytes.unwrap_or(64 * 1024 * 1024);
        let exit_hook = self.exit_hook.unwrap_or_else(|| {
            env("HH_EXIT_HOOK").is_none_or(|v| !v.eq_ignore_ascii_case("false"))
        });
        if let Some((n, _)) = concurrent_exports
            && n > 1
        {
            warnings.push(format!(
                "OTEL_BSP_MAX_CONCURRENT_EXPORTS={n}: one export thread sends one batch at a \
                 time; ignored"
            ));
        }

        let sampler = self.sampler.unwrap_or_else(|| {
            let Some(name) = env("OTEL_TRACES_SAMPLER") else {
                return Sampler::ParentBased(sampling::RootSampler::AlwaysOn);
            };
            let arg = env("OTEL_TRACES_SAMPLER_ARG");
            let sampler = Sampler::from_otel_env_reporting(&name, arg.as_deref(), &mut warnings);
            sampler.unwrap_or_else(|| {
                warnings.push(format!(
                    "OTEL_TRACES_SAMPLER={name:?} is not supported; using parentbased_always_on"
                ));
                Sampler::ParentBased(sampling::RootSampler::AlwaysOn)
            })
        });

        let mut exporters =
            self.resolve_exporters(&env, api_key.as_deref(), &server_url, &mut warnings);
        if self.entries.is_empty() {
            env_file(&env, &mut exporters, &mut warnings);
        }
        let conventions = self
            .semantics
            .conventions
            .or_else(|| {
                let raw = env("HH_CONVENTIONS")?;
                let parsed = Conventions::from_name(&raw);
                if parsed.is_none() {
                    warnings.push(format!(
                        "HH_CONVENTIONS={raw:?} is not genai, openinference or both; ignored"
                    ));
                }
                parsed
            })
            .unwrap_or_else(|| {
                Conventions::for_destinations(exporters.iter().map(|e| match e {
                    ExporterKind::OtlpHttp { endpoint, .. }
                        if self.semantics.phoenix_endpoints.contains(endpoint) =>
                    {
                        Destination::Phoenix
                    }
                    ExporterKind::OtlpHttp { endpoint, .. }
                        if *endpoint == honeyhive_traces_url(&server_url) =>
                    {
                        Destination::HoneyHive
                    }
                    ExporterKind::OtlpHttp { .. } | ExporterKind::OtlpGrpc { .. } => {
                        Destination::Otlp
                    }
                    ExporterKind::Console | ExporterKind::Custom | ExporterKind::File(_) => {
                        Destination::Other
                    }
                }))
            });

        Settings {
            enabled: !disabled,
            service_name,
            project,
            source,
            session_name: self.session_name.clone(),
            api_key,
            server_url,
            exporters,
            sampler,
            capture_max_bytes,
            queue_capacity,
            queue_max_bytes,
            assembler_max_bytes,
            exit_hook,
            max_export_batch,
            scheduled_delay,
            export_timeout,
            shutdown_timeout,
            circuit_breaker: self.circuit_breaker.unwrap_or_default(),
            conventions,
            privacy: self.semantics.privacy.clone(),
            price_file: self
                .semantics
                .price_file
                .clone()
                .or_else(|| env("HH_PRICE_FILE").map(PathBuf::from)),
            warnings,
        }
    }

    fn resolve_exporters(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        api_key: Option<&str>,
        server_url: &str,
        warnings: &mut Vec<String>,
    ) -> Vec<ExporterKind> {
        let honeyhive = |warnings: &mut Vec<String>| {
            if api_key.is_none() {
                warnings.push("HoneyHive export needs an API key (HH_API_KEY)".to_owned());
            }
            ExporterKind::OtlpHttp {
                endpoint: format!(
                    "{}/opentelemetry/v1/traces",
                    server_url.trim_end_matches('/')
                ),
                headers: api_key
                    .map(|k| ("authorization".to_owned(), format!("Bearer {k}")))
                    .into_iter()
                    .collect(),
            }
        };
        if !self.entries.is_empty() {
            return self
                .entries
                .iter()
                .map(|entry| match entry {
                    Entry::Kind(kind) => kind.clone(),
                    Entry::HoneyHive => honeyhive(warnings),
                    Entry::Custom(_) => ExporterKind::Custom,
                })
                .collect();
        }
        let headers = parse_headers(
            env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
                .as_deref(),
            warnings,
        );
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .map_or_else(|| "http/protobuf".to_owned(), |p| p.to_ascii_lowercase());
        let endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
            env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| {
                if protocol == "grpc" {
                    base
                } else {
                    format!("{}/v1/traces", base.trim_end_matches('/'))
                }
            })
        });
        if let Some(endpoint) = endpoint {
            return vec![match protocol.as_str() {
                "grpc" => ExporterKind::OtlpGrpc { endpoint, headers },
                "http/protobuf" => ExporterKind::OtlpHttp { endpoint, headers },
                other => {
                    warnings.push(format!(
                        "OTLP protocol {other:?} is not supported; using http/protobuf"
                    ));
                    ExporterKind::OtlpHttp { endpoint, headers }
                }
            }];
        }
        if api_key.is_some() {
            return vec![honeyhive(warnings)];
        }
        vec![ExporterKind::Console]
    }

    /// Starts the export thread and installs the global pipeline.
    ///
    /// Does no network I/O: exporters connect lazily on the export thread.
    ///
    /// # Errors
    /// When an exporter cannot be built (a malformed endpoint, or gRPC without the `grpc`
    /// feature) or the export thread cannot start.
    pub fn install(self) -> Result<Guard, InitError> {
        let settings = self.resolve();
        for warning in &settings.warnings {
            eprintln!("honeyhive: {warning}");
        }
        if !settings.enabled {
            return Ok(Guard::disabled());
        }
        let semantics = self
            .semantics
            .build(
                settings.conventions,
                &settings.privacy,
                settings.price_file.as_deref(),
            )
            .map_err(InitError)?;
        let resource = resource(&settings);
        let mut custom = self.entries.into_iter().filter_map(|entry| match entry {
            Entry::Custom(factory) => Some(factory),
            Entry::Kind(_) | Entry::HoneyHive => None,
        });
        let mut console_target = self.console_target;
        let mut factories: Vec<ExporterFactory> = Vec::new();
        for resolved in &settings.exporters {
            factories.push(match resolved {
                ExporterKind::Custom => match custom.next() {
                    Some(factory) => factory,
                    None => continue,
                },
                ExporterKind::Console => {
                    let target = console_target.take().unwrap_or(ConsoleTarget::Stdout);
                    Box::new(move || Ok(Exporter::Spans(Box::new(ConsoleExporter::new(target)))))
                }
                ExporterKind::File(file) => {
                    let file = file.clone();
                    Box::new(move || {
                        let path = file.path().display().to_string();
                        FileExporter::open(file)
                            .map(|e| Exporter::Spans(Box::new(e)))
                            .map_err(|e| format!("trace file {path}: {e}"))
                    })
                }
                other => otlp_factory(other.clone(), settings.export_timeout),
            });
        }
        sampling::install(settings.sampler, self.sampling);
        crate::span::install_panic_hook();
        let has_console = settings.exporters.contains(&ExporterKind::Console);
        let limits = Limits {
            max_bytes: settings.assembler_max_bytes,
            // A root whose work was carried elsewhere waits up to one export period for it.
            linger: settings.scheduled_delay,
            // On the console, the part of a trace under a remote parent waits a second for
            // the rest of the trace, so a one-process distributed demo prints one tree.
            merge_remote: if has_console {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            },
            ..Limits::default()
        };
        // GenAI metrics over OTLP (see `crate::metrics`).
        let mut observers = self.observers;
        if let Some(metrics) = &self.metrics {
            observers.extend(metrics_observer(metrics, &self.env, &settings, &resource)?);
        }
        let pipeline = Pipeline::start(PipelineConfig {
            exporters: factories,
            resource,
            queue_capacity: settings.queue_capacity,
            queue_max_bytes: settings.queue_max_bytes,
            max_export_batch: settings.max_export_batch,
            scheduled_delay: settings.scheduled_delay,
            capture_cap: settings.capture_max_bytes,
            tail: self.tail_sampling,
            limits,
            circuit_breaker: settings.circuit_breaker,
            semantics,
            exit_hook: settings.exit_hook,
            shutdown_timeout: settings.shutdown_timeout,
            observers,
        })
        .map_err(InitError)?;
        crate::feedback::install(feedback_backends(&settings, self.phoenix_annotations));
        Ok(Guard {
            pipeline: Some(pipeline),
            shutdown_timeout: settings.shutdown_timeout,
        })
    }
}

/// Where HoneyHive cloud takes spans.
fn honeyhive_traces_url(server_url: &str) -> String {
    format!(
        "{}/opentelemetry/v1/traces",
        server_url.trim_end_matches('/')
    )
}

/// Where feedback goes: Phoenix when asked, HoneyHive when spans go there with a key.
fn feedback_backends(settings: &Settings, phoenix: Option<String>) -> crate::feedback::Backends {
    let honeyhive_traces = honeyhive_traces_url(&settings.server_url);
    let to_honeyhive = settings.exporters.iter().any(
        |e| matches!(e, ExporterKind::OtlpHttp { endpoint, .. } if *endpoint == honeyhive_traces),
    );
    crate::feedback::Backends {
        phoenix,
        honeyhive: settings
            .api_key
            .clone()
            .filter(|_| to_honeyhive)
            .map(|api_key| crate::feedback::HoneyHiveTarget {
                server_url: settings.server_url.clone(),
                api_key,
            }),
        timeout: settings.export_timeout,
    }
}

/// One exporter asked of the builder.
enum Entry {
    Kind(ExporterKind),
    /// HoneyHive cloud, whose URL and key are known only after resolving the environment.
    HoneyHive,
    Custom(ExporterFactory),
}

fn resource(settings: &Settings) -> Resource {
    let mut attrs = vec![
        KeyValue::new("service.name", settings.service_name.clone()),
        KeyValue::new("telemetry.sdk.name", "honeyhive-rs"),
        KeyValue::new("telemetry.sdk.language", "rust"),
        KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("honeyhive.source", settings.source.clone()),
    ];
    if let Some(project) = &settings.project {
        attrs.push(KeyValue::new("honeyhive.project", project.clone()));
        // Phoenix files spans under this project.
        attrs.push(KeyValue::new("openinference.project.name", project.clone()));
    }
    if let Some(session) = &settings.session_name {
        attrs.push(KeyValue::new("honeyhive.session_name", session.clone()));
    }
    Resource::builder_empty().with_attributes(attrs).build()
}

// --- metrics helper: GenAI metrics over OTLP ---
/// The metrics observer: to the endpoint the [`Metrics`](crate::metrics::Metrics) name, else
/// the environment's, else the first OTLP/HTTP trace exporter's. `None` (said on stderr) when
/// there is none.
fn metrics_observer(
    metrics: &crate::metrics::Metrics,
    env: &EnvSource,
    settings: &Settings,
    resource: &Resource,
) -> Result<Option<crate::export::observe::ObserverFactory>, InitError> {
    let env = |key: &str| read_env(&**env, key);
    let mut warnings = Vec::new();
    let env_headers = parse_headers(
        env("OTEL_EXPORTER_OTLP_METRICS_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
            .as_deref(),
        &mut warnings,
    );
    let traces = settings.exporters.iter().find_map(|e| match e {
        ExporterKind::OtlpHttp { endpoint, headers } => Some((endpoint.as_str(), headers)),
        _ => None,
    });
    let target = metrics.resolve(&env, env_headers, traces, &mut warnings);
    for warning in &warnings {
        eprintln!("honeyhive: {warning}");
    }
    let Some(target) = target else {
        return Ok(None);
    };
    target
        .observer(
            &crate::export::resource_attributes(resource),
            settings.export_timeout,
            settings.shutdown_timeout,
        )
        .map(Some)
        .map_err(InitError)
}
// --- end of metrics helper block ---

/// Spans the queue holds by default (`OTEL_BSP_MAX_QUEUE_SIZE`).
const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Spans per export call by default (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
const DEFAULT_EXPORT_BATCH: usize = 512;
/// The largest batch: the export thread makes room for a whole batch when it starts.
const MAX_EXPORT_BATCH: usize = 64 * 1024;
const DEFAULT_SCHEDULED_DELAY: Duration = Duration::from_millis(500);
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest delay or timeout a setting may ask for; deadlines are computed from them.
const MAX_WAIT: Duration = Duration::from_hours(1);

/// A variable's value without the whitespace around it (the newline of `$(cat file)`, the
/// spaces of a YAML block); `None` when it is unset or blank. Every variable is read so.
fn read_env(env: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    let value = env(key)?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A value the builder was given, and how a warning names it (`Builder::queue_capacity(0)`).
fn told<T: fmt::Debug>(method: &str, value: Option<T>) -> Option<(T, String)> {
    value.map(|v| {
        let named = format!("Builder::{method}({v:?})");
        (v, named)
    })
}

/// The values a numeric setting may take. One outside is replaced, with a warning that
/// names it and says why: one below `min` by `below_min.0`, one above `max` by `max`.
struct Bounds<T> {
    min: T,
    max: T,
    below_min: (T, &'static str),
    above_max: &'static str,
}

impl<T: Copy + Ord + fmt::Debug> Bounds<T> {
    /// The value of `setting` (a value and its name), else `default` (cut to `max`).
    fn apply(self, setting: Option<(T, String)>, default: T, warnings: &mut Vec<String>) -> T {
        let Some((value, named)) = setting else {
            return default.min(self.max);
        };
        let (used, limit, why) = if value < self.min {
            let (used, why) = self.below_min;
            (used, format!("below {:?}", self.min), why)
        } else if value > self.max {
            (self.max, format!("above {:?}", self.max), self.above_max)
        } else {
            return value;
        };
        warnings.push(format!("{named} is {limit} ({why}); using {used:?}"));
        used
    }
}

/// `HH_TRACES_FILE`: a trace file instead of the console default, or next to an exporter the
/// environment set.
fn env_file(
    env: &dyn Fn(&str) -> Option<String>,
    exporters: &mut Vec<ExporterKind>,
    warnings: &mut Vec<String>,
) {
    let Some(path) = env("HH_TRACES_FILE") else {
        return;
    };
    let mut file = FileExport::new(path.trim());
    if let Some(raw) = env("HH_TRACES_FILE_MAX_BYTES") {
        match raw.trim().parse::<u64>() {
            Ok(max) => file = file.rotate(max, 5),
            Err(_) => warnings.push(format!(
                "HH_TRACES_FILE_MAX_BYTES={raw:?} is not a number; the file is not rotated"
            )),
        }
    }
    exporters.retain(|e| *e != ExporterKind::Console);
    exporters.push(ExporterKind::File(file));
}

/// Parses `key=value,key2=value2` (values percent-decoded), as the OTLP spec defines. A pair
/// that is not `key=value`, a name that is not an HTTP token, or a value with a control
/// character (a decoded line break would add a header of its own) is left out with a warning;
/// the others are kept.
fn parse_headers(raw: Option<&str>, warnings: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (n, pair) in raw
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let name = k.trim().to_ascii_lowercase();
                let value =
                    String::from_utf8_lossy(&transport::percent_decode(v.trim())).into_owned();
                match transport::check_header(&name, &value) {
                    Ok(()) => {
                        out.insert(name, value);
                    }
                    // The value is not shown: it may be a secret. Nor a name that may hold
                    // one (`authorization: Basic ..=` read as a name).
                    Err(why) => match shown(&name) {
                        Some(name) => {
                            warnings.push(format!("OTLP header {name:?}: {why}; ignored"));
                        }
                        None => warnings.push(format!("OTLP header {}: {why}; ignored", n + 1)),
                    },
                }
            }
            _ => match shown(pair.trim()) {
                Some(pair) => {
                    warnings.push(format!("OTLP header {pair:?} is not name=value; ignored"));
                }
                // A bare `Bearer <token>` is a secret.
                None => warnings.push(format!(
                    "OTLP header {} ({} characters) is not name=value; ignored",
                    n + 1,
                    pair.chars().count()
                )),
            },
        }
    }
    out
}

/// `text` from a malformed header, if a warning may repeat it: short, and nothing in it the
/// secret scanner finds.
fn shown(text: &str) -> Option<&str> {
    (text.len() <= 64 && crate::secrets::scanner().find_all(text).is_empty()).then_some(text)
}

fn otlp_factory(kind: ExporterKind, timeout: Duration) -> ExporterFactory {
    Box::new(move || build_otlp(kind, timeout))
}

fn build_otlp(kind: ExporterKind, timeout: Duration) -> Result<Exporter, String> {
    match kind {
        ExporterKind::OtlpHttp { endpoint, headers } => {
            Exporter::otlp_http(&endpoint, &headers, timeout)
                .map_err(|e| format!("OTLP/HTTP exporter: {e}"))
        }
        ExporterKind::OtlpGrpc { endpoint, headers } => {
            build_grpc(endpoint, headers, timeout).map(Exporter::Spans)
        }
        ExporterKind::Console | ExporterKind::Custom | ExporterKind::File(_) => {
            Err("not an OTLP exporter".to_owned())
        }
    }
}

#[cfg(feature = "grpc")]
fn build_grpc(
    endpoint: String,
    headers: BTreeMap<String, String>,
    timeout: Duration,
) -> Result<Box<dyn DynSpanExporter>, String> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            map.insert(k, v);
        }
    }
    let metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map);
    crate::export::in_runtime(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .with_metadata(metadata)
            .build()
            .map(|e| Box::new(e) as Box<dyn DynSpanExporter>)
            .map_err(|e| format!("OTLP/gRPC exporter: {e}"))
    })
}

#[cfg(not(feature = "grpc"))]
#[allow(clippy::needless_pass_by_value)] // same signature as with the feature
fn build_grpc(
    endpoint: String,
    _headers: BTreeMap<String, String>,
    _timeout: Duration,
) -> Result<Box<dyn DynSpanExporter>, String> {
    Err(format!(
        "OTLP/gRPC to {} needs the `grpc` feature of honeyhive-runtime",
        transport::without_password(&endpoint)
    ))
}

/// Keeps tracing running; on drop, exports what is queued and stops, within the shutdown
/// timeout. Hold it in `main`.
#[must_use = "tracing stops when the guard is dropped"]
#[derive(Default)]
pub struct Guard {
    pipeline: Option<Pipeline>,
    shutdown_timeout: Duration,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("active", &self.pipeline.is_some())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard for tracing that is off (the kill switch, or a failed `init`).
    pub fn disabled() -> Guard {
        Guard::default()
    }

    /// Whether this guard runs a pipeline.
    pub fn is_active(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Exports every span ended so far on any thread that has left traced code, waiting at
    /// most the shutdown timeout. Returns whether the exporters finished in time.
    pub fn force_flush(&self) -> bool {
        self.pipeline
            .as_ref()
            .is_none_or(|p| p.force_flush(self.shutdown_timeout))
    }

    /// Spans dropped so far (queue full, or export failed).
    pub fn dropped_spans(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, Pipeline::dropped)
    }

    /// What the export pipeline has done so far (all zero for a disabled guard).
    pub fn export_stats(&self) -> ExportStats {
        self.pipeline
            .as_ref()
            .map_or_else(ExportStats::default, Pipeline::stats)
    }

    /// Stops tracing now and reports what was exported and what was lost.
    ///
    /// Blocks the calling thread for up to the shutdown timeout; in async code use
    /// [`shutdown_async`](Guard::shutdown_async).
    pub fn shutdown(mut self) -> ShutdownReport {
        self.shutdown_inner()
    }

    /// Stops tracing without blocking the task's thread: the wait for the export thread
    /// happens on a helper thread, and the returned future completes with the report when it
    /// is done (within the shutdown timeout). Works on any executor.
    pub fn shutdown_async(mut self) -> ShutdownFuture {
        let shared = Arc::new(std::sync::Mutex::new(AsyncShutdown::default()));
        let Some(mut pipeline) = self.pipeline.take() else {
            let done = AsyncShutdown {
                report: Some(ShutdownReport::NOTHING),
                waker: None,
            };
            return ShutdownFuture(Arc::new(std::sync::Mutex::new(done)));
        };
        let timeout = self.shutdown_timeout;
        // Spans this thread ended are handed over here, before the work moves elsewhere.
        crate::sink::flush_thread();
        let theirs = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("honeyhive-shutdown".into())
            .spawn(move || {
                let timeout = crate::feedback::shutdown(timeout);
                let report = pipeline.shutdown(timeout);
                let mut state = theirs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state.report = Some(report);
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
            });
        if spawned.is_err() {
            // No thread to wait on: report what is known without waiting.
            let mut state = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.report = Some(ShutdownReport::NOTHING);
        }
        ShutdownFuture(shared)
    }

    fn shutdown_inner(&mut self) -> ShutdownReport {
        match self.pipeline.take() {
            Some(mut p) => p.shutdown(crate::feedback::shutdown(self.shutdown_timeout)),
            None => ShutdownReport::NOTHING,
        }
    }
}

#[derive(Default)]
struct AsyncShutdown {
    report: Option<ShutdownReport>,
    waker: Option<std::task::Waker>,
}

/// The future [`Guard::shutdown_async`] returns.
#[must_use = "futures do nothing unless polled"]
pub struct ShutdownFuture(Arc<std::sync::Mutex<AsyncShutdown>>);

impl fmt::Debug for ShutdownFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownFuture").finish_non_exhaustive()
    }
}

impl std::future::Future for ShutdownFuture {
    type Output = ShutdownReport;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ShutdownReport> {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(report) = state.report {
            return std::task::Poll::Ready(report);
        }
        state.waker = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(vars: &[(&str, &str)]) -> Builder {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Builder::new().env(move |k| vars.get(k).cloned())
    }

    fn warned(settings: &Settings, part: &str) -> bool {
        settings.warnings.iter().any(|w| w.contains(part))
    }

    #[test]
    fn sizes_and_waits_out_of_range_are_replaced_with_a_warning() {
        let s = with_env(&[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "18446744073709551615"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ])
        .resolve();
        assert_eq!(
            s.max_export_batch, DEFAULT_QUEUE_CAPACITY,
            "{:?}",
            s.warnings
        );
        assert_eq!(s.scheduled_delay, Duration::from_millis(1));
        assert_eq!(s.export_timeout, DEFAULT_EXPORT_TIMEOUT);
        for key in [
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=18446744073709551615 is above 8192",
            "OTEL_BSP_SCHEDULE_DELAY=0 is below 1ms",
            "OTEL_EXPORTER_OTLP_TIMEOUT=0 is below 1ms",
        ] {
            assert!(warned(&s, key), "{key}: {:?}", s.warnings);
        }

        // More digits than a u64 holds is a number too large, not "not a number".
        let s = with_env(&[("OTEL_BSP_SCHEDULE_DELAY", "99999999999999999999999")]).resolve();
        assert_eq!(s.scheduled_delay, MAX_WAIT);
        assert!(warned(&s, "is above 3600s"), "{:?}", s.warnings);

        // The builder's values are held to the same bounds, and named so.
        let s = with_env(&[])
            .queue_capacity(usize::MAX)
            .max_export_batch(usize::MAX)
            .scheduled_delay(Duration::ZERO)
            .export_timeout(Duration::MAX)
            .shutdown_timeout(Duration::MAX)
            .resolve();
        assert_eq!(s.max_export_batch, MAX_EXPORT_BATCH);
        assert_eq!(s.scheduled_delay, Duration::from_millis(1));
        assert_eq!(s.export_timeout, MAX_WAIT);
        assert_eq!(s.shutdown_timeout, MAX_WAIT);
        for method in [
            "Builder::max_export_batch(",
            "Builder::scheduled_delay(0ns)",
            "Builder::export_timeout(",
            "Builder::shutdown_timeout(",
        ] {
            assert!(warned(&s, method), "{method}: {:?}", s.warnings);
        }
    }

    #[test]
    fn a_batch_is_at_most_the_queue_and_at_least_one_span() {
        let s = with_env(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000"),
        ])
        .resolve();
        assert_eq!((s.queue_capacity, s.max_export_batch), (100, 100));
        assert!(warned(&s, "the queue's size"), "{:?}", s.warnings);
        // The default batch follows a small queue without a word.
        let s = with_env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]).resolve();
        assert_eq!((s.max_export_batch, s.warnings.len()), (100, 0));
        // Zero is no size: the default, with a warning.
        let s = with_env(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ])
        .resolve();
        assert_eq!(
            (s.queue_capacity, s.max_export_batch),
            (DEFAULT_QUEUE_CAPACITY, DEFAULT_EXPORT_BATCH)
        );
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        // Values in range pass unchanged and quietly.
        let s = with_env(&[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192"),
            ("OTEL_BSP_SCHEDULE_DELAY", "1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1"),
        ])
        .resolve();
        assert_eq!(s.max_export_batch, 8192);
        assert_eq!(s.export_timeout, Duration::from_millis(1));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn a_bad_header_is_left_out_with_a_warning_and_the_others_kept() {
        let mut warnings = Vec::new();
        let headers = parse_headers(
            Some("x api key=1,good=2,x-token=abc%0D%0AInjected: 1,k\u{e9}y=1,nul=a%00b,tab=a%09b"),
            &mut warnings,
        );
        assert_eq!(
            headers,
            BTreeMap::from([
                ("good".to_owned(), "2".to_owned()),
                ("tab".to_owned(), "a\tb".to_owned()),
            ])
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        for name in ["\"x api key\"", "\"x-token\"", "\"k\u{e9}y\"", "\"nul\""] {
            assert!(
                warnings.iter().any(|w| w.contains(name)),
                "{name}: {warnings:?}"
            );
        }
        // The value, maybe a secret, is not repeated.
        assert!(!warnings.iter().any(|w| w.contains("abc")), "{warnings:?}");
        // Nor a pair without `=`: a bare token, or `name: value` written the HTTP way.
        let mut warnings = Vec::new();
        let headers = parse_headers(
            Some(
                "good=2,Bearer sk-proj-abcdef123456,authorization: Basic dXNlcjpwYXNz,\
                 authorization: Basic dXNlcjE6cGFzcw==",
            ),
            &mut warnings,
        );
        assert_eq!(headers.len(), 1);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].starts_with("OTLP header 2 "), "{warnings:?}");
        assert!(
            !warnings
                .iter()
                .any(|w| w.contains("sk-proj") || w.contains("dXNl")),
            "{warnings:?}"
        );
    }

    #[test]
    fn string_variables_are_read_without_surrounding_whitespace() {
        let s = with_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", " http://collector:4318\n"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", " HTTP/Protobuf "),
            ("OTEL_SERVICE_NAME", "svc\n"),
            ("HH_PROJECT", "\tproj "),
            ("HH_API_KEY", "hh-key\n"),
        ])
        .resolve();
        assert_eq!(
            s.exporters,
            [ExporterKind::OtlpHttp {
                endpoint: "http://collector:4318/v1/traces".to_owned(),
                headers: BTreeMap::new(),
            }]
        );
        assert_eq!(s.service_name, "svc");
        assert_eq!(s.project.as_deref(), Some("proj"));
        assert_eq!(s.api_key.as_deref(), Some("hh-key"));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
}
