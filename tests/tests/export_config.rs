//! Export settings from the environment as deployments write them (a trailing newline, an
//! uppercase scheme, credentials in the URL, a bad header, a number out of range), installed
//! and exporting to a receiver on 127.0.0.1: a fixable value is warned about and fixed, never
//! a reason to turn tracing off or to lose spans.
//!
//! These tests run the global pipeline, so they take turns (`TURN`).

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use honeyhive_runtime::{Builder, ShutdownReport, trace};
use honeyhive_tests::env;
use honeyhive_tests::http1::{Request, read_request};
use opentelemetry_sdk::trace::InMemorySpanExporter;

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

#[trace(event_type = "tool")]
fn leaf(n: u32) -> u32 {
    n + 1
}

/// Three spans.
#[trace(event_type = "chain")]
fn root(n: u32) -> u32 {
    leaf(n) + leaf(n)
}

/// An OTLP/HTTP receiver answering 200, or 400 to a `Host` with userinfo in it, as real
/// servers do (RFC 9112 3.2); sends each request it reads. Returns `host:port`.
fn receiver() -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while let Some(request) = read_request(&mut reader) {
                    let bad_host = request.header("host").is_some_and(|h| h.contains('@'));
                    let _ = tx.send(request);
                    let reply: &[u8] = if bad_host {
                        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    };
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Installs from `vars` only, records one trace (three spans) and shuts down.
fn export_one_trace(vars: &[(&str, &str)]) -> ShutdownReport {
    let guard = Builder::new()
        .env(env(vars))
        .exit_hook(false)
        .install()
        .expect("tracing starts");
    assert!(guard.is_active());
    assert_eq!(root(1), 4);
    guard.shutdown()
}

#[test]
fn an_endpoint_with_whitespace_around_it_or_an_uppercase_scheme_is_used() {
    let _turn = turn();
    let (addr, requests) = receiver();
    for endpoint in [
        format!("http://{addr}\n"),
        format!(" http://{addr} "),
        format!("HTTP://{addr}"),
        format!("Http://{addr}/"),
    ] {
        let report = export_one_trace(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
        assert_eq!(report.exported, 3, "{endpoint:?}: {report:?}");
        let request = requests.try_recv().expect(&endpoint);
        assert_eq!(request.path, "/v1/traces", "{endpoint:?}");
    }
}

#[test]
fn credentials_in_the_endpoint_are_sent_as_basic_auth_not_in_the_host_header() {
    let _turn = turn();
    let (addr, requests) = receiver();
    let report = export_one_trace(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        &format!("http://user:s3cr3t@{addr}"),
    )]);
    assert_eq!(report.exported, 3, "{report:?}");
    let request = requests.try_recv().unwrap();
    assert_eq!(request.header("host"), Some(addr.as_str()));
    // base64("user:s3cr3t")
    assert_eq!(
        request.header("authorization"),
        Some("Basic dXNlcjpzM2NyM3Q=")
    );
}

#[test]
fn one_bad_header_is_left_out_and_tracing_stays_on() {
    let _turn = turn();
    let (addr, requests) = receiver();
    let endpoint = format!("http://{addr}");
    for headers in [
        "x api key=1,good=2",
        "good=2,x-token=abc%0D%0AInjected: 1",
        "k\u{e9}y=1,good=2",
    ] {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_HEADERS", headers),
        ];
        let settings = Builder::new().env(env(&vars)).resolve();
        assert_eq!(
            settings.warnings.len(),
            1,
            "{headers:?}: {:?}",
            settings.warnings
        );
        let report = export_one_trace(&vars);
        assert_eq!(report.exported, 3, "{headers:?}: {report:?}");
        let request = requests.try_recv().unwrap();
        assert_eq!(request.header("good"), Some("2"), "{headers:?}");
        assert_eq!(request.header("injected"), None, "{headers:?}");
    }
}

#[test]
fn an_export_timeout_of_zero_is_warned_about_and_spans_still_arrive() {
    let _turn = turn();
    let (addr, requests) = receiver();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &*format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
    ];
    let settings = Builder::new().env(env(&vars)).resolve();
    assert_eq!(settings.export_timeout, Duration::from_secs(10));
    assert!(
        settings
            .warnings
            .iter()
            .any(|w| w.contains("OTEL_EXPORTER_OTLP_TIMEOUT=0")),
        "{:?}",
        settings.warnings
    );
    let report = export_one_trace(&vars);
    assert_eq!(report.exported, 3, "{report:?}");
    assert!(requests.try_recv().is_ok());
}

#[test]
fn a_huge_export_batch_size_is_cut_to_the_queue_and_spans_export() {
    let _turn = turn();
    let vars = [("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "18446744073709551615")];
    let settings = Builder::new().env(env(&vars)).resolve();
    assert_eq!(settings.max_export_batch, settings.queue_capacity);
    assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    let exporter = InMemorySpanExporter::default();
    let guard = Builder::new()
        .env(env(&vars))
        .with_exporter(exporter.clone())
        .exit_hook(false)
        .install()
        .unwrap();
    assert_eq!(root(1), 4);
    assert!(guard.force_flush());
    // Read before shutdown, which empties the in-memory exporter.
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 3);
    let report = guard.shutdown();
    assert_eq!(report.exported, 3, "{report:?}");
}
