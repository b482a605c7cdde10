//! Tests, and what several of them share.

pub mod fake_backends;
pub mod fake_llm;
pub mod http1;
pub mod metrics_receiver;

/// The order in which [`Noisy`] values were dropped.
pub type DropLog = std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>;

/// A value that logs its name to a [`DropLog`] when dropped: for tests of when a traced fn's
/// arguments and locals drop.
pub struct Noisy(pub &'static str, pub DropLog);

impl Drop for Noisy {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

impl std::fmt::Debug for Noisy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// An OTLP/HTTP receiver on 127.0.0.1: decodes every request (HTTP/1.1, keep-alive), sends it
/// on the returned channel, and answers 200. Returns the `/v1/traces` URL.
///
/// # Panics
/// If no port on 127.0.0.1 can be bound.
pub fn otlp_receiver() -> (String, mpsc::Receiver<ExportTraceServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
    let url = format!(
        "http://{}/v1/traces",
        listener.local_addr().expect("a bound address")
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(&stream, &tx));
        }
    });
    (url, rx)
}

fn serve(stream: &TcpStream, tx: &mpsc::Sender<ExportTraceServiceRequest>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    while let Some(request) = http1::read_request(&mut reader) {
        if let Ok(req) = ExportTraceServiceRequest::decode(request.body.as_slice()) {
            let _ = tx.send(req);
        }
        let mut w = stream;
        if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// An environment of `vars` only, for `Builder::env`: what the runtime reads from these names
/// and nothing from the process's environment.
pub fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}
