//! Context between services: W3C `traceparent`, `tracestate` and `baggage`, and `x-request-id`.
//!
//! ```
//! use std::collections::HashMap;
//! use honeyhive_runtime::propagation::{extract, inject};
//!
//! // Client side, inside a traced call: add the headers to the outgoing request.
//! let mut headers = HashMap::new();
//! inject(&mut headers);
//!
//! // Server side: continue the caller's trace for the handler.
//! let remote = extract(&headers);
//! let reply = remote.run(|| "handled");
//! # assert_eq!(reply, "handled");
//! ```
//!
//! Inbound headers are read as the W3C Trace Context (level 2) and Baggage specifications say,
//! the same way from every carrier: each value trimmed of optional whitespace, a value with
//! bytes no header may hold ignored, repeated `tracestate` and `baggage` headers combined in
//! order, a repeated `traceparent` refused. Anything malformed is ignored, never trusted: an
//! invalid `traceparent` starts a new trace, an invalid `tracestate` is dropped whole, an invalid
//! baggage member is dropped (and members past 180 or 8,192 bytes), an invalid `x-request-id` is
//! replaced by a generated one (marked `honeyhive.request_id.replaced_invalid`).
//!
//! The caller's sampled flag is honoured by parent-based samplers (see [`crate::sampling`]); its
//! random-trace-id flag (level 2) goes on with its trace id, and ours carry it (they are
//! random); unknown flags are sent as zero. The OpenTelemetry member of `tracestate`
//! (`ot=th:..;rv:..`) is read for consistent sampling and written first with our threshold
//! (see [`crate::sampling`]); other members are passed on as they arrived.
//!
//! Outbound headers are always valid header values within the W3C limits: `tracestate` at most
//! 32 members and 512 characters (long members dropped first, as the specification advises),
//! `baggage` at most 180 members and 8,192 bytes (whole members dropped, ours kept first),
//! values percent-encoded only where the specification requires it, and a request id that is
//! not a valid inbound id (see [`is_valid_request_id`]) is not sent. A [`Remote`] built by hand
//! is held to the same rules: its `tracestate` is read as an inbound one, baggage keys that are
//! not tokens are left out. A `tracestate` the carrier already held is removed when a
//! `traceparent` is written without one: it belongs to another span.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{SpanId, TraceId};

use crate::carry::{Carried, WithContext};
use crate::context::ScopeThreshold;
use crate::context::{self, Current, State};
use crate::correlation::{
    self, CallerTrace, Correlation, RequestId, RequestIdCarrier, RequestIdSource,
    is_valid_request_id,
};
use crate::sampling::consistent::OtState;

/// Header names.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// `baggage` header.
pub const BAGGAGE: &str = "baggage";
/// `x-request-id` header.
pub const X_REQUEST_ID: &str = "x-request-id";

/// The OpenTelemetry member of `tracestate` (sampling threshold and randomness).
const OT: &str = "ot";

/// Baggage keys this crate writes and reads.
const BAGGAGE_REQUEST_ID: &str = "request_id";
const BAGGAGE_SESSION_ID: &str = "session_id";
const BAGGAGE_USER_ID: &str = "user_id";

/// Limits from the W3C specifications.
const MAX_TRACESTATE_LEN: usize = 512;
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// `tracestate` members longer than this are the first dropped to meet the length limit.
const TRACESTATE_LONG_MEMBER: usize = 128;
const MAX_BAGGAGE_LEN: usize = 8192;
const MAX_BAGGAGE_MEMBERS: usize = 180;

/// Headers to read and write: implemented for `HashMap<String, String>` and
/// `http::HeaderMap`.
pub trait Carrier {
    /// The value of `key` (header names are matched case-insensitively).
    fn get(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value`, replacing any previous value.
    fn set(&mut self, key: &str, value: String);
    /// Removes `key`: [`inject`] removes a `tracestate` it has none for, since a
    /// `tracestate` belongs to the `traceparent` it came with. The default sets it empty,
    /// which a reader takes for none.
    fn remove(&mut self, key: &str) {
        self.set(key, String::new());
    }
    /// Every value of `key`, as received, in order: a header may be repeated. The default
    /// is the one value [`Carrier::get`] gives.
    fn get_all(&self, key: &str) -> Vec<&[u8]> {
        self.get(key).map(str::as_bytes).into_iter().collect()
    }
}

impl<S: std::hash::BuildHasher> Carrier for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str).or_else(|| {
            self.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        })
    }
    fn set(&mut self, key: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(key));
        self.insert(key.to_owned(), value);
    }
    fn remove(&mut self, key: &str) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(key));
    }
    /// Keys that differ only in case are repeats of one header, in the order of their names
    /// (a map keeps no order of its own).
    fn get_all(&self, key: &str) -> Vec<&[u8]> {
        let mut found: Vec<(&String, &String)> = self
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(b.0));
        found.into_iter().map(|(_, v)| v.as_bytes()).collect()
    }
}

impl Carrier for http::HeaderMap {
    fn get(&self, key: &str) -> Option<&str> {
        http::HeaderMap::get(self, key).and_then(|v| v.to_str().ok())
    }
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.insert(name, value);
        }
    }
    fn remove(&mut self, key: &str) {
        http::HeaderMap::remove(self, key);
    }
    fn get_all(&self, key: &str) -> Vec<&[u8]> {
        http::HeaderMap::get_all(self, key)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect()
    }
}

/// `#[with_request_id(from = headers)]` reads `x-request-id` by the same rule as [`extract`].
impl<S: std::hash::BuildHasher> RequestIdCarrier for HashMap<String, String, S> {
    fn request_id(&self) -> Option<&str> {
        request_id_field(self)
    }
}

/// `#[with_request_id(from = headers)]` reads `x-request-id` by the same rule as [`extract`].
impl RequestIdCarrier for http::HeaderMap {
    fn request_id(&self) -> Option<&str> {
        request_id_field(self)
    }
}

/// The `x-request-id` of a carrier, normalised; `Some("")` (never valid) when it is present
/// but unusable: bytes no header may hold, or repeated with different values.
fn request_id_field(carrier: &impl Carrier) -> Option<&str> {
    let values: Vec<Option<&str>> = carrier
        .get_all(X_REQUEST_ID)
        .into_iter()
        .map(field_value)
        .collect();
    agreed_value(&values)
}

// ---------------------------------------------------------------------------------------------
// Inbound: every carrier is first normalised into `Inbound`, then one parser reads it.

/// The propagation headers of a request, as every carrier gives them: each value trimmed of
/// optional whitespace, `None` where it holds bytes no header field may hold (control
/// characters such as CR and LF, or non-ASCII bytes, which none of these headers allow).
#[derive(Debug, Default)]
struct Inbound<'a> {
    traceparent: Vec<Option<&'a str>>,
    tracestate: Vec<Option<&'a str>>,
    baggage: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
}

impl<'a> Inbound<'a> {
    fn read(carrier: &'a impl Carrier) -> Inbound<'a> {
        let values = |key| carrier.get_all(key).into_iter().map(field_value).collect();
        Inbound {
            traceparent: values(TRACEPARENT),
            tracestate: values(TRACESTATE),
            baggage: values(BAGGAGE),
            request_id: values(X_REQUEST_ID),
        }
    }

    /// One `traceparent`, valid; a repeated one is refused (which of them is the caller?).
    fn parent(&self) -> Option<RemoteParent> {
        match self.traceparent.as_slice() {
            [Some(raw)] => parse_traceparent(raw),
            _ => None,
        }
    }

    /// The request id: see [`agreed_value`].
    fn request_id(&self) -> Option<&'a str> {
        agreed_value(&self.request_id)
    }
}

/// A header present once, or repeated with one value; `Some("")` when it is unusable (some
/// value invalid, or values that disagree).
fn agreed_value<'a>(values: &[Option<&'a str>]) -> Option<&'a str> {
    let (first, rest) = values.split_first()?;
    match first {
        Some(value) if rest.iter().all(|other| other == first) => Some(value),
        _ => Some(""),
    }
}

/// A header value without its optional whitespace (`SP` / `HTAB`), if it holds only what a
/// header value may: visible ASCII, spaces and tabs.
fn field_value(raw: &[u8]) -> Option<&str> {
    if !raw.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return None;
    }
    std::str::from_utf8(raw).ok().map(trim_ows)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

// ---------------------------------------------------------------------------------------------
// Outbound.

/// Writes the current trace context and correlation into `carrier`: `traceparent` (when a
/// span, recorded or not, is current), `tracestate` (passed on), `baggage` (request id, session,
/// user, and members passed on) and `x-request-id`.
pub fn inject(carrier: &mut impl Carrier) {
    let cur = context::current();
    let correlation = correlation::current();
    let sampled = match cur.state {
        State::Idle => None,
        State::Sampled | State::Remote { sampled: true } => Some(true),
        State::Unsampled | State::Remote { sampled: false } => Some(false),
    };
    let caller = correlation
        .as_ref()
        .and_then(|c| c.caller_trace)
        .filter(|t| t.trace_id == cur.trace_id);
    let names_a_span = sampled.is_some() && cur.trace_id != 0 && cur.span_id != 0;
    if let Some(sampled) = sampled.filter(|_| names_a_span) {
        // Level 2: the caller's random-trace-id flag stays with its trace id; ours are random,
        // an OpenTelemetry SDK's trace is not known to be; flags this crate does not know are
        // sent as zero.
        let random = match caller {
            Some(caller) => caller.random,
            None => !joins_otel_trace(cur.trace_id),
        };
        let flags = u8::from(sampled) | (u8::from(random) << 1);
        carrier.set(
            TRACEPARENT,
            format!("00-{:032x}-{:016x}-{flags:02x}", cur.trace_id, cur.span_id),
        );
    }
    let passed_on = correlation
        .as_ref()
        .and_then(|c| c.tracestate.as_deref())
        .filter(|_| caller.is_some());
    let tracestate = match cur.state {
        // No decision made here yet: the caller's as it arrived.
        State::Remote { .. } => passed_on.map(str::to_owned),
        // Our decision: the threshold a recorded scope was kept with, when it is known;
        // erased otherwise.
        State::Sampled => with_threshold(passed_on, cur.threshold.get()),
        State::Unsampled | State::Idle => with_threshold(passed_on, None),
    };
    match tracestate {
        Some(ts) => carrier.set(TRACESTATE, ts),
        // One the carrier held belongs to another `traceparent`.
        None if names_a_span => carrier.remove(TRACESTATE),
        None => {}
    }
    let Some(c) = correlation else {
        return;
    };
    let mut baggage = BaggageWriter::default();
    let rid = c.request_id.as_ref().or(c.incoming_request_id.as_ref());
    if let Some(rid) = rid.filter(|r| is_valid_request_id(&r.id)) {
        carrier.set(X_REQUEST_ID, rid.id.to_string());
        baggage.push_entry(BAGGAGE_REQUEST_ID, &rid.id, &[]);
    }
    if let Some(s) = &c.session_id {
        baggage.push_entry(BAGGAGE_SESSION_ID, s, &[]);
    }
    if let Some(u) = &c.user_id {
        baggage.push_entry(BAGGAGE_USER_ID, u, &[]);
    }
    for member in &c.baggage {
        baggage.push(member);
    }
    if !baggage.out.is_empty() {
        carrier.set(BAGGAGE, baggage.out);
    }
}

/// Whether trace `trace_id` is the one of the ambient OpenTelemetry `Context` (our spans
/// joined it).
fn joins_otel_trace(trace_id: u128) -> bool {
    crate::context::with_otel_context(|cx| {
        cx.has_active_span()
            && u128::from_be_bytes(cx.span().span_context().trace_id().to_bytes()) == trace_id
    })
    .unwrap_or(false)
}

/// `tracestate` with our `ot` entry first, holding `threshold` (or none) and what else the
/// caller's `ot` held, then the caller's other members, within the W3C limits. A threshold of
/// 0 (probability 1) is sent only where the caller sent one: by default no request gets a
/// header more.
fn with_threshold(passed_on: Option<&str>, threshold: Option<u64>) -> Option<String> {
    let ot = passed_on
        .and_then(|ts| tracestate_member(ts, OT))
        .map(OtState::parse)
        .unwrap_or_default();
    let threshold = threshold.filter(|&t| t > 0 || ot.threshold.is_some());
    let ot_value = ot.with_threshold(threshold);
    let mut members: Vec<(&str, &str)> = Vec::new();
    if let Some(v) = &ot_value {
        members.push((OT, v));
    }
    // Canonical already (`parse_tracestate`): `key=value` joined by `,`.
    members.extend(
        passed_on
            .into_iter()
            .flat_map(|ts| ts.split(','))
            .filter_map(|m| m.split_once('='))
            .filter(|(k, _)| *k != OT),
    );
    members.truncate(MAX_TRACESTATE_MEMBERS);
    write_tracestate(members)
}

/// The value of member `key` of a canonical `tracestate`.
fn tracestate_member<'a>(tracestate: &'a str, key: &str) -> Option<&'a str> {
    tracestate
        .split(',')
        .filter_map(|m| m.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Builds a `baggage` value within the W3C limits: a member that does not fit is left out
/// whole, never cut.
#[derive(Default)]
struct BaggageWriter {
    out: String,
    members: usize,
}

impl BaggageWriter {
    fn push_entry(&mut self, key: &str, value: &str, properties: &[(String, Option<String>)]) {
        if let Some(member) = encode_member(key, value, properties) {
            self.push(&member);
        }
    }

    fn push(&mut self, member: &str) {
        let sep = usize::from(!self.out.is_empty());
        if self.members >= MAX_BAGGAGE_MEMBERS
            || self.out.len() + sep + member.len() > MAX_BAGGAGE_LEN
        {
            return;
        }
        if sep == 1 {
            self.out.push(',');
        }
        self.out.push_str(member);
        self.members += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// What arrived.

/// A parent span in another process, from `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub span_id: SpanId,
    /// The caller's sampling decision.
    pub sampled: bool,
    /// Whether the caller marked the trace id random (the level 2 flag), passed on with it.
    pub random_trace_id: bool,
}

/// A W3C baggage member: a key, its (percent-decoded) value and its properties as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaggageEntry {
    /// The key.
    pub key: String,
    /// The value, percent-decoded (invalid UTF-8 replaced by U+FFFD, as the specification says).
    pub value: String,
    /// Properties (`;key` or `;key=value`), in order, as sent.
    pub properties: Vec<(String, Option<String>)>,
}

/// What arrived with a request: the caller's span, its request id, session and user.
///
/// Enter it for the handler with [`Remote::run`] (sync) or [`Remote::instrument`] (async):
/// spans recorded inside become children of the caller's span and carry its request id. The
/// first span inside is a root of this service and is sampled like any root: a parent-based
/// sampler (the default) keeps the caller's decision, other samplers apply their policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// The caller's span, if one valid `traceparent` arrived.
    pub parent: Option<RemoteParent>,
    /// `tracestate`, if valid, as it will be passed on (within the W3C limits).
    pub tracestate: Option<String>,
    /// The request id from `x-request-id`, else from baggage, if valid; a generated one
    /// (source `generated`) when the one that arrived was invalid.
    pub request_id: Option<RequestId>,
    /// Whether an inbound request id was present but invalid (and so replaced).
    pub request_id_invalid: bool,
    /// Session id from baggage.
    pub session_id: Option<String>,
    /// User id from baggage.
    pub user_id: Option<String>,
    /// Other baggage members, passed on by [`inject`].
    pub baggage: Vec<BaggageEntry>,
}

/// Reads trace context and correlation from `carrier`, ignoring anything malformed.
pub fn extract(carrier: &impl Carrier) -> Remote {
    let inbound = Inbound::read(carrier);
    let mut remote = Remote {
        parent: inbound.parent(),
        ..Remote::default()
    };
    // Trace Context: without a valid traceparent, tracestate is not read.
    if remote.parent.is_some() {
        remote.tracestate = parse_tracestate(&inbound.tracestate);
    }
    let mut baggage_request_id = None;
    for entry in parse_baggage(&inbound.baggage) {
        match entry.key.as_str() {
            BAGGAGE_REQUEST_ID => baggage_request_id = Some(entry.value),
            BAGGAGE_SESSION_ID if is_valid_request_id(&entry.value) => {
                remote.session_id = Some(entry.value);
            }
            BAGGAGE_USER_ID if is_valid_request_id(&entry.value) => {
                remote.user_id = Some(entry.value);
            }
            BAGGAGE_SESSION_ID | BAGGAGE_USER_ID => {}
            _ => remote.baggage.push(entry),
        }
    }
    let header = inbound
        .request_id()
        .map(|v| (v.to_owned(), RequestIdSource::Header));
    let from_baggage = baggage_request_id.map(|v| (v, RequestIdSource::Baggage));
    let mut invalid = false;
    for (id, source) in header.into_iter().chain(from_baggage) {
        if is_valid_request_id(&id) {
            remote.request_id = Some(RequestId {
                id: Arc::from(id),
                source,
            });
            break;
        }
        invalid = true;
    }
    if invalid {
        remote.request_id_invalid = true;
        remote.request_id.get_or_insert_with(|| RequestId {
            id: Arc::from(correlation::new_request_id()),
            source: RequestIdSource::Generated,
        });
    }
    remote
}

impl Remote {
    pub(crate) fn carried(&self) -> Carried {
        let tracestate = self.valid_tracestate();
        let ot = Self::ot(tracestate.as_deref());
        let span = match self.parent {
            // The first span inside decides, as any root does (see `sampling`).
            Some(p) => Current {
                trace_id: u128::from_be_bytes(p.trace_id.to_bytes()),
                span_id: u64::from_be_bytes(p.span_id.to_bytes()),
                state: State::Remote { sampled: p.sampled },
                here: false,
                threshold: ScopeThreshold::new(ot.threshold),
            },
            None => context::current(),
        };
        let mut c: Correlation = correlation::current()
            .as_deref()
            .cloned()
            .unwrap_or_default();
        if self.request_id.is_some() {
            c.incoming_request_id.clone_from(&self.request_id);
            // Describes the incoming id while no scope has established one.
            if c.request_id.is_none() {
                c.replaced_invalid = self.request_id_invalid;
            }
        }
        if let Some(s) = &self.session_id {
            c.session_id = Some(Arc::from(s.as_str()));
        }
        if let Some(u) = &self.user_id {
            c.user_id = Some(Arc::from(u.as_str()));
        }
        if let Some(ts) = &tracestate {
            c.tracestate = Some(Arc::from(ts.as_str()));
        }
        if let Some(p) = self.parent {
            c.caller_trace = Some(CallerTrace {
                trace_id: u128::from_be_bytes(p.trace_id.to_bytes()),
                random: p.random_trace_id,
                rv: ot.randomness,
            });
        }
        c.baggage = self
            .baggage
            .iter()
            .filter_map(|e| encode_member(&e.key, &e.value, &e.properties))
            .map(Arc::from)
            .collect();
        let correlation = (c != Correlation::default()).then(|| Arc::new(c));
        Carried::from_parts(span, correlation)
    }

    /// `tracestate` read as an inbound one is (the fields are public: it may have been built
    /// by hand), so that what is passed on is canonical and within the W3C limits.
    fn valid_tracestate(&self) -> Option<String> {
        let ts = field_value(self.tracestate.as_deref()?.as_bytes())?;
        parse_tracestate(&[Some(ts)])
    }

    /// The OpenTelemetry entry of the caller's `tracestate`.
    fn ot(tracestate: Option<&str>) -> OtState<'_> {
        tracestate
            .and_then(|ts| tracestate_member(ts, OT))
            .map(OtState::parse)
            .unwrap_or_default()
    }

    /// Runs `f` as the handler of this request.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.carried().run(f)
    }

    /// Runs `future` as the handler of this request, wherever it is polled.
    pub fn instrument<F: Future>(&self, future: F) -> WithContext<F> {
        self.carried().instrument(future)
    }
}

// ---------------------------------------------------------------------------------------------
// Trace Context.

/// `version-traceid-parentid-flags`, lowercase hex, ids not all zero, version not `ff`.
/// Version `00` has exactly these fields; a later version may append `-`-led fields.
fn parse_traceparent(raw: &str) -> Option<RemoteParent> {
    let b = raw.as_bytes();
    if b.len() < 55 {
        return None;
    }
    let hex = |s: &[u8]| {
        s.iter()
            .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    let (version, trace, span, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    if !hex(version) || version == b"ff" || !hex(trace) || !hex(span) || !hex(flags) {
        return None;
    }
    if let Some(&next) = b.get(55)
        && (version == b"00" || next != b'-')
    {
        return None;
    }
    // Checked above: the fields are ASCII hex digits.
    let trace_id = u128::from_str_radix(&raw[3..35], 16)
        .ok()
        .filter(|&t| t != 0)?;
    let span_id = u64::from_str_radix(&raw[36..52], 16)
        .ok()
        .filter(|&s| s != 0)?;
    let flags = u8::from_str_radix(&raw[53..55], 16).ok()?;
    Some(RemoteParent {
        trace_id: TraceId::from(trace_id),
        span_id: SpanId::from(span_id),
        sampled: flags & 0x01 != 0,
        random_trace_id: flags & 0x02 != 0,
    })
}

/// Combines the `tracestate` headers in order and checks them whole: any invalid member, a
/// repeated key or more than 32 members discards it. Returns what to pass on: canonical
/// (`key=value` joined by `,`), within 512 characters.
fn parse_tracestate(values: &[Option<&str>]) -> Option<String> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for value in values {
        for member in (*value)?.split(',').map(trim_ows) {
            if member.is_empty() {
                continue;
            }
            let (key, val) = member.split_once('=')?;
            if !valid_tracestate_key(key)
                || !valid_tracestate_value(val)
                || members.iter().any(|(k, _)| *k == key)
                || members.len() == MAX_TRACESTATE_MEMBERS
            {
                return None;
            }
            members.push((key, val));
        }
    }
    write_tracestate(members)
}

/// Members as a canonical `tracestate` (`key=value` joined by `,`) within 512 characters, or
/// `None` when there are none.
fn write_tracestate(mut members: Vec<(&str, &str)>) -> Option<String> {
    let len = |m: &[(&str, &str)]| -> usize {
        m.iter().map(|(k, v)| k.len() + v.len() + 1).sum::<usize>() + m.len().saturating_sub(1)
    };
    // Over the limit: drop members longer than 128 characters first, from the end, then
    // members from the end.
    while len(&members) > MAX_TRACESTATE_LEN {
        let long = members
            .iter()
            .rposition(|(k, v)| k.len() + v.len() + 1 > TRACESTATE_LONG_MEMBER);
        members.remove(long.unwrap_or(members.len() - 1));
    }
    if members.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(len(&members));
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}={v}");
    }
    Some(out)
}

/// `simple-key` (`lcalpha` then up to 255 of `lcalpha DIGIT _ - * /`) or
/// `tenant@system` (up to 241 characters led by `lcalpha` or a digit, then `@`, then up to 14
/// led by `lcalpha`).
fn valid_tracestate_key(key: &str) -> bool {
    let part = |s: &str, max: usize, lead: fn(u8) -> bool| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= max
            && lead(b[0])
            && b.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(&c))
    };
    let lc = |c: u8| c.is_ascii_lowercase();
    let lc_or_digit = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match key.split_once('@') {
        None => part(key, 256, lc),
        Some((tenant, system)) => part(tenant, 241, lc_or_digit) && part(system, 14, lc),
    }
}

/// 1 to 256 printable ASCII characters but `,` and `=`, not ending in a space.
fn valid_tracestate_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

// ---------------------------------------------------------------------------------------------
// Baggage.

/// Combines the `baggage` headers in order (values with bytes no header may hold are
/// ignored) and reads their members; an invalid member is dropped. Members are read in order
/// while they fit the limits, 180 members and 8,192 bytes (each member without its optional
/// whitespace, one `,` between two): what follows is dropped, whole members only, as the
/// specification allows a platform that cannot pass on everything.
fn parse_baggage(values: &[Option<&str>]) -> Vec<BaggageEntry> {
    let mut entries = Vec::new();
    let mut len = 0;
    for member in values
        .iter()
        .flatten()
        .flat_map(|v| v.split(','))
        .map(trim_ows)
        .filter(|m| !m.is_empty())
    {
        let Some(entry) = parse_baggage_member(member) else {
            continue;
        };
        len += member.len() + usize::from(!entries.is_empty());
        if len > MAX_BAGGAGE_LEN || entries.len() == MAX_BAGGAGE_MEMBERS {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// `key OWS = OWS value *(OWS ; OWS property)`, property `key OWS = OWS value` or `key`.
fn parse_baggage_member(member: &str) -> Option<BaggageEntry> {
    let mut parts = member.split(';');
    let (key, value) = parts.next()?.split_once('=')?;
    let (key, value) = (trim_ows(key), trim_ows(value));
    if !is_token(key) || !value.bytes().all(is_baggage_octet_or_pct) {
        return None;
    }
    let mut properties = Vec::new();
    for property in parts.map(trim_ows) {
        let (pk, pv) = match property.split_once('=') {
            Some((pk, pv)) => (trim_ows(pk), Some(trim_ows(pv))),
            None => (property, None),
        };
        if !is_token(pk) || !pv.unwrap_or("").bytes().all(is_baggage_octet_or_pct) {
            return None;
        }
        properties.push((pk.to_owned(), pv.map(str::to_owned)));
    }
    Some(BaggageEntry {
        key: key.to_owned(),
        value: percent_decode(value)?,
        properties,
    })
}

/// An HTTP `token`: one or more `tchar`s.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `baggage-octet`: printable ASCII but space, `"`, `,`, `;` and `\`.
fn is_baggage_octet_or_pct(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !b"\",;\\".contains(&b)
}

/// `key=value;properties` with the value percent-encoded where the specification requires:
/// outside `baggage-octet`, and `%` itself. A value that arrived minimally encoded and valid
/// UTF-8 comes out the same size. Properties go as they arrived (they are not decoded), with
/// any byte outside `baggage-octet` encoded; a property whose key is not a token is left out.
/// `None` when `key` is not a token: a member built by hand may hold anything.
fn encode_member(
    key: &str,
    value: &str,
    properties: &[(String, Option<String>)],
) -> Option<String> {
    if !is_token(key) {
        return None;
    }
    let mut out = String::with_capacity(key.len() + value.len() + 1);
    out.push_str(key);
    out.push('=');
    encode_octets(&mut out, value, |b| b != b'%');
    for (k, v) in properties.iter().filter(|(k, _)| is_token(k)) {
        out.push(';');
        out.push_str(k);
        if let Some(v) = v {
            out.push('=');
            encode_octets(&mut out, v, |_| true);
        }
    }
    Some(out)
}

/// Appends `text`, each byte outside `baggage-octet`, or that `keep` refuses, as `%XX`.
fn encode_octets(out: &mut String, text: &str, keep: impl Fn(u8) -> bool) {
    for b in text.bytes() {
        if is_baggage_octet_or_pct(b) && keep(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits makes the value invalid.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
