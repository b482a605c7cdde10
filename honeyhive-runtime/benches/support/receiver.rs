//! A local OTLP/HTTP trace receiver that counts spans and bytes, for benches.
//!
//! Listens on 127.0.0.1 (a free port), one thread per connection, HTTP/1.1 keep-alive; every
//! request is answered `200` with an empty `ExportTraceServiceResponse` (a zero-length
//! protobuf body). Bodies are counted, not decoded: a small walker follows
//! `ExportTraceServiceRequest.resource_spans` (field 1) → `ResourceSpans.scope_spans` (2) →
//! `ScopeSpans.spans` (2) and counts the span fields, skipping over everything else by length.
//!
//! Each connection thread adds its own CPU time (`CLOCK_THREAD_CPUTIME_ID`, read after every
//! request) to [`Counts::cpu`], so a bench can subtract the receiver's cost from the process's
//! `getrusage`. The accept thread's CPU (one `accept` per connection) is not counted.
//!
//! [`ceiling`] measures the receiver alone, fed pre-encoded bodies over keep-alive connections.
//!
//! Shared by several benches (`#[path = "support/receiver.rs"] mod receiver;`, which needs
//! `support/cpu.rs` as `mod cpu` next to it).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cpu;

/// What the receiver has seen since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Export requests answered.
    pub(crate) requests: u64,
    /// Spans in their bodies.
    pub(crate) spans: u64,
    /// Body bytes (protobuf, as sent: no compression is configured by the benches).
    pub(crate) bytes: u64,
    /// Bodies the walker could not read (should stay 0).
    pub(crate) malformed: u64,
    /// CPU time of the connection threads, in nanoseconds.
    pub(crate) cpu_ns: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, before: Counts) -> Counts {
        Counts {
            requests: self.requests - before.requests,
            spans: self.spans - before.spans,
            bytes: self.bytes - before.bytes,
            malformed: self.malformed - before.malformed,
            cpu_ns: self.cpu_ns - before.cpu_ns,
        }
    }
}

#[derive(Default)]
struct Shared {
    /// Set by [`Receiver::sample_next`]: keep the next body.
    want_sample: AtomicBool,
    sample: std::sync::Mutex<Option<Vec<u8>>>,
    requests: AtomicU64,
    spans: AtomicU64,
    bytes: AtomicU64,
    malformed: AtomicU64,
    cpu_ns: AtomicU64,
}

/// A running receiver; lives as long as the process (its threads are detached).
pub(crate) struct Receiver {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub(crate) fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let shared = Arc::clone(&accept_shared);
                    let _ = std::thread::Builder::new()
                        .name("otlp-conn".into())
                        .spawn(move || serve(stream, &shared));
                }
            })
            .expect("spawn the receiver");
        Receiver { addr, shared }
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    pub(crate) fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Keeps a copy of the next body received, for [`Receiver::take_sample`].
    pub(crate) fn sample_next(&self) {
        self.shared.want_sample.store(true, Ordering::Release);
    }

    /// The body kept after [`Receiver::sample_next`], if one came.
    pub(crate) fn take_sample(&self) -> Option<Vec<u8>> {
        self.shared
            .sample
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    pub(crate) fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            requests: s.requests.load(Ordering::Acquire),
            spans: s.spans.load(Ordering::Acquire),
            bytes: s.bytes.load(Ordering::Acquire),
            malformed: s.malformed.load(Ordering::Acquire),
            cpu_ns: s.cpu_ns.load(Ordering::Acquire),
        }
    }
}

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";

/// Serves one connection until the peer closes it.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    // Small, so that `read_exact` of a body reads straight into `body` past the first 8 KiB
    // instead of copying through the buffer.
    let mut reader = BufReader::with_capacity(8 * 1024, read_half);
    let mut out = stream;
    let mut body = Vec::new();
    let mut line = String::new();
    let mut cpu_seen = cpu::thread();
    loop {
        // Request line, then headers up to the empty line.
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut len = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return finish(shared, cpu_seen);
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
                {
                    chunked = true;
                }
            }
        }
        body.clear();
        let read = if chunked {
            read_chunked(&mut reader, &mut body, &mut line)
        } else {
            body.resize(len, 0);
            reader.read_exact(&mut body).is_ok()
        };
        if !read {
            break;
        }
        match count_spans(&body) {
            Some(n) => shared.spans.fetch_add(n, Ordering::AcqRel),
            None => shared.malformed.fetch_add(1, Ordering::AcqRel),
        };
        shared.bytes.fetch_add(body.len() as u64, Ordering::AcqRel);
        if shared.want_sample.load(Ordering::Relaxed)
            && shared.want_sample.swap(false, Ordering::AcqRel)
        {
            *shared
                .sample
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(body.clone());
        }
        let written = out.write_all(RESPONSE).is_ok();
        let now = cpu::thread();
        shared
            .cpu_ns
            .fetch_add(nanos(now.saturating_sub(cpu_seen)), Ordering::AcqRel);
        cpu_seen = now;
        // Counted last, so a bench that waits for N requests sees their spans too.
        shared.requests.fetch_add(1, Ordering::AcqRel);
        if !written {
            break;
        }
    }
    finish(shared, cpu_seen);
}

fn finish(shared: &Shared, cpu_seen: Duration) {
    shared.cpu_ns.fetch_add(
        nanos(cpu::thread().saturating_sub(cpu_seen)),
        Ordering::AcqRel,
    );
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads a `Transfer-Encoding: chunked` body into `body`.
fn read_chunked(reader: &mut impl BufRead, body: &mut Vec<u8>, line: &mut String) -> bool {
    loop {
        line.clear();
        if reader.read_line(line).unwrap_or(0) == 0 {
            return false;
        }
        let size = line.trim().split(';').next().unwrap_or("");
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return false;
        };
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(line).unwrap_or(0) == 0 {
                    return false;
                }
                if line.trim().is_empty() {
                    return true;
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        if reader.read_exact(&mut body[start..]).is_err() {
            return false;
        }
        line.clear();
        if reader.read_line(line).unwrap_or(0) == 0 {
            return false;
        }
    }
}

/// Spans in an `ExportTraceServiceRequest`, or `None` if the body is not well-formed protobuf.
pub(crate) fn count_spans(body: &[u8]) -> Option<u64> {
    let mut spans = 0;
    for_each_field(body, |field, value| {
        if let (1, Field::Len(resource_spans)) = (field, value) {
            for_each_field(resource_spans, |field, value| {
                if let (2, Field::Len(scope_spans)) = (field, value) {
                    for_each_field(scope_spans, |field, value| {
                        if let (2, Field::Len(_)) = (field, value) {
                            spans += 1;
                        }
                        Some(())
                    })?;
                }
                Some(())
            })?;
        }
        Some(())
    })?;
    Some(spans)
}

/// Where the bytes of one encoded span go.
#[derive(Debug, Default)]
pub(crate) struct SpanLayout {
    /// The span's name.
    pub(crate) name: String,
    /// The whole span message, with its tag and length in the scope.
    pub(crate) total: usize,
    /// Each attribute's key and its encoded size (the `KeyValue` field with tag and length).
    pub(crate) attributes: Vec<(String, usize)>,
    /// Events, all together.
    pub(crate) events: usize,
    /// Everything else: ids, name, kind, times, status, flags.
    pub(crate) rest: usize,
}

/// The layout of the first span of an `ExportTraceServiceRequest`.
pub(crate) fn first_span_layout(body: &[u8]) -> Option<SpanLayout> {
    let mut first: Option<&[u8]> = None;
    for_each_field(body, |field, value| {
        if let (1, Field::Len(resource_spans), None) = (field, value, first) {
            for_each_field(resource_spans, |field, value| {
                if let (2, Field::Len(scope_spans), None) = (field, value, first) {
                    for_each_field(scope_spans, |field, value| {
                        if let (2, Field::Len(span), None) = (field, value, first) {
                            first = Some(span);
                        }
                        Some(())
                    })?;
                }
                Some(())
            })?;
        }
        Some(())
    })?;
    let span = first?;
    let mut layout = SpanLayout {
        total: span.len() + 1 + varint_len(span.len() as u64),
        ..SpanLayout::default()
    };
    let mut accounted = 0;
    for_each_field(span, |field, value| {
        if let Field::Len(bytes) = value {
            let size = 1 + varint_len(bytes.len() as u64) + bytes.len();
            match field {
                5 => layout.name = String::from_utf8_lossy(bytes).into_owned(),
                9 => {
                    let mut key = String::new();
                    for_each_field(bytes, |f, v| {
                        if let (1, Field::Len(k)) = (f, v) {
                            key = String::from_utf8_lossy(k).into_owned();
                        }
                        Some(())
                    })?;
                    layout.attributes.push((key, size));
                    accounted += size;
                }
                11 => {
                    layout.events += size;
                    accounted += size;
                }
                _ => {}
            }
        }
        Some(())
    })?;
    layout.rest = span.len() - accounted;
    Some(layout)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A protobuf field's value, as far as the walker needs it.
#[derive(Clone, Copy)]
enum Field<'a> {
    Varint,
    Fixed,
    Len(&'a [u8]),
}

/// Calls `f(field number, value)` for each field of a message; `None` if it is malformed.
fn for_each_field<'a>(
    mut buf: &'a [u8],
    mut f: impl FnMut(u64, Field<'a>) -> Option<()>,
) -> Option<()> {
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let value = match key & 7 {
            0 => {
                varint(&mut buf)?;
                Field::Varint
            }
            1 => {
                buf = buf.get(8..)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (bytes, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                Field::Len(bytes)
            }
            5 => {
                buf = buf.get(4..)?;
                Field::Fixed
            }
            _ => return None,
        };
        f(key >> 3, value)?;
    }
    Some(())
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A minimal protobuf writer, for the synthetic bodies of [`ceiling`].
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
            v >>= 7;
        }
        self.0.push(u8::try_from(v).unwrap_or(0));
    }

    fn bytes(&mut self, field: u64, b: &[u8]) {
        self.varint(field << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn fixed64(&mut self, field: u64, v: u64) {
        self.varint(field << 3 | 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn uint(&mut self, field: u64, v: u64) {
        self.varint(field << 3);
        self.varint(v);
    }
}

/// An `ExportTraceServiceRequest` of `spans` spans (ids, parent, name, kind, times, a string
/// and an int attribute: about 130 bytes each, like the SDK's plain spans), each with one more
/// string attribute of `extra` bytes if `extra > 0`.
pub(crate) fn synthetic_body(spans: u64, extra: usize) -> Vec<u8> {
    let content = "x".repeat(extra);
    let mut scope = Writer::default();
    for i in 0..spans {
        let mut span = Writer::default();
        span.bytes(1, &[7; 16]);
        span.bytes(2, &(i + 1).to_le_bytes());
        span.bytes(4, &[9; 8]);
        span.bytes(5, b"retrieve");
        span.uint(6, 1);
        span.fixed64(7, 1_700_000_000_000_000_000 + i);
        span.fixed64(8, 1_700_000_000_000_001_000 + i);
        for (key, value) in [(&b"query"[..], None), (&b"n"[..], Some(i))] {
            let mut any = Writer::default();
            match value {
                None => any.bytes(1, b"what is the capital of France?"),
                Some(n) => any.uint(3, n),
            }
            let mut kv = Writer::default();
            kv.bytes(1, key);
            kv.bytes(2, &any.0);
            span.bytes(9, &kv.0);
        }
        if extra > 0 {
            let mut any = Writer::default();
            any.bytes(1, content.as_bytes());
            let mut kv = Writer::default();
            kv.bytes(1, b"gen_ai.input.messages");
            kv.bytes(2, &any.0);
            span.bytes(9, &kv.0);
        }
        let mut status = Writer::default();
        status.uint(3, 0);
        span.bytes(15, &status.0);
        scope.bytes(2, &span.0);
    }
    let mut resource_spans = Writer::default();
    resource_spans.bytes(2, &scope.0);
    let mut request = Writer::default();
    request.bytes(1, &resource_spans.0);
    request.0
}

/// The receiver's own ceiling, measured on `receiver`.
pub(crate) struct Ceiling {
    /// Spans counted per second of wall time while `clients` threads sent flat out.
    pub(crate) spans_per_sec: f64,
    /// Receiver CPU per span, in nanoseconds.
    pub(crate) cpu_ns_per_span: f64,
    /// Body bytes per span of the synthetic body.
    pub(crate) bytes_per_span: f64,
    /// Body bytes counted per second.
    pub(crate) bytes_per_sec: f64,
}

/// Feeds `receiver` pre-encoded bodies of `spans_per_body` spans (each with `extra` more bytes,
/// see [`synthetic_body`]) on `clients` keep-alive connections for `duration`, each client
/// waiting for the answer before it sends again.
pub(crate) fn ceiling(
    receiver: &Receiver,
    clients: usize,
    spans_per_body: u64,
    extra: usize,
    duration: Duration,
) -> Ceiling {
    let body = synthetic_body(spans_per_body, extra);
    assert_eq!(
        count_spans(&body),
        Some(spans_per_body),
        "the walker counts the synthetic body"
    );
    let mut request = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\n\r\n",
        receiver.addr(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let before = receiver.counts();
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (request, stop, addr) = (Arc::clone(&request), Arc::clone(&stop), receiver.addr());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect to the receiver");
                let _ = stream.set_nodelay(true);
                let mut answer = [0u8; RESPONSE.len()];
                while !stop.load(Ordering::Relaxed) {
                    stream.write_all(&request).expect("send to the receiver");
                    stream.read_exact(&mut answer).expect("read the answer");
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a ceiling client panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Connection threads add their last CPU slice when they see the client close.
    std::thread::sleep(Duration::from_millis(50));
    let got = receiver.counts() - before;
    #[allow(clippy::cast_precision_loss)] // figures for display
    Ceiling {
        spans_per_sec: got.spans as f64 / elapsed,
        cpu_ns_per_span: got.cpu_ns as f64 / got.spans.max(1) as f64,
        bytes_per_span: body.len() as f64 / spans_per_body as f64,
        bytes_per_sec: got.bytes as f64 / elapsed,
    }
}
