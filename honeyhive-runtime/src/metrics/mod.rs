//! GenAI metrics from the traces, as OpenTelemetry metrics over OTLP/HTTP, next to the spans.
//!
//! ```no_run
//! use std::time::Duration;
//! use honeyhive_runtime::metrics::Metrics;
//!
//! let _guard = honeyhive_runtime::Builder::new()
//!     .with_otlp_http("http://127.0.0.1:4318/v1/traces")
//!     // To http://127.0.0.1:4318/v1/metrics, every 30 s and at flush and shutdown.
//!     .metrics(Metrics::new().interval(Duration::from_secs(30)))
//!     .install()
//!     .expect("tracing starts");
//! ```
//!
//! Off unless [`Builder::metrics`](crate::Builder::metrics) is called. The export thread
//! computes them from every whole trace it renders (an observer: nothing runs on the traced
//! code's thread), from the spans of model calls: `model` and `embedding` spans, and any span
//! an [`LlmCall`](crate::LlmCall) or a client integration gave a model or token counts.
//!
//! | metric | instrument | unit | attributes besides the call's |
//! |---|---|---|---|
//! | `gen_ai.client.token.usage` | histogram | `{token}` | `gen_ai.token.type` (`input`, `output`) |
//! | `gen_ai.client.operation.duration` | histogram | `s` | `error.type` when the call failed |
//! | `gen_ai.client.operation.time_to_first_chunk` | histogram | `s` | (streaming calls only) |
//! | `honeyhive.gen_ai.client.cost` | monotonic sum | `USD` | |
//! | `honeyhive.gen_ai.client.errors` | monotonic sum | `{error}` | `error.type` |
//!
//! The call's attributes are `gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model`, `gen_ai.response.model` and `server.address`, where the span has
//! them (read from the OpenInference keys when only those were written). The first three
//! metrics' names, units and histogram boundaries are the OpenTelemetry GenAI metric
//! conventions'; they define no cost or error-count metric, hence ours, under our own prefix. Time to first chunk is what the
//! LLM client integrations record as
//! [`TIME_TO_FIRST_TOKEN_MS`](crate::integrations::TIME_TO_FIRST_TOKEN_MS), or the first item of
//! a traced stream on a model span. Cost is the span's `llm.cost.total` (the price table's, or
//! the provider's). `error.type` is the span's own, else its exception's type, else `_OTHER`.
//!
//! Every instrument measures an amount, so each value is checked where the instrument takes
//! it: one that is negative, NaN or infinite (a cost or token count set by hand), or that
//! would make a cumulative sum infinite, is left out of that instrument and counted in
//! [`MetricsStats::rejected`], never clamped. So the sums stay monotonic and every histogram
//! sum finite for the life of the process; the call's other values still count.
//!
//! # Sampling
//!
//! Every observation is weighted by the inverse of the probability its span was recorded
//! with (head sampling by rate or by threshold, times tail sampling's keep probability), so
//! sums and counts are unbiased estimates of what every call did, sampled or not: at 1%, each
//! kept call counts for 100. Counters and histogram sums are exact weighted sums (`f64`).
//! Histogram bucket counts are integers on the wire, so each bucket keeps its cumulative
//! weight as an `f64`, and every export sends it rounded to the nearest integer. Because the
//! temporality is cumulative, the rounding never accumulates: each bucket is within 0.5 of the
//! unbiased estimate however long the process runs, and counts never go down from one export
//! to the next. (Stochastic rounding per observation would also be unbiased, but adds noise
//! that grows with the number of calls.) A histogram's `count` is the sum of its rounded
//! buckets, as OTLP requires; its `sum` is not rounded.
//!
//! What sampling cannot account for is what the pipeline loses: traces dropped before the
//! export thread renders them (a full queue, or every span exporter's circuit breaker open) are
//! not observed, so they are missing from the metrics too; they are counted in
//! [`export_stats`](crate::export_stats).
//!
//! # Export
//!
//! Cumulative temporality, one `ExportMetricsServiceRequest` with the traces' resource,
//! every [`Metrics::interval`] (default 60 s, or `OTEL_METRIC_EXPORT_INTERVAL` in ms), and at
//! every flush and at shutdown when something changed. Requests are sent by a thread of
//! their own on the OTLP/HTTP transport the spans use (keep-alive, retries within the export
//! timeout), which holds only the newest request: a slow or dead backend never delays span
//! export, and an older request not yet sent is replaced by the newer one that contains it.
//! Outcomes are counted in [`stats`]. Each instrument keeps at most 1000 attribute sets; more
//! go to one series marked `otel.metric.overflow = true`.

mod aggregate;
mod encode;
mod sender;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;

use crate::clock;
use crate::export::http::HttpTransport;
use crate::export::observe::{Observer, ObserverFactory, SpanView};
use crate::export::otlp::Envelope;

use aggregate::Instruments;
use sender::Sender;

pub use encode::names;

/// The default export interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_mins(1);
/// The shortest interval; a shorter one is raised to it.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Where and how often the GenAI metrics go; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Metrics {
    endpoint: Option<String>,
    interval: Option<Duration>,
    headers: BTreeMap<String, String>,
}

impl Metrics {
    /// Metrics to the default endpoint, every 60 s.
    ///
    /// The endpoint, unless [`endpoint`](Metrics::endpoint) names one, is
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (used as it is, as the OTLP exporter
    /// specification says), else the first OTLP/HTTP trace exporter's with `/v1/traces`
    /// replaced by `/v1/metrics` (and its headers, e.g. HoneyHive's API key). Without any of
    /// these, metrics stay off and install says so on stderr.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The collector's base URL (`http://127.0.0.1:4318`, to which `/v1/metrics` is added),
    /// or a full URL ending in `/v1/metrics`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// How often the cumulative metrics are sent (default 60 s; at least 10 ms). The export
    /// thread looks at its clock once per
    /// [`scheduled_delay`](crate::Builder::scheduled_delay), so that is the interval's grain.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// A header sent with every metrics request, over the ones the endpoint came with.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    /// Resolves the endpoint, headers and interval. `traces` is the first OTLP/HTTP trace
    /// exporter (URL, headers); `env_headers` the `OTEL_EXPORTER_OTLP_(METRICS_)HEADERS`.
    pub(crate) fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        env_headers: BTreeMap<String, String>,
        traces: Option<(&str, &BTreeMap<String, String>)>,
        warnings: &mut Vec<String>,
    ) -> Option<Target> {
        let (endpoint, mut headers) = if let Some(url) = &self.endpoint {
            let url = url.trim().trim_end_matches('/');
            let url = if url.ends_with("/v1/metrics") {
                url.to_owned()
            } else {
                format!("{url}/v1/metrics")
            };
            (url, env_headers)
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
            (url.trim().to_owned(), env_headers)
        } else if let Some((url, headers)) = traces
            && let Some(base) = url.trim_end_matches('/').strip_suffix("/v1/traces")
        {
            (format!("{base}/v1/metrics"), headers.clone())
        } else {
            warnings.push(
                "metrics are on but have no OTLP/HTTP endpoint (Metrics::endpoint, \
                 OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or an OTLP/HTTP trace exporter); \
                 metrics are off"
                    .to_owned(),
            );
            return None;
        };
        headers.extend(self.headers.clone());
        let interval = self.interval.unwrap_or_else(|| {
            env("OTEL_METRIC_EXPORT_INTERVAL").map_or(DEFAULT_INTERVAL, |raw| {
                raw.trim().parse().map_or_else(
                    |_| {
                        warnings.push(format!(
                            "OTEL_METRIC_EXPORT_INTERVAL={raw:?} is not a number; using 60000"
                        ));
                        DEFAULT_INTERVAL
                    },
                    Duration::from_millis,
                )
            })
        });
        Some(Target {
            endpoint,
            headers,
            interval: interval.max(MIN_INTERVAL),
        })
    }
}

/// Where metrics go, resolved at install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) endpoint: String,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) interval: Duration,
}

impl Target {
    /// The observer that computes and sends the metrics. `timeout` bounds each request;
    /// `shutdown_wait` how long shutdown waits for the last one.
    ///
    /// # Errors
    /// When the endpoint is not a URL the transport can serve.
    pub(crate) fn observer(
        self,
        resource: &[KeyValue],
        timeout: Duration,
        shutdown_wait: Duration,
    ) -> Result<ObserverFactory, String> {
        let transport = HttpTransport::new(&self.endpoint, &self.headers, timeout)
            .map_err(|e| format!("OTLP/HTTP metrics exporter: {e}"))?;
        let envelope = Envelope::new(resource, "honeyhive-rs", env!("CARGO_PKG_VERSION"));
        let counters = Arc::new(Counters::default());
        *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&counters));
        let interval = self.interval;
        Ok(Box::new(move || {
            let start = SystemTime::now();
            Box::new(MetricsObserver {
                instruments: Instruments::default(),
                envelope,
                sender: Sender::start(transport, Arc::clone(&counters)),
                counters,
                start_unix_nanos: clock::unix_nanos(start),
                interval,
                next_export: clock::later_system(start, interval),
                changed: false,
                shutdown_wait,
            })
        }))
    }
}

/// What the metrics exporter has done; see [`stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsStats {
    /// Model calls observed (spans, unweighted).
    pub calls: u64,
    /// Requests the backend accepted.
    pub exported: u64,
    /// Requests that failed (refused, unreachable, timed out); the next one carries their
    /// data, since the metrics are cumulative.
    pub failed: u64,
    /// Requests replaced by a newer one before they could be sent (the backend was slow).
    pub replaced: u64,
    /// Values of observed calls left out of an instrument because they are no measurement
    /// of it: negative, NaN or infinite (a negative cost, an infinite token count), or so
    /// large that a cumulative sum would become infinite. The rest of the call still counts.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    replaced: AtomicU64,
    rejected: AtomicU64,
}

/// The counters of the most recently installed metrics exporter.
static CURRENT: Mutex<Option<Arc<Counters>>> = Mutex::new(None);

/// What the most recently installed metrics exporter has done (all zero when none was).
pub fn stats() -> MetricsStats {
    let current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
    current
        .as_ref()
        .map_or_else(MetricsStats::default, |c| MetricsStats {
            calls: c.calls.load(Ordering::Relaxed),
            exported: c.exported.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            replaced: c.replaced.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        })
}

struct MetricsObserver {
    instruments: Instruments,
    envelope: Envelope,
    sender: Sender,
    counters: Arc<Counters>,
    start_unix_nanos: u64,
    interval: Duration,
    next_export: SystemTime,
    /// Something was observed since the last request.
    changed: bool,
    shutdown_wait: Duration,
}

impl MetricsObserver {
    fn export(&mut self, now: SystemTime) {
        if self.instruments.is_empty() {
            return;
        }
        let window = encode::Window {
            start_unix_nanos: self.start_unix_nanos,
            now_unix_nanos: clock::unix_nanos(now).max(self.start_unix_nanos),
        };
        let mut body = Vec::new();
        encode::request(&self.envelope, &self.instruments, window, &mut body);
        self.sender.send(body);
        self.changed = false;
    }
}

impl Observer for MetricsObserver {
    fn trace(&mut self, spans: &[SpanView<'_>]) {
        let mut calls = 0;
        for span in spans {
            calls += u64::from(self.instruments.observe(span));
        }
        if calls > 0 {
            self.counters.calls.fetch_add(calls, Ordering::Relaxed);
            self.changed = true;
        }
        let rejected = std::mem::take(&mut self.instruments.rejected);
        if rejected > 0 {
            self.counters
                .rejected
                .fetch_add(rejected, Ordering::Relaxed);
        }
    }

    fn tick(&mut self, now: SystemTime) {
        if now >= self.next_export {
            self.export(now);
            self.next_export = clock::later_system(now, self.interval);
        }
    }

    fn flush(&mut self) {
        if self.changed {
            self.export(SystemTime::now());
        }
    }

    fn shutdown(&mut self) {
        if self.changed {
            self.export(SystemTime::now());
        }
        self.sender.close(self.shutdown_wait);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::{DEFAULT_INTERVAL, Metrics, Target};

    fn resolve(
        m: &Metrics,
        env: &[(&str, &str)],
        traces: Option<(&str, &BTreeMap<String, String>)>,
    ) -> (Option<Target>, Vec<String>) {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut warnings = Vec::new();
        let target = m.resolve(
            &|k| env.get(k).cloned(),
            BTreeMap::new(),
            traces,
            &mut warnings,
        );
        (target, warnings)
    }

    #[test]
    fn the_endpoint_comes_from_code_then_the_metrics_variable_then_the_traces_exporter() {
        let key = BTreeMap::from([("authorization".to_owned(), "Bearer k".to_owned())]);
        let traces = Some(("https://api.example/opentelemetry/v1/traces", &key));
        let env = [(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://m:4318/custom",
        )];

        let (t, _) = resolve(&Metrics::new().endpoint("http://c:4318/"), &env, traces);
        assert_eq!(t.unwrap().endpoint, "http://c:4318/v1/metrics");
        let (t, _) = resolve(
            &Metrics::new().endpoint("http://c:4318/v1/metrics"),
            &env,
            traces,
        );
        assert_eq!(t.unwrap().endpoint, "http://c:4318/v1/metrics");

        let (t, _) = resolve(&Metrics::new(), &env, traces);
        assert_eq!(t.unwrap().endpoint, "http://m:4318/custom");

        let (t, _) = resolve(&Metrics::new(), &[], traces);
        let t = t.unwrap();
        assert_eq!(t.endpoint, "https://api.example/opentelemetry/v1/metrics");
        assert_eq!(t.headers, key, "the traces exporter's headers come along");
        assert_eq!(t.interval, DEFAULT_INTERVAL);

        let (t, warnings) = resolve(&Metrics::new(), &[], None);
        assert_eq!(t, None);
        assert!(
            warnings[0].contains("no OTLP/HTTP endpoint"),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_interval_comes_from_code_then_otel_metric_export_interval() {
        let traces_headers = BTreeMap::new();
        let traces = Some(("http://c:4318/v1/traces", &traces_headers));
        let env = [("OTEL_METRIC_EXPORT_INTERVAL", "5000")];
        let (t, _) = resolve(&Metrics::new(), &env, traces);
        assert_eq!(t.unwrap().interval, Duration::from_secs(5));
        let (t, _) = resolve(
            &Metrics::new().interval(Duration::from_secs(1)),
            &env,
            traces,
        );
        assert_eq!(t.unwrap().interval, Duration::from_secs(1));
        let (t, warnings) = resolve(
            &Metrics::new(),
            &[("OTEL_METRIC_EXPORT_INTERVAL", "soon")],
            traces,
        );
        assert_eq!(t.unwrap().interval, DEFAULT_INTERVAL);
        assert_eq!(warnings.len(), 1);
    }
}
