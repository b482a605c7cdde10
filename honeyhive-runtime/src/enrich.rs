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
//! per call; deeper values are recorded as JSON text, and `<key>._omitted` counts values left out.
//! Strings are cut at the capture byte cap like every captured value.
//!
//! [`enrich_session`] marks the same attributes for the session: the export thread moves them to
//! the nearest enclosing `event_type = "session"` span, or else to the root of the trace in this
//! process. Nothing is sent over the network from the caller's thread.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use opentelemetry::{Key, KeyValue, Value as OtelValue};

use crate::capture::truncated_text;
use crate::export;
use crate::span::{self, Annotation};

/// How many levels below the key nested values are flattened; deeper ones are recorded as JSON.
pub const MAX_DEPTH: usize = 5;
/// How many values one enrichment call records at most.
pub const MAX_LEAVES: usize = 100;

/// Prefix of attributes bound for the session root: moved there, and stripped, on the export
/// thread. A NUL byte cannot appear in keys users write.
pub(crate) const SESSION_MARK: &str = "\0session\0";

/// A JSON-like value for enrichment: scalars, lists and maps with string keys.
///
/// Built with `From` (`"text".into()`, `3.into()`, `vec![1, 2].into()`), [`Value::map`], from
/// `HashMap` / `BTreeMap`, or from a `serde_json::Value`.
#[derive(Clone, Debug, PartialEq)]
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

    fn leaf_count(&self) -> usize {
        match self {
            Value::Null => 0,
            Value::List(items) => items.iter().map(Value::leaf_count).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| v.leaf_count()).sum(),
            _ => 1,
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

impl<K: Into<String> + Ord, V: Into<Value>, S> From<HashMap<K, V, S>> for Value {
    fn from(v: HashMap<K, V, S>) -> Self {
        // Sorted, so the recorded order does not depend on the hasher.
        let sorted: BTreeMap<K, V> = v.into_iter().collect();
        Value::map(sorted)
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

    fn write(&self, namespace: &str, key: &str, value: impl Into<Value>) -> &Self {
        if !self.recording {
            span::count_lost_under_remote();
            return self;
        }
        let mark = if self.session { SESSION_MARK } else { "" };
        let mut out = Vec::new();
        flatten(
            format!("{mark}{namespace}.{key}"),
            value.into(),
            export::capture_cap(),
            &mut out,
        );
        for kv in out {
            span::annotate(|| Annotation::Attr(kv));
        }
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
    let omitted_key = format!("{prefix}._omitted");
    flat.walk(prefix, value, 0);
    if flat.omitted > 0 {
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
                let text = truncated_text(&nested.to_json(), self.cap);
                self.leaf(key, OtelValue::String(text));
            }
            Value::List(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    if self.room == 0 {
                        self.omitted += item.leaf_count();
                    } else {
                        self.walk(format!("{key}.{i}"), item, depth + 1);
                    }
                }
            }
            Value::Map(entries) => {
                for (k, item) in entries {
                    if self.room == 0 {
                        self.omitted += item.leaf_count();
                    } else {
                        self.walk(format!("{key}.{k}"), item, depth + 1);
                    }
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
}
