//! Request ids, sessions and users: what correlates spans beyond the trace tree.
//!
//! The current correlation of a thread is one `Arc` in a thread-local, replaced when a scope
//! begins and restored when it ends. It is read only when a span is recorded, to stamp
//! `honeyhive.request_id`, `honeyhive.session_id`, `session.id` and `user.id` on it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::{KeyValue, StringValue, Value};

use crate::context::LeftOutOfOrder;

/// Where a request id came from (`honeyhive.request_id.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestIdSource {
    /// From an argument of the function (`#[with_request_id(from = arg)]`).
    Argument,
    /// From an incoming `x-request-id` header.
    Header,
    /// From incoming W3C baggage (`request_id=...`).
    Baggage,
    /// Generated here (UUID v7 layout).
    Generated,
    /// Set by code through [`Scope::request_id`].
    Manual,
}

impl RequestIdSource {
    /// The recorded name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestIdSource::Argument => "argument",
            RequestIdSource::Header => "header",
            RequestIdSource::Baggage => "baggage",
            RequestIdSource::Generated => "generated",
            RequestIdSource::Manual => "manual",
        }
    }
}

/// A request id and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId {
    /// The id.
    pub id: Arc<str>,
    /// Its source.
    pub source: RequestIdSource,
}

/// Everything that correlates the spans of a scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[doc(hidden)]
pub struct Correlation {
    /// The request id established by `#[with_request_id]` or a scope.
    pub(crate) request_id: Option<RequestId>,
    /// A request id that arrived with an extracted remote context, not yet adopted.
    pub(crate) incoming_request_id: Option<RequestId>,
    /// The id a `new` request id replaced (`honeyhive.request_id.previous`).
    pub(crate) previous_request_id: Option<Arc<str>>,
    /// Whether an inbound id was invalid and replaced.
    pub(crate) replaced_invalid: bool,
    pub(crate) session_id: Option<Arc<str>>,
    pub(crate) user_id: Option<Arc<str>>,
    /// Incoming `tracestate`, passed on by `inject`.
    pub(crate) tracestate: Option<Arc<str>>,
    /// The trace a caller sent with an extracted remote context.
    pub(crate) caller_trace: Option<CallerTrace>,
    /// Incoming baggage members other than ours, encoded, passed on by `inject`.
    pub(crate) baggage: Vec<Arc<str>>,
}

/// What a caller said about its trace, beyond the ids: `inject` passes the flag on for that
/// trace, and sampling decisions in it use the randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallerTrace {
    pub(crate) trace_id: u128,
    /// The caller's random-trace-id flag (W3C level 2).
    pub(crate) random: bool,
    /// Explicit randomness (`ot=rv:` in `tracestate`), used instead of the trace id's bits.
    pub(crate) rv: Option<u64>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Correlation>>> = const { RefCell::new(None) };
}

/// The caller's trace of the current scope, read without cloning the correlation.
pub(crate) fn caller_trace() -> Option<CallerTrace> {
    CURRENT
        .try_with(|c| c.try_borrow().ok()?.as_ref()?.caller_trace)
        .ok()
        .flatten()
}

/// The correlation of the current scope.
pub(crate) fn current() -> Option<Arc<Correlation>> {
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Makes `next` current; returns what was current.
pub(crate) fn replace(next: Option<Arc<Correlation>>) -> Option<Arc<Correlation>> {
    CURRENT
        .try_with(|c| {
            c.try_borrow_mut()
                .map(|mut c| std::mem::replace(&mut *c, next))
                .ok()
        })
        .ok()
        .flatten()
        .flatten()
}

/// Whether `a` and `b` are the same correlation (the same scope's, not equal values).
pub(crate) fn same(a: Option<&Arc<Correlation>>, b: Option<&Arc<Correlation>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

thread_local! {
    /// Correlations of scopes left while a scope entered inside them was still current, and
    /// what each had replaced (see [`leave`]).
    static ENDED: RefCell<LeftOutOfOrder<Option<Arc<Correlation>>>> =
        const { RefCell::new(LeftOutOfOrder::new()) };
}

/// [`same`] for [`LeftOutOfOrder`]'s entries.
#[allow(clippy::ref_option)] // the entries' own type
fn same_scope(a: &Option<Arc<Correlation>>, b: &Option<Arc<Correlation>>) -> bool {
    same(a.as_ref(), b.as_ref())
}

/// Leaves a scope that made `set` current in place of `prev`, by the rule the span context
/// follows (`context::leaving`): `prev` is restored if `set` is still current. If a scope
/// entered inside it still is (guards dropped out of order), that one's correlation stays, and
/// when it is left, `prev` is restored in place of `set`.
pub(crate) fn leave(set: Option<Arc<Correlation>>, prev: Option<Arc<Correlation>>) {
    let now = current();
    let restore = if same(now.as_ref(), set.as_ref()) {
        Some(prev)
    } else {
        // A scope without a correlation of its own is never noted: another `None` would be
        // taken for it.
        if !same(now.as_ref(), prev.as_ref()) && set.is_some() {
            let _ = ENDED.try_with(|ended| {
                if let Ok(mut ended) = ended.try_borrow_mut() {
                    ended.note(set, prev);
                }
            });
        }
        None
    };
    if let Some(prev) = restore {
        let mut prev = Some(prev);
        let _ = ENDED.try_with(|ended| {
            if let Ok(mut ended) = ended.try_borrow_mut()
                && !ended.is_empty()
                && let Some(p) = prev.take()
            {
                prev = Some(ended.resolve(p, same_scope));
            }
        });
        replace(prev.flatten());
    }
}

/// Adds the correlation attributes of the current scope to a span being recorded.
#[inline]
pub(crate) fn stamp(attrs: &mut Vec<KeyValue>) {
    let _ = CURRENT.try_with(|c| {
        if let Ok(c) = c.try_borrow()
            && let Some(c) = c.as_deref()
        {
            c.stamp(attrs);
        }
    });
}

fn value(s: &Arc<str>) -> Value {
    Value::String(StringValue::from(Arc::clone(s)))
}

impl Correlation {
    pub(crate) fn stamp(&self, attrs: &mut Vec<KeyValue>) {
        if let Some(rid) = self
            .request_id
            .as_ref()
            .or(self.incoming_request_id.as_ref())
        {
            attrs.push(KeyValue::new("honeyhive.request_id", value(&rid.id)));
            attrs.push(KeyValue::new(
                "honeyhive.request_id.source",
                rid.source.as_str(),
            ));
            if let Some(prev) = &self.previous_request_id {
                attrs.push(KeyValue::new("honeyhive.request_id.previous", value(prev)));
            }
            if self.replaced_invalid {
                attrs.push(KeyValue::new("honeyhive.request_id.replaced_invalid", true));
            }
        }
        if let Some(session) = &self.session_id {
            attrs.push(KeyValue::new("honeyhive.session_id", value(session)));
            attrs.push(KeyValue::new("session.id", value(session)));
        }
        if let Some(user) = &self.user_id {
            attrs.push(KeyValue::new("user.id", value(user)));
        }
    }
}

/// The request id of the current scope, if any (established or incoming).
pub fn current_request_id() -> Option<RequestId> {
    current().and_then(|c| {
        c.request_id
            .clone()
            .or_else(|| c.incoming_request_id.clone())
    })
}

/// The session id of the current scope, if any.
pub fn current_session_id() -> Option<Arc<str>> {
    current().and_then(|c| c.session_id.clone())
}

/// The user id of the current scope, if any.
pub fn current_user_id() -> Option<Arc<str>> {
    current().and_then(|c| c.user_id.clone())
}

/// Longest inbound id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether an inbound id is acceptable: 1 to 128 characters of `A-Z a-z 0-9 . _ : - / + =`.
///
/// Inbound ids end up in every span and in logs; anything else (spaces, quotes, control
/// characters, very long values) is replaced rather than trusted.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-/+=".contains(&b))
}

/// A new id in the UUID v7 layout: 48 bits of Unix milliseconds, then random bits, so ids
/// sort by creation time.
pub fn new_request_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    #[allow(clippy::cast_possible_truncation)] // the layout keeps the low 48 bits
    let ms = (ms as u64) & 0xFFFF_FFFF_FFFF;
    let r1 = crate::rng::random_u64();
    let r2 = crate::rng::random_u64();
    let hi = (ms << 16) | 0x7000 | (r1 & 0x0FFF);
    let lo = (r2 & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Something a request id can be read from: `#[with_request_id(from = arg)]`.
///
/// Implemented for strings, `Option`s of them, `HashMap<String, String>` and
/// `http::HeaderMap` (the `x-request-id` header), `http::Request` (its headers), and references
/// to any of these. Implement it for your own request type.
#[diagnostic::on_unimplemented(
    message = "`#[with_request_id(from = ...)]` cannot read a request id from `{Self}`",
    label = "not a `RequestIdCarrier`",
    note = "pass a `&str`, a `HashMap<String, String>`, an `http::HeaderMap` or `http::Request`, or implement `honeyhive_runtime::RequestIdCarrier` for `{Self}`"
)]
pub trait RequestIdCarrier {
    /// The request id it carries, unvalidated.
    fn request_id(&self) -> Option<&str>;
}

impl RequestIdCarrier for str {
    fn request_id(&self) -> Option<&str> {
        Some(self)
    }
}
impl RequestIdCarrier for String {
    fn request_id(&self) -> Option<&str> {
        Some(self)
    }
}
impl<T: RequestIdCarrier + ?Sized> RequestIdCarrier for &T {
    fn request_id(&self) -> Option<&str> {
        (**self).request_id()
    }
}
impl<T: RequestIdCarrier + ?Sized> RequestIdCarrier for &mut T {
    fn request_id(&self) -> Option<&str> {
        (**self).request_id()
    }
}
impl<T: RequestIdCarrier> RequestIdCarrier for Option<T> {
    fn request_id(&self) -> Option<&str> {
        self.as_ref().and_then(RequestIdCarrier::request_id)
    }
}
impl<B> RequestIdCarrier for http::Request<B> {
    fn request_id(&self) -> Option<&str> {
        self.headers().request_id()
    }
}

/// How `#[with_request_id]` should choose the id.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Inherit, else the argument, else incoming, else generate.
    Ensure,
    /// Always a fresh id; the one it replaces is recorded as previous.
    New,
}

/// The correlation `#[with_request_id]` establishes, given what is current and an argument.
#[doc(hidden)]
pub fn with_request_id(policy: Policy, from: Option<&str>) -> Arc<Correlation> {
    let current = current();
    let base = current.as_deref().cloned().unwrap_or_default();
    if policy == Policy::Ensure && base.request_id.is_some() {
        // Inherit: nothing changes, and no allocation.
        if let Some(c) = current {
            return c;
        }
    }
    let mut next = base;
    let previous = next
        .request_id
        .take()
        .or_else(|| next.incoming_request_id.clone())
        .map(|r| r.id);
    // With no id established, the flag describes the incoming id (see `propagation`).
    let incoming_replaced = next.replaced_invalid;
    next.replaced_invalid = false;
    next.previous_request_id = None;
    let chosen = match policy {
        Policy::New => {
            next.previous_request_id = previous;
            None
        }
        Policy::Ensure => match from {
            Some(id) if is_valid_request_id(id) => Some(RequestId {
                id: Arc::from(id),
                source: RequestIdSource::Argument,
            }),
            Some(_) => {
                next.replaced_invalid = true;
                None
            }
            None => {
                let incoming = next.incoming_request_id.clone();
                next.replaced_invalid = incoming.is_some() && incoming_replaced;
                incoming
            }
        },
    };
    next.request_id = Some(chosen.unwrap_or_else(|| RequestId {
        id: Arc::from(new_request_id()),
        source: RequestIdSource::Generated,
    }));
    Arc::new(next)
}

/// Sets a correlation for the rest of a sync scope; restores the previous one on drop,
/// including on panic and early return.
#[doc(hidden)]
#[must_use = "the scope ends when the guard is dropped"]
#[derive(Debug)]
pub struct CorrelationGuard {
    previous: Option<Arc<Correlation>>,
    /// Not `Send`: the guard restores this thread's state.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl CorrelationGuard {
    /// Makes `correlation` current.
    #[doc(hidden)]
    pub fn enter(correlation: Arc<Correlation>) -> Self {
        CorrelationGuard {
            previous: replace(Some(correlation)),
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for CorrelationGuard {
    fn drop(&mut self) {
        replace(self.previous.take());
    }
}

/// A future that runs with a correlation current while it is polled.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WithCorrelation<F> {
    correlation: Option<Arc<Correlation>>,
    future: F,
}

impl<F> WithCorrelation<F> {
    /// Wraps `future`.
    #[doc(hidden)]
    pub fn new(correlation: Arc<Correlation>, future: F) -> Self {
        WithCorrelation {
            correlation: Some(correlation),
            future,
        }
    }
}

impl<F: Future> Future for WithCorrelation<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned and never moved; `correlation` is not.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let _guard = CorrelationGuard {
            previous: replace(this.correlation.clone()),
            _not_send: std::marker::PhantomData,
        };
        future.poll(cx)
    }
}

/// A scope of correlation set by code: a session, a user, a request id.
///
/// ```
/// use honeyhive_runtime::Scope;
///
/// let answer = Scope::session("sess-42").user("user-7").run(|| {
///     // every span recorded here carries session.id and user.id
///     42
/// });
/// # assert_eq!(answer, 42);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a scope does nothing until entered"]
#[allow(clippy::struct_field_names)] // they are ids: the names say which
pub struct Scope {
    session_id: Option<Arc<str>>,
    user_id: Option<Arc<str>>,
    request_id: Option<Arc<str>>,
}

impl Scope {
    /// A scope for a session.
    pub fn session(id: impl Into<Arc<str>>) -> Scope {
        Scope {
            session_id: Some(id.into()),
            ..Scope::default()
        }
    }

    /// A scope for a user.
    pub fn user_only(id: impl Into<Arc<str>>) -> Scope {
        Scope {
            user_id: Some(id.into()),
            ..Scope::default()
        }
    }

    /// Adds the user.
    pub fn user(mut self, id: impl Into<Arc<str>>) -> Scope {
        self.user_id = Some(id.into());
        self
    }

    /// Adds a request id (source `manual`; not validated: it is your own).
    pub fn request_id(mut self, id: impl Into<Arc<str>>) -> Scope {
        self.request_id = Some(id.into());
        self
    }

    fn correlation(&self) -> Arc<Correlation> {
        let mut next = current().as_deref().cloned().unwrap_or_default();
        if let Some(s) = &self.session_id {
            next.session_id = Some(Arc::clone(s));
        }
        if let Some(u) = &self.user_id {
            next.user_id = Some(Arc::clone(u));
        }
        if let Some(r) = &self.request_id {
            next.request_id = Some(RequestId {
                id: Arc::clone(r),
                source: RequestIdSource::Manual,
            });
            next.previous_request_id = None;
            next.replaced_invalid = false;
        }
        Arc::new(next)
    }

    /// Enters the scope on this thread until the guard is dropped (sync code only: in async
    /// code use [`Scope::instrument`], since a guard held across `.await` would leak).
    pub fn enter(&self) -> ScopeGuard {
        ScopeGuard(CorrelationGuard::enter(self.correlation()))
    }

    /// Runs `f` in the scope.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Runs `future` in the scope, wherever it is polled.
    pub fn instrument<F: Future>(&self, future: F) -> WithCorrelation<F> {
        WithCorrelation::new(self.correlation(), future)
    }
}

/// Keeps a [`Scope`] current; restores the previous state on drop, also on panic.
#[must_use = "the scope ends when the guard is dropped"]
#[derive(Debug)]
pub struct ScopeGuard(#[allow(dead_code)] CorrelationGuard);

/// Starts a session for `#[trace(event_type = "session")]` roots: a fresh session id, unless
/// one is already current.
#[doc(hidden)]
pub(crate) fn session_for_root() -> Option<Arc<Correlation>> {
    let current = current();
    if current.as_ref().is_some_and(|c| c.session_id.is_some()) {
        return None;
    }
    let mut next = current.as_deref().cloned().unwrap_or_default();
    next.session_id = Some(Arc::from(new_request_id()));
    Some(Arc::new(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_layout() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        let parts: Vec<_> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('7'), "{id}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
        assert!(is_valid_request_id(&id));
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn validation_rejects_junk() {
        assert!(is_valid_request_id("req-123_abc.def:9/x+y="));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id("quote\"d"));
        assert!(!is_valid_request_id("nl\n"));
        assert!(!is_valid_request_id(&"a".repeat(129)));
        assert!(is_valid_request_id(&"a".repeat(128)));
    }
}
