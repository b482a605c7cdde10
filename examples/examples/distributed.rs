//! Two services, one trace: a gateway calls a weather service over HTTP on 127.0.0.1.
//!
//! The gateway injects `traceparent`, `baggage` and `x-request-id` into its request; the
//! weather service extracts them, so its spans join the gateway's trace under the gateway's
//! client span and carry the same request id. Both run in this process and print one waterfall.
//!
//! ```text
//! cargo run -p honeyhive-examples --example distributed
//! ```

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use honeyhive_runtime::propagation::{extract, inject};
use honeyhive_runtime::{current_request_id, trace, with_request_id};

// ---- the weather service ----

#[trace(event_type = "tool")]
async fn forecast(city: String) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(8)).await;
    format!("sunny in {city}")
}

#[with_request_id]
#[trace(event_type = "chain")]
async fn weather_handler(city: String) -> String {
    forecast(city).await
}

async fn weather_service(headers: HeaderMap) -> String {
    // Continue the caller's trace and request id for this handler.
    extract(&headers)
        .instrument(weather_handler("Paris".to_owned()))
        .await
}

// ---- the gateway ----

#[trace(event_type = "tool", skip(client))]
async fn call_weather(client: &reqwest::Client, url: String) -> Result<String, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    inject(&mut headers);
    let response = client
        .get(url)
        .headers(headers)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

#[with_request_id(from = headers)]
#[trace(event_type = "chain", skip(headers))]
async fn gateway_handler(headers: HeaderMap, weather_url: String) -> String {
    let client = reqwest::Client::new();
    let weather = call_weather(&client, weather_url)
        .await
        .unwrap_or_else(|e| e);
    let id = current_request_id().map(|r| r.id).unwrap_or_default();
    format!("{weather} (request {id})")
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

async fn ask_gateway(weather_url: String) {
    let gateway = serve(Router::new().route(
        "/ask",
        get(move |headers: HeaderMap| gateway_handler(headers, weather_url.clone())),
    ))
    .await;
    let reply = reqwest::Client::new()
        .get(format!("http://{gateway}/ask"))
        .header("x-request-id", "req-2026-demo")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("gateway answered");
    println!("reply: {}\n", reply.text().await.unwrap_or_default());
}

/// The weather service alone: writes its port to `port_file`, serves one request, exits.
async fn weather_alone(port_file: &str) {
    let (served, done) = tokio::sync::oneshot::channel::<()>();
    let served = std::sync::Arc::new(std::sync::Mutex::new(Some(served)));
    let router = Router::new().route(
        "/weather",
        get(move |headers: HeaderMap| {
            let served = served.lock().ok().and_then(|mut s| s.take());
            async move {
                let reply = weather_service(headers).await;
                if let Some(served) = served {
                    let _ = served.send(());
                }
                reply
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let serving = axum::serve(listener, router).with_graceful_shutdown(async {
        let _ = done.await;
    });
    std::fs::write(port_file, port.to_string()).expect("write the port file");
    serving.await.expect("serve");
}

#[tokio::main]
async fn main() {
    let guard = honeyhive_runtime::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => {
            let weather = serve(Router::new().route("/weather", get(weather_service))).await;
            ask_gateway(format!("http://{weather}/weather")).await;
        }
        ["weather", port_file] => weather_alone(port_file).await,
        ["gateway", weather_url] => ask_gateway(weather_url.to_owned()).await,
        _ => {
            eprintln!("usage: distributed [weather PORT_FILE | gateway WEATHER_URL]");
            std::process::exit(2);
        }
    }
    drop(guard);
}
