//! The background sender: feedback to Phoenix as span annotations and to HoneyHive as event
//! feedback, one request after another on a thread of its own, never on the caller's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};

use super::Feedback;
use crate::export::http::{self, SendError};

/// Feedback that may wait to be sent; past this, new feedback is not sent to the backends
/// (it is still recorded as a span) and is counted in [`FeedbackStats::dropped`].
const QUEUE: usize = 1024;
/// First pause before a request is tried again; doubles each time, within the timeout.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Tries per request, whatever time the timeout leaves.
const MAX_ATTEMPTS: u32 = 6;

/// Where feedback goes, from the builder's settings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Backends {
    /// Phoenix's base URL (`http://127.0.0.1:6006`).
    pub(crate) phoenix: Option<String>,
    pub(crate) honeyhive: Option<HoneyHiveTarget>,
    /// Time for one request, retries included.
    pub(crate) timeout: Duration,
}

/// HoneyHive's API and the key to call it with.
#[derive(Clone, Debug)]
pub(crate) struct HoneyHiveTarget {
    pub(crate) server_url: String,
    pub(crate) api_key: String,
}

/// What the sender has done since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedbackStats {
    /// Requests a backend accepted (one per backend per feedback).
    pub delivered: u64,
    /// Requests refused, unanswered or not sendable.
    pub failed: u64,
    /// Feedback not sent because the queue was full or the sender had stopped.
    pub dropped: u64,
}

static DELIVERED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What the sender has done so far.
pub fn stats() -> FeedbackStats {
    FeedbackStats {
        delivered: DELIVERED.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
    }
}

/// Feedback queued and not yet sent.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    done: Condvar,
}

impl Pending {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    }

    fn finish(&self) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.done.notify_all();
        }
    }

    /// Waits until nothing is pending or `deadline`; returns whether nothing is.
    fn wait(&self, deadline: Instant) -> bool {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = self
                .done
                .wait_timeout(count, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

struct Sender {
    tx: SyncSender<Feedback>,
    pending: Arc<Pending>,
}

/// The sender of the installed pipeline, if it has a backend for feedback.
static SENDER: Mutex<Option<Sender>> = Mutex::new(None);

fn sender() -> std::sync::MutexGuard<'static, Option<Sender>> {
    SENDER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the sender for `backends` (none: no thread), replacing any earlier one.
pub(crate) fn install(backends: Backends) {
    let next = if backends.phoenix.is_none() && backends.honeyhive.is_none() {
        None
    } else {
        let (tx, rx) = mpsc::sync_channel::<Feedback>(QUEUE);
        let pending = Arc::new(Pending::default());
        let theirs = Arc::clone(&pending);
        let spawned = std::thread::Builder::new()
            .name("honeyhive-feedback".into())
            .spawn(move || {
                for feedback in rx {
                    deliver(&backends, &feedback);
                    theirs.finish();
                }
            });
        match spawned {
            Ok(_) => Some(Sender { tx, pending }),
            Err(e) => {
                http::report_once(&format!("feedback is not sent to backends: {e}"));
                None
            }
        }
    };
    *sender() = next;
}

/// Queues `feedback` for the backends, if any are configured.
pub(super) fn enqueue(feedback: Feedback) {
    let guard = sender();
    let Some(sender) = guard.as_ref() else { return };
    sender.pending.add();
    match sender.tx.try_send(feedback) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            sender.pending.finish();
            DROPPED.fetch_add(1, Ordering::Relaxed);
            http::report_once("feedback queue full: feedback not sent to backends");
        }
    }
}

/// Blocks until every feedback queued so far has been sent (or has failed), or `timeout`
/// passed; returns whether it all was. Sending already happens in the background and the
/// guard waits for it when dropped; this is for tests, and before a process exits without
/// its guard.
pub fn flush(timeout: Duration) -> bool {
    let pending = match sender().as_ref() {
        Some(sender) => Arc::clone(&sender.pending),
        None => return true,
    };
    pending.wait(crate::clock::after(timeout))
}

/// Stops the sender, waiting at most half of `timeout` for what is queued; returns what is
/// left of `timeout` for the rest of the shutdown.
pub(crate) fn shutdown(timeout: Duration) -> Duration {
    let Some(sender) = sender().take() else {
        return timeout;
    };
    let start = Instant::now();
    // Dropping the channel's sending half ends the thread once the queue is drained.
    let Sender { tx, pending } = sender;
    drop(tx);
    pending.wait(start + timeout / 2);
    timeout.saturating_sub(start.elapsed())
}

/// Sends one feedback to every backend.
fn deliver(backends: &Backends, feedback: &Feedback) {
    if let Some(base) = &backends.phoenix {
        let url = format!(
            "{}/v1/span_annotations?sync=true",
            base.trim_end_matches('/')
        );
        let body = phoenix_body(feedback).to_string();
        send(&url, "POST", &BTreeMap::new(), &body, backends.timeout);
    }
    if let Some(hh) = &backends.honeyhive {
        let url = format!("{}/events", hh.server_url.trim_end_matches('/'));
        let headers =
            BTreeMap::from([("authorization".to_owned(), format!("Bearer {}", hh.api_key))]);
        let body = honeyhive_body(feedback).to_string();
        send(&url, "PUT", &headers, &body, backends.timeout);
    }
}

/// One request, tried again while the answer says it may work later (404: the span is not
/// ingested yet; 429, 502, 503, 504; no connection), within `timeout`, after the `Retry-After`
/// the backend asks for or a jittered, doubling backoff.
fn send(
    url: &str,
    method: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
    timeout: Duration,
) {
    let deadline = crate::clock::after(timeout);
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    let why = loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let (why, retry_after) = match http::send_json(method, url, headers, body.as_bytes(), left)
        {
            Ok((200..=299, _)) => {
                DELIVERED.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok((status @ (404 | 429 | 502 | 503 | 504), retry_after)) => {
                (format!("HTTP {status}"), retry_after)
            }
            Ok((status, _)) => break format!("HTTP {status}"),
            Err(SendError::Invalid(why)) => break why,
            Err(SendError::Io(why)) => (why, None),
        };
        // The backend's own `Retry-After` first, else the transport's jittered backoff.
        let pause = retry_after.unwrap_or_else(|| http::jitter(backoff));
        // Compared, not added to now: a server's `Retry-After` can be any number.
        if attempts >= MAX_ATTEMPTS || pause >= deadline.saturating_duration_since(Instant::now()) {
            break why;
        }
        std::thread::sleep(pause);
        backoff *= 2;
    };
    FAILED.fetch_add(1, Ordering::Relaxed);
    http::report_once(&format!(
        "feedback {method} {} failed ({why}); counted in feedback::stats()",
        http::without_password(url)
    ));
}

/// `{"data":[{span annotation}]}`, as Phoenix's `POST /v1/span_annotations` takes it.
fn phoenix_body(feedback: &Feedback) -> Json {
    let mut result = Map::new();
    if let Some(score) = feedback.score {
        result.insert("score".into(), json!(score));
    }
    if let Some(label) = &feedback.label {
        result.insert("label".into(), json!(label));
    }
    if let Some(comment) = &feedback.comment {
        result.insert("explanation".into(), json!(comment));
    }
    let metadata: Map<String, Json> = feedback
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Json::from(v)))
        .collect();
    json!({
        "data": [{
            "span_id": format!("{:016x}", u64::from_be_bytes(feedback.target.span_id.to_bytes())),
            "name": feedback.name,
            "annotator_kind": "HUMAN",
            "result": result,
            "metadata": metadata,
        }]
    })
}

/// `{"event_id", "feedback", "metrics"}`, as HoneyHive's `PUT /events` takes it.
fn honeyhive_body(feedback: &Feedback) -> Json {
    let fields: Map<String, Json> = feedback
        .fields()
        .into_iter()
        .map(|(k, v)| (k.into_owned(), Json::from(&v)))
        .collect();
    let mut body = json!({
        "event_id": feedback.target.honeyhive_event_id(),
        "feedback": fields,
    });
    if let Some(score) = feedback.score {
        body["metrics"] = json!({ feedback.name.as_ref(): score });
    }
    body
}
