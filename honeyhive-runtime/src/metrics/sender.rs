//! The thread that POSTs metric requests, so a slow or dead metrics backend never holds up
//! the export thread (and with it span export and flushes).
//!
//! It holds one request at a time, the newest: the metrics are cumulative, so a newer request
//! carries everything an older unsent one did, and the older one is dropped (counted as
//! `replaced`, not as a failure).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::export::http::HttpTransport;

use super::Counters;

#[derive(Default)]
struct Slot {
    next: Option<Vec<u8>>,
    /// A request is being sent now.
    busy: bool,
    closing: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    /// Signalled when a request is put in the slot or the sender is closed.
    wake: Condvar,
    /// Signalled when a request was sent (or failed).
    idle: Condvar,
}

/// The export thread's handle on the sending thread.
pub(super) struct Sender {
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    /// False when the thread could not be started: requests are counted failed.
    running: bool,
}

impl Sender {
    pub(super) fn start(mut transport: HttpTransport, counters: Arc<Counters>) -> Sender {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let their_counters = Arc::clone(&counters);
        let running = std::thread::Builder::new()
            .name("honeyhive-metrics".into())
            .spawn(move || run(&theirs, &mut transport, &their_counters))
            .is_ok();
        Sender {
            shared,
            counters,
            running,
        }
    }

    /// Queues `body` (an `ExportMetricsServiceRequest`), replacing any request not yet sent.
    pub(super) fn send(&self, body: Vec<u8>) {
        if !self.running {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut slot = lock(&self.shared.slot);
        if slot.next.replace(body).is_some() {
            self.counters.replaced.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.wake.notify_one();
    }

    /// Lets the queued request go out, waiting at most `wait`, and stops the thread once it
    /// has nothing left to send.
    pub(super) fn close(&self, wait: Duration) {
        let deadline = crate::clock::after(wait);
        let mut slot = lock(&self.shared.slot);
        slot.closing = true;
        self.shared.wake.notify_one();
        while self.running && (slot.busy || slot.next.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            slot = self
                .shared
                .idle
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(shared: &Shared, transport: &mut HttpTransport, counters: &Counters) {
    loop {
        let body = {
            let mut slot = lock(&shared.slot);
            loop {
                if let Some(body) = slot.next.take() {
                    slot.busy = true;
                    break body;
                }
                if slot.closing {
                    return;
                }
                slot = shared
                    .wake
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transport.deliver(1, &mut |_, out| out.extend_from_slice(&body))
        }));
        let counter = match sent {
            Ok(delivery) if delivery.failed == 0 => &counters.exported,
            _ => &counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        lock(&shared.slot).busy = false;
        shared.idle.notify_all();
    }
}
