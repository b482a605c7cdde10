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

/// `render(messages)` in at most `cap` bytes, and still JSON that parses. When the whole list
/// is longer, the longest contents are cut to one equal share, each with its marker, so a short
/// system prompt stays whole while a pasted document is cut; when the messages would not fit
/// with a sixteenth of the cap each (or the whole of the shorter ones), the first is kept with
/// as many of the latest as fit, and the ones between are left out. `None` when no render
/// fits (a cap below one message).
///
/// Apart from [`shrunk`], which would do for any JSON, because a chat is rendered from its
/// messages on every LLM span: this needs no parse when the chat fits, and keeps fewer
/// messages readable (a sixteenth of the cap each) rather than many as stubs.
pub(crate) fn fitted(
    messages: &[StringValue],
    cap: usize,
    render: impl Fn(&[StringValue]) -> String,
) -> Option<String> {
    let whole = render(messages);
    if whole.len() <= cap {
        return Some(whole);
    }
    let pairs: Vec<&[StringValue]> = messages.chunks_exact(2).collect();
    // A message's bytes apart from its content: role, keys, braces and a comma.
    let frame = |pair: &[StringValue]| render(&[pair[0].clone(), StringValue::from("")]).len() - 1;
    let frames: Vec<usize> = pairs.iter().map(|pair| frame(pair)).collect();
    let escaped: Vec<usize> = pairs
        .iter()
        .map(|pair| escaped_len(pair[1].as_str()))
        .collect();
    // Each message kept keeps a sixteenth of the cap at least, or all of it if shorter: a
    // conversation of many messages keeps fewer of them, readable, rather than all as stubs.
    let floor = MIN_SHARE.max(cap / 16) + MARKER;
    let least = |i: usize| frames[i] + escaped[i].min(floor);
    // The first message, then the latest ones while each fits with its least share.
    let mut kept = Vec::with_capacity(pairs.len());
    let mut total = 1 + least(0);
    if total <= cap {
        kept.push(0);
    }
    let mut latest = Vec::new();
    for i in (1..pairs.len()).rev() {
        if total + least(i) > cap {
            break;
        }
        total += least(i);
        latest.push(i);
    }
    kept.extend(latest.into_iter().rev());
    if kept.is_empty() {
        return None;
    }
    let mut budget = cap - 1 - kept.iter().map(|&i| frames[i]).sum::<usize>();
    for _ in 0..4 {
        let share = water_level(&kept, &pairs, &escaped, budget);
        let mut cut = Vec::with_capacity(kept.len() * 2);
        for &i in &kept {
            let (role, content) = (&pairs[i][0], pairs[i][1].as_str());
            cut.push(role.clone());
            cut.push(if content.len() <= share + MARKER {
                pairs[i][1].clone()
            } else {
                crate::capture::truncated_text(content, share)
            });
        }
        let out = render(&cut);
        if out.len() <= cap {
            return Some(out);
        }
        // Escapes in the cut texts cost more than their share: take the excess off and again.
        budget = budget.checked_sub(out.len() - cap + MARKER)?;
    }
    None
}

/// How many caps' worth of a JSON value the caller's thread keeps (a tool's arguments and
/// result, a JSON attribute set by hand): a value up to that long is kept whole, and the
/// export thread shrinks it to the cap as JSON ([`shrunk`]); a longer one is cut as text. The
/// caller's side does no parsing: only the export thread does.
pub(crate) const JSON_ROOM: usize = 8;

/// A text we rendered, cut to at most about `cap` bytes: JSON stays JSON that parses (see
/// [`shrunk`]), anything else is cut with its marker. Returns the text and whether it is
/// still the JSON it was.
pub(crate) fn cut_rendered(text: &str, cap: usize) -> (StringValue, bool) {
    if looks_like_json(text)
        && let Some(json) = shrunk(text, cap)
    {
        return (StringValue::from(json), true);
    }
    (crate::capture::truncated_text(text, cap), false)
}

/// Whether a text under `key` is cut as JSON ([`cut_rendered`]) when it is too long: what the
/// export thread renders and what is set under the conventions' keys (`input.value` by
/// hand), not a captured or enriched value (`honeyhive_*`), which is cut as text like any
/// other (a `Debug` of a `Vec` looks like JSON too).
pub(crate) fn shrinks_as_json(key: &str) -> bool {
    !key.starts_with("honeyhive_")
}

/// The key of the mime type that says how the value under `key` reads (OpenInference's
/// `input.value` and `output.value`): it goes when the value is cut as text or dropped.
pub(crate) fn mime_key_of(key: &str) -> Option<&'static str> {
    use super::openinference::{INPUT_MIME_TYPE, INPUT_VALUE, OUTPUT_MIME_TYPE, OUTPUT_VALUE};
    match key {
        INPUT_VALUE => Some(INPUT_MIME_TYPE),
        OUTPUT_VALUE => Some(OUTPUT_MIME_TYPE),
        _ => None,
    }
}

/// A JSON list or object by its first and last bytes.
pub(crate) fn looks_like_json(text: &str) -> bool {
    let text = text.trim_ascii();
    matches!(
        (text.as_bytes().first(), text.as_bytes().last()),
        (Some(b'['), Some(b']')) | (Some(b'{'), Some(b'}'))
    )
}

/// The JSON `text` in at most `cap` bytes, and still JSON: its longest strings are cut to
/// one equal share each, with their marker (the shorter ones stay whole); when even that is
/// not enough, the longest list (or object) loses entries between its first and its last
/// until it fits.
/// Objects come back with their keys in order (`serde_json`'s map). `None` when `text` is not
/// JSON or nothing fits.
pub(crate) fn shrunk(text: &str, cap: usize) -> Option<String> {
    if text.len() <= cap {
        return Some(text.to_owned());
    }
    // Past this, parsing and re-rendering would hold the export thread up for long: cut as
    // text.
    if text.len() > MAX_SHRUNK {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    // No string keeps more than the cap: each render below is then about as long as the
    // strings are many, whatever their length.
    cut_strings(&mut value, cap);
    for _ in 0..64 {
        let longest = longest_string(&value);
        let fits = |share: usize| {
            let mut v = value.clone();
            cut_strings(&mut v, share);
            let out = v.to_string();
            (out.len() <= cap).then_some(out)
        };
        if let Some(out) = fits(0) {
            // Binary search of the largest share that fits.
            let (mut low, mut high, mut best) = (0, longest, out);
            while low < high {
                let mid = low + (high - low).div_ceil(2);
                if let Some(out) = fits(mid) {
                    best = out;
                    low = mid;
                } else {
                    high = mid - 1;
                }
            }
            return Some(best);
        }
        if !thin_longest_list(&mut value) {
            return None;
        }
    }
    None
}

/// The longest JSON text [`shrunk`] parses.
const MAX_SHRUNK: usize = 4 << 20;

fn longest_string(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        serde_json::Value::Object(map) => map.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

/// Cuts every string longer than `share` (and its marker) to `share` bytes and the marker.
fn cut_strings(v: &mut serde_json::Value, share: usize) {
    match v {
        serde_json::Value::String(s) if s.len() > share + MARKER => {
            let cut = crate::capture::truncated_text(s, share);
            cut.as_str().clone_into(s);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, share)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, share)),
        _ => {}
    }
}

/// Removes half of the entries between the first and the last of the list or object with the
/// most entries (the oldest after the first); `false` when none has more than two.
fn thin_longest_list(v: &mut serde_json::Value) -> bool {
    /// The path to the longest list in `v` and its length.
    fn longest(v: &serde_json::Value, path: &mut Vec<Step>, best: &mut (usize, Vec<Step>)) {
        match v {
            serde_json::Value::Array(items) => {
                if items.len() > best.0 {
                    *best = (items.len(), path.clone());
                }
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    longest(item, path, best);
                    path.pop();
                }
            }
            serde_json::Value::Object(map) => {
                if map.len() > best.0 {
                    *best = (map.len(), path.clone());
                }
                for (key, value) in map {
                    path.push(Step::Key(key.clone()));
                    longest(value, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = (0, Vec::new());
    longest(v, &mut Vec::new(), &mut best);
    if best.0 <= 2 {
        return false;
    }
    let mut at = v;
    for step in &best.1 {
        at = match (step, at) {
            (Step::Index(i), serde_json::Value::Array(items)) => &mut items[*i],
            (Step::Key(k), serde_json::Value::Object(map)) => match map.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match at {
        serde_json::Value::Array(items) => {
            let drop = (items.len() - 2).div_ceil(2);
            items.drain(1..=drop);
        }
        serde_json::Value::Object(map) => {
            let drop = (map.len() - 2).div_ceil(2);
            let gone: Vec<String> = map.keys().skip(1).take(drop).cloned().collect();
            for key in gone {
                map.remove(&key);
            }
        }
        _ => return false,
    }
    true
}

#[derive(Clone)]
enum Step {
    Index(usize),
    Key(String),
}

/// Bytes of content a cut message keeps at least, besides its marker.
const MIN_SHARE: usize = 16;
/// Room for a cut text's marker (`…[truncated 1234567 bytes]`).
const MARKER: usize = 32;

/// The largest number of raw bytes each of the kept contents may keep (the shorter ones whole)
/// for their escaped texts and markers to fit in `budget`.
fn water_level(
    kept: &[usize],
    pairs: &[&[StringValue]],
    escaped: &[usize],
    budget: usize,
) -> usize {
    let cost = |share: usize| -> usize {
        kept.iter()
            .map(|&i| {
                let raw = pairs[i][1].as_str().len();
                // A text not much longer than the share is kept whole: its marker would cost
                // what the cut saves (and the cost would not grow with the share).
                if raw <= share + MARKER {
                    escaped[i]
                } else {
                    // Escapes spread evenly over the text: the cut keeps its share of them.
                    (share * escaped[i]).div_ceil(raw.max(1)) + MARKER
                }
            })
            .sum()
    };
    let (mut low, mut high) = (
        0,
        kept.iter()
            .map(|&i| pairs[i][1].as_str().len())
            .max()
            .unwrap_or(0),
    );
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if cost(mid) <= budget {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    low
}

/// The length of `s` written as a JSON string, without its quotes.
fn escaped_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .filter(|&b| NEEDS_ESCAPE[usize::from(b)])
            .map(|b| {
                if matches!(b, b'"' | b'\\' | b'\n' | b'\r' | b'\t') {
                    1
                } else {
                    5
                }
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Render<'a> = &'a dyn Fn(&[StringValue]) -> String;

    #[test]
    fn shrunk_json_parses_and_fits_at_every_cap() {
        let docs: Vec<serde_json::Value> = (0..30u32)
            .map(|i| {
                serde_json::json!({
                    "id": format!("d{i}"),
                    "score": f64::from(i) / 30.0,
                    "content": "line \"quoted\" \\ \u{1} é\n".repeat(40 + i as usize),
                    "tags": ["a", "b", "c"],
                })
            })
            .collect();
        let text = serde_json::json!({"documents": docs, "query": "q".repeat(500)}).to_string();
        for cap in (0..text.len() + 200).step_by(1_009) {
            let Some(out) = shrunk(&text, cap) else {
                assert!(cap < 300, "nothing fits in {cap}");
                continue;
            };
            assert!(out.len() <= cap, "{} > {cap}", out.len());
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let documents = v["documents"].as_array().unwrap();
            // The first and the last stay; what is cut says so.
            assert_eq!(documents[0]["id"], "d0");
            assert_eq!(documents.last().unwrap()["id"], "d29");
            if cap >= text.len() {
                assert_eq!(out, text);
            }
        }
        assert_eq!(shrunk("[not json", 4), None);
        let (cut, still_json) = cut_rendered(&format!("[{}", "x".repeat(100)), 10);
        assert!(!still_json && cut.as_str().contains("…[truncated"));
    }

    #[test]
    fn fitted_messages_parse_and_fit_at_every_cap() {
        let texts = [
            "short".to_owned(),
            "\u{1}\u{2}\"\\".repeat(500),
            "é".repeat(700),
            "plain ".repeat(400),
        ];
        let mut messages = Vec::new();
        for (i, t) in texts.iter().cycle().take(12).enumerate() {
            messages.push(StringValue::from(if i % 2 == 0 {
                "user"
            } else {
                "assistant"
            }));
            messages.push(StringValue::from(t.clone()));
        }
        let renders: [Render<'_>; 2] = [&chat, &|m| gen_ai_messages(m, Some("stop"))];
        for render in renders {
            let whole = render(&messages);
            for cap in (0..whole.len() + 100).step_by(97) {
                let Some(out) = fitted(&messages, cap, render) else {
                    // Nothing fits only below a message and its marker.
                    assert!(cap < 150, "cap {cap}");
                    continue;
                };
                assert!(out.len() <= cap, "{} > {cap}", out.len());
                let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
                let n = parsed.as_array().unwrap().len();
                assert!(n >= 1);
                if cap >= whole.len() {
                    assert_eq!(out, whole);
                }
            }
        }
    }

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
