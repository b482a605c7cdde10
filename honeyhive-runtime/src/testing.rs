//! Capture finished spans in your own tests.
//!
//! ```
//! use honeyhive_runtime::{testing, trace};
//!
//! #[trace(event_type = "tool")]
//! fn lookup(city: &str) -> u32 {
//!     city.len() as u32
//! }
//!
//! let recorder = testing::Recorder::start();
//! lookup("Paris");
//! let spans = recorder.spans();
//! let span = spans.get("lookup");
//! assert_eq!(span.str("honeyhive_inputs.city"), Some("Paris"));
//! assert_eq!(span.i64("honeyhive_outputs.result"), Some(5));
//! ```
//!
//! A [`Recorder`] installs the global pipeline with an in-memory exporter. Recorders in one
//! process take turns (a second `start` waits for the first to be dropped), so tests that run
//! in parallel threads each see only their own spans.

use std::ops::Deref;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{SpanId, TraceId, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

use crate::config::{Builder, Guard};

static TURN: Mutex<()> = Mutex::new(());

/// Records every span while it lives.
#[derive(Debug)]
pub struct Recorder {
    exporter: InMemorySpanExporter,
    guard: Guard,
    _turn: MutexGuard<'static, ()>,
}

impl Recorder {
    /// Starts recording with default settings (every trace sampled, environment ignored).
    pub fn start() -> Recorder {
        Recorder::with(|b| b)
    }

    /// Starts recording with settings of your own on top of the defaults, e.g.
    /// `Recorder::with(|b| b.capture_max_bytes(64))`.
    ///
    /// # Panics
    /// If the pipeline cannot start (an exporter added by `configure` failed to build).
    pub fn with(configure: impl FnOnce(Builder) -> Builder) -> Recorder {
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let exporter = InMemorySpanExporter::default();
        let builder = Builder::new()
            .env(|_| None)
            .with_exporter(exporter.clone())
            .shutdown_timeout(Duration::from_secs(10));
        let guard = configure(builder)
            .install()
            .unwrap_or_else(|e| panic!("{e}"));
        Recorder {
            exporter,
            guard,
            _turn: turn,
        }
    }

    /// The guard of the pipeline this recorder runs.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Stops the pipeline (see [`Guard::shutdown`]) and ends this recorder's turn.
    pub fn shutdown(self) -> crate::ShutdownReport {
        self.guard.shutdown()
    }

    /// Stops the pipeline without blocking the caller's thread (see
    /// [`Guard::shutdown_async`]).
    pub fn shutdown_async(self) -> crate::ShutdownFuture {
        self.guard.shutdown_async()
    }

    /// Every span finished so far, in the order they ended.
    ///
    /// Spans still buffered on other threads that are inside traced code are not included:
    /// call this after the traced work has returned.
    ///
    /// # Panics
    /// If the export thread does not answer within ten seconds.
    pub fn spans(&self) -> Spans {
        assert!(
            self.guard.force_flush(),
            "the export thread did not flush in time"
        );
        Spans(
            self.exporter
                .get_finished_spans()
                .unwrap_or_default()
                .into_iter()
                .map(FinishedSpan)
                .collect(),
        )
    }
}

/// Finished spans, with lookups that fail loudly in tests.
#[derive(Debug, Clone)]
pub struct Spans(pub Vec<FinishedSpan>);

impl Deref for Spans {
    type Target = [FinishedSpan];
    fn deref(&self) -> &[FinishedSpan] {
        &self.0
    }
}

impl Spans {
    /// The one span named `name`.
    ///
    /// # Panics
    /// If there is no such span or more than one; the message lists what was recorded.
    pub fn get<'a>(&'a self, name: &'a str) -> &'a FinishedSpan {
        let found: Vec<_> = self.all(name).collect();
        assert!(
            found.len() == 1,
            "expected one span named {name:?}, found {}; recorded: {:?}",
            found.len(),
            self.names()
        );
        found[0]
    }

    /// Every span named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a FinishedSpan> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }

    /// The names of all spans, in the order they ended.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|s| s.name.as_ref()).collect()
    }

    /// The children of `parent`, in the order they started.
    pub fn children_of(&self, parent: &FinishedSpan) -> Vec<&FinishedSpan> {
        let mut kids: Vec<_> = self
            .0
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id() && s.trace_id() == parent.trace_id())
            .collect();
        kids.sort_by_key(|s| s.start_time);
        kids
    }

    /// The parent of `span`, if it was recorded here.
    pub fn parent_of(&self, span: &FinishedSpan) -> Option<&FinishedSpan> {
        self.0
            .iter()
            .find(|s| s.span_id() == span.parent_span_id && s.trace_id() == span.trace_id())
    }
}

/// One finished span: OpenTelemetry's `SpanData` with typed attribute lookups.
#[derive(Debug, Clone)]
pub struct FinishedSpan(pub SpanData);

impl Deref for FinishedSpan {
    type Target = SpanData;
    fn deref(&self) -> &SpanData {
        &self.0
    }
}

impl FinishedSpan {
    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.span_context.span_id()
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.span_context.trace_id()
    }

    /// The attribute `key` (the last one if set more than once).
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// An integer attribute.
    pub fn i64(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            Value::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// A float attribute.
    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.attr(key)? {
            Value::F64(v) => Some(*v),
            _ => None,
        }
    }

    /// A bool attribute.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.attr(key)? {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// A string-list attribute (`tag.tags`, `gen_ai.response.finish_reasons`).
    pub fn strings(&self, key: &str) -> Option<Vec<&str>> {
        match self.attr(key)? {
            Value::Array(opentelemetry::Array::String(items)) => Some(
                items
                    .iter()
                    .map(opentelemetry::StringValue::as_str)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// A string attribute that holds JSON (`metadata`, `gen_ai.output.messages`), parsed.
    pub fn json(&self, key: &str) -> Option<serde_json::Value> {
        serde_json::from_str(self.str(key)?).ok()
    }

    /// Whether the status is ERROR.
    pub fn is_error(&self) -> bool {
        matches!(self.status, Status::Error { .. })
    }

    /// The error description, when the status is ERROR.
    pub fn error_message(&self) -> Option<&str> {
        match &self.status {
            Status::Error { description } => Some(description),
            _ => None,
        }
    }

    /// The events named `name`.
    pub fn events_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.events.iter().filter(move |e| e.name == name)
    }

    /// An attribute of an event.
    pub fn event_attr<'a>(event: &'a Event, key: &str) -> Option<&'a Value> {
        event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// The span kind.
    pub fn kind(&self) -> crate::SpanKind {
        use opentelemetry::trace::SpanKind as K;
        match self.span_kind {
            K::Server => crate::SpanKind::Server,
            K::Client => crate::SpanKind::Client,
            K::Producer => crate::SpanKind::Producer,
            K::Consumer => crate::SpanKind::Consumer,
            K::Internal => crate::SpanKind::Internal,
        }
    }

    /// Whether this span has no parent in this process (a root, or a child of a remote span).
    pub fn is_root(&self) -> bool {
        self.parent_span_id == SpanId::INVALID || self.parent_span_is_remote
    }
}

impl From<&FinishedSpan> for crate::analysis::Span {
    fn from(s: &FinishedSpan) -> crate::analysis::Span {
        use crate::analysis::{attributes_of, events_of, status_of};
        let d = &s.0;
        crate::analysis::Span {
            trace_id: u128::from_be_bytes(d.span_context.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(d.span_context.span_id().to_bytes()),
            parent_span_id: u64::from_be_bytes(d.parent_span_id.to_bytes()),
            parent_remote: d.parent_span_is_remote,
            name: d.name.to_string(),
            kind: s.kind(),
            start_unix_nanos: crate::clock::unix_nanos(d.start_time),
            end_unix_nanos: crate::clock::unix_nanos(d.end_time.max(d.start_time)),
            status: status_of(&d.status),
            attributes: attributes_of(&d.attributes),
            events: events_of(&d.events.events),
        }
    }
}

impl Spans {
    /// The spans as whole traces of the analysis model ([`crate::analysis`]).
    pub fn traces(&self) -> Vec<crate::analysis::Trace> {
        crate::analysis::Trace::group(self.0.iter().map(crate::analysis::Span::from))
    }
}

/// A port of 127.0.0.1 that refuses connections for as long as this value lives: a socket is
/// bound to it and never listens, so no other process is given the port meanwhile. For tests
/// of what happens when the backend is down (a listener bound and dropped frees its port,
/// which another test's listener may take and answer on). A backend that comes back binds
/// the same address with `TcpListener::bind(port.addr())` while this value still lives (both
/// ask for `SO_REUSEADDR`, and this socket does not listen).
///
/// ```
/// # #[cfg(unix)] {
/// let down = honeyhive_runtime::testing::RefusingPort::bind();
/// assert!(std::net::TcpStream::connect(down.addr()).is_err());
/// # }
/// ```
#[cfg(unix)]
#[derive(Debug)]
pub struct RefusingPort {
    /// Closed when the value is dropped.
    _socket: std::os::fd::OwnedFd,
    addr: std::net::SocketAddr,
}

#[cfg(unix)]
impl RefusingPort {
    /// Binds a socket to a free port of 127.0.0.1, without listening.
    ///
    /// # Panics
    ///
    /// If the system refuses a socket or a port (it is for tests).
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // `AF_INET` (2) and a 16-byte size
    pub fn bind() -> RefusingPort {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: plain socket calls on a descriptor this function owns (an `OwnedFd` from
        // the start, so it is closed once, also on a failed assertion); the address
        // structure is zeroed and sized as the calls require.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = OwnedFd::from_raw_fd(raw);
            let fd = socket.as_raw_fd();
            let one: libc::c_int = 1;
            let reuse = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(reuse, 0, "setsockopt: {}", std::io::Error::last_os_error());
            let mut sin: libc::sockaddr_in = std::mem::zeroed();
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, std::ptr::from_ref(&sin).cast(), len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let named = libc::getsockname(fd, std::ptr::from_mut(&mut sin).cast(), &raw mut len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            RefusingPort {
                _socket: socket,
                addr: (std::net::Ipv4Addr::LOCALHOST, u16::from_be(sin.sin_port)).into(),
            }
        }
    }

    /// The address, `127.0.0.1:<port>`.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}
