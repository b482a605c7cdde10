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
//! Malformed, truncated or oversized headers are ignored, never trusted: an invalid
//! `traceparent` starts a new trace, an invalid `x-request-id` is replaced by a generated one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::{SpanId, TraceId};

use crate::context::{self, Carried, Current, State, WithContext};
use crate::correlation::{self, Correlation, RequestId, RequestIdSource, is_valid_request_id};
use crate::sampling;

/// Header names.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// `baggage` header.
pub const BAGGAGE: &str = "baggage";
/// `x-request-id` header.
pub const X_REQUEST_ID: &str = "x-request-id";

/// Baggage keys this crate writes and reads.
const BAGGAGE_REQUEST_ID: &str = "request_id";
const BAGGAGE_SESSION_ID: &str = "session_id";
const BAGGAGE_USER_ID: &str = "user_id";

/// Limits from the W3C specifications.
const MAX_TRACESTATE_LEN: usize = 512;
const MAX_TRACESTATE_MEMBERS: usize = 32;
const MAX_BAGGAGE_LEN: usize = 8192;
const MAX_BAGGAGE_ENTRIES: usize = 180;

/// Headers to read and write: implemented for `HashMap<String, String>` and
/// `http::HeaderMap`.
pub trait Carrier {
    /// The value of `key` (header names are matched case-insensitively).
    fn get(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value`, replacing any previous value.
    fn set(&mut self, key: &str, value: String);
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
}

/// Writes the current trace context and correlation into `carrier`: `traceparent` (when a
/// span is current), `tracestate` (passed on), `baggage` (request id, session, user, and
/// entries passed on) and `x-request-id`.
pub fn inject(carrier: &mut impl Carrier) {
    let cur = context::current();
    if cur.state != State::Idle && cur.trace_id != 0 && cur.span_id != 0 {
        let flags = if cur.state == State::Sampled {
            "01"
        } else {
            "00"
        };
        carrier.set(
            TRACEPARENT,
            format!("00-{:032x}-{:016x}-{flags}", cur.trace_id, cur.span_id),
        );
    }
    let Some(c) = correlation::current() else {
        return;
    };
    if let Some(ts) = &c.tracestate {
        carrier.set(TRACESTATE, ts.to_string());
    }
    let mut baggage: Vec<String> = Vec::new();
    let rid = c.request_id.as_ref().or(c.incoming_request_id.as_ref());
    if let Some(rid) = rid {
        carrier.set(X_REQUEST_ID, rid.id.to_string());
        baggage.push(format!("{BAGGAGE_REQUEST_ID}={}", percent_encode(&rid.id)));
    }
    if let Some(s) = &c.session_id {
        baggage.push(format!("{BAGGAGE_SESSION_ID}={}", percent_encode(s)));
    }
    if let Some(u) = &c.user_id {
        baggage.push(format!("{BAGGAGE_USER_ID}={}", percent_encode(u)));
    }
    for (k, v) in &c.baggage {
        baggage.push(format!("{k}={}", percent_encode(v)));
    }
    if !baggage.is_empty() {
        carrier.set(BAGGAGE, baggage.join(","));
    }
}

/// A parent span in another process, from `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub span_id: SpanId,
    /// The caller's sampling decision.
    pub sampled: bool,
}

/// What arrived with a request: the caller's span, its request id, session and user.
///
/// Enter it for the handler with [`Remote::run`] (sync) or [`Remote::instrument`] (async):
/// spans recorded inside become children of the caller's span and carry its request id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// The caller's span, if a valid `traceparent` arrived.
    pub parent: Option<RemoteParent>,
    /// `tracestate`, if valid.
    pub tracestate: Option<String>,
    /// The request id from `x-request-id`, else from baggage, if valid.
    pub request_id: Option<RequestId>,
    /// Whether an inbound request id was present but invalid (and so ignored).
    pub request_id_invalid: bool,
    /// Session id from baggage.
    pub session_id: Option<String>,
    /// User id from baggage.
    pub user_id: Option<String>,
    /// Other baggage entries, passed on by [`inject`].
    pub baggage: Vec<(String, String)>,
}

/// Reads trace context and correlation from `carrier`, ignoring anything malformed.
pub fn extract(carrier: &impl Carrier) -> Remote {
    let mut remote = Remote {
        parent: carrier.get(TRACEPARENT).and_then(parse_traceparent),
        ..Remote::default()
    };
    if remote.parent.is_some() {
        remote.tracestate = carrier
            .get(TRACESTATE)
            .filter(|ts| valid_tracestate(ts))
            .map(str::to_owned);
    }
    let mut baggage_request_id = None;
    for (k, v) in carrier.get(BAGGAGE).map(parse_baggage).unwrap_or_default() {
        match k.as_str() {
            BAGGAGE_REQUEST_ID => baggage_request_id = Some(v),
            BAGGAGE_SESSION_ID if is_valid_request_id(&v) => remote.session_id = Some(v),
            BAGGAGE_USER_ID if is_valid_request_id(&v) => remote.user_id = Some(v),
            BAGGAGE_SESSION_ID | BAGGAGE_USER_ID => {}
            _ => remote.baggage.push((k, v)),
        }
    }
    let header = carrier
        .get(X_REQUEST_ID)
        .map(|v| (v.trim().to_owned(), RequestIdSource::Header));
    let from_baggage = baggage_request_id.map(|v| (v, RequestIdSource::Baggage));
    if let Some((id, source)) = header.or(from_baggage) {
        if is_valid_request_id(&id) {
            remote.request_id = Some(RequestId {
                id: Arc::from(id),
                source,
            });
        } else {
            remote.request_id_invalid = true;
        }
    }
    remote
}

impl Remote {
    fn carried(&self) -> Carried {
        let span = match self.parent {
            Some(p) => {
                // Honour the caller's decision unless the global sampler ignores parents.
                let sampled = if sampling::parent_based() {
                    p.sampled
                } else {
                    sampling::roll(sampling::root_rate())
                };
                Current {
                    trace_id: u128::from_be_bytes(p.trace_id.to_bytes()),
                    span_id: u64::from_be_bytes(p.span_id.to_bytes()),
                    state: if sampled && crate::export::is_active() {
                        State::Sampled
                    } else {
                        State::Unsampled
                    },
                    remote: true,
                    here: false,
                }
            }
            None => context::current(),
        };
        let mut c: Correlation = correlation::current()
            .as_deref()
            .cloned()
            .unwrap_or_default();
        if self.request_id.is_some() {
            c.incoming_request_id.clone_from(&self.request_id);
        }
        if let Some(s) = &self.session_id {
            c.session_id = Some(Arc::from(s.as_str()));
        }
        if let Some(u) = &self.user_id {
            c.user_id = Some(Arc::from(u.as_str()));
        }
        if let Some(ts) = &self.tracestate {
            c.tracestate = Some(Arc::from(ts.as_str()));
        }
        c.baggage = self
            .baggage
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
            .collect();
        let correlation = (c != Correlation::default()).then(|| Arc::new(c));
        Carried::from_parts(span, correlation)
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

/// `version-traceid-parentid-flags`, lowercase hex, ids not all zero.
fn parse_traceparent(raw: &str) -> Option<RemoteParent> {
    let raw = raw.trim();
    if raw.len() < 55 || raw.len() > 512 {
        return None;
    }
    let mut parts = raw.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let extra = parts.next();
    let is_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !is_hex(version, 2)
        || version == "ff"
        || !is_hex(trace, 32)
        || !is_hex(span, 16)
        || !is_hex(flags, 2)
    {
        return None;
    }
    // Version 00 has exactly four fields; later versions may add fields after these.
    if version == "00" && extra.is_some() {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
    let span_id = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(RemoteParent {
        trace_id: TraceId::from(trace_id),
        span_id: SpanId::from(span_id),
        sampled: flags & 1 == 1,
    })
}

fn valid_tracestate(raw: &str) -> bool {
    raw.len() <= MAX_TRACESTATE_LEN
        && raw.split(',').filter(|m| !m.trim().is_empty()).count() <= MAX_TRACESTATE_MEMBERS
        && raw
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .all(|member| {
                member.split_once('=').is_some_and(|(k, v)| {
                    !k.is_empty()
                        && k.len() <= 256
                        && k.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(&b)
                        })
                        && !v.is_empty()
                        && v.len() <= 256
                        && v.bytes()
                            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
                })
            })
}

fn parse_baggage(raw: &str) -> Vec<(String, String)> {
    if raw.len() > MAX_BAGGAGE_LEN {
        return Vec::new();
    }
    raw.split(',')
        .filter_map(|entry| {
            let kv = entry.split(';').next()?.trim();
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if k.is_empty() || !k.bytes().all(token) {
                return None;
            }
            Some((k.to_owned(), percent_decode(v.trim())?))
        })
        .take(MAX_BAGGAGE_ENTRIES)
        .collect()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/+".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_accepts_only_the_w3c_form() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = parse_traceparent(ok).unwrap();
        assert!(p.sampled);
        assert_eq!(p.span_id, SpanId::from(0x00f0_67aa_0ba9_02b7));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert!(!parse_traceparent(future).unwrap().sampled);
    }

    #[test]
    fn baggage_round_trips_and_rejects_junk() {
        let parsed = parse_baggage("request_id=r%201;prop=x, bad key=1, k=v%ZZ, ok=%E2%9C%93");
        assert_eq!(
            parsed,
            [
                ("request_id".to_owned(), "r 1".to_owned()),
                ("ok".to_owned(), "✓".to_owned())
            ]
        );
        assert!(parse_baggage(&"a=b,".repeat(3000)).is_empty());
        assert_eq!(
            percent_decode(&percent_encode("a b,c=d✓")).unwrap(),
            "a b,c=d✓"
        );
    }

    #[test]
    fn tracestate_limits() {
        assert!(valid_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
        assert!(!valid_tracestate("Bad=1"));
        assert!(!valid_tracestate(&"a=b,".repeat(40)));
        assert!(!valid_tracestate(&format!("a={}", "x".repeat(600))));
    }
}
