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
pub(crate) fn gen_ai_messages(messages: &[StringValue], finish_reasons: &[StringValue]) -> String {
    // `{"role":"","parts":[{"type":"text","content":""}]},` is 52 bytes around two texts, and
    // `,"finish_reason":""` 19 more with the reason.
    let extra = finish_reasons.first().map_or(0, |r| r.as_str().len() + 19);
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
        // Each choice's own reason (`finish_reasons` lists them in order); one reason for
        // all when fewer were given.
        if let Some(reason) = finish_reasons.get(i).or(finish_reasons.first()) {
            string(o.key("finish_reason"), reason.as_str());
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
/// until it fits, and says how many in their place (`"…[12 items omitted]"`, a key `"…"`
/// with `"[12 keys omitted]"`). Objects keep their keys in their order. `None` when `text` is
/// not JSON or nothing fits.
pub(crate) fn shrunk(text: &str, cap: usize) -> Option<String> {
    if text.len() <= cap {
        return Some(text.to_owned());
    }
    // Past this, parsing and re-rendering would hold the export thread up for long: cut as
    // text.
    if text.len() > MAX_SHRUNK {
        return None;
    }
    let mut value = Json::parse(text)?;
    // No string keeps more than the cap: each render below is then about as long as the
    // strings are many, whatever their length.
    value.cut_strings(cap);
    for _ in 0..64 {
        let longest = value.longest_string();
        let fits = |share: usize| {
            let mut v = value.clone();
            v.cut_strings(share);
            let out = v.render();
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
        if !value.thin_longest_list() {
            return None;
        }
    }
    None
}

/// The longest JSON text [`shrunk`] parses.
const MAX_SHRUNK: usize = 4 << 20;

pub(crate) use tree::Json;

/// A parsed JSON value that keeps what a reader sees: the order of an object's keys, and
/// where entries were left out.
mod tree {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::MARKER;

    #[derive(Clone, Debug)]
    pub(crate) enum Json {
        Null,
        Bool(bool),
        Number(serde_json::Number),
        String(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
        /// Entries left out of the list or object it is in: rendered as a string in a list,
        /// as the value of the key `…` in an object.
        Omitted(usize),
    }

    impl Json {
        /// `text` parsed, or `None` when it is not JSON.
        pub(crate) fn parse(text: &str) -> Option<Json> {
            serde_json::from_str(text).ok()
        }

        /// An object of these entries, in this order.
        pub(crate) fn object<const N: usize>(entries: [(&str, Json); N]) -> Json {
            Json::Object(entries.map(|(k, v)| (k.to_owned(), v)).into())
        }

        pub(crate) fn string(s: &str) -> Json {
            Json::String(s.to_owned())
        }

        /// The value under `key` of an object (the last one, as JSON readers take it).
        pub(crate) fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Object(entries) => {
                    entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
                }
                _ => None,
            }
        }

        pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
            match self {
                Json::Object(entries) => entries
                    .iter_mut()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v),
                _ => None,
            }
        }

        /// Sets `key`, in place if the object has it, else at its end.
        pub(crate) fn set(&mut self, key: &str, value: Json) {
            if let Some(slot) = self.get_mut(key) {
                *slot = value;
            } else if let Json::Object(entries) = self {
                entries.push((key.to_owned(), value));
            }
        }

        pub(crate) fn as_str(&self) -> Option<&str> {
            match self {
                Json::String(s) => Some(s),
                _ => None,
            }
        }

        /// Cuts every string longer than `share` (and its marker) to `share` bytes and the
        /// marker.
        pub(super) fn cut_strings(&mut self, share: usize) {
            match self {
                Json::String(s) if s.len() > share + MARKER => {
                    let cut = crate::capture::truncated_text(s, share);
                    cut.as_str().clone_into(s);
                }
                Json::Array(items) => items.iter_mut().for_each(|v| v.cut_strings(share)),
                Json::Object(entries) => entries.iter_mut().for_each(|(_, v)| v.cut_strings(share)),
                _ => {}
            }
        }

        pub(super) fn longest_string(&self) -> usize {
            match self {
                Json::String(s) => s.len(),
                _ => self.children().map(Json::longest_string).max().unwrap_or(0),
            }
        }

        pub(crate) fn render(&self) -> String {
            let mut out = String::new();
            self.render_into(&mut out);
            out
        }

        fn render_into(&self, out: &mut String) {
            match self {
                Json::Null => out.push_str("null"),
                Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Json::Number(n) => out.push_str(&n.to_string()),
                Json::String(s) => super::string(out, s),
                Json::Omitted(n) => {
                    let noun = if *n == 1 { "item" } else { "items" };
                    super::string(out, &format!("…[{n} {noun} omitted]"));
                }
                Json::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        item.render_into(out);
                    }
                    out.push(']');
                }
                Json::Object(entries) => {
                    out.push('{');
                    for (i, (key, value)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        if let Json::Omitted(n) = value {
                            let noun = if *n == 1 { "key" } else { "keys" };
                            super::string(out, "…");
                            out.push(':');
                            super::string(out, &format!("[{n} {noun} omitted]"));
                        } else {
                            super::string(out, key);
                            out.push(':');
                            value.render_into(out);
                        }
                    }
                    out.push('}');
                }
            }
        }

        /// The values of a list's entries or an object's.
        fn children(&self) -> Box<dyn Iterator<Item = &Json> + '_> {
            match self {
                Json::Array(items) => Box::new(items.iter()),
                Json::Object(entries) => Box::new(entries.iter().map(|(_, v)| v)),
                _ => Box::new(std::iter::empty()),
            }
        }

        fn child_mut(&mut self, i: usize) -> Option<&mut Json> {
            match self {
                Json::Array(items) => items.get_mut(i),
                Json::Object(entries) => entries.get_mut(i).map(|(_, v)| v),
                _ => None,
            }
        }

        /// Entries between the first and the last of a list or object that can still go
        /// (not the marker of those already gone).
        fn thinnable(&self) -> usize {
            let n = self.children().count();
            let marked = matches!(self.children().nth(1), Some(Json::Omitted(_)));
            n.saturating_sub(2).saturating_sub(usize::from(marked))
        }

        /// The most entries that can go from one list or object in `self`.
        fn most_thinnable(&self) -> usize {
            let inner = self.children().map(Json::most_thinnable).max();
            self.thinnable().max(inner.unwrap_or(0))
        }

        /// The list or object with the most entries that can go (the outer one of equals),
        /// and how many.
        fn longest_list(&mut self) -> Option<(&mut Json, usize)> {
            let here = self.thinnable();
            let inner = self
                .children()
                .map(Json::most_thinnable)
                .enumerate()
                .max_by_key(|&(_, n)| n);
            match inner {
                Some((i, n)) if n > here => self.child_mut(i)?.longest_list(),
                _ if here > 0 => Some((self, here)),
                _ => None,
            }
        }

        /// Leaves out half of the entries between the first and the last of the list or
        /// object with the most (the oldest after the first), counted in one [`Json::Omitted`]
        /// after the first; `false` when none has one to leave out.
        pub(super) fn thin_longest_list(&mut self) -> bool {
            let Some((list, n)) = self.longest_list() else {
                return false;
            };
            let drop = n.div_ceil(2);
            match list {
                Json::Array(items) => thin(items, drop, |v| v, Json::Omitted),
                Json::Object(entries) => thin(
                    entries,
                    drop,
                    |(_, v)| v,
                    |n| (String::new(), Json::Omitted(n)),
                ),
                _ => return false,
            }
            true
        }
    }

    /// Removes `drop` entries after the first (after the marker, if one is there) and counts
    /// them in the marker after the first.
    fn thin<T>(
        entries: &mut Vec<T>,
        drop: usize,
        value: impl Fn(&T) -> &Json,
        marker: impl Fn(usize) -> T,
    ) {
        let before = match entries.get(1).map(&value) {
            Some(Json::Omitted(n)) => *n,
            _ => 0,
        };
        let at = 1 + usize::from(before > 0);
        entries.drain(at..at + drop);
        if before > 0 {
            entries[1] = marker(before + drop);
        } else {
            entries.insert(1, marker(drop));
        }
    }

    impl<'de> Deserialize<'de> for Json {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
            deserializer.deserialize_any(JsonVisitor)
        }
    }

    struct JsonVisitor;

    impl<'de> Visitor<'de> for JsonVisitor {
        type Value = Json;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_unit<E>(self) -> Result<Json, E> {
            Ok(Json::Null)
        }

        fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
            Ok(Json::Bool(b))
        }

        fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
            Ok(Json::Number(n.into()))
        }

        fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
            Ok(Json::Number(n.into()))
        }

        fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
            Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
        }

        fn visit_str<E>(self, s: &str) -> Result<Json, E> {
            Ok(Json::String(s.to_owned()))
        }

        fn visit_string<E>(self, s: String) -> Result<Json, E> {
            Ok(Json::String(s))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(Json::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
            while let Some(entry) = map.next_entry::<String, Json>()? {
                entries.push(entry);
            }
            Ok(Json::Object(entries))
        }
    }
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
    fn a_thinned_list_counts_what_it_left_out_and_keeps_the_latest() {
        let numbers: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let text = format!(r#"{{"z":"first key","a":1,"n":[{}]}}"#, numbers.join(","));
        for cap in [100, 200, 1000, 3000] {
            let out = shrunk(&text, cap).unwrap();
            assert!(out.len() <= cap, "{cap}: {out}");
            // Keys in their order, not sorted.
            assert!(
                out.starts_with(r#"{"z":"first key","a":1,"n":[0,"…["#),
                "{out}"
            );
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let n = v["n"].as_array().unwrap();
            let marker = n[1].as_str().unwrap();
            let omitted: usize = marker
                .strip_prefix("…[")
                .and_then(|m| m.strip_suffix(" items omitted]"))
                .unwrap()
                .parse()
                .unwrap();
            // What stays: the first, and the latest ones in a row.
            assert_eq!(n.len() - 1 + omitted, 1000, "{out}");
            let kept: Vec<u64> = n[2..].iter().map(|x| x.as_u64().unwrap()).collect();
            let latest: Vec<u64> = (1000 - kept.len() as u64..1000).collect();
            assert_eq!(kept, latest, "{out}");
        }
    }

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
        let stop = [StringValue::from("stop")];
        let renders: [Render<'_>; 2] = [&chat, &|m| gen_ai_messages(m, &stop)];
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
