//! Privacy and size, on the export thread: secrets redacted from every captured string, key
//! allow and deny lists, and a per-span attribute budget that never evicts core keys.
//!
//! Configured with [`Builder`](crate::Builder) (`redact_secrets`, `redact_pattern`,
//! `allow_keys`, `deny_keys`, `max_span_attributes`, `max_span_bytes`). In order, for each span:
//!
//! 1. **Keys.** A key matching a deny pattern is dropped; with an allow list, only matching keys
//!    are kept. Patterns are exact keys or prefixes ending in `*` (`honeyhive_inputs.*`).
//!    [`CORE_KEYS`] are never dropped.
//! 2. **Secrets.** In every string (attribute values and keys, event names and attributes, the
//!    status message, and the span name), secrets recognised by their shape become
//!    `[REDACTED]`: provider keys (OpenAI, Anthropic, Google API keys and OAuth client secrets,
//!    HoneyHive, Hugging Face, GitHub, GitLab, npm, `PyPI`, Stripe, `SendGrid`, Slack tokens and
//!    webhooks, AWS access key ids, temporary ids, ...), JWTs, PEM private keys, `Bearer` and
//!    `Basic` credentials, passwords in URLs (`postgres://user:password@host`), Azure
//!    `AccountKey=`, and `password=…`, `"api_key": …`, `aws_secret_access_key = …`-style
//!    assignments, whatever symbols the value holds. The whole value of a key named like a
//!    secret (`password`, `api_key`, `token`, `authorization`, ...) is redacted too. Patterns
//!    given with `redact_pattern` (regular expressions, [`regex`](https://docs.rs/regex)
//!    syntax) are redacted the same way, and a [`Mask`] given with `Builder::mask` sees every
//!    string value last, with its key, for what no pattern can know.
//!
//!    The scan is one pass of a literal prefilter over each string; only strings it lets
//!    through are searched with one combined expression. A value cut at the capture cap is
//!    never cut inside a secret (the cut moves in front of it), so no part of one survives.
//! 3. **Budget.** Duplicate keys keep their last value. Then core keys, then the other
//!    small keys (types, tokens, costs, errors), then captured content (inputs, outputs,
//!    metadata, messages) fill the budget in that order: a value that does not fit is cut to the
//!    room left (with the `…[truncated N bytes]` marker) or dropped, and the span records how
//!    many were dropped (`honeyhive.dropped_attributes` and OTLP's dropped count).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use regex::Regex;

use crate::capture::truncation_marker;
use crate::llm::json;
use crate::record::Attr;
use crate::secrets;

/// Keys that are never dropped or evicted: without them a span cannot be placed.
pub const CORE_KEYS: &[&str] = &[
    "honeyhive_event_type",
    "honeyhive.session_id",
    "honeyhive.request_id",
    "honeyhive.request_id.source",
    "session.id",
    "user.id",
    "openinference.span.kind",
];

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Default of [`Privacy::max_attributes`].
pub const DEFAULT_MAX_ATTRIBUTES: usize = 256;
/// Default of [`Privacy::max_bytes`].
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;
/// Default of [`Privacy::max_events`], the OpenTelemetry SDK's default too.
pub const DEFAULT_MAX_EVENTS: usize = 128;

/// Header names whose values are credentials whatever they look like, besides the names
/// [`secrets::names_a_secret_key`] reads (`password`, `api_key`, `access_token`, ...).
const SECRET_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// A user's masking callback: `(key, value)` to `Some(replacement)`, or `None` to keep the
/// value. Runs on the export thread, after the built-in redaction, on every string value
/// (attributes, event attributes under their own keys, the status message under
/// `otel.status_description`). A callback that panics fails closed: the value becomes
/// `[REDACTED]`.
#[derive(Clone)]
pub struct Mask(Arc<MaskFn>);

/// The callback behind a [`Mask`].
type MaskFn = dyn Fn(&str, &str) -> Option<String> + Send + Sync;

impl Mask {
    /// Wraps a callback.
    pub fn new(mask: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static) -> Mask {
        Mask(Arc::new(mask))
    }

    fn apply(&self, key: &str, value: &str) -> Option<String> {
        std::panic::catch_unwind(AssertUnwindSafe(|| (self.0)(key, value)))
            .unwrap_or_else(|_| Some(REDACTED.to_owned()))
    }
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mask(..)")
    }
}

impl PartialEq for Mask {
    fn eq(&self, other: &Mask) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Mask {}

/// Privacy and size settings (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Privacy {
    /// Redact API keys, bearer tokens and secret-named keys (default on).
    pub redact_secrets: bool,
    /// More patterns to redact, as regular expressions.
    pub redact_patterns: Vec<String>,
    /// When not empty, only keys matching one of these (and core keys) are exported.
    pub allow_keys: Vec<String>,
    /// Keys never exported (core keys excepted).
    pub deny_keys: Vec<String>,
    /// Attributes per span, core keys included.
    pub max_attributes: usize,
    /// Bytes of attribute keys and values per span.
    pub max_bytes: usize,
    /// Events per span: the first ones and the last are kept, the rest counted as dropped.
    pub max_events: usize,
    /// A user's masking callback (see [`Mask`]).
    pub mask: Option<Mask>,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            redact_secrets: true,
            redact_patterns: Vec::new(),
            allow_keys: Vec::new(),
            deny_keys: Vec::new(),
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_events: DEFAULT_MAX_EVENTS,
            mask: None,
        }
    }
}

/// [`Privacy`], compiled for the export thread.
#[derive(Debug)]
pub(crate) struct Redactor {
    secrets: Option<&'static secrets::Scanner>,
    /// The user's patterns, as one alternation.
    patterns: Option<Regex>,
    mask: Option<Mask>,
    allow: Vec<KeyPattern>,
    deny: Vec<KeyPattern>,
    max_attributes: usize,
    max_bytes: usize,
    max_events: usize,
    /// What was decided for each key seen: keys repeat from span to span (most are static),
    /// so each distinct key is matched against the lists and scanned once.
    keys: RefCell<KeyCache>,
    /// The duplicate check's hashes and table, reused from span to span.
    dedup: RefCell<(Vec<u64>, Vec<usize>)>,
}

/// Keys remembered at most; the cache starts over beyond (user keys can be unbounded).
const MAX_CACHED_KEYS: usize = 4096;

/// What the key lists and the secret scan make of one key.
#[derive(Clone, Debug)]
struct KeyDecision {
    /// Exported at all (the allow and deny lists).
    keep: bool,
    /// Named like a secret: its whole value is redacted.
    secret_name: bool,
    /// The key with secrets in it replaced, when it had any.
    redacted: Option<Key>,
}

/// The decisions made, by key: a map, and in front of it a small table found by where the
/// key's text is in memory (the same static key comes back at the same address span after
/// span), checked against the text itself, so a key at a reused address is never mistaken.
#[derive(Debug, Default)]
struct KeyCache {
    index: HashMap<Box<str>, u32, BuildHasherDefault<FastHasher>>,
    decided: Vec<(Box<str>, KeyDecision)>,
    /// `(address, length, index into decided)`; `usize::MAX` length when empty.
    recent: Vec<(usize, usize, u32)>,
}

/// Slots of [`KeyCache::recent`].
const RECENT_SLOTS: usize = 64;

impl KeyCache {
    fn slot(key: &str) -> usize {
        let at = key.as_ptr() as usize;
        ((at >> 3) ^ (at >> 11) ^ key.len()) & (RECENT_SLOTS - 1)
    }

    fn get(&mut self, key: &str) -> Option<&KeyDecision> {
        if self.recent.is_empty() {
            self.recent = vec![(0, usize::MAX, 0); RECENT_SLOTS];
        }
        let slot = Self::slot(key);
        let (at, len, i) = self.recent[slot];
        if at == key.as_ptr() as usize
            && len == key.len()
            && let Some((known, decision)) = self.decided.get(i as usize)
            && **known == *key
        {
            return Some(decision);
        }
        let i = *self.index.get(key)?;
        self.recent[slot] = (key.as_ptr() as usize, key.len(), i);
        self.decided.get(i as usize).map(|(_, d)| d)
    }

    fn insert(&mut self, key: &str, decision: KeyDecision) {
        if self.decided.len() >= MAX_CACHED_KEYS {
            self.index.clear();
            self.decided.clear();
            self.recent.clear();
        }
        #[allow(clippy::cast_possible_truncation)] // at most MAX_CACHED_KEYS
        let i = self.decided.len() as u32;
        self.index.insert(key.into(), i);
        self.decided.push((key.into(), decision));
    }
}

/// `FxHash`'s word-at-a-time multiply: keys are short and not attacker-chosen on this thread.
#[derive(Default)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Every eight bytes of the key, as FxHash mixes them: keys may differ anywhere, in
        // their middle too (`llm.input_messages.<n>.message.content`), and keys that shared a
        // hash would be compared in full against each other (quadratic in a span's keys).
        let mut mix = |w: u64| {
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        };
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            mix(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        mix(u64::from_le_bytes(last));
        mix(bytes.len() as u64);
    }
}

#[derive(Debug)]
enum KeyPattern {
    Exact(String),
    Prefix(String),
}

impl KeyPattern {
    fn new(pattern: &str) -> KeyPattern {
        match pattern.strip_suffix('*') {
            Some(prefix) => KeyPattern::Prefix(prefix.to_owned()),
            None => KeyPattern::Exact(pattern.to_owned()),
        }
    }

    fn matches(&self, key: &str) -> bool {
        match self {
            KeyPattern::Exact(k) => k == key,
            KeyPattern::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

impl Redactor {
    /// Compiles the patterns.
    pub(crate) fn new(privacy: &Privacy) -> Result<Redactor, String> {
        for p in &privacy.redact_patterns {
            Regex::new(p).map_err(|e| format!("redaction pattern {p:?}: {e}"))?;
        }
        let patterns = if privacy.redact_patterns.is_empty() {
            None
        } else {
            let joined = privacy
                .redact_patterns
                .iter()
                .map(|p| format!("(?:{p})"))
                .collect::<Vec<_>>()
                .join("|");
            Some(Regex::new(&joined).map_err(|e| format!("redaction patterns together: {e}"))?)
        };
        Ok(Redactor {
            secrets: privacy.redact_secrets.then(secrets::scanner),
            patterns,
            mask: privacy.mask.clone(),
            allow: privacy
                .allow_keys
                .iter()
                .map(|p| KeyPattern::new(p))
                .collect(),
            deny: privacy
                .deny_keys
                .iter()
                .map(|p| KeyPattern::new(p))
                .collect(),
            max_attributes: privacy.max_attributes,
            max_bytes: privacy.max_bytes,
            max_events: privacy.max_events,
            keys: RefCell::default(),
            dedup: RefCell::default(),
        })
    }

    /// The decision for `key`, from the cache or made now.
    fn decide_key(&self, key: &str) -> KeyDecision {
        if self.secrets.is_none() && self.patterns.is_none() && !self.has_lists() {
            return KeyDecision {
                keep: true,
                secret_name: false,
                redacted: None,
            };
        }
        if let Some(d) = self.keys.borrow_mut().get(key) {
            return d.clone();
        }
        let redacted = match self.redact_name(key) {
            Cow::Owned(k) => Some(Key::from(k)),
            Cow::Borrowed(_) => None,
        };
        let d = KeyDecision {
            keep: self.keep_key(key),
            secret_name: self.secrets.is_some() && is_secret_name(key),
            redacted,
        };
        self.keys.borrow_mut().insert(key, d.clone());
        d
    }

    /// Secrets, user patterns and the mask, on captured attribute values, events and the
    /// status: what a span's own content holds. Values derived from it afterwards (the
    /// conventions' copies) inherit the result and need no scan of their own.
    pub(crate) fn scrub(&self, attrs: &mut [KeyValue], events: &mut [Event], status: &mut Status) {
        for kv in attrs.iter_mut() {
            self.redact_attribute(kv);
        }
        for event in events.iter_mut() {
            if let Cow::Owned(name) = self.redact_name(&event.name) {
                event.name = Cow::Owned(name);
            }
            for kv in &mut event.attributes {
                self.redact_attribute(kv);
            }
        }
        if let Status::Error { description } = status {
            let redacted = self.redact(description);
            let masked = self.masked("otel.status_description", &redacted);
            if let Some(text) = masked {
                *description = Cow::Owned(text);
            } else if let Cow::Owned(text) = redacted {
                *description = Cow::Owned(text);
            }
        }
    }

    /// The key lists, then the budget. Returns how many attributes the budget dropped.
    pub(crate) fn limit(&self, attrs: &mut Vec<Attr<'_>>) -> u32 {
        if self.has_lists() {
            attrs.retain(|kv| self.decide_key(kv.key.as_str()).keep);
        }
        self.budget(attrs)
    }

    /// A copy of the events the limit keeps: the first ones and the last (a panic's
    /// exception, the final attempt), in order; and how many it dropped.
    pub(crate) fn kept_events(&self, events: &[Event]) -> (Vec<Event>, u32) {
        let n = events.len();
        if n <= self.max_events {
            return (events.to_vec(), 0);
        }
        let mut kept = Vec::with_capacity(self.max_events);
        if let Some((last, first)) = events.split_last()
            && self.max_events > 0
        {
            kept.extend_from_slice(&first[..self.max_events - 1]);
            kept.push(last.clone());
        }
        let dropped = u32::try_from(n - kept.len()).unwrap_or(u32::MAX);
        (kept, dropped)
    }

    fn has_lists(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }

    /// Applies the key lists, redaction and the budget to one span. Returns how many attributes
    /// were dropped by the budget.
    #[cfg(test)]
    pub(crate) fn apply(
        &self,
        attrs: &mut Vec<KeyValue>,
        events: &mut [Event],
        status: &mut Status,
    ) -> u32 {
        self.scrub(attrs, events, status);
        let mut list: Vec<Attr<'_>> = std::mem::take(attrs).into_iter().map(Attr::Owned).collect();
        let dropped = self.limit(&mut list);
        *attrs = list.into_iter().map(Attr::into_owned).collect();
        dropped
    }

    fn keep_key(&self, key: &str) -> bool {
        if CORE_KEYS.contains(&key) {
            return true;
        }
        if self.deny.iter().any(|p| p.matches(key)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|p| p.matches(key))
    }

    /// Whether `key` comes out of redaction as it is, and its value is not redacted whole: then
    /// its strings can be scrubbed where they are ([`scrub_strings`](Redactor::scrub_strings)).
    pub(crate) fn keeps_key(&self, key: &str) -> bool {
        let decision = self.decide_key(key);
        decision.redacted.is_none() && !decision.secret_name
    }

    /// What [`redact_attribute`](Redactor::redact_attribute) makes of a string list under a key
    /// that [`keeps_key`](Redactor::keeps_key), without copying it: borrowed when no string
    /// changed, which is the common case.
    pub(crate) fn scrub_strings<'a>(
        &self,
        key: &str,
        items: &'a [StringValue],
    ) -> Cow<'a, [StringValue]> {
        let mut out = Cow::Borrowed(items);
        for (i, s) in items.iter().enumerate() {
            if let Some(replacement) = self.replacement(key, s.as_str()) {
                out.to_mut()[i] = replacement;
            }
        }
        out
    }

    /// What [`redact_attribute`](Redactor::redact_attribute) makes of `kv`, when it changes
    /// it; `None` (the common case, nothing copied) when it comes out as it is.
    pub(crate) fn redacted_attribute(&self, kv: &KeyValue) -> Option<KeyValue> {
        let decision = self.decide_key(kv.key.as_str());
        if decision.redacted.is_some() || decision.secret_name {
            let mut kv = kv.clone();
            self.redact_attribute(&mut kv);
            return Some(kv);
        }
        let key = kv.key.as_str();
        let value = match &kv.value {
            Value::String(s) => Value::String(self.replacement(key, s.as_str())?),
            Value::Array(Array::String(items)) => {
                let changed = self.scrub_strings(key, items);
                let Cow::Owned(items) = changed else {
                    return None;
                };
                Value::Array(Array::String(items))
            }
            _ => return None,
        };
        Some(KeyValue::new(kv.key.clone(), value))
    }

    /// Redacts one attribute in place: its key, then its value (secrets, patterns, the mask).
    pub(crate) fn redact_attribute(&self, kv: &mut KeyValue) {
        let decision = self.decide_key(kv.key.as_str());
        if let Some(key) = decision.redacted {
            kv.key = key;
        }
        if decision.secret_name {
            kv.value = Value::from(REDACTED);
            return;
        }
        let key = kv.key.as_str();
        match &mut kv.value {
            Value::String(s) => self.redact_value(key, s),
            Value::Array(Array::String(items)) => {
                for s in items {
                    self.redact_value(key, s);
                }
            }
            _ => {}
        }
    }

    fn redact_value(&self, key: &str, s: &mut StringValue) {
        if let Some(replacement) = self.replacement(key, s.as_str()) {
            *s = replacement;
        }
    }

    /// What secrets, patterns and the mask make of the value `text` of `key`, when it changes.
    fn replacement(&self, key: &str, text: &str) -> Option<StringValue> {
        let redacted = self.redact(text);
        match self.masked(key, &redacted) {
            Some(masked) => Some(StringValue::from(masked)),
            None => match redacted {
                Cow::Owned(text) => Some(StringValue::from(text)),
                Cow::Borrowed(_) => None,
            },
        }
    }

    fn masked(&self, key: &str, value: &str) -> Option<String> {
        self.mask.as_ref()?.apply(key, value)
    }

    /// A function's span name (static, so it repeats from span to span) with secrets and user
    /// patterns replaced, when they change it: decided once per name, like a key.
    pub(crate) fn redacted_static_name(&self, name: &'static str) -> Option<String> {
        self.decide_key(name)
            .redacted
            .map(|name| name.as_str().to_owned())
    }

    /// A span name or an attribute key with secrets and user patterns replaced, like
    /// [`redact`](Redactor::redact); the mask callback is for values and does not see names.
    pub(crate) fn redact_name<'a>(&self, name: &'a str) -> Cow<'a, str> {
        self.redact(name)
    }

    /// `text` with secrets and user patterns replaced; borrowed when nothing matched, which
    /// is the common case and allocates nothing.
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if let Some(scanner) = self.secrets {
            let found = scanner.find_all(text);
            if !found.is_empty() {
                let mut s = String::with_capacity(text.len());
                let mut at = 0;
                for f in found {
                    s.push_str(&text[at..f.secret.start]);
                    s.push_str(REDACTED);
                    at = f.secret.end;
                }
                s.push_str(&text[at..]);
                out = Cow::Owned(s);
            }
        }
        if let Some(patterns) = &self.patterns
            && let Cow::Owned(s) = patterns.replace_all(&out, regex::NoExpand(REDACTED))
        {
            out = Cow::Owned(s);
        }
        out
    }

    /// Keeps core keys, then small keys, then content, then the indexed copies of messages
    /// (`llm.input_messages.N.*`, which `input.value` and `gen_ai.*.messages` hold too),
    /// within the count and byte budgets. A text that does not fit whole is cut, unless it is
    /// JSON we rendered, which a cut would leave unreadable: that one is shrunk as JSON (its
    /// longest strings cut) or dropped; a value cut as text or dropped takes its mime type.
    fn budget(&self, attrs: &mut Vec<Attr<'_>>) -> u32 {
        // Duplicates keep their last value (an enrichment overrides a captured value).
        dedup_keep_last(attrs, &mut self.dedup.borrow_mut());
        let total: usize = attrs.iter().map(|kv| size_of(kv)).sum();
        if attrs.len() <= self.max_attributes && total <= self.max_bytes {
            return 0;
        }
        let mut unique = std::mem::take(attrs);
        let tier = |kv: &Attr<'_>| {
            let key = kv.key.as_str();
            if CORE_KEYS.contains(&key) {
                0
            } else if is_message_copy(key) {
                3
            } else if is_content(key) {
                2
            } else {
                1
            }
        };
        let mut order: Vec<usize> = (0..unique.len()).collect();
        order.sort_by_key(|&i| tier(&unique[i]));
        let mut keep = vec![false; unique.len()];
        let mut count = 0;
        let mut bytes = 0;
        let mut dropped = 0u32;
        let mut lost_mime = Vec::new();
        for i in order {
            let core = tier(&unique[i]) == 0;
            let size = size_of(&unique[i]);
            if core || (count < self.max_attributes && bytes + size <= self.max_bytes) {
                keep[i] = true;
                count += 1;
                bytes += size;
                continue;
            }
            let room = self
                .max_bytes
                .saturating_sub(bytes + unique[i].key.as_str().len());
            if count < self.max_attributes
                && room >= 64
                && let Value::String(s) = &unique[i].value
            {
                let text = s.as_str();
                let key = unique[i].key.as_str();
                // JSON we rendered is shrunk as JSON, or dropped: a cut would leave it
                // unreadable. Other text is cut.
                let shortened = if json::shrinks_as_json(key) && json::looks_like_json(text) {
                    json::shrunk(text, room - 32)
                } else {
                    lost_mime.extend(json::mime_key_of(key));
                    let cut = floor_char_boundary(text, room - 32);
                    Some(format!(
                        "{}{}",
                        &text[..cut],
                        truncation_marker(text.len() - cut)
                    ))
                };
                if let Some(shortened) = shortened {
                    unique[i] = Attr::Owned(KeyValue::new(unique[i].key.clone(), shortened));
                    keep[i] = true;
                    count += 1;
                    bytes += size_of(&unique[i]);
                    continue;
                }
            }
            lost_mime.extend(json::mime_key_of(unique[i].key.as_str()));
            dropped += 1;
        }
        // A mime type says how its value reads: it goes when the value went or was cut.
        for mime_key in lost_mime {
            for (kv, kept) in unique.iter().zip(keep.iter_mut()) {
                if kv.key.as_str() == mime_key {
                    *kept = false;
                }
            }
        }
        *attrs = unique
            .into_iter()
            .zip(keep)
            .filter_map(|(kv, keep)| keep.then_some(kv))
            .collect();
        if dropped > 0 {
            attrs.push(Attr::Owned(KeyValue::new(
                "honeyhive.dropped_attributes",
                i64::from(dropped),
            )));
        }
        dropped
    }
}

/// Removes earlier attributes whose key comes again later, keeping the order of the rest.
fn dedup_keep_last(attrs: &mut Vec<Attr<'_>>, (hashes, table): &mut (Vec<u64>, Vec<usize>)) {
    let n = attrs.len();
    // A span with a few attributes compares its keys pairwise (most differ in length): cheaper
    // than hashing them.
    if n <= SMALL_DEDUP {
        let repeated = (1..n).any(|i| attrs[..i].iter().any(|kv| kv.key == attrs[i].key));
        if !repeated {
            return;
        }
    } else if !has_repeated_key(attrs, hashes, table) {
        return;
    }
    let mut seen: HashSet<Key, BuildHasherDefault<FastHasher>> = HashSet::default();
    let mut unique: Vec<Attr<'_>> = Vec::with_capacity(n);
    for kv in std::mem::take(attrs).into_iter().rev() {
        if seen.insert(kv.key.clone()) {
            unique.push(kv);
        }
    }
    unique.reverse();
    *attrs = unique;
}

/// Attributes up to which [`dedup_keep_last`] compares keys pairwise.
const SMALL_DEDUP: usize = 12;

/// Whether a key comes twice in `attrs`, by a table of hashes.
fn has_repeated_key(attrs: &[Attr<'_>], hashes: &mut Vec<u64>, table: &mut Vec<usize>) -> bool {
    let n = attrs.len();
    // A cheap hash per key; only keys whose hashes are equal are compared in full.
    hashes.clear();
    hashes.extend(attrs.iter().map(|kv| {
        let mut h = FastHasher::default();
        std::hash::Hasher::write(&mut h, kv.key.as_str().as_bytes());
        std::hash::Hasher::finish(&h)
    }));
    // An open-addressing table of the hashes seen; equal hashes are compared in full.
    let mut has_duplicate = false;
    let slots = (2 * n).next_power_of_two().max(16);
    table.clear();
    table.resize(slots, usize::MAX);
    'keys: for (i, &h) in hashes.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation)] // the low bits pick the slot
        let mut slot = (h as usize) & (slots - 1);
        loop {
            match table[slot] {
                usize::MAX => {
                    table[slot] = i;
                    continue 'keys;
                }
                j if hashes[j] == h && attrs[j].key == attrs[i].key => {
                    has_duplicate = true;
                    break 'keys;
                }
                _ => slot = (slot + 1) & (slots - 1),
            }
        }
    }
    has_duplicate
}

/// Whether any part of `key` names a secret: its value is redacted whole, whatever it holds,
/// so that a map or list under a secret's name (`honeyhive_metadata.api_key.value`,
/// `honeyhive_config.credentials.pass`) is too.
fn is_secret_name(key: &str) -> bool {
    key.split('.').any(|part| {
        SECRET_NAMES
            .iter()
            .any(|name| part.eq_ignore_ascii_case(name))
            || crate::secrets::names_a_secret_key(part)
    })
}

/// Captured content, evicted before the small keys that describe the span.
fn is_content(key: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "honeyhive_inputs.",
        "honeyhive_outputs.",
        "honeyhive_metadata.",
        "honeyhive_config.",
        "honeyhive_feedback.",
        "honeyhive_user_properties.",
        "input.",
        "output.",
        "llm.input_messages.",
        "llm.output_messages.",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.",
        "gen_ai.retrieval.documents",
        "retrieval.documents.",
        "llm.tools.",
        "metadata",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The indexed copies of a call's messages, the first content the budget gives up.
fn is_message_copy(key: &str) -> bool {
    key.starts_with("llm.input_messages.") || key.starts_with("llm.output_messages.")
}

fn size_of(kv: &KeyValue) -> usize {
    let value = match &kv.value {
        Value::String(s) => s.as_str().len(),
        Value::Array(Array::String(items)) => items.iter().map(|s| s.as_str().len()).sum(),
        Value::Array(Array::I64(items)) => items.len() * 8,
        Value::Array(Array::F64(items)) => items.len() * 8,
        Value::Array(Array::Bool(items)) => items.len(),
        _ => 8,
    };
    kv.key.as_str().len() + value
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_cover_the_headers_and_the_assignment_names() {
        for key in [
            "password",
            "passwd",
            "secret",
            "client_secret",
            "api_key",
            "apikey",
            "x-api-key",
            "api-key",
            "token",
            "access_token",
            "refresh_token",
            "auth_token",
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "private_key",
            "secret_key",
            "secret_access_key",
            "aws_secret_access_key",
            "credentials",
            "connection_string",
            "http.request.header.Authorization",
        ] {
            assert!(is_secret_name(key), "{key}");
        }
        for key in [
            "max_tokens",
            "honeyhive_inputs.sort_key",
            "llm.token_count.prompt",
        ] {
            assert!(!is_secret_name(key), "{key}");
        }
    }

    #[test]
    fn keys_that_differ_only_in_their_middle_get_their_own_hashes() {
        // The indexed keys of a call's messages share their first and last eight bytes and
        // often their length: keys with one hash are compared in full against each other.
        let hash = |key: &str| {
            let mut h = FastHasher::default();
            std::hash::Hasher::write(&mut h, key.as_bytes());
            std::hash::Hasher::finish(&h)
        };
        for shape in [
            "llm.input_messages.{}.message.content",
            "honeyhive_metadata.items.{}.name",
            "{}",
        ] {
            let hashes: HashSet<u64> = (0..10_000)
                .map(|i| hash(&shape.replace("{}", &i.to_string())))
                .collect();
            assert_eq!(hashes.len(), 10_000, "{shape}");
        }
    }

    fn redactor(privacy: &Privacy) -> Redactor {
        Redactor::new(privacy).unwrap()
    }

    #[test]
    fn secrets_are_redacted_by_shape() {
        let r = redactor(&Privacy::default());
        let cases = [
            (
                "key sk-proj-abcdefghijklmnopqrstuvwx end",
                "key [REDACTED] end",
            ),
            ("sk-ant-api03-abcdefghijklmnopqrst", "[REDACTED]"),
            ("AIzaSyA1234567890abcdefghijklmnopqrstu", "[REDACTED]"),
            ("hh_0123456789abcdef", "[REDACTED]"),
            (
                "Authorization: Bearer abc.def-ghi_jkl",
                "Authorization: Bearer [REDACTED]",
            ),
            ("url?api_key=abcdef123456&x=1", "url?api_key=[REDACTED]&x=1"),
            (
                r#"{"password": "hunter2hunter2"}"#,
                r#"{"password": "[REDACTED]"}"#,
            ),
            ("AKIAIOSFODNN7EXAMPLE", "[REDACTED]"),
        ];
        for (input, expected) in cases {
            assert_eq!(r.redact(input), expected, "{input}");
        }
        for clean in [
            "task-abcdefghijklmnopqrstuvwx",
            "the sky is blue",
            "tokens: 12",
        ] {
            assert!(matches!(r.redact(clean), Cow::Borrowed(_)), "{clean}");
        }
    }

    #[test]
    fn user_patterns_and_secret_names_are_redacted() {
        let r = redactor(&Privacy {
            redact_patterns: vec![r"\b\d{3}-\d{2}-\d{4}\b".to_owned()],
            ..Privacy::default()
        });
        assert_eq!(r.redact("ssn 123-45-6789."), "ssn [REDACTED].");
        let mut kv = KeyValue::new("honeyhive_inputs.api_key", "plain");
        r.redact_attribute(&mut kv);
        assert_eq!(kv.value, Value::from(REDACTED));
        let mut tokens = KeyValue::new("gen_ai.usage.input_tokens", 5);
        r.redact_attribute(&mut tokens);
        assert_eq!(tokens.value, Value::I64(5));
        assert!(
            Redactor::new(&Privacy {
                redact_patterns: vec!["(".to_owned()],
                ..Privacy::default()
            })
            .is_err()
        );
    }

    #[test]
    fn key_lists_never_drop_core_keys() {
        let r = redactor(&Privacy {
            allow_keys: vec!["gen_ai.*".to_owned()],
            deny_keys: vec!["gen_ai.input.messages".to_owned(), "session.id".to_owned()],
            ..Privacy::default()
        });
        let mut attrs = vec![
            KeyValue::new("honeyhive_event_type", "model"),
            KeyValue::new("session.id", "s"),
            KeyValue::new("gen_ai.request.model", "m"),
            KeyValue::new("gen_ai.input.messages", "[]"),
            KeyValue::new("honeyhive_inputs.q", "x"),
        ];
        r.apply(&mut attrs, &mut [], &mut Status::Unset);
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            ["honeyhive_event_type", "session.id", "gen_ai.request.model"]
        );
    }

    #[test]
    fn the_budget_evicts_content_first_and_keeps_core_keys() {
        let r = redactor(&Privacy {
            max_attributes: 4,
            max_bytes: 400,
            ..Privacy::default()
        });
        let mut attrs = vec![
            KeyValue::new("honeyhive_inputs.big", "x".repeat(1000)),
            KeyValue::new("honeyhive_inputs.a", "1"),
            KeyValue::new("honeyhive_inputs.b", "2"),
            KeyValue::new("gen_ai.usage.input_tokens", 5),
            KeyValue::new("honeyhive_event_type", "tool"),
            KeyValue::new("honeyhive.session_id", "s"),
            KeyValue::new("honeyhive_inputs.a", "override"),
        ];
        let dropped = r.apply(&mut attrs, &mut [], &mut Status::Unset);
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "honeyhive_inputs.big",
                "gen_ai.usage.input_tokens",
                "honeyhive_event_type",
                "honeyhive.session_id",
                "honeyhive.dropped_attributes",
            ]
        );
        assert_eq!(dropped, 2);
        let big = attrs[0].value.as_str();
        assert!(big.len() < 400 && big.contains("…[truncated"), "{big}");
    }

    #[test]
    fn the_budget_gives_up_message_copies_first_and_shrinks_json_as_json() {
        let r = redactor(&Privacy {
            max_attributes: 4,
            max_bytes: 400,
            ..Privacy::default()
        });
        let chat = format!(r#"[{{"role":"user","content":"{}"}}]"#, "q".repeat(150));
        let mut attrs = vec![
            KeyValue::new("llm.input_messages.0.message.role", "user"),
            KeyValue::new("llm.input_messages.0.message.content", "q".repeat(150)),
            KeyValue::new("input.value", chat.clone()),
            KeyValue::new("input.mime_type", "application/json"),
            KeyValue::new("output.value", "an answer"),
            KeyValue::new("gen_ai.output.messages", format!("[{}]", "o".repeat(200))),
        ];
        let dropped = r.apply(&mut attrs, &mut [], &mut Status::Unset);
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        // The whole chat stays with its mime type (a copy of it went); the JSON that no
        // longer fits is dropped, not cut into text that does not parse.
        assert_eq!(
            keys,
            [
                "llm.input_messages.0.message.role",
                "input.value",
                "input.mime_type",
                "output.value",
                "honeyhive.dropped_attributes",
            ]
        );
        assert_eq!(dropped, 2);
        assert_eq!(attrs[1].value.as_str(), chat);

        // JSON that fits only in part is shrunk as JSON (its longest text cut), and keeps its
        // mime type.
        let r = redactor(&Privacy {
            max_bytes: 300,
            ..Privacy::default()
        });
        let mut attrs = vec![
            KeyValue::new("input.value.extra", "x".repeat(100)),
            KeyValue::new("input.value", chat.clone()),
            KeyValue::new("input.mime_type", "application/json"),
        ];
        r.apply(&mut attrs, &mut [], &mut Status::Unset);
        let shrunk: serde_json::Value = serde_json::from_str(&attrs[1].value.as_str()).unwrap();
        let content = shrunk[0]["content"].as_str().unwrap();
        assert!(
            content.starts_with("qqq") && content.contains("…[truncated"),
            "{content}"
        );
        assert_eq!(attrs[2].value.as_str(), "application/json");

        // What looks like JSON and is not cannot be shrunk: it is dropped, with its mime type.
        let mut attrs = vec![
            KeyValue::new("input.value.extra", "x".repeat(100)),
            KeyValue::new("input.value", format!("[{}]", "q".repeat(250))),
            KeyValue::new("input.mime_type", "application/json"),
        ];
        r.apply(&mut attrs, &mut [], &mut Status::Unset);
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert!(!keys.contains(&"input.mime_type"), "{keys:?}");
        assert!(!keys.contains(&"input.value"), "{keys:?}");

        // A captured value that looks like JSON (a `Vec`'s `Debug`) is cut like any text.
        let list = format!("{:?}", vec![7u32; 200]);
        let mut attrs = vec![KeyValue::new("honeyhive_outputs.result", list.clone())];
        r.apply(&mut attrs, &mut [], &mut Status::Unset);
        let kept = attrs[0].value.as_str();
        assert!(
            kept.starts_with("[7, 7") && kept.contains("…[truncated"),
            "{kept}"
        );
    }

    #[test]
    fn status_and_events_are_redacted() {
        let r = redactor(&Privacy::default());
        let mut status = Status::error("invalid key sk-abcdefghijklmnopqrstuvwx");
        let mut events = [Event::new(
            "exception",
            std::time::SystemTime::now(),
            vec![KeyValue::new("exception.message", "Bearer abcdefghijk")],
            0,
        )];
        r.apply(&mut Vec::new(), &mut events, &mut status);
        assert_eq!(status, Status::error("invalid key [REDACTED]"));
        assert_eq!(
            events[0].attributes[0].value,
            Value::from("Bearer [REDACTED]")
        );
    }

    #[test]
    fn a_key_at_an_address_another_key_had_gets_its_own_decision() {
        let decision = |keep| KeyDecision {
            keep,
            secret_name: false,
            redacted: None,
        };
        let mut cache = KeyCache::default();
        cache.insert("aaaa", decision(true));
        let mut text = String::from("aaaa");
        assert!(cache.get(&text).is_some_and(|d| d.keep));
        // Found by address now; the same bytes of memory then hold another key.
        assert!(cache.get(&text).is_some_and(|d| d.keep));
        let at = text.as_ptr();
        text.replace_range(.., "bbbb");
        assert_eq!(text.as_ptr(), at, "the same address");
        assert!(cache.get(&text).is_none(), "never decided");
        cache.insert("bbbb", decision(false));
        assert!(cache.get(&text).is_some_and(|d| !d.keep));
        assert!(cache.get("aaaa").is_some_and(|d| d.keep));
        // Bounded: the cache starts over beyond its size.
        for i in 0..=MAX_CACHED_KEYS {
            cache.insert(&format!("k{i}"), decision(true));
        }
        assert!(cache.get("aaaa").is_none());
        assert!(cache.decided.len() <= MAX_CACHED_KEYS);
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_in_short_and_long_lists() {
        // Around the size where the pairwise check hands over to the hash table.
        for n in [2, SMALL_DEDUP, SMALL_DEDUP + 1, 40] {
            let mut attrs: Vec<Attr<'_>> = (0..n)
                .map(|i| Attr::Owned(KeyValue::new(format!("k{i}"), i64::try_from(i).unwrap())))
                .collect();
            attrs.push(Attr::Owned(KeyValue::new("k0", -1)));
            dedup_keep_last(&mut attrs, &mut (Vec::new(), Vec::new()));
            let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
            let mut expected: Vec<String> = (1..n).map(|i| format!("k{i}")).collect();
            expected.push("k0".to_owned());
            assert_eq!(keys, expected, "{n} attributes");
            assert_eq!(
                attrs.last().map(|kv| kv.value.clone()),
                Some(Value::I64(-1))
            );
            // Nothing repeated: left as it is.
            let mut unique: Vec<Attr<'_>> = (0..n)
                .map(|i| Attr::Owned(KeyValue::new(format!("k{i}"), 1)))
                .collect();
            dedup_keep_last(&mut unique, &mut (Vec::new(), Vec::new()));
            assert_eq!(unique.len(), n);
        }
    }
}
