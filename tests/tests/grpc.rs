//! OTLP over gRPC (feature `grpc`) to a real tonic receiver on 127.0.0.1.
//!
//! `cargo test -p honeyhive-tests --features grpc --test grpc`
#![cfg(feature = "grpc")]

use std::sync::mpsc;
use std::time::Duration;

use honeyhive_runtime::trace;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

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
