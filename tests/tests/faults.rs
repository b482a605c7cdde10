//! A backend that is down, hung, slow or failing, on real sockets on 127.0.0.1, behind the
//! real OTLP/HTTP exporter: the traced application is never blocked by it, memory stays within
//! the queue's bound, every lost span is counted, shutdown keeps its deadline and says what it
//! lost, and a backend that comes back gets the spans produced after it did.
//!
//! These tests run the global pipeline, so they take turns (`TURN`).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use honeyhive_runtime::export::CircuitBreaker;
use honeyhive_runtime::testing::RefusingPort;
use honeyhive_runtime::{Builder, Guard, ShutdownReport, trace};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

static TURN: Mutex<()> = Mutex::new(());

const QUEUE: usize = 1_000;
const BATCH: usize = 100;
/// Spans per `request` call.
const SPANS_PER_CALL: u64 = 3;
/// A full batch being exported, and the rest of the request it was cut from.
const MOST_IN_FLIGHT: usize = BATCH + 2;

#[trace(event_type = "tool")]
fn tool(n: u32) -> u32 {
    black_box(n) + 1
}

#[trace(event_type = "chain")]
fn request(n: u32) -> u32 {
    tool(n) + tool(n + 1)
}

/// Marks the spans produced after a backend came back.
#[trace(event_type = "tool")]
fn after_recovery(n: u32) -> u32 {
    n
}

// ---------------------------------------------------------------------------------------
// A scriptable OTLP/HTTP backend.

/// How the backend answers its `n`th request (from 0).
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    StatusRetryAfter(u16, u32),
    /// Reads the request and answers 200 only once the test releases it: a backend slower
    /// than anything the application does meanwhile.
    Held,
    /// Reads the request and never answers (until the test releases it).
    Hang,
    /// Answers with these bytes, then closes the connection.
    Bytes(&'static [u8]),
}

/// One request the backend received.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    /// `(span name, honeyhive_inputs.n)` of each span in the body.
    spans: Vec<(String, Option<i64>)>,
}

struct Backend {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    arrivals: mpsc::Receiver<Hit>,
    release: Arc<(Mutex<bool>, Condvar)>,
}

impl Backend {
    fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Backend {
        Backend::on(TcpListener::bind("127.0.0.1:0").unwrap(), reply)
    }

    fn on(
        listener: TcpListener,
        reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Backend {
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (tx, arrivals) = mpsc::channel();
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let shared = Shared {
            reply: Arc::new(reply),
            count: Arc::new(AtomicUsize::new(0)),
            hits: hits.clone(),
            tx,
            release: release.clone(),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(&stream));
            }
        });
        Backend {
            addr,
            hits,
            arrivals,
            release,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (bounded) for the next request to arrive.
    fn next_hit(&self, within: Duration) -> Hit {
        self.arrivals
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("the backend got no request within {within:?}"))
    }

    /// Lets hung requests finish, so the export thread can end.
    fn release(&self) {
        *self.release.0.lock().unwrap() = true;
        self.release.1.notify_all();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.release();
    }
}

#[derive(Clone)]
struct Shared {
    reply: Arc<dyn Fn(usize) -> Reply + Send + Sync>,
    count: Arc<AtomicUsize>,
    hits: Arc<Mutex<Vec<Hit>>>,
    tx: mpsc::Sender<Hit>,
    release: Arc<(Mutex<bool>, Condvar)>,
}

impl Shared {
    fn wait_for_release(&self) {
        let (lock, cv) = &*self.release;
        let mut released = lock.lock().unwrap();
        while !*released {
            released = cv.wait(released).unwrap();
        }
    }

    fn serve(&self, stream: &TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        while let Some(body) = read_request(&mut reader) {
            let hit = Hit {
                at: Instant::now(),
                spans: decode(&body),
            };
            self.hits.lock().unwrap().push(hit.clone());
            let _ = self.tx.send(hit);
            let reply = (self.reply)(self.count.fetch_add(1, Ordering::SeqCst));
            let (status, extra) = match reply {
                Reply::Status(code) => (code, String::new()),
                Reply::StatusRetryAfter(code, secs) => (code, format!("retry-after: {secs}\r\n")),
                Reply::Held => {
                    self.wait_for_release();
                    (200, String::new())
                }
                Reply::Hang => {
                    self.wait_for_release();
                    return;
                }
                Reply::Bytes(bytes) => {
                    let _ = (&*stream).write_all(bytes);
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-protobuf\r\n{extra}content-length: 0\r\n\r\n"
            );
            if (&*stream).write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Reads one HTTP/1.1 request and returns its body; `None` when the connection ends.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut len = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn decode(body: &[u8]) -> Vec<(String, Option<i64>)> {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|span| {
            let n = span
                .attributes
                .iter()
                .find(|kv| kv.key == "honeyhive_inputs.n")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::IntValue(v) => Some(*v),
                    _ => None,
                });
            (span.name.clone(), n)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The application side.

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pipeline under test: OTLP/HTTP to `url` only, the environment ignored.
fn install(url: &str, configure: impl FnOnce(Builder) -> Builder) -> Guard {
    let builder = Builder::new()
        .env(|_| None)
        .with_otlp_http(url)
        .queue_capacity(QUEUE)
        .max_export_batch(BATCH)
        .scheduled_delay(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_millis(500));
    configure(builder).install().expect("the pipeline starts")
}

/// What the application saw while making traced calls against a faulty backend.
#[derive(Debug)]
struct Load {
    spans: u64,
    most_queued: usize,
    most_in_flight: usize,
}

/// Makes `calls` traced requests and watches the queue.
fn load(guard: &Guard, calls: u32) -> Load {
    let (mut most_queued, mut most_in_flight) = (0, 0);
    for i in 0..calls {
        assert_eq!(request(black_box(i)), 2 * i + 3);
        if i % 32 == 0 {
            let stats = guard.export_stats();
            most_queued = most_queued.max(stats.queued);
            most_in_flight = most_in_flight.max(stats.in_flight);
        }
    }
    Load {
        spans: u64::from(calls) * SPANS_PER_CALL,
        most_queued,
        most_in_flight,
    }
}

impl Load {
    /// The queue holds the backlog to its bound, and at most a batch is in flight.
    fn assert_bounded(&self) {
        assert!(self.most_queued <= QUEUE, "queue above capacity: {self:?}");
        assert!(
            self.most_in_flight <= MOST_IN_FLIGHT,
            "more than a batch in flight: {self:?}"
        );
    }
}

/// Runs `work` while `backend` holds every request it got, and fails if `work` could not end
/// before the backend let go: traced code that waited for an export even once would wait
/// until the watchdog releases the backend (a minute, far beyond the work's own time), and
/// the test then fails instead of hanging.
fn while_backend_holds<R>(backend: &Backend, work: impl FnOnce() -> R) -> R {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let release = backend.release.clone();
    let watchdog = std::thread::spawn(move || {
        let fired = done_rx.recv_timeout(Duration::from_mins(1)).is_err();
        if fired {
            *release.0.lock().unwrap() = true;
            release.1.notify_all();
        }
        fired
    });
    let out = work();
    let _ = done_tx.send(());
    assert!(
        !watchdog.join().unwrap(),
        "the traced code waited for the backend"
    );
    out
}

/// Shuts down and checks that every span is accounted for.
fn shutdown_accounted(guard: Guard, produced: u64) -> ShutdownReport {
    let report = guard.shutdown();
    let accounted = report.exported + report.dropped + report.lost_at_deadline;
    if report.completed {
        assert_eq!(report.lost_at_deadline, 0);
        assert_eq!(
            accounted, produced,
            "every span exported or dropped: {report:?}"
        );
    } else {
        // An export may end while the report is read: one batch either way.
        assert!(
            accounted.abs_diff(produced) <= BATCH as u64,
            "every span exported, dropped or reported lost: {report:?}, produced {produced}"
        );
    }
    report
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------

#[test]
fn backend_down_connection_refused() {
    let _turn = turn();
    let down = RefusingPort::bind();
    let addr = down.addr();
    let guard = install(&format!("http://{addr}/v1/traces"), |b| {
        b.export_timeout(Duration::from_secs(2))
            .circuit_breaker(CircuitBreaker::new(2, Duration::from_mins(1)))
    });
    let load = load(&guard, 20_000);
    load.assert_bounded();
    // Each failed export retries for about a second (network errors are retryable): traced
    // calls that waited for room in the queue instead of dropping would drop nothing.
    let stats = guard.export_stats();
    assert_eq!(stats.exported, 0);
    assert!(
        stats.dropped >= load.spans - (QUEUE + BATCH) as u64 - SPANS_PER_CALL,
        "{stats:?}"
    );
    assert_eq!(honeyhive_runtime::dropped_spans(), stats.dropped);
    let report = shutdown_accounted(guard, load.spans);
    assert_eq!(report.exported, 0);
}

#[test]
fn backend_hung_accepts_and_never_answers() {
    let _turn = turn();
    let backend = Backend::start(|_| Reply::Hang);
    // Longer than the watchdog: a shutdown that waited for the export would be caught.
    let guard = install(&backend.url(), |b| {
        b.export_timeout(Duration::from_hours(1))
    });
    // Get the export thread stuck on the first request, then load the application.
    request(0);
    backend.next_hit(Duration::from_secs(10));
    let rss_before = resident_bytes();
    let load = while_backend_holds(&backend, || load(&guard, 50_000));
    let rss_after = resident_bytes();
    load.assert_bounded();
    let stats = guard.export_stats();
    let produced = load.spans + SPANS_PER_CALL;
    assert_eq!(stats.exported, 0);
    assert_eq!(
        stats.failed, 0,
        "nothing failed yet: the export is still waiting"
    );
    assert_eq!(
        stats.dropped + stats.queued as u64 + stats.staged as u64 + stats.in_flight as u64,
        produced,
        "{stats:?}"
    );
    assert!(stats.queued <= QUEUE);
    // 150,000 spans went through; only the queue's worth may stay in memory.
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let grown = after.saturating_sub(before);
        assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
    }
    // Shutdown keeps its deadline rather than the export's.
    let report = while_backend_holds(&backend, || shutdown_accounted(guard, produced));
    assert!(
        !report.completed,
        "the export thread is still stuck: {report:?}"
    );
    assert!(report.lost_at_deadline > 0);
    assert!(report.lost_at_deadline <= (QUEUE + BATCH) as u64 + SPANS_PER_CALL);
    backend.release();
}

#[test]
fn backend_slower_than_the_application() {
    let _turn = turn();
    let backend = Backend::start(|_| Reply::Held);
    let guard = install(&backend.url(), |b| {
        b.export_timeout(Duration::from_hours(1))
    });
    request(0);
    backend.next_hit(Duration::from_secs(10));
    let load = while_backend_holds(&backend, || load(&guard, 20_000));
    load.assert_bounded();
    let stats = guard.export_stats();
    assert!(
        stats.dropped > 0,
        "the queue overflowed and said so: {stats:?}"
    );
    assert_eq!(stats.failed, 0, "slow is not failed: {stats:?}");
    backend.release();
    shutdown_accounted(guard, load.spans + SPANS_PER_CALL);
    // The slow backend does get spans.
    assert!(
        backend.hits().iter().any(|h| !h.spans.is_empty()),
        "the slow backend received spans"
    );
}

#[test]
fn backend_answering_500_is_not_retried_and_the_breaker_stops_calling_it() {
    let _turn = turn();
    let backend = Backend::start(|_| Reply::Status(500));
    let guard = install(&backend.url(), |b| {
        b.export_timeout(Duration::from_secs(5))
            .shutdown_timeout(Duration::from_secs(5))
            .circuit_breaker(CircuitBreaker::new(2, Duration::from_mins(1)))
    });
    for i in 0..2 {
        request(i);
        assert!(guard.force_flush());
    }
    // The OTLP specification forbids retrying 500: one request per batch.
    assert_eq!(backend.hits().len(), 2, "{:?}", backend.hits());
    let load = load(&guard, 20_000);
    load.assert_bounded();
    assert!(guard.force_flush());
    let stats = guard.export_stats();
    assert_eq!(backend.hits().len(), 2, "the open breaker calls nobody");
    let produced = load.spans + 2 * SPANS_PER_CALL;
    assert_eq!(stats.exported, 0);
    assert_eq!(stats.dropped, produced, "{stats:?}");
    assert!(
        stats.circuit_open > 0,
        "spans dropped while open are counted: {stats:?}"
    );
    let report = shutdown_accounted(guard, produced);
    assert!(report.completed, "an open breaker makes shutdown quick");
}

#[test]
fn backend_answering_429_is_retried_with_backoff_then_the_breaker_opens() {
    let _turn = turn();
    let backend = Backend::start(|_| Reply::Status(429));
    let guard = install(&backend.url(), |b| {
        b.export_timeout(Duration::from_secs(5))
            .shutdown_timeout(Duration::from_secs(5))
            .circuit_breaker(CircuitBreaker::new(2, Duration::from_mins(1)))
    });
    for i in 0..2 {
        request(i);
        assert!(guard.force_flush());
    }
    let hits = backend.hits();
    // Each batch is retried with jittered backoff (10 ms doubling, up to 1 s apart for a 429) until
    // the attempt cap or the export timeout ends it; then the next batch is tried the same way.
    let batches: Vec<Vec<&Hit>> = hits
        .chunk_by(|a, b| a.spans == b.spans)
        .map(|run| run.iter().collect())
        .collect();
    assert_eq!(batches.len(), 2, "{hits:?}");
    for tries in &batches {
        assert!(tries.len() >= 4, "retried: {} tries", tries.len());
        let gaps: Vec<_> = tries.windows(2).map(|w| w[1].at - w[0].at).collect();
        for (gap, least) in gaps.iter().zip([5, 10, 20]) {
            assert!(
                *gap >= Duration::from_millis(least),
                "backoff gaps {gaps:?}"
            );
        }
        // Bounded by the transport's attempt cap (10 tries per request), not by luck.
        assert!(tries.len() <= 10, "retried: {} tries", tries.len());
    }
    let calls = hits.len();
    let load = load(&guard, 20_000);
    load.assert_bounded();
    assert!(guard.force_flush());
    assert_eq!(backend.hits().len(), calls, "the open breaker calls nobody");
    let produced = load.spans + 2 * SPANS_PER_CALL;
    let stats = guard.export_stats();
    assert_eq!(stats.dropped, produced);
    assert!(stats.circuit_open > 0);
    let report = shutdown_accounted(guard, produced);
    assert!(report.completed);
}

#[test]
fn throttling_and_unavailable_answers_are_retried_until_they_succeed() {
    let _turn = turn();
    // 429 asking for one second, then 503, then success.
    let backend = Backend::start(|n| match n {
        0 => Reply::StatusRetryAfter(429, 1),
        1 => Reply::Status(503),
        _ => Reply::Status(200),
    });
    let guard = install(&backend.url(), |b| {
        b.export_timeout(Duration::from_secs(10))
            .shutdown_timeout(Duration::from_secs(10))
    });
    request(7);
    assert!(guard.force_flush());
    let hits = backend.hits();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(
        hits[1].at - hits[0].at >= Duration::from_millis(950),
        "Retry-After is honoured"
    );
    assert!(
        hits[2].at - hits[1].at >= Duration::from_millis(10),
        "backoff"
    );
    assert_eq!(hits[2].spans.len(), 3);
    let stats = guard.export_stats();
    assert_eq!((stats.exported, stats.dropped), (SPANS_PER_CALL, 0));
    let report = shutdown_accounted(guard, SPANS_PER_CALL);
    assert!(report.completed);
}

#[test]
fn a_backend_that_comes_back_receives_the_spans_produced_after() {
    let _turn = turn();
    // Held to the end: the backend that comes back binds the same port beside it.
    let refusing = RefusingPort::bind();
    let addr = refusing.addr();
    let guard = install(&format!("http://{addr}/v1/traces"), |b| {
        b.export_timeout(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(5))
            .circuit_breaker(CircuitBreaker::new(2, Duration::from_millis(300)))
    });
    // Down: two failed exports open the breaker.
    for i in 0..2 {
        request(i);
        assert!(guard.force_flush());
    }
    let load = load(&guard, 5_000);
    load.assert_bounded();
    assert!(guard.force_flush());
    let down = guard.export_stats();
    assert_eq!(down.exported, 0);
    assert_eq!(down.dropped, load.spans + 2 * SPANS_PER_CALL, "{down:?}");

    // Back, on the same port.
    let backend = Backend::on(
        TcpListener::bind(addr).expect("the port can be listened on"),
        |_| Reply::Status(200),
    );
    // The breaker probes after its cool-down; until then spans are dropped (and counted).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut k = 0;
    loop {
        after_recovery(k);
        k += 1;
        assert!(guard.force_flush());
        if backend
            .arrivals
            .recv_timeout(Duration::from_millis(50))
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backend got nothing after it came back"
        );
    }
    // From now on, nothing is lost.
    let before = guard.export_stats();
    for n in 1_000..1_100 {
        after_recovery(n);
    }
    assert!(guard.force_flush());
    let received: Vec<i64> = backend
        .hits()
        .iter()
        .flat_map(|h| &h.spans)
        .filter(|(name, _)| name == "after_recovery")
        .filter_map(|(_, n)| *n)
        .filter(|n| *n >= 1_000)
        .collect();
    assert_eq!(received, (1_000..1_100).collect::<Vec<_>>());
    let after = guard.export_stats();
    assert_eq!(after.dropped, before.dropped, "nothing dropped once back");
    assert_eq!(after.exported - before.exported, 100);
    let produced = load.spans + 2 * SPANS_PER_CALL + u64::from(k) + 100;
    let report = shutdown_accounted(guard, produced);
    assert!(report.completed);
}

/// Exports one trace (three spans) to `backend` and shuts down; the report and stats.
fn one_trace_to(backend: &Backend) -> (ShutdownReport, honeyhive_runtime::ExportStats) {
    let guard = install(&backend.url(), |b| {
        b.export_timeout(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(5))
            .circuit_breaker(CircuitBreaker::disabled())
    });
    request(0);
    assert!(guard.force_flush());
    let stats = guard.export_stats();
    (shutdown_accounted(guard, SPANS_PER_CALL), stats)
}

#[test]
fn a_backend_that_answers_200_and_drops_the_connection_mid_body_gets_the_spans_once() {
    let _turn = turn();
    let backend =
        Backend::start(|_| Reply::Bytes(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc"));
    let (report, _) = one_trace_to(&backend);
    // The status said the backend took them: they are not sent again, and not lost.
    assert_eq!(backend.hits().len(), 1, "{:?}", backend.hits());
    assert_eq!(report.exported, SPANS_PER_CALL, "{report:?}");
}

#[test]
fn a_backend_that_asks_to_retry_after_u64_max_seconds_fails_the_export_without_a_panic() {
    let _turn = turn();
    let backend = Backend::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 503 X\r\nretry-after: 18446744073709551615\r\ncontent-length: 0\r\n\r\n",
        )
    });
    let (report, stats) = one_trace_to(&backend);
    assert_eq!(stats.exporter_panics, 0, "{stats:?}");
    assert_eq!(backend.hits().len(), 1, "the wait is past the deadline");
    assert_eq!(report.dropped, SPANS_PER_CALL, "{report:?}");
}

#[test]
fn a_server_that_does_not_speak_http_is_not_sent_the_spans_again() {
    let _turn = turn();
    let backend = Backend::start(|_| Reply::Bytes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"));
    let (report, _) = one_trace_to(&backend);
    assert_eq!(backend.hits().len(), 1, "{:?}", backend.hits());
    assert_eq!(report.dropped, SPANS_PER_CALL, "{report:?}");
}
