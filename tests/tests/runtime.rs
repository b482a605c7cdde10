//! The runtime: settings from code and environment, real OTLP export, the guard, the queue,
//! the kill switch, and interop with OpenTelemetry's own `Context`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use honeyhive_runtime::export::console::ConsoleTarget;
use honeyhive_runtime::sampling::{RootSampler, Sampler};
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{Builder, ExporterKind, trace};
use honeyhive_tests::env;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

#[test]
fn defaults_to_the_console_with_nothing_set() {
    let s = Builder::new().env(env(&[])).resolve();
    assert!(s.enabled);
    assert_eq!(s.exporters, [ExporterKind::Console]);
    assert_eq!(s.service_name, "honeyhive-rs");
    assert_eq!(s.source, "dev");
    assert_eq!(s.capture_max_bytes, 8 * 1024);
    assert_eq!(s.sampler, Sampler::ParentBased(RootSampler::AlwaysOn));
}

#[test]
fn honeyhive_variables_select_the_cloud_exporter_with_a_bearer_key() {
    let s = Builder::new()
        .env(env(&[
            ("HH_API_KEY", "hh-secret"),
            ("HH_PROJECT", "support-bot"),
            ("HH_SOURCE", "production"),
            ("HH_API_URL", "https://hh.example.com/"),
        ]))
        .resolve();
    assert_eq!(s.project.as_deref(), Some("support-bot"));
    assert_eq!(s.source, "production");
    assert_eq!(
        s.service_name, "support-bot",
        "service name defaults to the project"
    );
    let ExporterKind::OtlpHttp { endpoint, headers } = &s.exporters[0] else {
        panic!("{:?}", s.exporters);
    };
    assert_eq!(endpoint, "https://hh.example.com/opentelemetry/v1/traces");
    assert_eq!(headers["authorization"], "Bearer hh-secret");
    // Code beats the environment.
    let s = Builder::new()
        .env(env(&[("HH_PROJECT", "env"), ("OTEL_SERVICE_NAME", "svc")]))
        .project("code")
        .resolve();
    assert_eq!(s.project.as_deref(), Some("code"));
    assert_eq!(s.service_name, "svc");
}

#[test]
fn otel_variables_select_otlp_sampler_headers_and_limits() {
    let s = Builder::new()
        .env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-tenant=acme, api-key=a%20b,broken",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("HH_CAPTURE_MAX_BYTES", "oops"),
        ]))
        .resolve();
    let ExporterKind::OtlpHttp { endpoint, headers } = &s.exporters[0] else {
        panic!("{:?}", s.exporters);
    };
    assert_eq!(endpoint, "http://collector:4318/v1/traces");
    assert_eq!(headers["x-tenant"], "acme");
    assert_eq!(headers["api-key"], "a b");
    assert_eq!(s.sampler, Sampler::ParentBased(RootSampler::Ratio(0.25)));
    assert_eq!(s.export_timeout, Duration::from_millis(2500));
    assert_eq!(s.queue_capacity, 100);
    assert_eq!(s.scheduled_delay, Duration::from_millis(50));
    assert_eq!(s.max_export_batch, 10);
    assert_eq!(s.capture_max_bytes, 8 * 1024, "a bad value is ignored");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("HH_CAPTURE_MAX_BYTES"))
    );
    assert!(s.warnings.iter().any(|w| w.contains("broken")));

    let s = Builder::new()
        .env(env(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://jaeger:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ]))
        .resolve();
    assert_eq!(
        s.exporters,
        [ExporterKind::OtlpHttp {
            endpoint: "http://jaeger:4318/custom".into(),
            headers: std::collections::BTreeMap::default()
        }]
    );
    assert_eq!(s.sampler, Sampler::Ratio(0.5));

    let s = Builder::new()
        .env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .resolve();
    assert!(
        matches!(&s.exporters[0], ExporterKind::OtlpGrpc { endpoint, .. } if endpoint == "http://collector:4317")
    );
}

#[cfg(not(feature = "grpc"))]
#[test]
fn grpc_without_the_feature_is_a_clear_install_error() {
    let err = Builder::new()
        .env(env(&[]))
        .with_otlp_grpc("http://127.0.0.1:4317")
        .install()
        .unwrap_err();
    assert!(err.to_string().contains("`grpc` feature"), "{err}");
}

#[trace(event_type = "tool")]
fn tool(n: u32) -> u32 {
    n + 1
}

#[trace(event_type = "chain")]
fn request(n: u32) -> u32 {
    tool(n) + tool(n + 1)
}

#[test]
fn kill_switch_turns_tracing_off() {
    let s = Builder::new()
        .env(env(&[("OTEL_SDK_DISABLED", "true")]))
        .resolve();
    assert!(!s.enabled);
    let rec = Recorder::with(|b| b.env(env(&[("OTEL_SDK_DISABLED", "TRUE")])));
    assert!(!rec.guard().is_active());
    assert_eq!(request(1), 5);
    assert!(rec.spans().is_empty());
}

/// A one-shot OTLP/HTTP receiver on 127.0.0.1: records each request's path, headers and
/// decoded body, and answers 200.
struct Receiver {
    url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    requests: mpsc::Receiver<(String, HashMap<String, String>, ExportTraceServiceRequest)>,
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let tx = tx.clone();
            std::thread::spawn(move || serve(&stream, &tx));
        }
    });
    Receiver {
        url,
        connections,
        requests: rx,
    }
}

fn serve(
    stream: &TcpStream,
    tx: &mpsc::Sender<(String, HashMap<String, String>, ExportTraceServiceRequest)>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let _ = tx.send((path, headers, req));
        let mut w = stream;
        w.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
    }
}

fn str_value(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn otlp_http_export_reaches_a_real_receiver_with_honeyhive_settings() {
    let server = receiver();
    let rec = Recorder::with(|b| {
        b.env(env(&[
            ("HH_API_KEY", "k-123"),
            ("HH_API_URL", &server.url),
            ("HH_PROJECT", "rag-demo"),
            ("HH_SOURCE", "ci"),
        ]))
        .with_honeyhive()
    });
    // No network at init: `install` has returned, and not even a connection was made.
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(request(1), 5);
    drop(rec.spans()); // flushes the pipeline, which exports to every exporter
    let (path, headers, body) = server
        .requests
        .recv_timeout(Duration::from_secs(20))
        .expect("the receiver got a request");
    assert_eq!(path, "/opentelemetry/v1/traces");
    assert_eq!(headers["authorization"], "Bearer k-123");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let rs = &body.resource_spans[0];
    let resource: HashMap<_, _> = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), str_value(kv.value.as_ref())))
        .collect();
    assert_eq!(resource["service.name"].as_deref(), Some("rag-demo"));
    assert_eq!(
        resource["openinference.project.name"].as_deref(),
        Some("rag-demo")
    );
    assert_eq!(resource["honeyhive.source"].as_deref(), Some("ci"));
    let spans: Vec<_> = rs.scope_spans.iter().flat_map(|s| &s.spans).collect();
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tool", "tool", "request"]);
    let root = spans[2];
    assert!(root.parent_span_id.is_empty());
    assert_eq!(spans[0].parent_span_id, root.span_id);
    assert_eq!(spans[0].trace_id, root.trace_id);
    let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| str_value(kv.value.as_ref()))
    };
    assert_eq!(attr(root, "honeyhive_event_type").as_deref(), Some("chain"));
}

#[test]
fn exporters_run_on_the_export_thread_only() {
    #[derive(Debug, Clone, Default)]
    struct ThreadSpy(Arc<Mutex<Vec<String>>>);
    impl opentelemetry_sdk::trace::SpanExporter for ThreadSpy {
        async fn export(
            &self,
            _batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            self.0.lock().unwrap().push(name);
            Ok(())
        }
    }
    let spy = ThreadSpy::default();
    let rec = Recorder::with(|b| b.with_exporter(spy.clone()));
    request(2);
    assert_eq!(rec.spans().len(), 3);
    let threads = spy.0.lock().unwrap().clone();
    assert!(!threads.is_empty());
    assert!(
        threads.iter().all(|t| t == "honeyhive-export"),
        "{threads:?}"
    );
}

/// An exporter that blocks until released, standing in for a hung backend.
#[derive(Debug, Clone)]
struct Stuck(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl opentelemetry_sdk::trace::SpanExporter for Stuck {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let (lock, cv) = &*self.0;
        let mut released = lock.lock().unwrap();
        while !*released {
            released = cv.wait(released).unwrap();
        }
        Ok(())
    }
}

#[test]
fn a_full_queue_drops_and_counts_and_shutdown_keeps_its_deadline() {
    let stuck = Stuck(Arc::default());
    let rec = Recorder::with(|b| {
        b.with_exporter(stuck.clone())
            .queue_capacity(4)
            .max_export_batch(1)
            .shutdown_timeout(Duration::from_millis(300))
    });
    let guard = rec.guard();
    // 100 requests of 3 spans: the exporter takes one and hangs; the queue holds 4.
    for i in 0..100 {
        assert_eq!(request(i), 2 * i + 3, "traced code still returns its value");
    }
    let dropped = guard.dropped_spans();
    assert!(dropped >= 300 - 4 - 3, "dropped {dropped}");
    assert_eq!(honeyhive_runtime::dropped_spans(), dropped);
    // The exporter stays stuck until released below, so a shutdown that returns at all kept
    // its deadline rather than waiting for the export. Watched from here so that a broken
    // deadline fails the test instead of hanging it (a guard against hanging, not a bound).
    let (returned, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_mins(2)).is_err() {
            eprintln!("shutdown waited for its stuck exporter: the deadline does not hold");
            std::process::exit(101);
        }
    });
    let report = rec.shutdown();
    returned.send(()).unwrap();
    watchdog.join().unwrap();
    assert!(!*stuck.0.0.lock().unwrap(), "the exporter was still stuck");
    assert!(!report.completed);
    assert!(report.dropped >= dropped);
    // Lost: the queue, and the request whose spans were being exported.
    assert!(report.lost_at_deadline <= 4 + 3, "{report:?}");
    // Release the exporter so its thread can end.
    *stuck.0.0.lock().unwrap() = true;
    stuck.0.1.notify_all();
}

#[test]
fn spans_join_an_ambient_opentelemetry_context_and_hand_theirs_out() {
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    let rec = Recorder::start();
    let sdk_exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(sdk_exporter.clone())
        .build();
    let tracer = provider.tracer("sdk");
    tracer.in_span("sdk-root", |_cx| {
        request(3);
    });
    #[trace]
    fn ours_calls_sdk(tracer: &opentelemetry_sdk::trace::SdkTracer) -> u32 {
        let cx = honeyhive_runtime::otel_context();
        let span = tracer.start_with_context("sdk-child", &cx);
        let _attached = cx.with_span(span).attach();
        1
    }
    let tracer2 = provider.tracer("sdk");
    ours_calls_sdk(&tracer2);
    let _ = provider.force_flush();
    let sdk_spans = sdk_exporter.get_finished_spans().unwrap();
    let spans = rec.spans();
    let sdk_root = sdk_spans.iter().find(|s| s.name == "sdk-root").unwrap();
    let ours = spans.get("request");
    assert_eq!(ours.trace_id(), sdk_root.span_context.trace_id());
    assert_eq!(ours.parent_span_id, sdk_root.span_context.span_id());
    assert!(!ours.parent_span_is_remote);
    let sdk_child = sdk_spans.iter().find(|s| s.name == "sdk-child").unwrap();
    let caller = spans.get("ours_calls_sdk");
    assert_eq!(sdk_child.parent_span_id, caller.span_id());
    assert_eq!(sdk_child.span_context.trace_id(), caller.trace_id());
}

#[test]
fn console_waterfall_is_the_default_output() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let rec = Recorder::with(|b| b.with_console_target(ConsoleTarget::Buffer(buf.clone())));
    request(5);
    drop(rec.spans());
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert!(
        lines[0].starts_with("trace ") && lines[0].contains("request"),
        "{text}"
    );
    assert!(lines[1].starts_with("  ◆ request [chain]"), "{text}");
    // Both calls are on the critical path (the first ended before the second started).
    assert!(lines[2].starts_with("    ◆ tool [tool]"), "{text}");
    assert!(lines[1].contains('█') && lines[1].contains('│'), "{text}");
}
