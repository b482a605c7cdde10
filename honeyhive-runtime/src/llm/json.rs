//! A small JSON writer for the values the export thread renders (`input.value`, messages,
//! invocation parameters): written straight into one `String`, with no intermediate tree.

use std::fmt::Write as _;

use opentelemetry::{Array, StringValue, Value};

/// Appends `s` as a JSON string.
pub(crate) fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Most text has nothing to escape: find the next byte that needs it with a table lookup,
    // and copy everything before it at once.
    while let Some(offset) = next_escape(&bytes[start..]) {
        let i = start + offset;
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            _ => "",
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Where the next byte that needs escaping is: eight bytes at a time while none does.
fn next_escape(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A byte below 0x20, or equal to `"` or `\\` (the classic has-less / has-zero tests;
        // exact, since every value tested is below 0x80).
        let control = w.wrapping_sub(LO * 0x20) & !w;
        let quote = (w ^ (LO * u64::from(b'"'))).wrapping_sub(LO) & !(w ^ (LO * u64::from(b'"')));
        let slash = (w ^ (LO * u64::from(b'\\'))).wrapping_sub(LO) & !(w ^ (LO * u64::from(b'\\')));
        if (control | quote | slash) & HI != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
        .map(|i| at + i)
}

/// Bytes a JSON string cannot hold as they are: control characters, `"` and `\\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends an attribute value as JSON (arrays as arrays; floats that JSON cannot hold as null).
pub(crate) fn value(out: &mut String, v: &Value) {
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F64(f) => float(out, *f),
        Value::String(s) => string(out, s.as_str()),
        Value::Array(Array::String(items)) => list(out, items, |out, s| string(out, s.as_str())),
        Value::Array(Array::I64(items)) => list(out, items, |out, i| {
            let _ = write!(out, "{i}");
        }),
        Value::Array(Array::F64(items)) => list(out, items, |out, f| float(out, *f)),
        Value::Array(Array::Bool(items)) => list(out, items, |out, b| {
            out.push_str(if *b { "true" } else { "false" });
        }),
        other => string(out, &other.as_str()),
    }
}

fn float(out: &mut String, f: f64) {
    if f.is_finite() {
        let _ = write!(out, "{f:?}");
    } else {
        out.push_str("null");
    }
}

/// Appends `[item, item, ...]`.
pub(crate) fn list<T>(out: &mut String, items: &[T], mut item: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

/// An object being written: `{"k":v,...}`.
pub(crate) struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    pub(crate) fn new(out: &'a mut String) -> Object<'a> {
        out.push('{');
        Object { out, first: true }
    }

    /// Writes the key and returns the buffer for the value.
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(':');
        self.out
    }

    pub(crate) fn end(self) {
        self.out.push('}');
    }
}

/// `[{"role":..,"content":..}]`, OpenInference's `input.value` for a chat, from
/// `[role, content, role, content, ...]`.
pub(crate) fn chat(messages: &[StringValue]) -> String {
    // `{"role":"","content":""},` is 26 bytes around a message's two texts.
    let mut out = String::with_capacity(capacity(messages, 13) + 2);
    out.push('[');
    for (i, (role, content)) in pairs(messages).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Object::new(&mut out);
        string(o.key("role"), role);
        string(o.key("content"), content);
        o.end();
    }
    out.push(']');
    out
}

fn pairs(messages: &[StringValue]) -> impl Iterator<Item = (&str, &str)> {
    messages
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
}

/// Room for the texts and `per_text` bytes of JSON around each.
fn capacity(messages: &[StringValue], per_text: usize) -> usize {
    messages.iter().map(|s| s.as_str().len() + per_text).sum()
}

/// GenAI's message JSON: `[{"role":..,"parts":[{"type":"text","content":..}]}]`.
pub(crate) fn gen_ai_messages(messages: &[StringValue], finish_reason: Option<&str>) -> String {
    // `{"role":"","parts":[{"type":"text","content":""}]},` is 52 bytes around two texts, and
    // `,"finish_reason":""` 19 more with the reason.
    let extra = finish_reason.map_or(0, |r| r.len() + 19);
    let mut out = String::with_capacity(capacity(messages, 26 + extra.div_ceil(2)) + 2);
    out.push('[');
    for (i, (role, content)) in pairs(messages).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Object::new(&mut out);
        string(o.key("role"), role);
        let parts = o.key("parts");
        parts.push_str("[{\"type\":\"text\",\"content\":");
        string(parts, content);
        parts.push_str("}]");
        if let Some(reason) = finish_reason {
            string(o.key("finish_reason"), reason);
        }
        o.end();
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_at_every_offset_round_trips() {
        // The word-at-a-time scan must find an escape wherever it stands in the word.
        for b in 0u8..0x80 {
            for at in 0..20 {
                let mut text = "abcdefghijklmnopqrstuvwxyz".to_owned();
                text.insert(at, char::from(b));
                let mut out = String::new();
                string(&mut out, &text);
                let back: String = serde_json::from_str(&out).unwrap();
                assert_eq!(back, text, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn what_it_writes_parses_back_to_the_same_values() {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        string(o.key("text"), "quote \" slash \\ nl \n tab \t bell \u{7} é");
        value(o.key("n"), &Value::I64(-3));
        value(o.key("f"), &Value::F64(0.25));
        value(o.key("nan"), &Value::F64(f64::NAN));
        value(o.key("b"), &Value::Bool(true));
        value(
            o.key("list"),
            &Value::Array(Array::String(vec!["a".into(), "b\"".into()])),
        );
        o.end();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "text": "quote \" slash \\ nl \n tab \t bell \u{7} é",
                "n": -3, "f": 0.25, "nan": null, "b": true, "list": ["a", "b\""],
            })
        );
    }
}
