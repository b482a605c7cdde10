//! gRPC with tonic on 127.0.0.1 (feature `grpc`): OTLP over gRPC to a real tonic receiver, and
//! the server layer (`integrations::tower::ServerLayer`) on a real tonic server, recording the
//! gRPC status of each call.
//!
//! `cargo test -p honeyhive-tests --features grpc --test grpc`
#![cfg(feature = "grpc")]

use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use honeyhive_runtime::integrations::tower::ServerLayer;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::{SpanKind, trace};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// The tests install the global pipeline one at a time.
static ONE_PIPELINE: Mutex<()> = Mutex::new(());

struct Receiver(mpsc::Sender<(Option<String>, ExportTraceServiceRequest)>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let tenant = request
            .metadata()
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let _ = self.0.send((tenant, request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[trace(event_type = "tool")]
fn step(n: u32) -> u32 {
    n * 2
}

#[trace(event_type = "chain")]
fn job(n: u32) -> u32 {
    step(n) + step(n + 1)
}

#[test]
fn spans_reach_a_grpc_collector() {
    let _turn = ONE_PIPELINE.lock().unwrap_or_else(PoisonError::into_inner);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let addr = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver(tx)))
                .serve_with_incoming(incoming),
        );
        addr
    });
    let endpoint = format!("http://{addr}");
    let guard = honeyhive_runtime::Builder::new()
        .env(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_owned()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-tenant=acme".to_owned()),
            _ => None,
        })
        .install()
        .expect("the gRPC exporter builds");
    assert_eq!(job(1), 6);
    let report = guard.shutdown();
    assert!(report.completed);
    assert_eq!(report.exported, 3);
    let (tenant, request) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the collector received an export");
    assert_eq!(
        tenant.as_deref(),
        Some("acme"),
        "OTEL_EXPORTER_OTLP_HEADERS as metadata"
    );
    let names: Vec<_> = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["step", "step", "job"]);
}

/// A receiver that answers as the call's `x-outcome` metadata says, with a traced step inside.
struct Scripted;

#[tonic::async_trait]
impl TraceService for Scripted {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        assert_eq!(step(1), 2);
        let outcome = request.metadata().get("x-outcome").map(|v| v.to_str());
        match outcome {
            Some(Ok("unavailable")) => Err(tonic::Status::unavailable("queue 100% full")),
            Some(Ok("invalid")) => Err(tonic::Status::invalid_argument("no spans")),
            _ => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
        }
    }
}

const EXPORT: &str = "opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A tonic server with the layer, and a tonic client calling it once per outcome; returns the
/// status codes the client saw.
fn call_a_layered_tonic_server(outcomes: &[&str]) -> Vec<tonic::Code> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(ServerLayer::new())
                .add_service(TraceServiceServer::new(Scripted))
                .serve_with_incoming(incoming),
        );
        let mut client = TraceServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("the client connects");
        let mut codes = Vec::new();
        for outcome in outcomes {
            let mut request = tonic::Request::new(ExportTraceServiceRequest::default());
            let metadata = request.metadata_mut();
            metadata.insert("x-outcome", outcome.parse().unwrap());
            metadata.insert("x-request-id", format!("call-{outcome}").parse().unwrap());
            codes.push(match client.export(request).await {
                Ok(_) => tonic::Code::Ok,
                Err(status) => status.code(),
            });
        }
        codes
    })
}

#[test]
fn the_server_layer_records_the_grpc_status_of_tonic_calls() {
    let _turn = ONE_PIPELINE.lock().unwrap_or_else(PoisonError::into_inner);
    let rec = Recorder::start();
    let codes = call_a_layered_tonic_server(&["ok", "unavailable", "invalid"]);
    assert_eq!(
        codes,
        [
            tonic::Code::Ok,
            tonic::Code::Unavailable,
            tonic::Code::InvalidArgument
        ]
    );
    let spans = rec.spans();
    let call = |outcome: &str| {
        let id = format!("call-{outcome}");
        spans
            .all(EXPORT)
            .find(|s| s.str("honeyhive.request_id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no {EXPORT} span for {id} in {:?}", spans.names()))
    };
    for outcome in ["ok", "unavailable", "invalid"] {
        let span = call(outcome);
        assert_eq!(span.kind(), SpanKind::Server);
        assert!(span.is_root());
        assert_eq!(span.str("rpc.system"), Some("grpc"));
        assert_eq!(
            span.str("rpc.service"),
            Some("opentelemetry.proto.collector.trace.v1.TraceService")
        );
        assert_eq!(span.str("rpc.method"), Some("Export"));
        // gRPC answers every call with HTTP 200.
        assert_eq!(span.i64("http.response.status_code"), Some(200));
        // The handler's work is a child of the call's span.
        let children = spans.children_of(span);
        assert_eq!(children.len(), 1, "{outcome}");
        assert_eq!(children[0].name, "step");
    }

    // OK comes in the trailers, after the body.
    let ok = call("ok");
    assert_eq!(ok.i64("rpc.grpc.status_code"), Some(0));
    assert!(!ok.is_error());
    assert_eq!(ok.str("error.type"), None);

    // An error comes in the response headers (trailers-only); UNAVAILABLE is the server's.
    let unavailable = call("unavailable");
    assert_eq!(unavailable.i64("rpc.grpc.status_code"), Some(14));
    assert!(unavailable.is_error());
    assert_eq!(unavailable.str("error.type"), Some("UNAVAILABLE"));
    // `grpc-message` is percent-encoded on the wire.
    assert_eq!(
        unavailable.error_message(),
        Some("gRPC UNAVAILABLE: queue 100% full")
    );

    // INVALID_ARGUMENT is the caller's mistake: recorded, not a failure of the server (as an
    // HTTP 4xx), per OpenTelemetry's gRPC conventions for server spans.
    let invalid = call("invalid");
    assert_eq!(invalid.i64("rpc.grpc.status_code"), Some(3));
    assert!(!invalid.is_error());
}
