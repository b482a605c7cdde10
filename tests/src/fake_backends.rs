//! Fake Phoenix and HoneyHive servers on 127.0.0.1 that keep every request they receive
//! (method, path with query, headers, body) and answer as told, for the feedback tests.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, ...
    pub method: String,
    /// The path with its query, e.g. `/v1/span_annotations?sync=true`.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {} body is not JSON: {e}", self.method, self.path))
    }

    /// A header, by its lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This status, with a small JSON body.
    Status(u16),
    /// Nothing, until [`FakeBackend::release`]; then the connection is closed.
    Hang,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    released: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// A fake backend; see the module docs.
pub struct FakeBackend {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeBackend {
    /// A fake Phoenix: answers 200 with `{"data":[{"id":"..."}]}`, as Phoenix does to
    /// `POST /v1/span_annotations?sync=true`.
    pub fn phoenix() -> FakeBackend {
        FakeBackend::start(Answer::Status(200))
    }

    /// A fake HoneyHive: answers 200 to everything (OTLP exports and `PUT /events`).
    pub fn honeyhive() -> FakeBackend {
        FakeBackend::start(Answer::Status(200))
    }

    /// A server that answers every request with `answer`.
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound.
    pub fn start(answer: Answer) -> FakeBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let shared = Arc::clone(&theirs);
                std::thread::spawn(move || serve(stream, &shared, answer));
            }
        });
        FakeBackend { url, shared }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Waits until a request matching `is` has arrived (at most `timeout`) and returns it.
    pub fn wait_for(&self, timeout: Duration, is: impl Fn(&Request) -> bool) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(r) = state.requests.iter().find(|r| is(r)) {
                return Some(r.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Lets hanging requests ([`Answer::Hang`]) end: their connections are closed.
    pub fn release(&self) {
        self.lock().released = true;
        self.shared.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        self.release();
    }
}

fn serve(stream: TcpStream, shared: &Shared, answer: Answer) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some(request) = crate::http1::read_request(&mut reader) {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requests.push(Request {
            method: request.method,
            path: request.path,
            headers: request.headers.into_iter().collect(),
            body: request.body,
        });
        shared.changed.notify_all();
        let status = match answer {
            Answer::Status(status) => status,
            Answer::Hang => {
                while !state.released {
                    state = shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                return;
            }
        };
        drop(state);
        let body = br#"{"data":[{"id":"U3BhbkFubm90YXRpb246MQ=="}]}"#;
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body).is_err() {
            return;
        }
    }
}
