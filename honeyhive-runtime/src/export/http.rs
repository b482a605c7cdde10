//! OTLP/HTTP transport: POSTs protobuf bodies the export thread encodes, on one kept-alive
//! connection, retrying what the OTLP specification calls transient within the export timeout.
//!
//! A small HTTP/1.1 client over [`TcpStream`], not a general one: the export thread is its only
//! caller, it sends one request at a time, and its per-request cost is a `writev` and a `read`
//! (no runtime thread, no channel hop, no allocation once warm). What it does:
//!
//! - **Retries** 429, 502, 503, 504 and connection errors with exponential backoff and jitter
//!   (10 ms doubling to 100 ms, so it tracks a backend that comes back quickly), honouring
//!   `Retry-After` (seconds or an HTTP date; one that ends past the deadline fails the request
//!   at once), all within the per-call deadline and at most
//!   [`MAX_ATTEMPTS`] tries per request. A 429 without `Retry-After` backs off further (up to
//!   [`MAX_THROTTLE_BACKOFF`]): a throttling backend is not asked ten times a second. 500 and
//!   other 4xx are not retried, as the specification says.
//! - **413** (payload too large) splits the batch in halves and sends each, down to one span,
//!   and remembers the size that was refused so later batches are split before sending.
//! - **401 and 403** and other refusals are reported once per distinct message on stderr
//!   ([`report_once`]), naming the status and the endpoint, and the spans are counted failed.
//! - **Partial success**: spans a 2xx response lists as `rejected_spans` are counted failed.
//! - **A status line is the answer**: a 2xx whose body is cut off (the connection dropped, the
//!   deadline passed) is delivered, not sent again; the connection is not used again. An answer
//!   that is not HTTP/1.x (a gRPC or TLS port, another protocol) is reported and not retried:
//!   it would answer the same, and may have taken the request.
//! - **Credentials in the URL** (`http://user:password@host`) go in `Authorization: Basic`
//!   (unless an `authorization` header is given), not in `Host`; messages name the endpoint
//!   with the password as `***` ([`without_password`]).
//!
//! `https://` endpoints need the `tls` cargo feature (rustls with the ring provider, Mozilla's
//! root certificates); without it [`HttpTransport::new`] refuses them with a message saying so.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// First pause before a retry; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two attempts (unless the server asks for more with `Retry-After`).
/// Short, so that a backend that is back is found within a tenth of a second.
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause after a 429 without `Retry-After`: the backend said it is overloaded.
const MAX_THROTTLE_BACKOFF: Duration = Duration::from_secs(1);
/// Tries per request (the first and the retries), whatever time the deadline leaves.
const MAX_ATTEMPTS: u32 = 10;
/// A connection attempt gives up after this (or the deadline, if sooner), so a black-holed
/// address does not eat the whole export timeout on its first try.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes of a response body kept (a partial-success message); the rest is read and dropped.
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Bytes of response head accepted before the response is called malformed.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How many spans of one [`HttpTransport::deliver`] call were accepted and how many were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) delivered: usize,
    pub(crate) failed: usize,
}

/// Sends OTLP protobuf request bodies to one endpoint. See the module docs.
pub(crate) struct HttpTransport {
    client: Client,
    timeout: Duration,
    /// The request body, reused across requests.
    body: Vec<u8>,
    /// The smallest body a 413 refused: bodies this big are split before sending.
    too_large_at: usize,
}

impl HttpTransport {
    /// `endpoint` is the full URL including `/v1/traces`; `headers` are sent with every request
    /// (`authorization`, ...). Each [`deliver`](Self::deliver) call, retries included, ends
    /// within `timeout`.
    pub(crate) fn new(
        endpoint: &str,
        headers: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<HttpTransport, String> {
        Ok(HttpTransport {
            client: Client::new(endpoint, headers)?,
            timeout,
            body: Vec::new(),
            too_large_at: usize::MAX,
        })
    }

    /// Delivers `n` spans. `encode(range, out)` appends to `out` the protobuf body (an OTLP
    /// `ExportTraceServiceRequest`) for spans `range` of the current batch; it is called once
    /// per request (more than once for a range only when a 413 splits it).
    pub(crate) fn deliver(
        &mut self,
        n: usize,
        encode: &mut dyn FnMut(Range<usize>, &mut Vec<u8>),
    ) -> Delivery {
        let deadline = crate::clock::after(self.timeout);
        let mut done = Delivery::default();
        self.deliver_range(0..n, encode, deadline, &mut done);
        done
    }

    fn deliver_range(
        &mut self,
        range: Range<usize>,
        encode: &mut dyn FnMut(Range<usize>, &mut Vec<u8>),
        deadline: Instant,
        done: &mut Delivery,
    ) {
        let len = range.len();
        if len == 0 {
            return;
        }
        self.body.clear();
        encode(range.clone(), &mut self.body);
        let outcome = if self.body.len() >= self.too_large_at && len > 1 {
            Outcome::TooLarge
        } else {
            let outcome = self.post(deadline);
            if outcome == Outcome::TooLarge {
                self.too_large_at = self.too_large_at.min(self.body.len());
            }
            outcome
        };
        match outcome {
            Outcome::Accepted { rejected } => {
                let rejected = usize::try_from(rejected).unwrap_or(usize::MAX).min(len);
                done.delivered += len - rejected;
                done.failed += rejected;
            }
            Outcome::TooLarge if len > 1 => {
                let mid = range.start + len / 2;
                self.deliver_range(range.start..mid, encode, deadline, done);
                self.deliver_range(mid..range.end, encode, deadline, done);
            }
            Outcome::TooLarge => {
                report_once(&format!(
                    "{}: a single span is too large for the backend (HTTP 413, {} bytes); \
                     spans dropped",
                    self.client.endpoint,
                    self.body.len()
                ));
                done.failed += 1;
            }
            Outcome::Failed => done.failed += len,
        }
    }

    /// Sends `self.body`, retrying transient failures until `deadline`.
    fn post(&mut self, deadline: Instant) -> Outcome {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut throttled = false;
            let (error, retry_after) = match self.client.post(&self.body, deadline) {
                Ok(reply) => match reply.status {
                    200..=299 => {
                        let (rejected, message) = partial_success(&reply.body);
                        if let Some(message) = message.filter(|m| !m.is_empty()) {
                            report_once(&format!(
                                "{} rejected some spans: {message}",
                                self.client.endpoint
                            ));
                        }
                        return Outcome::Accepted { rejected };
                    }
                    413 => return Outcome::TooLarge,
                    429 | 502 | 503 | 504 => {
                        throttled = reply.status == 429;
                        (format!("HTTP {}", reply.status), reply.retry_after)
                    }
                    status => {
                        report_once(&refusal(status, &self.client.endpoint));
                        return Outcome::Failed;
                    }
                },
                Err(Error::Timeout) => {
                    report_once(&format!(
                        "{}: no answer within the export timeout; spans dropped",
                        self.client.endpoint
                    ));
                    return Outcome::Failed;
                }
                // Not HTTP: another protocol on that port (gRPC, TLS, SSH). It answers the same
                // way every time, and may have taken the request: not sent again.
                Err(Error::Malformed(why)) => {
                    report_once(&not_http(&self.client.endpoint, why));
                    return Outcome::Failed;
                }
                Err(Error::Io(e)) => (e.to_string(), None),
            };
            if attempts >= MAX_ATTEMPTS {
                report_once(&format!(
                    "{}: export failed ({error}) {MAX_ATTEMPTS} times in a row; spans dropped",
                    self.client.endpoint
                ));
                return Outcome::Failed;
            }
            let pause = retry_after.unwrap_or_else(|| jitter(backoff));
            backoff = next_backoff(backoff, throttled);
            // Compared, not added to now: a server's `Retry-After` can be any number.
            if pause >= deadline.saturating_duration_since(Instant::now()) {
                report_once(&format!(
                    "{}: export failed ({error}) and the export timeout ran out before it \
                     could be retried; spans dropped",
                    self.client.endpoint
                ));
                return Outcome::Failed;
            }
            std::thread::sleep(pause);
        }
    }
}

/// The pause after `backoff`: doubled, up to [`MAX_THROTTLE_BACKOFF`] after a 429 (the
/// backend is overloaded) and [`MAX_BACKOFF`] otherwise (it may be back any moment).
fn next_backoff(backoff: Duration, throttled: bool) -> Duration {
    let ceiling = if throttled {
        MAX_THROTTLE_BACKOFF
    } else {
        MAX_BACKOFF
    };
    (backoff * 2).min(ceiling)
}

/// The message for a status that is not retried.
fn refusal(status: u16, endpoint: &str) -> String {
    match status {
        401 => format!(
            "{endpoint} refused the export: HTTP 401 Unauthorized (check the API key); \
             spans dropped"
        ),
        403 => format!(
            "{endpoint} refused the export: HTTP 403 Forbidden (check the API key and \
             project); spans dropped"
        ),
        status => format!("{endpoint} refused the export: HTTP {status}; spans dropped"),
    }
}

/// The message for a response that is not HTTP/1.x.
fn not_http(endpoint: &str, why: &str) -> String {
    format!(
        "{endpoint} answered with something that is not an HTTP/1.x response ({why}); is it \
         an OTLP/HTTP endpoint (not a gRPC port, and https:// for a TLS port)? spans dropped"
    )
}

/// A random pause in `[d/2, d]`, so that exporters that failed together do not retry together.
pub(crate) fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    #[allow(clippy::cast_possible_truncation)] // the backoff is far below 2^64 ns
    let span = half.as_nanos() as u64 + 1;
    half + Duration::from_nanos(crate::rng::random_u64() % span)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted { rejected: u64 },
    TooLarge,
    Failed,
}

/// `rejected_spans` and `error_message` of an OTLP `ExportTraceServiceResponse`; zero and none
/// for an empty body or one that is not protobuf.
fn partial_success(body: &[u8]) -> (u64, Option<String>) {
    let mut rejected = 0;
    let mut message = None;
    for (field, value) in ProtoFields(body) {
        if let (1, ProtoValue::Bytes(partial)) = (field, value) {
            for (field, value) in ProtoFields(partial) {
                match (field, value) {
                    (1, ProtoValue::Varint(n)) => rejected = n,
                    (2, ProtoValue::Bytes(text)) => {
                        message = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    _ => {}
                }
            }
        }
    }
    (rejected, message)
}

/// One field of a protobuf message: a varint, or a length-delimited payload. Fixed-width
/// fields are skipped; they do not occur where this module looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProtoValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of a protobuf message, as `(field number, value)`; stops at the first malformed
/// byte.
struct ProtoFields<'a>(&'a [u8]);

impl<'a> Iterator for ProtoFields<'a> {
    type Item = (u64, ProtoValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let key = take_varint(&mut self.0)?;
        let value = match key & 7 {
            0 => ProtoValue::Varint(take_varint(&mut self.0)?),
            2 => {
                let len = usize::try_from(take_varint(&mut self.0)?).ok()?;
                let Some((payload, rest)) = self.0.split_at_checked(len) else {
                    self.0 = &[];
                    return None;
                };
                self.0 = rest;
                ProtoValue::Bytes(payload)
            }
            wire @ (1 | 5) => {
                let width = if wire == 1 { 8 } else { 4 };
                self.0 = self.0.get(width..)?;
                ProtoValue::Fixed
            }
            _ => {
                self.0 = &[];
                return None;
            }
        };
        Some((key >> 3, value))
    }
}

fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    *buf = &[];
    None
}

/// Why a [`send_json`] request got no answer.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The URL or a header cannot be used, or the server does not speak HTTP; sending again
    /// would not help.
    Invalid(String),
    /// Connecting, writing or reading failed, or the deadline passed.
    Io(String),
}

/// Sends one JSON request (`method` to `url`, the whole body in `body`) on a new connection
/// and returns the response's status and `Retry-After`, within `timeout`. For the feedback
/// sender, which sends a request now and then, so nothing is kept alive and nothing is retried
/// here.
pub(crate) fn send_json(
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Option<Duration>), SendError> {
    let mut client = Client::for_request(method, "application/json", url, headers)
        .map_err(SendError::Invalid)?;
    match client.post(body, crate::clock::after(timeout)) {
        Ok(reply) => Ok((reply.status, reply.retry_after)),
        Err(Error::Timeout) => Err(SendError::Io(format!("no answer within {timeout:?}"))),
        Err(Error::Malformed(why)) => Err(SendError::Invalid(not_http(&client.endpoint, why))),
        Err(Error::Io(e)) => Err(SendError::Io(e.to_string())),
    }
}

/// Prints `honeyhive: {msg}` on stderr the first time a message is seen, then at most once per
/// [`REPEAT_AFTER`] with how many times it recurred, so a failure that repeats every batch
/// (a wrong API key) is one line, not thousands.
pub(crate) fn report_once(msg: &str) {
    let mut reports = REPORTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(line) = reports
        .get_or_insert_with(Reports::default)
        .admit(msg, Instant::now())
    {
        eprintln!("honeyhive: {line}");
    }
}

/// A message printed again after this long, if it recurred.
const REPEAT_AFTER: Duration = Duration::from_mins(5);
/// Distinct messages remembered; past this the stalest is forgotten.
const MAX_REPORTS: usize = 64;

static REPORTS: Mutex<Option<Reports>> = Mutex::new(None);

#[derive(Default)]
struct Reports {
    seen: HashMap<String, Seen>,
}

struct Seen {
    printed_at: Instant,
    printed: u64,
    suppressed: u64,
}

impl Reports {
    /// The line to print for `msg` at `now`, if any.
    fn admit(&mut self, msg: &str, now: Instant) -> Option<String> {
        if let Some(seen) = self.seen.get_mut(msg) {
            if now.duration_since(seen.printed_at) < REPEAT_AFTER {
                seen.suppressed += 1;
                return None;
            }
            let line = format!("{msg} (repeated {} times)", seen.suppressed);
            seen.printed_at = now;
            seen.printed += 1;
            seen.suppressed = 0;
            return Some(line);
        }
        if self.seen.len() >= MAX_REPORTS
            && let Some(stalest) = self
                .seen
                .iter()
                .min_by_key(|(_, seen)| seen.printed_at)
                .map(|(msg, _)| msg.clone())
        {
            self.seen.remove(&stalest);
        }
        let seen = Seen {
            printed_at: now,
            printed: 1,
            suppressed: 0,
        };
        self.seen.insert(msg.to_owned(), seen);
        Some(msg.to_owned())
    }
}

/// A failed request attempt.
#[derive(Debug)]
enum Error {
    /// The deadline passed.
    Timeout,
    /// What came back before a status line was not an HTTP/1.x response head: not retried.
    Malformed(&'static str),
    /// Connecting, writing or reading failed: retried.
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout,
            _ => Error::Io(e),
        }
    }
}

/// What the client needs of a response.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// What an `https://` connection is set up with.
#[cfg(feature = "tls")]
type TlsSetup = (
    std::sync::Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
);
#[cfg(not(feature = "tls"))]
type TlsSetup = std::convert::Infallible;

/// A connection: plain TCP, or TLS over it.
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.flush(),
        }
    }
}

/// A TLS client configuration trusting `roots`, on the ring provider.
#[cfg(feature = "tls")]
fn tls_config(
    roots: rustls::RootCertStore,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// An HTTP/1.1 client for one `http://` or `https://` endpoint, one request at a time, on a kept-alive
/// connection.
struct Client {
    endpoint: String,
    host: String,
    port: u16,
    /// Request line and fixed headers, up to the `Content-Length` header.
    head: Vec<u8>,
    /// `head` plus the length header and the blank line, for the current request.
    prefix: Vec<u8>,
    /// Set for `https://`.
    tls: Option<TlsSetup>,
    conn: Option<Conn>,
    /// Response bytes read and not yet parsed.
    read_buf: Vec<u8>,
    /// The current response's body.
    body_buf: Vec<u8>,
}

impl Client {
    fn new(endpoint: &str, headers: &BTreeMap<String, String>) -> Result<Client, String> {
        Client::for_request("POST", "application/x-protobuf", endpoint, headers)
    }

    /// A client whose requests use `method` and `content_type` (JSON for [`send_json`]).
    ///
    /// The scheme is matched in any case and whitespace around the URL is ignored. Credentials
    /// in it (`http://user:password@host`) are sent as `Authorization: Basic`, as curl sends
    /// them, unless `headers` has an `authorization` of its own; they are never part of `Host`
    /// or of a message (see [`without_password`]).
    fn for_request(
        method: &str,
        content_type: &str,
        endpoint: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<Client, String> {
        let url = endpoint.trim();
        let endpoint = without_password(url);
        let (scheme, rest) = url.split_once("://").unwrap_or_default();
        let (default_port, tls) = if scheme.eq_ignore_ascii_case("http") {
            (80, false)
        } else if scheme.eq_ignore_ascii_case("https") {
            if cfg!(not(feature = "tls")) {
                return Err(format!(
                    "{endpoint}: https is not supported: this build of honeyhive-runtime has no \
                     TLS backend (enable its `tls` feature)"
                ));
            }
            (443, true)
        } else {
            return Err(format!("{endpoint}: not an http:// or https:// URL"));
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port, default_port)
            .ok_or_else(|| format!("{endpoint}: cannot read the host and port"))?;
        let tls = if tls {
            Some(tls_setup(host, &endpoint)?)
        } else {
            None
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: {content_type}\r\n"
        );
        for (name, value) in headers {
            check_header(name, value)
                .map_err(|why| format!("{endpoint}: header `{name}`: {why}"))?;
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("host") {
                continue;
            }
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if let Some(userinfo) = userinfo
            && !headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("authorization"))
        {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let mut credentials = percent_decode(user);
            credentials.push(b':');
            credentials.extend(percent_decode(password));
            let _ = write!(head, "Authorization: Basic {}\r\n", base64(&credentials));
        }
        Ok(Client {
            endpoint,
            host: host.to_owned(),
            port,
            head: head.into_bytes(),
            prefix: Vec::new(),
            tls,
            conn: None,
            read_buf: Vec::with_capacity(8 * 1024),
            body_buf: Vec::new(),
        })
    }

    /// One request: on the kept-alive connection if there is one (and once more on a new
    /// connection if the server had closed it), else on a new connection.
    fn post(&mut self, body: &[u8], deadline: Instant) -> Result<Reply, Error> {
        self.prefix.clear();
        self.prefix.extend_from_slice(&self.head);
        let _ = write!(
            VecWriter(&mut self.prefix),
            "Content-Length: {}\r\n\r\n",
            body.len()
        );
        if self.conn.is_some() {
            match self.exchange(body, deadline) {
                Ok(reply) => return Ok(reply),
                // The server closed the idle connection (or reset it): not a failure yet.
                Err(Stale::Closed) => self.conn = None,
                Err(Stale::Failed(e)) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        self.connect(deadline)?;
        self.exchange(body, deadline).map_err(|e| {
            self.conn = None;
            match e {
                Stale::Closed => Error::Io(io::ErrorKind::ConnectionReset.into()),
                Stale::Failed(e) => e,
            }
        })
    }

    fn connect(&mut self, deadline: Instant) -> Result<(), Error> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for addr in addrs {
            let limit = remaining(deadline)?.min(CONNECT_TIMEOUT);
            match TcpStream::connect_timeout(&addr, limit) {
                Ok(stream) => {
                    // Head and body go out in one write; don't hold the last segment back.
                    stream.set_nodelay(true)?;
                    self.conn = Some(match &self.tls {
                        None => Conn::Plain(stream),
                        #[cfg(feature = "tls")]
                        Some((config, name)) => {
                            let tls = rustls::ClientConnection::new(config.clone(), name.clone())
                                .map_err(io::Error::other)?;
                            Conn::Tls(Box::new(rustls::StreamOwned::new(tls, stream)))
                        }
                        #[cfg(not(feature = "tls"))]
                        Some(never) => match *never {},
                    });
                    self.read_buf.clear();
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        if last.kind() == io::ErrorKind::TimedOut && remaining(deadline).is_err() {
            return Err(Error::Timeout);
        }
        Err(Error::Io(last))
    }

    fn exchange(&mut self, body: &[u8], deadline: Instant) -> Result<Reply, Stale> {
        let Some(stream) = self.conn.as_mut() else {
            return Err(Stale::Closed);
        };
        let at_start = |e: Error| match e {
            Error::Io(ref io) if is_closed(io) => Stale::Closed,
            e => Stale::Failed(e),
        };
        stream
            .tcp()
            .set_write_timeout(Some(remaining(deadline).map_err(Stale::Failed)?))
            .map_err(|e| Stale::Failed(e.into()))?;
        write_all(stream, &self.prefix, body).map_err(|e| at_start(e.into()))?;
        let (reply, keep) =
            read_response(stream, &mut self.read_buf, &mut self.body_buf, deadline)?;
        if !keep {
            self.conn = None;
        }
        Ok(reply)
    }
}

/// Why a request on a connection did not get a response.
enum Stale {
    /// The connection was closed before any of the response arrived: a kept-alive connection
    /// the server had closed; the request can go again on a new one.
    Closed,
    Failed(Error),
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn remaining(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Error::Timeout)
    } else {
        Ok(left)
    }
}

/// `write!` into a `Vec` without going through `io::Write`'s error type.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes head and body with as few `writev` calls as the socket allows.
fn write_all(stream: &mut Conn, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(body)];
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match stream.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // TLS holds records back until flushed.
    stream.flush()
}

/// Reads one response; also says whether the connection can be used again.
fn read_response(
    stream: &mut Conn,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(Reply, bool), Stale> {
    buf.clear();
    loop {
        // Interim responses (100 Continue) come before the real one.
        let head_end = loop {
            if let Some(i) = find(buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(Stale::Failed(Error::Malformed("response head too large")));
            }
            let before = buf.len();
            match fill(stream, buf, deadline) {
                Ok(0) if before == 0 => return Err(Stale::Closed),
                Ok(0) => {
                    return Err(Stale::Failed(Error::Io(
                        io::ErrorKind::UnexpectedEof.into(),
                    )));
                }
                Ok(_) => {}
                Err(Error::Io(e)) if before == 0 && is_closed(&e) => return Err(Stale::Closed),
                Err(e) => return Err(Stale::Failed(e)),
            }
        };
        let head = parse_head(&buf[..head_end]).map_err(|e| Stale::Failed(Error::Malformed(e)))?;
        buf.drain(..head_end);
        if (100..200).contains(&head.status) {
            continue;
        }
        // The status is the answer: a body cut off (the connection dropped, the deadline
        // passed) does not undo it, so a 2xx is delivered and is not sent again. What the
        // body said (a partial success) is unknown then.
        let complete = read_body(stream, buf, body, &head, deadline).unwrap_or_else(|_| {
            body.clear();
            false
        });
        // Leftover bytes would be a response to nothing: don't trust the connection then.
        let keep = head.keep_alive && complete && buf.is_empty();
        let reply = Reply {
            status: head.status,
            retry_after: head.retry_after,
            body: std::mem::take(body),
        };
        return Ok((reply, keep));
    }
}

struct Head {
    status: u16,
    retry_after: Option<Duration>,
    keep_alive: bool,
    length: Option<usize>,
    chunked: bool,
}

fn parse_head(head: &[u8]) -> Result<Head, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or("malformed status line")?;
    let mut parsed = Head {
        status,
        retry_after: None,
        keep_alive: version == "HTTP/1.1",
        length: None,
        chunked: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = Some(value.parse().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                parsed.keep_alive = false;
            } else if value.contains("keep-alive") {
                parsed.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("retry-after") {
            parsed.retry_after = retry_after(value, SystemTime::now());
        }
    }
    Ok(parsed)
}

/// `Retry-After` as delay-seconds or an HTTP date. Any number of seconds is read (one too
/// large for the clock is compared with the deadline, never added to it).
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads the body into `body` (its first [`MAX_RESPONSE_BODY`] bytes); `false` if it was
/// delimited by the connection closing.
fn read_body(
    stream: &mut Conn,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    head: &Head,
    deadline: Instant,
) -> Result<bool, Error> {
    body.clear();
    if head.status == 204 || head.status == 304 {
        return Ok(true);
    }
    if head.chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                fill_or_eof(stream, buf, deadline)?;
            };
            let size_text = std::str::from_utf8(&buf[..line_end]).unwrap_or_default();
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| Error::Io(invalid("bad chunk size")))?;
            buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    if let Some(i) = find(buf, b"\r\n") {
                        buf.drain(..i + 2);
                        if i == 0 {
                            return Ok(true);
                        }
                    } else {
                        fill_or_eof(stream, buf, deadline)?;
                    }
                }
            }
            take_exact(stream, buf, body, size, deadline)?;
            while buf.len() < 2 {
                fill_or_eof(stream, buf, deadline)?;
            }
            buf.drain(..2);
        }
    }
    if let Some(length) = head.length {
        take_exact(stream, buf, body, length, deadline)?;
        return Ok(true);
    }
    // Neither length nor chunks: the body ends when the server closes the connection.
    loop {
        keep_some(body, buf);
        if fill(stream, buf, deadline)? == 0 {
            return Ok(false);
        }
    }
}

/// Moves `n` body bytes from the stream (through `buf`) into `body`.
fn take_exact(
    stream: &mut Conn,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    mut n: usize,
    deadline: Instant,
) -> Result<(), Error> {
    loop {
        let take = n.min(buf.len());
        let room = MAX_RESPONSE_BODY.saturating_sub(body.len()).min(take);
        body.extend_from_slice(&buf[..room]);
        buf.drain(..take);
        n -= take;
        if n == 0 {
            return Ok(());
        }
        fill_or_eof(stream, buf, deadline)?;
    }
}

fn keep_some(body: &mut Vec<u8>, buf: &mut Vec<u8>) {
    let room = MAX_RESPONSE_BODY.saturating_sub(body.len()).min(buf.len());
    body.extend_from_slice(&buf[..room]);
    buf.clear();
}

fn fill_or_eof(stream: &mut Conn, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), Error> {
    match fill(stream, buf, deadline)? {
        0 => Err(Error::Io(io::ErrorKind::UnexpectedEof.into())),
        _ => Ok(()),
    }
}

/// One `read` into the spare room of `buf`, bounded by the deadline.
fn fill(stream: &mut Conn, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize, Error> {
    stream.tcp().set_read_timeout(Some(remaining(deadline)?))?;
    let start = buf.len();
    buf.resize(start + 8 * 1024, 0);
    let read = loop {
        match stream.read(&mut buf[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    Ok(read?)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(feature = "tls")]
fn tls_setup(host: &str, endpoint: &str) -> Result<TlsSetup, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{endpoint}: {e}"))?;
    Ok((tls_config(roots)?, name))
}

#[cfg(not(feature = "tls"))]
fn tls_setup(_: &str, endpoint: &str) -> Result<TlsSetup, String> {
    Err(format!("{endpoint}: no TLS backend"))
}

/// Whether `name: value` can go in a request: a name that is an HTTP token (RFC 9110), a
/// value without control characters (a CR or LF would start a header of its own).
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), &'static str> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err("not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)");
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("the value has a control character (a line break would start a header)");
    }
    Ok(())
}

/// `url` for a message: the password of its userinfo replaced by `***`, or the whole
/// userinfo when it has no password (a token given as the user name).
pub(crate) fn without_password(url: &str) -> String {
    let url = url.trim();
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..end].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    let user = match url[start..at].split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{user}{}", &url[..start], &url[at..])
}

/// `%XX` escapes decoded; a `%` not followed by two hex digits is kept as it is.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `host` and port of an authority without userinfo (`host`, `host:port`, `[v6]:port`).
fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, default_port)),
    }
    .filter(|(host, _)| !host.is_empty())
}

#[cfg(test)]
impl Reports {
    /// How many times a message containing `part` was printed.
    fn printed(part: &str) -> u64 {
        let reports = REPORTS.lock().unwrap_or_else(PoisonError::into_inner);
        reports.as_ref().map_or(0, |r| {
            r.seen
                .iter()
                .filter(|(msg, _)| msg.contains(part))
                .map(|(_, seen)| seen.printed)
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    // ---- protobuf: the request bodies the export thread would send ----

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            #[allow(clippy::cast_possible_truncation)] // the low 7 bits
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        #[allow(clippy::cast_possible_truncation)] // below 0x80
        out.push(v as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        put_varint(out, field << 3 | 2);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// An `ExportTraceServiceRequest` with one span per index, its span id the index and its
    /// name `name(index)`.
    fn encode_spans(range: Range<usize>, out: &mut Vec<u8>, name: &dyn Fn(usize) -> String) {
        let mut scope_spans = Vec::new();
        for i in range {
            let mut span = Vec::new();
            put_bytes(&mut span, 1, &[7; 16]);
            put_bytes(&mut span, 2, &(i as u64).to_le_bytes());
            put_bytes(&mut span, 5, name(i).as_bytes());
            put_bytes(&mut scope_spans, 2, &span);
        }
        let mut resource_spans = Vec::new();
        put_bytes(&mut resource_spans, 2, &scope_spans);
        put_bytes(out, 1, &resource_spans);
    }

    fn plain(range: Range<usize>, out: &mut Vec<u8>) {
        encode_spans(range, out, &|_| "llm.call".to_owned());
    }

    /// The span ids in a request body.
    fn span_ids(body: &[u8]) -> Vec<u64> {
        let mut ids = Vec::new();
        for (f, v) in ProtoFields(body) {
            let (1, ProtoValue::Bytes(resource)) = (f, v) else {
                continue;
            };
            for (f, v) in ProtoFields(resource) {
                let (2, ProtoValue::Bytes(scope)) = (f, v) else {
                    continue;
                };
                for (f, v) in ProtoFields(scope) {
                    let (2, ProtoValue::Bytes(span)) = (f, v) else {
                        continue;
                    };
                    for (f, v) in ProtoFields(span) {
                        if let (2, ProtoValue::Bytes(id)) = (f, v) {
                            ids.push(u64::from_le_bytes(id.try_into().unwrap()));
                        }
                    }
                }
            }
        }
        ids
    }

    fn partial_success_body(rejected: u64, message: &str) -> Vec<u8> {
        let mut partial = Vec::new();
        put_varint(&mut partial, 1 << 3);
        put_varint(&mut partial, rejected);
        put_bytes(&mut partial, 2, message.as_bytes());
        let mut body = Vec::new();
        put_bytes(&mut body, 1, &partial);
        body
    }

    // ---- a test backend on 127.0.0.1 ----

    /// A request as the server saw it.
    struct Seen {
        at: Instant,
        connection: usize,
        /// Request line and headers, lowercased.
        head: String,
        body: Vec<u8>,
        /// The status answered, if any.
        status: Option<u16>,
    }

    /// What the server does with a request.
    enum Answer {
        /// Status, extra header lines, body.
        Reply(u16, Vec<String>, Vec<u8>),
        /// Close the connection without answering.
        Close,
        /// Answer 200 and close the connection without saying so.
        OkThenClose,
        /// Send these bytes, then nothing more (until the client goes away).
        Hang(&'static [u8]),
        /// Send these bytes and close the connection.
        Cut(&'static [u8]),
        /// Send a never-ending head, a byte every 10 ms.
        Trickle,
    }

    fn reply(status: u16) -> Answer {
        Answer::Reply(status, Vec::new(), Vec::new())
    }

    type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;
    type Answering = fn(&Seen, usize) -> Answer;

    struct Backend {
        url: String,
        connections: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<Seen>>>,
        stop: Arc<AtomicBool>,
        addr: SocketAddr,
    }

    impl Backend {
        /// Serves on a fresh port; `answer(request, index)` decides each response, `index`
        /// counting requests from 0.
        fn start(answer: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Backend {
            Backend::start_with("http", |tcp| Box::new(tcp), answer)
        }

        /// Like [`Backend::start`], each connection wrapped by `wrap` (TLS), at `scheme://`.
        fn start_with(
            scheme: &str,
            wrap: impl Fn(TcpStream) -> Box<dyn Duplex> + Send + 'static,
            answer: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
        ) -> Backend {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let answer: Arc<Handler> = Arc::new(answer);
            let (c, s, st) = (connections.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if st.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = c.fetch_add(1, Ordering::Relaxed);
                    let (s, answer) = (s.clone(), answer.clone());
                    let stream = wrap(stream);
                    std::thread::spawn(move || serve_connection(stream, id, &s, &*answer));
                }
            });
            Backend {
                url: format!("{scheme}://{addr}/v1/traces"),
                connections,
                seen,
                stop,
                addr,
            }
        }

        fn requests(&self) -> usize {
            self.seen.lock().unwrap().len()
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::Relaxed)
        }

        /// Span ids of the requests answered 2xx, in order.
        fn delivered_ids(&self) -> Vec<u64> {
            let seen = self.seen.lock().unwrap();
            seen.iter()
                .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
                .flat_map(|r| span_ids(&r.body))
                .collect()
        }

        fn transport(&self, timeout: Duration) -> HttpTransport {
            HttpTransport::new(&self.url, &BTreeMap::new(), timeout).unwrap()
        }
    }

    impl Drop for Backend {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            let _ = TcpStream::connect(self.addr);
        }
    }

    trait Duplex: Read + Write + Send {}
    impl<T: Read + Write + Send> Duplex for T {}

    fn serve_connection(
        mut stream: Box<dyn Duplex>,
        connection: usize,
        seen: &Mutex<Vec<Seen>>,
        answer: &Handler,
    ) {
        let mut buf = Vec::new();
        loop {
            let Some((head, body)) = read_request(&mut stream, &mut buf) else {
                return;
            };
            let mut request = Seen {
                at: Instant::now(),
                connection,
                head,
                body,
                status: None,
            };
            let index = {
                let seen = seen.lock().unwrap();
                seen.len()
            };
            let answer = answer(&request, index);
            request.status = match answer {
                Answer::Reply(status, ..) => Some(status),
                Answer::OkThenClose => Some(200),
                _ => None,
            };
            seen.lock().unwrap().push(request);
            match answer {
                Answer::Reply(status, headers, body) => {
                    let mut out =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                    for h in headers {
                        out.push_str(&h);
                        out.push_str("\r\n");
                    }
                    out.push_str("\r\n");
                    let mut out = out.into_bytes();
                    out.extend_from_slice(&body);
                    if stream.write_all(&out).is_err() {
                        return;
                    }
                }
                Answer::Close => return,
                Answer::OkThenClose => {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                Answer::Cut(bytes) => {
                    let _ = stream.write_all(bytes);
                    return;
                }
                Answer::Hang(bytes) => {
                    let _ = stream.write_all(bytes);
                    // Until the client gives up and closes.
                    let _ = stream.read_to_end(&mut Vec::new());
                    return;
                }
                Answer::Trickle => {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ");
                    while stream.write_all(b"z").is_ok() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    return;
                }
            }
        }
    }

    /// The body of the next request on the connection; `None` when the client closed it.
    fn read_request(stream: &mut dyn Read, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = find(buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("post /v1/traces http/1.1\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/x-protobuf\r\n"),
            "{head}"
        );
        let length: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        Some((head, body))
    }

    fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
        ids.sort_unstable();
        ids
    }

    const SECOND: Duration = Duration::from_secs(1);

    // ---- tests ----

    #[test]
    fn a_413_splits_the_batch_until_every_part_fits() {
        const LIMIT: usize = 2_000;
        let backend = Backend::start(|r, _| reply(if r.body.len() > LIMIT { 413 } else { 200 }));
        let mut transport = backend.transport(5 * SECOND);

        let done = transport.deliver(300, &mut plain);

        assert_eq!(
            done,
            Delivery {
                delivered: 300,
                failed: 0
            }
        );
        assert_eq!(
            sorted(backend.delivered_ids()),
            (0..300).collect::<Vec<_>>()
        );

        // The next batch is split before it is sent: the refused size is remembered.
        let before = backend.requests();
        let done = transport.deliver(300, &mut plain);
        assert_eq!(
            done,
            Delivery {
                delivered: 300,
                failed: 0
            }
        );
        let seen = backend.seen.lock().unwrap();
        assert!(seen[before..].iter().all(|r| r.body.len() <= LIMIT));
    }

    #[test]
    fn a_413_for_a_single_span_loses_only_that_span() {
        const LIMIT: usize = 4_000;
        let backend = Backend::start(|r, _| reply(if r.body.len() > LIMIT { 413 } else { 200 }));
        let mut transport = backend.transport(5 * SECOND);
        let big = |i: usize| {
            if i == 37 {
                "x".repeat(5_000)
            } else {
                format!("span {i}")
            }
        };

        let done = transport.deliver(64, &mut |range, out| encode_spans(range, out, &big));

        assert_eq!(
            done,
            Delivery {
                delivered: 63,
                failed: 1
            }
        );
        let expected: Vec<u64> = (0..64).filter(|&i| i != 37).collect();
        assert_eq!(sorted(backend.delivered_ids()), expected);
        assert_eq!(
            Reports::printed(&format!("{}: a single span is too large", backend.url)),
            1
        );
    }

    #[test]
    fn unauthorized_and_forbidden_are_reported_once_and_counted_failed() {
        for status in [401, 403] {
            let backend = Backend::start(move |_, _| reply(status));
            let headers = BTreeMap::from([("authorization".to_owned(), "Bearer hh-1".to_owned())]);
            let mut transport = HttpTransport::new(&backend.url, &headers, 5 * SECOND).unwrap();
            for _ in 0..3 {
                assert_eq!(
                    transport.deliver(10, &mut plain),
                    Delivery {
                        delivered: 0,
                        failed: 10
                    }
                );
            }
            // Not retried: one request per batch.
            assert_eq!(backend.requests(), 3);
            let seen = backend.seen.lock().unwrap();
            assert!(
                seen.iter()
                    .all(|r| r.head.contains("\r\nauthorization: bearer hh-1\r\n"))
            );
            let message = format!("{} refused the export: HTTP {status}", backend.url);
            assert_eq!(Reports::printed(&message), 1, "{message}");
        }
    }

    #[test]
    fn retryable_statuses_are_retried_until_accepted() {
        let statuses = [429, 502, 503, 504, 200];
        let backend = Backend::start(move |_, i| reply(statuses[i.min(4)]));
        let mut transport = backend.transport(5 * SECOND);

        assert_eq!(
            transport.deliver(20, &mut plain),
            Delivery {
                delivered: 20,
                failed: 0
            }
        );

        assert_eq!(backend.requests(), 5);
        assert_eq!(backend.delivered_ids(), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn a_backend_that_keeps_throttling_is_tried_a_bounded_number_of_times() {
        let backend = Backend::start(|_, _| reply(429));
        // A deadline far beyond what the tries take: the attempt cap ends it, not the clock.
        let mut transport = backend.transport(600 * SECOND);

        assert_eq!(
            transport.deliver(20, &mut plain),
            Delivery {
                delivered: 0,
                failed: 20
            }
        );

        assert_eq!(backend.requests(), MAX_ATTEMPTS as usize);
        let message = format!(
            "{}: export failed (HTTP 429) {MAX_ATTEMPTS} times in a row",
            backend.url
        );
        assert_eq!(Reports::printed(&message), 1, "{message}");
    }

    #[test]
    fn throttling_backs_off_further_than_other_transient_failures() {
        let pauses = |throttled| {
            let mut backoff = FIRST_BACKOFF;
            let mut seen = Vec::new();
            for _ in 0..MAX_ATTEMPTS {
                seen.push(backoff);
                backoff = next_backoff(backoff, throttled);
            }
            seen
        };
        let (throttled, other) = (pauses(true), pauses(false));
        assert_eq!(throttled.iter().max(), Some(&MAX_THROTTLE_BACKOFF));
        assert_eq!(other.iter().max(), Some(&MAX_BACKOFF));
        assert!(throttled.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            throttled[..4],
            other[..4],
            "both start at {FIRST_BACKOFF:?}, doubling"
        );
    }

    #[test]
    fn a_429_with_retry_after_is_retried_no_sooner_than_asked() {
        let backend = Backend::start(|_, i| match i {
            0 => Answer::Reply(429, vec!["Retry-After: 1".to_owned()], Vec::new()),
            _ => reply(200),
        });
        let mut transport = backend.transport(5 * SECOND);

        assert_eq!(
            transport.deliver(8, &mut plain),
            Delivery {
                delivered: 8,
                failed: 0
            }
        );

        let seen = backend.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[1].at.duration_since(seen[0].at) >= SECOND);
    }

    #[test]
    fn a_retry_after_beyond_the_deadline_fails_without_waiting_for_it() {
        // An hour, and more seconds than the clock can add to now.
        for wait in ["3600", "18446744073709551615"] {
            let backend = Backend::start(move |_, _| {
                Answer::Reply(503, vec![format!("Retry-After: {wait}")], Vec::new())
            });
            let mut transport = backend.transport(5 * SECOND);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(transport.deliver(8, &mut plain)).unwrap());
            // Well before the 5 s export timeout: it gave up as soon as it read the header.
            let done = rx.recv_timeout(4 * SECOND).expect("waited for Retry-After");
            assert_eq!(
                done,
                Delivery {
                    delivered: 0,
                    failed: 8
                },
                "{wait}"
            );
            assert_eq!(backend.requests(), 1, "{wait}");
        }
    }

    #[test]
    fn a_2xx_whose_body_is_cut_off_is_delivered_once() {
        // The connection closes in the body; the body never comes (until the deadline).
        let cases: [(&str, Answering); 2] = [
            ("closed", |_, _| {
                Answer::Cut(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            }),
            ("hung", |_, _| {
                Answer::Hang(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
            }),
        ];
        for (name, answer) in cases {
            let backend = Backend::start(answer);
            let mut transport = backend.transport(Duration::from_millis(300));
            assert_eq!(
                transport.deliver(6, &mut plain),
                Delivery {
                    delivered: 6,
                    failed: 0
                },
                "{name}"
            );
            assert_eq!(backend.requests(), 1, "{name}: sent again");
            // The connection is not trusted again: the next batch goes on a new one.
            assert_eq!(transport.deliver(2, &mut plain).delivered, 2, "{name}");
            assert_eq!(backend.connections(), 2, "{name}");
        }
    }

    #[test]
    fn an_answer_that_is_not_http_is_reported_and_not_sent_again() {
        let backend = Backend::start(|_, _| Answer::Cut(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"));
        let mut transport = backend.transport(5 * SECOND);
        assert_eq!(
            transport.deliver(4, &mut plain),
            Delivery {
                delivered: 0,
                failed: 4
            }
        );
        assert_eq!(backend.requests(), 1);
        let message = format!(
            "{} answered with something that is not an HTTP/1.x response (malformed status \
             line)",
            backend.url
        );
        assert_eq!(Reports::printed(&message), 1, "{message}");
    }

    #[test]
    fn credentials_in_the_url_are_sent_as_basic_auth_and_never_shown() {
        let backend = Backend::start(|_, _| reply(401));
        let addr = backend.addr;
        let url = format!("http://us%65r:s3cr%3At@{addr}/v1/traces");
        let mut transport = HttpTransport::new(&url, &BTreeMap::new(), 5 * SECOND).unwrap();
        assert_eq!(transport.deliver(1, &mut plain).failed, 1);
        {
            let seen = backend.seen.lock().unwrap();
            let head = &seen[0].head;
            assert!(head.contains(&format!("\r\nhost: {addr}\r\n")), "{head}");
            // base64("user:s3cr:t"), lowercased as the backend records heads.
            let basic = base64(b"user:s3cr:t");
            assert!(
                head.contains(&format!(
                    "\r\nauthorization: basic {}\r\n",
                    basic.to_lowercase()
                )),
                "{head}"
            );
        }
        let shown = format!("http://us%65r:***@{addr}/v1/traces refused the export: HTTP 401");
        assert_eq!(Reports::printed(&shown), 1, "{shown}");
        assert_eq!(Reports::printed("s3cr"), 0, "the password was printed");

        // An authorization header of one's own wins.
        let own = BTreeMap::from([("authorization".to_owned(), "Bearer k".to_owned())]);
        let mut transport = HttpTransport::new(&url, &own, 5 * SECOND).unwrap();
        transport.deliver(1, &mut plain);
        let seen = backend.seen.lock().unwrap();
        assert!(seen[1].head.contains("\r\nauthorization: bearer k\r\n"));
        assert!(!seen[1].head.contains("basic"), "{}", seen[1].head);
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn urls_in_messages_hide_the_password() {
        for (url, shown) in [
            ("http://u:p@h:1/v1/traces", "http://u:***@h:1/v1/traces"),
            ("https://token@h/x", "https://***@h/x"),
            ("http://u:p@ss@h", "http://u:***@h"),
            ("http://h:1/a@b", "http://h:1/a@b"),
            (" http://h:1 ", "http://h:1"),
        ] {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }

    #[test]
    fn a_deadline_too_far_for_the_clock_does_not_overflow() {
        assert!(crate::clock::after(Duration::MAX) > Instant::now());
        let mut transport = HttpTransport::new(
            "http://127.0.0.1:4318/v1/traces",
            &BTreeMap::new(),
            Duration::MAX,
        )
        .unwrap();
        // Nothing to send: returns at once, after computing the deadline.
        assert_eq!(transport.deliver(0, &mut plain), Delivery::default());
    }

    #[test]
    fn server_errors_and_other_client_errors_are_not_retried() {
        for status in [500, 400, 404, 501] {
            let backend = Backend::start(move |_, _| reply(status));
            let mut transport = backend.transport(5 * SECOND);
            assert_eq!(
                transport.deliver(5, &mut plain),
                Delivery {
                    delivered: 0,
                    failed: 5
                }
            );
            assert_eq!(backend.requests(), 1, "HTTP {status}");
            let message = format!("{} refused the export: HTTP {status}", backend.url);
            assert_eq!(Reports::printed(&message), 1, "{message}");
        }
    }

    #[test]
    fn partial_success_counts_rejected_spans_as_failed() {
        let backend = Backend::start(|_, _| {
            let body = partial_success_body(3, "3 spans had no name");
            Answer::Reply(
                200,
                vec!["Content-Type: application/x-protobuf".to_owned()],
                body,
            )
        });
        let mut transport = backend.transport(5 * SECOND);

        assert_eq!(
            transport.deliver(10, &mut plain),
            Delivery {
                delivered: 7,
                failed: 3
            }
        );
        assert_eq!(Reports::printed("3 spans had no name"), 1);
    }

    #[test]
    fn a_chunked_partial_success_is_read_and_the_connection_kept() {
        // Written by hand: the chunked encoding, a trailer, and the next request on the
        // same connection.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let body = partial_success_body(2, "");
            read_request(&mut stream, &mut buf).unwrap();
            let (a, b) = body.split_at(3);
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            out.extend_from_slice(format!("{:x};ext=1\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
            stream.write_all(&out).unwrap();
            read_request(&mut stream, &mut buf).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        let mut transport = HttpTransport::new(&url, &BTreeMap::new(), 5 * SECOND).unwrap();

        assert_eq!(
            transport.deliver(5, &mut plain),
            Delivery {
                delivered: 3,
                failed: 2
            }
        );
        assert_eq!(
            transport.deliver(5, &mut plain),
            Delivery {
                delivered: 5,
                failed: 0
            }
        );
        server.join().unwrap();
    }

    #[test]
    fn a_refused_connection_is_retried_then_fails_at_the_deadline() {
        let refusing = crate::testing::RefusingPort::bind();
        let addr = refusing.addr();
        let url = format!("http://{addr}/v1/traces");
        let mut transport =
            HttpTransport::new(&url, &BTreeMap::new(), Duration::from_millis(300)).unwrap();

        assert_eq!(
            transport.deliver(4, &mut plain),
            Delivery {
                delivered: 0,
                failed: 4
            }
        );
        // One line naming the endpoint. Which one depends on where the deadline falls: between
        // two refused attempts ("export failed .. the export timeout ran out"), or, on a
        // loaded machine, during an attempt ("no answer within the export timeout").
        let reported: u64 = ["export failed", "no answer within the export timeout"]
            .iter()
            .map(|m| Reports::printed(&format!("{url}: {m}")))
            .sum();
        assert_eq!(reported, 1);
    }

    #[test]
    fn a_hung_backend_is_bounded_by_the_timeout() {
        // Silent; a head that never ends. (A 2xx head and never the body is delivered: see
        // `a_2xx_whose_body_is_cut_off_is_delivered_once`.)
        let cases: [(&str, Answering); 2] = [
            ("silent", |_, _| Answer::Hang(b"")),
            ("trickle", |_, _| Answer::Trickle),
        ];
        for (name, answer) in cases {
            let backend = Backend::start(answer);
            let mut transport = backend.transport(Duration::from_millis(300));
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(transport.deliver(6, &mut plain)).unwrap());
            let done = rx.recv_timeout(10 * SECOND).expect(name);
            assert_eq!(
                done,
                Delivery {
                    delivered: 0,
                    failed: 6
                },
                "{name}"
            );
        }
    }

    #[test]
    fn one_connection_is_kept_alive_across_batches() {
        let backend = Backend::start(|_, _| reply(200));
        let mut transport = backend.transport(5 * SECOND);
        for _ in 0..20 {
            assert_eq!(
                transport.deliver(50, &mut plain),
                Delivery {
                    delivered: 50,
                    failed: 0
                }
            );
        }
        assert_eq!(backend.requests(), 20);
        assert_eq!(backend.connections(), 1);
    }

    #[test]
    fn a_connection_the_server_closes_is_replaced_without_losing_spans() {
        // `Connection: close` announced; closed silently after each response; closed with no
        // answer on every other connection.
        let announced = Backend::start(|_, _| {
            Answer::Reply(200, vec!["Connection: close".to_owned()], Vec::new())
        });
        let silent = Backend::start(|_, _| Answer::OkThenClose);
        let dropped = Backend::start(|r, _| {
            if r.connection % 2 == 1 {
                Answer::Close
            } else {
                Answer::OkThenClose
            }
        });
        for backend in [announced, silent, dropped] {
            let mut transport = backend.transport(5 * SECOND);
            for _ in 0..10 {
                assert_eq!(
                    transport.deliver(5, &mut plain),
                    Delivery {
                        delivered: 5,
                        failed: 0
                    }
                );
            }
        }
    }

    /// The export thread's loop, modelled: spans arrive at `rate` per second into a queue of
    /// `QUEUE` spans (overflow is lost), and whenever a batch's worth is queued it is
    /// delivered (up to `BATCH` at a time). Returns (offered, delivered) after `run`.
    fn offer(backend: &Backend, rate: f64, run: Duration) -> (usize, usize) {
        const QUEUE: usize = 16_384;
        const MIN_BATCH: usize = 512;
        const BATCH: usize = 4_096;
        let mut transport = backend.transport(2 * SECOND);
        let (mut offered, mut queued, mut delivered, mut next_id) = (0, 0, 0, 0);
        let start = Instant::now();
        loop {
            let now = start.elapsed();
            if now >= run {
                break;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small, positive
            let due = (now.as_secs_f64() * rate) as usize;
            queued = (queued + due - offered).min(QUEUE);
            offered = due;
            if queued >= MIN_BATCH {
                let n = queued.min(BATCH);
                let base = next_id;
                let done =
                    transport.deliver(n, &mut |r, out| plain(base + r.start..base + r.end, out));
                delivered += done.delivered;
                next_id += n;
                queued -= n;
            } else {
                // The callers' pace: until the next batch's worth has arrived.
                #[allow(clippy::cast_precision_loss)] // below 512
                std::thread::sleep(Duration::from_secs_f64((MIN_BATCH - queued) as f64 / rate));
            }
        }
        (offered, delivered)
    }

    /// Up for `period`, then answering every request with `down`, and so on.
    fn flipping(period: Duration, down: fn() -> Answer) -> Backend {
        let start = Instant::now();
        Backend::start(move |_, _| {
            let phase = start.elapsed().as_nanos() / period.as_nanos();
            if phase % 2 == 1 { down() } else { reply(200) }
        })
    }

    fn assert_most_delivered_through_flips(down: fn() -> Answer) {
        let backend = flipping(Duration::from_millis(200), down);

        let (offered, delivered) = offer(&backend, 50_000.0, 3 * SECOND);

        let ids = sorted(backend.delivered_ids());
        let mut distinct = ids.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            delivered,
            "the backend got what deliver counted"
        );
        assert!(
            delivered * 4 >= offered * 3,
            "{delivered} of {offered} spans delivered through a flipping backend"
        );
    }

    #[test]
    fn most_spans_get_through_a_backend_that_drops_connections_every_200_ms() {
        assert_most_delivered_through_flips(|| Answer::Close);
    }

    #[test]
    fn most_spans_get_through_a_backend_that_answers_503_every_200_ms() {
        assert_most_delivered_through_flips(|| reply(503));
    }

    #[test]
    fn endpoints_it_cannot_serve_are_refused_at_setup() {
        let none = BTreeMap::new();
        let https = HttpTransport::new(
            "https://api.honeyhive.ai/opentelemetry/v1/traces",
            &none,
            SECOND,
        );
        let refusal = https.err();
        assert_eq!(refusal.is_none(), cfg!(feature = "tls"), "{refusal:?}");
        assert!(refusal.is_none_or(|e| e.contains("enable its `tls` feature")));
        assert!(HttpTransport::new("ftp://127.0.0.1/v1/traces", &none, SECOND).is_err());
        assert!(HttpTransport::new("http://127.0.0.1:port/v1/traces", &none, SECOND).is_err());
        let injected = BTreeMap::from([("x-a".to_owned(), "1\r\nhost: evil".to_owned())]);
        assert!(HttpTransport::new("http://127.0.0.1/v1/traces", &injected, SECOND).is_err());
        for ok in [
            "http://localhost/v1/traces",
            "http://[::1]:4318/v1/traces",
            "http://127.0.0.1:4318",
            "HTTP://127.0.0.1:4318/v1/traces",
            " http://127.0.0.1:4318/v1/traces\n",
        ] {
            assert!(HttpTransport::new(ok, &none, SECOND).is_ok(), "{ok}");
        }
    }

    #[cfg(feature = "tls")]
    mod tls {
        use super::*;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        /// Self-signed for 127.0.0.1 and localhost, valid until 2126.
        const CERT: &str = include_str!("testdata/localhost.crt");
        const KEY: &str = include_str!("testdata/localhost.key");

        fn https_backend(
            answer: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
        ) -> Backend {
            let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
            let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
            let config = Arc::new(config);
            let wrap = move |tcp| -> Box<dyn Duplex> {
                let tls = rustls::ServerConnection::new(config.clone()).unwrap();
                Box::new(rustls::StreamOwned::new(tls, tcp))
            };
            Backend::start_with("https", wrap, answer)
        }

        fn trusting_the_test_cert(url: &str) -> HttpTransport {
            let mut transport = HttpTransport::new(url, &BTreeMap::new(), 5 * SECOND).unwrap();
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap())
                .unwrap();
            let (config, _) = transport.client.tls.as_mut().unwrap();
            *config = tls_config(roots).unwrap();
            transport
        }

        #[test]
        fn https_delivers_on_one_kept_alive_connection() {
            let backend = https_backend(|_, _| reply(200));
            let mut transport = trusting_the_test_cert(&backend.url);
            for _ in 0..5 {
                assert_eq!(
                    transport.deliver(40, &mut plain),
                    Delivery {
                        delivered: 40,
                        failed: 0
                    }
                );
            }
            assert_eq!(sorted(backend.delivered_ids()).len(), 200);
            assert_eq!(backend.connections(), 1);
        }

        #[test]
        fn https_with_an_untrusted_certificate_delivers_nothing() {
            let backend = https_backend(|_, _| reply(200));
            let mut transport =
                HttpTransport::new(&backend.url, &BTreeMap::new(), Duration::from_millis(300))
                    .unwrap();
            assert_eq!(
                transport.deliver(3, &mut plain),
                Delivery {
                    delivered: 0,
                    failed: 3
                }
            );
            assert_eq!(backend.requests(), 0);
        }
    }
}
