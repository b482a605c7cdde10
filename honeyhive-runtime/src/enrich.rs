//! Enrichment: metadata, metrics, feedback, config, inputs, outputs and user properties added
//! to the current span ([`enrich_span`]) or to its session ([`enrich_session`]).
//!
//! ```
//! use honeyhive_runtime::{enrich_span, trace, Value};
//!
//! #[trace(event_type = "model")]
//! fn grade(answer: &str) -> u32 {
//!     let score = u32::try_from(answer.len().min(5)).unwrap_or(5);
//!     enrich_span()
//!         .metrics("score", score)
//!         .feedback("rating", Value::map([("stars", Value::from(4)), ("by", "alice".into())]))
//!         .metadata("tags", vec!["rag", "prod"]);
//!     score
//! }
//! # grade("Paris");
//! ```
//!
//! Each call writes `honeyhive_<namespace>.<key>` right away and costs nothing when no recorded
//! span is current: values are converted and flattened only for recorded spans. Nested maps and
//! lists are flattened with dots (`honeyhive_feedback.rating.stars`, `honeyhive_metadata.tags.0`),
//! as HoneyHive's Python SDK does, down to [`MAX_DEPTH`] levels and at most [`MAX_LEAVES`] values
//! per call; deeper values are recorded as JSON text, and `<key>._omitted` counts the entries
//! left out (a list or map left out counts as one). Strings and JSON text are cut at the
//! capture byte cap like every captured value. The work is bounded like the output: entries
//! past the limit are counted, not visited, and JSON text stops being written at the cap, so a
//! 100,000-entry map costs about what its first [`MAX_LEAVES`] entries do (plus, for a
//! `HashMap`, one linear pass to pick the smallest keys). A conversion (`Into<Value>`) that
//! panics is recorded as `<panicked while formatting: ...>`; the call goes on.
//!
//! [`enrich_session`] marks the same attributes for the session: the export thread moves them to
//! the nearest enclosing `event_type = "session"` span, or else to the root of the trace in this
//! process. Nothing is sent over the network from the caller's thread.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use opentelemetry::{Key, KeyValue, Value as OtelValue};

use crate::capture::{CappedWriter, format_capped, guarded, panicked_marker, truncated_text};
use crate::span::{self, Annotation};

/// How many levels below the key nested values are flattened; deeper ones are recorded as JSON.
pub const MAX_DEPTH: usize = 5;
/// How many values one enrichment call records at most.
pub const MAX_LEAVES: usize = 100;

/// Prefix of attributes bound for the session root: moved there, and stripped, on the export
/// thread. A NUL byte cannot appear in keys users write.
pub(crate) const SESSION_MARK: &str = "\0session\0";

/// OpenInference's span tags (a string list), written by [`Enrich::tags`].
pub(crate) const TAGS: &str = "tag.tags";

/// A JSON-like value for enrichment: scalars, lists and maps with string keys.
///
/// Built with `From` (`"text".into()`, `3.into()`, `vec![1, 2].into()`), [`Value::map`], from
/// `HashMap` / `BTreeMap`, or from a `serde_json::Value`.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// Nothing; not recorded.
    Null,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Str(Cow<'static, str>),
    /// A list, flattened as `key.0`, `key.1`, ...
    List(Vec<Value>),
    /// A map, flattened as `key.<name>`, in the given order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A map from `(key, value)` pairs, in their order.
    pub fn map<K: Into<String>, V: Into<Value>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The value as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::Value::from(self).to_string()
    }

    /// The same JSON text as [`to_json`](Value::to_json), cut at `cap` bytes.
    pub(crate) fn json_capped(&self, cap: usize) -> opentelemetry::StringValue {
        format_capped(cap, |w| self.write_json(w))
    }

    /// Writes the value as JSON (the same text as [`to_json`](Value::to_json)), stopping as
    /// soon as the writer fails.
    fn write_json(&self, w: &mut CappedWriter) -> std::fmt::Result {
        use std::fmt::Write as _;
        match self {
            Value::Null => w.write_str("null"),
            Value::Bool(b) => write!(w, "{b}"),
            Value::Int(i) => write!(w, "{i}"),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => write!(w, "{n}"),
                None => w.write_str("null"),
            },
            Value::Str(s) => write_json_str(s, w),
            Value::List(items) => {
                w.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        w.write_char(',')?;
                    }
                    item.write_json(w)?;
                }
                w.write_char(']')
            }
            Value::Map(entries) => {
                w.write_char('{')?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        w.write_char(',')?;
                    }
                    write_json_str(k, w)?;
                    w.write_char(':')?;
                    v.write_json(w)?;
                }
                w.write_char('}')
            }
        }
    }
}

/// A JSON string literal, escaped as `serde_json` does.
fn write_json_str(s: &str, w: &mut CappedWriter) -> std::fmt::Result {
    use std::fmt::Write as _;
    w.write_char('"')?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if u32::from(c) < 0x20 => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if escape.is_empty() {
            write!(w, "\\u{:04x}", u32::from(c))?;
        } else {
            w.write_str(escape)?;
        }
        start = i + c.len_utf8();
    }
    w.write_str(&s[start..])?;
    w.write_char('"')
}

/// The derived text, written so that a failed write stops it: a `Value` argument of a traced
/// fn is captured through `Debug`, and the derived impl (std's list helper) would visit every
/// entry of a 100,000-entry map after the capture cap was reached.
impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => write!(f, "Bool({b:?})"),
            Value::Int(i) => write!(f, "Int({i:?})"),
            Value::Float(x) => write!(f, "Float({x:?})"),
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::List(items) => {
                f.write_str("List([")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item:?}")?;
                }
                f.write_str("])")
            }
            Value::Map(entries) => {
                f.write_str("Map([")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "({k:?}, {v:?})")?;
                }
                f.write_str("])")
            }
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_small_int!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! from_wide_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                // Attributes are i64; a value that does not fit is kept exactly, as text.
                i64::try_from(v).map_or_else(|_| Value::Str(Cow::Owned(v.to_string())), Value::Int)
            }
        }
    )*};
}
from_wide_int!(u64, usize, isize, u128, i128);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(Cow::Owned(v.to_owned()))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(Cow::Owned(v))
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Str(Cow::Owned(v.clone()))
    }
}

impl From<Cow<'static, str>> for Value {
    fn from(v: Cow<'static, str>) -> Self {
        Value::Str(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value> + Clone> From<&[T]> for Value {
    fn from(v: &[T]) -> Self {
        Value::List(v.iter().cloned().map(Into::into).collect())
    }
}

impl<T: Into<Value>, const N: usize> From<[T; N]> for Value {
    fn from(v: [T; N]) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<K: Into<String>, V: Into<Value>> From<BTreeMap<K, V>> for Value {
    fn from(v: BTreeMap<K, V>) -> Self {
        Value::map(v)
    }
}

/// Entries of a `HashMap` put in key order; the rest follow in no particular order.
const SORTED_ENTRIES: usize = 4 * MAX_LEAVES;

impl<K: Into<String> + Ord, V: Into<Value>, S> From<HashMap<K, V, S>> for Value {
    /// The entries with the 400 smallest keys come first, in key order, so
    /// that what is recorded does not depend on the hasher; the rest follow unordered. Finding
    /// them reads each key once (a bounded heap), where a sort would compare keys scattered
    /// over the heap `n log n` times.
    fn from(v: HashMap<K, V, S>) -> Self {
        let entries: Vec<(K, V)> = v.into_iter().collect();
        let mut smallest = std::collections::BinaryHeap::with_capacity(SORTED_ENTRIES + 1);
        for (i, (k, _)) in entries.iter().enumerate() {
            if smallest.len() < SORTED_ENTRIES {
                smallest.push(ByKey(k, i));
            } else if smallest.peek().is_some_and(|top: &ByKey<'_, K>| k < top.0) {
                smallest.pop();
                smallest.push(ByKey(k, i));
            }
        }
        let first: Vec<usize> = smallest
            .into_sorted_vec()
            .into_iter()
            .map(|e| e.1)
            .collect();
        let mut slots: Vec<Option<(K, V)>> = entries.into_iter().map(Some).collect();
        let mut ordered = Vec::with_capacity(slots.len());
        ordered.extend(first.iter().filter_map(|&i| slots[i].take()));
        ordered.extend(slots.into_iter().flatten());
        Value::map(ordered)
    }
}

/// A key and its index, ordered by key, for the heap of smallest keys.
struct ByKey<'a, K>(&'a K, usize);

impl<K: Ord> PartialEq for ByKey<'_, K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: Ord> Eq for ByKey<'_, K> {}
impl<K: Ord> PartialOrd for ByKey<'_, K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for ByKey<'_, K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(other.0)
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Value::map(iter)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .or_else(|| n.as_f64().map(Value::Float))
                .unwrap_or_else(|| Value::Str(Cow::Owned(n.to_string()))),
            serde_json::Value::String(s) => Value::Str(Cow::Owned(s)),
            serde_json::Value::Array(items) => {
                Value::List(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<&Value> for serde_json::Value {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(serde_json::Value::from).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Enriches the current span. Each method writes right away; all are no-ops when no recorded
/// span is current. See the [module docs](self).
pub fn enrich_span() -> Enrich {
    Enrich {
        recording: span::current_is_recording(),
        session: false,
    }
}

/// Enriches the session the current span belongs to: its nearest enclosing
/// `event_type = "session"` span, or else the root of the trace in this process. The attributes
/// travel with the current span and are moved on the export thread; no-op when no recorded span
/// is current.
pub fn enrich_session() -> Enrich {
    Enrich {
        recording: span::current_is_recording(),
        session: true,
    }
}

/// What [`enrich_span`] and [`enrich_session`] return: one method per HoneyHive namespace.
#[derive(Clone, Copy, Debug)]
pub struct Enrich {
    recording: bool,
    session: bool,
}

impl Enrich {
    /// `honeyhive_metadata.<key>`.
    pub fn metadata(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_metadata", key, value)
    }

    /// `honeyhive_metrics.<key>`: scores and measurements.
    pub fn metrics(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_metrics", key, value)
    }

    /// `honeyhive_feedback.<key>`: user or reviewer feedback.
    pub fn feedback(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_feedback", key, value)
    }

    /// `honeyhive_config.<key>`: the configuration the step ran with (prompt template, model).
    pub fn config(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_config", key, value)
    }

    /// `honeyhive_inputs.<key>`.
    pub fn inputs(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_inputs", key, value)
    }

    /// `honeyhive_outputs.<key>`.
    pub fn outputs(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_outputs", key, value)
    }

    /// `honeyhive_user_properties.<key>`.
    pub fn user_properties(&self, key: &str, value: impl Into<Value>) -> &Self {
        self.write("honeyhive_user_properties", key, value)
    }

    /// Tags the span (OpenInference's `tag.tags`, which Phoenix filters on); several calls add
    /// up. Each tag is cut at the capture byte cap.
    pub fn tags<T: Into<String>>(&self, tags: impl IntoIterator<Item = T>) -> &Self {
        if !self.recording {
            span::count_lost_under_remote();
            return self;
        }
        let cap = crate::capture::capture_cap();
        let key = if self.session {
            Key::from(format!("{SESSION_MARK}{TAGS}"))
        } else {
            Key::from_static_str(TAGS)
        };
        // The conversion is the user's code that runs only because the span is recorded.
        let tags = guarded(|| {
            tags.into_iter()
                .map(|t| truncated_text(&t.into(), cap))
                .collect::<Vec<_>>()
        });
        let value = match tags {
            Ok(tags) => OtelValue::Array(opentelemetry::Array::String(tags)),
            Err(message) => OtelValue::String(panicked_marker(&message, cap)),
        };
        span::annotate(|| Annotation::Attr(KeyValue::new(key, value)));
        self
    }

    fn write(&self, namespace: &str, key: &str, value: impl Into<Value>) -> &Self {
        if !self.recording {
            span::count_lost_under_remote();
            return self;
        }
        let mark = if self.session { SESSION_MARK } else { "" };
        // Sized exactly, so that the key's text is one allocation, not a growing `format!`
        // and its shrink into the key.
        let prefix = || {
            let mut prefix = String::with_capacity(mark.len() + namespace.len() + 1 + key.len());
            prefix.push_str(mark);
            prefix.push_str(namespace);
            prefix.push('.');
            prefix.push_str(key);
            prefix
        };
        let cap = crate::capture::capture_cap();
        // Written into a list of this thread's, kept between calls: a scalar value allocates
        // its key only.
        span::annotate_attrs_in(|out| {
            // The conversion is the user's code (a `From` impl) that runs only because the span
            // is recorded: a panic in it must not reach the caller.
            if let Err(message) = guarded(|| flatten(prefix(), value.into(), cap, out)) {
                out.clear();
                out.push(KeyValue::new(
                    prefix(),
                    OtelValue::String(panicked_marker(&message, cap)),
                ));
            }
        });
        self
    }
}

/// Flattens `value` under `prefix` into at most [`MAX_LEAVES`] attributes.
pub(crate) fn flatten(prefix: String, value: Value, cap: usize, out: &mut Vec<KeyValue>) {
    let mut flat = Flattener {
        cap,
        room: MAX_LEAVES,
        omitted: 0,
        out,
    };
    // Only a list or a map can leave leaves out.
    let omitted_key =
        matches!(value, Value::List(_) | Value::Map(_)).then(|| format!("{prefix}._omitted"));
    flat.walk(prefix, value, 0);
    if let Some(omitted_key) = omitted_key
        && flat.omitted > 0
    {
        let omitted = i64::try_from(flat.omitted).unwrap_or(i64::MAX);
        flat.out.push(KeyValue::new(omitted_key, omitted));
    }
}

struct Flattener<'a> {
    cap: usize,
    room: usize,
    omitted: usize,
    out: &'a mut Vec<KeyValue>,
}

impl Flattener<'_> {
    fn walk(&mut self, key: String, value: Value, depth: usize) {
        match value {
            Value::Null => {}
            Value::Bool(b) => self.leaf(key, OtelValue::Bool(b)),
            Value::Int(i) => self.leaf(key, OtelValue::I64(i)),
            Value::Float(f) => self.leaf(key, OtelValue::F64(f)),
            Value::Str(s) => {
                let text = truncated_text(&s, self.cap);
                self.leaf(key, OtelValue::String(text));
            }
            nested @ (Value::List(_) | Value::Map(_)) if depth >= MAX_DEPTH => {
                let text = format_capped(self.cap, |w| nested.write_json(w));
                self.leaf(key, OtelValue::String(text));
            }
            Value::List(items) => {
                let total = items.len();
                for (i, item) in items.into_iter().enumerate() {
                    if self.room == 0 {
                        self.omitted += total - i;
                        break;
                    }
                    self.walk(format!("{key}.{i}"), item, depth + 1);
                }
            }
            Value::Map(entries) => {
                let total = entries.len();
                for (i, (k, item)) in entries.into_iter().enumerate() {
                    if self.room == 0 {
                        self.omitted += total - i;
                        break;
                    }
                    self.walk(format!("{key}.{k}"), item, depth + 1);
                }
            }
        }
    }

    fn leaf(&mut self, key: String, value: OtelValue) {
        if self.room == 0 {
            self.omitted += 1;
            return;
        }
        self.room -= 1;
        self.out.push(KeyValue::new(Key::from(key), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(value: Value) -> Vec<(String, OtelValue)> {
        let mut out = Vec::new();
        flatten("ns.k".to_owned(), value, 16, &mut out);
        out.into_iter()
            .map(|kv| (kv.key.as_str().to_owned(), kv.value))
            .collect()
    }

    #[test]
    fn maps_and_lists_flatten_with_dots() {
        let v = Value::map([
            ("a", Value::from(1)),
            ("b", Value::from(vec!["x", "y"])),
            ("c", Value::Null),
        ]);
        assert_eq!(
            flat(v),
            [
                ("ns.k.a".to_owned(), OtelValue::I64(1)),
                ("ns.k.b.0".to_owned(), OtelValue::from("x")),
                ("ns.k.b.1".to_owned(), OtelValue::from("y")),
            ]
        );
    }

    #[test]
    fn depth_is_bounded_and_the_rest_is_json() {
        let mut v = Value::from(1);
        for _ in 0..=MAX_DEPTH {
            v = Value::map([("n", v)]);
        }
        let out = flat(v);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, format!("ns.k{}", ".n".repeat(MAX_DEPTH)));
        assert_eq!(out[0].1, OtelValue::from("{\"n\":1}"));
    }

    #[test]
    fn count_is_bounded_and_omissions_are_counted() {
        let out = flat(Value::from((0..250).collect::<Vec<i32>>()));
        assert_eq!(out.len(), MAX_LEAVES + 1);
        assert_eq!(out.last().unwrap().0, "ns.k._omitted");
        assert_eq!(out.last().unwrap().1, OtelValue::I64(150));
    }

    #[test]
    fn omitted_entries_are_counted_without_visiting_them() {
        let nested = Value::from(
            (0..300)
                .map(|i| Value::map([("a", Value::from(i)), ("b", Value::from(i))]))
                .collect::<Vec<_>>(),
        );
        let out = flat(nested);
        assert_eq!(out.len(), MAX_LEAVES + 1);
        // 50 maps of two leaves recorded; the other 250 maps are counted as one each.
        assert_eq!(out.last().unwrap().1, OtelValue::I64(250));
    }

    #[test]
    fn bounded_json_is_the_same_text_as_to_json() {
        // In key order: `to_json` goes through serde_json's sorted map.
        let v = Value::map([
            (
                "n",
                Value::from(vec![Value::Null, 1.5.into(), true.into(), f64::NAN.into()]),
            ),
            ("q\"uote", Value::from("tab\tnew\nline \u{1} é")),
        ]);
        let text = format_capped(usize::MAX / 2, |w| v.write_json(w));
        assert_eq!(text.as_str(), v.to_json());
    }

    #[test]
    fn deep_values_are_json_cut_at_the_cap() {
        let mut v = Value::from((0..100_000).collect::<Vec<i32>>());
        for _ in 0..MAX_DEPTH {
            v = Value::map([("n", v)]);
        }
        let out = flat(v);
        assert_eq!(out.len(), 1);
        let text = out[0].1.as_str();
        assert!(text.starts_with("[0,1,2,3,4,5,6,7"), "{text}");
        assert!(text.ends_with("+ bytes]"), "{text}");
    }

    #[test]
    fn a_hash_map_records_its_smallest_keys_in_order() {
        let map: HashMap<String, i64> = (0..1000).map(|i| (format!("k{i:04}"), i)).collect();
        let Value::Map(entries) = Value::from(map) else {
            panic!("a map")
        };
        assert_eq!(entries.len(), 1000);
        let first: Vec<&str> = entries[..3].iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(first, ["k0000", "k0001", "k0002"]);
        assert!(entries[..SORTED_ENTRIES].is_sorted_by(|a, b| a.0 < b.0));
    }

    #[test]
    fn debug_text_is_the_derived_one() {
        let v = Value::map([
            ("a", Value::from(vec![Value::from(1), Value::Null])),
            ("b", Value::from(1.5)),
            ("c", Value::from(true)),
            ("d", Value::from("x")),
        ]);
        assert_eq!(
            format!("{v:?}"),
            r#"Map([("a", List([Int(1), Null])), ("b", Float(1.5)), ("c", Bool(true)), ("d", Str("x"))])"#
        );
    }

    #[test]
    fn strings_are_capped() {
        let out = flat(Value::from("x".repeat(40)));
        assert_eq!(
            out[0].1.as_str(),
            format!("{}…[truncated 24 bytes]", "x".repeat(16))
        );
    }

    #[test]
    fn json_converts_both_ways() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,2.5,"s",true,null],"b":{"c":"d"}}"#).unwrap();
        let v = Value::from(json.clone());
        assert_eq!(serde_json::Value::from(&v), json);
        assert_eq!(
            Value::from(u64::MAX),
            Value::Str(u64::MAX.to_string().into())
        );
    }

    static STEP: crate::record::Meta = crate::record::Meta {
        name: "enrich_alloc_step",
        event_type: crate::record::EventType::Tool,
        sample_rate: None,
        attr_capacity: 0,
        root: crate::record::RootState::new(),
    };

    #[test]
    fn enriching_with_a_number_allocates_its_key_only() {
        let recorder = crate::testing::Recorder::start();
        // This thread's allocations in the two calls alone.
        let step = || {
            let _span = crate::span::Span::enter(&STEP);
            let before = crate::sink::tests::allocations();
            enrich_span()
                .metadata("score", 5)
                .metrics("latency_ms", 12.5);
            crate::sink::tests::allocations() - before
        };
        let allocations = crate::sink::tests::counted_after_warm_up(&recorder, step);
        // A list per call, a copy of the key kept for a panic, or the key of the omitted-leaves
        // count made for a number: each shows here.
        assert_eq!(
            allocations, 64,
            "32 steps of two calls allocated {allocations} times"
        );
        let spans = recorder.spans();
        let last = spans.all("enrich_alloc_step").last().expect("a step");
        assert_eq!(last.i64("honeyhive_metadata.score"), Some(5));
        assert_eq!(last.f64("honeyhive_metrics.latency_ms"), Some(12.5));
    }

    /// A value whose conversion enriches the span itself.
    struct Reentrant;

    impl From<Reentrant> for Value {
        fn from(_: Reentrant) -> Value {
            enrich_span().metadata("inner", 1);
            Value::Int(2)
        }
    }

    #[test]
    fn a_conversion_that_enriches_the_span_itself_loses_neither_value() {
        let recorder = crate::testing::Recorder::start();
        {
            let _span = crate::span::Span::enter(&STEP);
            // The outer call is writing into the thread's list when the inner one comes.
            enrich_span().metadata("outer", Reentrant);
        }
        let spans = recorder.spans();
        let step = spans.get("enrich_alloc_step");
        assert_eq!(step.i64("honeyhive_metadata.inner"), Some(1));
        assert_eq!(step.i64("honeyhive_metadata.outer"), Some(2));
    }
}
