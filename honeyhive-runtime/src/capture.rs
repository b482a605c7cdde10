//! Turning captured Rust values into attribute values.
//!
//! Strings are recorded as their text, integers, floats and bools as typed values, and anything
//! else through `Debug`. Which of these applies is chosen at compile time at the expansion site
//! with autoref-based dispatch (the "kind" trick from `anyhow`): the macro writes
//! `(&&&Capture(&x)).hh_kind().value(&x, cap)` and method resolution picks the most specific
//! kind. Nothing here runs unless the span is recorded.

// The kind trick needs methods on zero-sized kind values with one signature per role, so
// some take `self` without using it, or return `Option` where one kind always has a value.
#![allow(clippy::unused_self, clippy::unnecessary_wraps)]

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Debug, Display, Write as _};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::{StringValue, Value};

/// Byte cap for captured values (default 8 KiB), set by the installed pipeline.
static CAPTURE_CAP: AtomicUsize = AtomicUsize::new(DEFAULT_CAPTURE_CAP);

/// Default byte cap of one captured value.
pub const DEFAULT_CAPTURE_CAP: usize = 8 * 1024;

/// The byte cap of one captured value.
#[inline]
pub(crate) fn capture_cap() -> usize {
    CAPTURE_CAP.load(Ordering::Relaxed)
}

pub(crate) fn set_capture_cap(cap: usize) {
    CAPTURE_CAP.store(cap, Ordering::Relaxed);
}

/// Wraps a reference so that method resolution can choose how to record it.
#[doc(hidden)]
pub struct Capture<'a, T: ?Sized>(pub &'a T);

/// A value recorded as text.
#[doc(hidden)]
pub struct TextKind;
/// A value recorded by [`AsNumber`]: a typed number or bool, or a collection's bounded text.
#[doc(hidden)]
pub struct NumberKind;
/// A value recorded through `Debug`.
#[doc(hidden)]
pub struct DebugKind;

/// A return value that cannot be recorded (not `Debug`): nothing is recorded.
#[doc(hidden)]
pub struct SkipKind;

/// Types recorded as their text rather than Debug-quoted.
#[doc(hidden)]
pub trait AsText {
    /// The text to record.
    fn as_text(&self) -> &str;
}

impl AsText for str {
    fn as_text(&self) -> &str {
        self
    }
}
impl AsText for String {
    fn as_text(&self) -> &str {
        self
    }
}
impl AsText for Cow<'_, str> {
    fn as_text(&self) -> &str {
        self
    }
}
/// Smart pointers are recorded as what they point to: `Box<str>`, `Arc<String>` as text,
/// `Box<u32>` as a number, `Arc<Vec<T>>` walked only up to the cap.
macro_rules! pointers {
    ($trait:ident, $method:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        impl<T: $trait + ?Sized> $trait for Box<T> {
            fn $method(&self, $($arg: $ty),*) -> $ret {
                (**self).$method($($arg),*)
            }
        }
        impl<T: $trait + ?Sized> $trait for std::sync::Arc<T> {
            fn $method(&self, $($arg: $ty),*) -> $ret {
                (**self).$method($($arg),*)
            }
        }
        impl<T: $trait + ?Sized> $trait for std::rc::Rc<T> {
            fn $method(&self, $($arg: $ty),*) -> $ret {
                (**self).$method($($arg),*)
            }
        }
    };
}
pointers!(AsText, as_text() -> &str);
pointers!(AsNumber, as_value(cap: usize) -> Value);

impl<T: AsText + ?Sized> AsText for &T {
    fn as_text(&self) -> &str {
        (**self).as_text()
    }
}
impl<T: AsText + ?Sized> AsText for &mut T {
    fn as_text(&self) -> &str {
        (**self).as_text()
    }
}

/// Types recorded by a rule of their own rather than through plain `Debug`: numbers and bools
/// as typed values; lists, sets and maps as their `Debug` text, walked only up to the cap
/// (see [`BoundedDebug`]).
#[doc(hidden)]
pub trait AsNumber {
    /// The value, text cut at `cap` bytes.
    fn as_value(&self, cap: usize) -> Value;
}

macro_rules! small_ints {
    ($($t:ty),*) => {$(
        impl AsNumber for $t {
            fn as_value(&self, _cap: usize) -> Value {
                Value::I64(i64::from(*self))
            }
        }
    )*};
}
small_ints!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! wide_ints {
    ($($t:ty),*) => {$(
        impl AsNumber for $t {
            fn as_value(&self, _cap: usize) -> Value {
                // OTel attributes are i64; a value that does not fit is kept exactly as text.
                i64::try_from(*self).map_or_else(|_| Value::String(self.to_string().into()), Value::I64)
            }
        }
    )*};
}
wide_ints!(u64, u128, i128, usize, isize);

impl AsNumber for f64 {
    fn as_value(&self, _cap: usize) -> Value {
        Value::F64(*self)
    }
}
impl AsNumber for f32 {
    fn as_value(&self, _cap: usize) -> Value {
        Value::F64(f64::from(*self))
    }
}
impl AsNumber for bool {
    fn as_value(&self, _cap: usize) -> Value {
        Value::Bool(*self)
    }
}
impl<T: AsNumber + ?Sized> AsNumber for &T {
    fn as_value(&self, cap: usize) -> Value {
        (**self).as_value(cap)
    }
}
impl<T: AsNumber + ?Sized> AsNumber for &mut T {
    fn as_value(&self, cap: usize) -> Value {
        (**self).as_value(cap)
    }
}

/// What `#[trace]` needs of an argument it records: `Debug`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[trace]` cannot record this argument: `{Self}` does not implement `Debug`",
    label = "not `Debug`, so it cannot be recorded",
    note = "skip it with `#[trace(skip(<argument>))]` (or `skip_all`), or implement `Debug` for `{Self}`"
)]
pub trait Recordable: Debug {}
impl<T: Debug + ?Sized> Recordable for T {}

/// Picks [`TextKind`] for string-like values.
#[doc(hidden)]
pub trait TextProbe {
    /// The kind.
    fn hh_kind(&self) -> TextKind {
        TextKind
    }
}
impl<T: AsText + ?Sized> TextProbe for &&Capture<'_, T> {}

/// Picks [`NumberKind`] for numbers and bools, and for lists, sets and maps (see
/// [`AsNumber`]).
#[doc(hidden)]
pub trait NumberProbe {
    /// The kind.
    fn hh_kind(&self) -> NumberKind {
        NumberKind
    }
}
impl<T: AsNumber + ?Sized> NumberProbe for &Capture<'_, T> {}

/// `Debug` text of a collection that stops at the first failed write: std's list, set and map
/// helpers keep iterating every entry after the writer has failed (a million items cost
/// milliseconds even when nothing more is written), so collections are walked here instead,
/// with the same text as their `Debug`.
#[doc(hidden)]
pub(crate) trait BoundedDebug {
    /// Writes the `Debug` text of `self`, returning at the first error.
    fn fmt_bounded(&self, w: &mut CappedWriter) -> fmt::Result;
}

fn list<'a, T: Debug + 'a>(
    w: &mut CappedWriter,
    open: &str,
    close: &str,
    items: impl IntoIterator<Item = &'a T>,
) -> fmt::Result {
    w.write_str(open)?;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write!(w, "{item:?}")?;
    }
    w.write_str(close)
}

fn map<'a, K: Debug + 'a, V: Debug + 'a>(
    w: &mut CappedWriter,
    entries: impl IntoIterator<Item = (&'a K, &'a V)>,
) -> fmt::Result {
    w.write_str("{")?;
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write!(w, "{k:?}: {v:?}")?;
    }
    w.write_str("}")
}

macro_rules! collections {
    ($($(#[$m:meta])* [$($g:tt)*] $t:ty => |$s:ident, $w:ident| $body:expr;)*) => {$(
        impl<$($g)*> AsNumber for $t {
            fn as_value(&self, cap: usize) -> Value {
                Value::String(format_capped(cap, |w| self.fmt_bounded(w)))
            }
        }
        impl<$($g)*> BoundedDebug for $t {
            fn fmt_bounded(&self, $w: &mut CappedWriter) -> fmt::Result {
                let $s = self;
                $body
            }
        }
    )*};
}
// A collection behind a reference or a pointer is walked the same way (`Some(&vec)`,
// `Option<Arc<Vec<T>>>`).
macro_rules! bounded_pointers {
    ($($p:ty),*) => {$(
        impl<T: BoundedDebug + ?Sized> BoundedDebug for $p {
            fn fmt_bounded(&self, w: &mut CappedWriter) -> fmt::Result {
                (**self).fmt_bounded(w)
            }
        }
    )*};
}
bounded_pointers!(&T, Box<T>, std::sync::Arc<T>, std::rc::Rc<T>);

collections! {
    [T: Debug] [T] => |s, w| list(w, "[", "]", s);
    [T: Debug, const N: usize] [T; N] => |s, w| list(w, "[", "]", s);
    [T: Debug] Vec<T> => |s, w| list(w, "[", "]", s);
    [T: Debug] std::collections::VecDeque<T> => |s, w| list(w, "[", "]", s);
    [T: Debug] std::collections::BTreeSet<T> => |s, w| list(w, "{", "}", s);
    [T: Debug, S] std::collections::HashSet<T, S> => |s, w| list(w, "{", "}", s);
    [K: Debug, V: Debug] std::collections::BTreeMap<K, V> => |s, w| map(w, s);
    [K: Debug, V: Debug, S] std::collections::HashMap<K, V, S> => |s, w| map(w, s);
    /// `Some(collection)`: the collection walked only up to the cap, as above (an `Option`
    /// of anything else is recorded through `Debug`).
    [T: BoundedDebug] Option<T> => |s, w| match s {
        Some(v) => {
            w.write_str("Some(")?;
            v.fmt_bounded(w)?;
            w.write_str(")")
        }
        None => w.write_str("None"),
    };
}

/// Picks [`DebugKind`] for everything else.
#[doc(hidden)]
pub trait DebugProbe {
    /// The kind.
    fn hh_kind(&self) -> DebugKind {
        DebugKind
    }
}
impl<T: ?Sized> DebugProbe for Capture<'_, T> {}

impl TextKind {
    /// Records the text, cut at `cap` bytes.
    pub fn value<T: AsText + ?Sized>(self, v: &T, cap: usize) -> Value {
        Value::String(truncated_text(v.as_text(), cap))
    }
}

impl NumberKind {
    /// Records the typed value.
    pub fn value<T: AsNumber + ?Sized>(self, v: &T, cap: usize) -> Value {
        v.as_value(cap)
    }
}

impl DebugKind {
    /// Records the `Debug` text, cut at `cap` bytes.
    pub fn value<T: Recordable + ?Sized>(self, v: &T, cap: usize) -> Value {
        Value::String(debug_text(v, cap))
    }
}

impl TextKind {
    /// [`TextKind::value`] for outputs.
    pub fn out<T: AsText + ?Sized>(self, v: &T, cap: usize) -> Option<Value> {
        Some(self.value(v, cap))
    }
}
impl NumberKind {
    /// [`NumberKind::value`] for outputs.
    pub fn out<T: AsNumber + ?Sized>(self, v: &T, cap: usize) -> Option<Value> {
        Some(self.value(v, cap))
    }
}
impl DebugKind {
    /// [`DebugKind::value`] for outputs.
    pub fn out<T: Debug + ?Sized>(self, v: &T, cap: usize) -> Option<Value> {
        Some(Value::String(debug_text(v, cap)))
    }
}

/// How an error is described: `Display` if it has it, else `Debug`, else its type name.
#[doc(hidden)]
pub trait ErrDisplayProbe {
    /// The kind.
    fn hh_err_kind(&self) -> ErrDisplay {
        ErrDisplay
    }
}
impl<E: Display + ?Sized> ErrDisplayProbe for &&Capture<'_, E> {}
#[doc(hidden)]
/// Error Debug probe.
pub trait ErrDebugProbe {
    /// The kind.
    fn hh_err_kind(&self) -> ErrDebug {
        ErrDebug
    }
}
impl<E: Debug + ?Sized> ErrDebugProbe for &Capture<'_, E> {}
#[doc(hidden)]
/// Error fallback probe.
pub trait ErrOpaqueProbe {
    /// The kind.
    fn hh_err_kind(&self) -> ErrOpaque {
        ErrOpaque
    }
}
impl<E: ?Sized> ErrOpaqueProbe for Capture<'_, E> {}

/// Errors described by `Display`.
#[doc(hidden)]
pub struct ErrDisplay;
/// Errors described by `Debug`.
#[doc(hidden)]
pub struct ErrDebug;
/// Errors with neither: described by their type name.
#[doc(hidden)]
pub struct ErrOpaque;

impl ErrDisplay {
    /// The error's type and message.
    pub fn describe<E: Display + ?Sized>(self, e: &E, cap: usize) -> ErrorInfo {
        ErrorInfo {
            type_name: short_type_name(std::any::type_name::<E>()),
            message: display_text(e, cap),
        }
    }
}
impl ErrDebug {
    /// The error's type and message.
    pub fn describe<E: Debug + ?Sized>(self, e: &E, cap: usize) -> ErrorInfo {
        ErrorInfo {
            type_name: short_type_name(std::any::type_name::<E>()),
            message: debug_text(e, cap),
        }
    }
}
impl ErrOpaque {
    /// The error's type, as its own message.
    pub fn describe<E: ?Sized>(self, _e: &E, _cap: usize) -> ErrorInfo {
        let type_name = short_type_name(std::any::type_name::<E>());
        ErrorInfo {
            message: type_name.clone(),
            type_name,
        }
    }
}

/// What is recorded of an error.
#[doc(hidden)]
pub struct ErrorInfo {
    /// `exception.type`.
    pub type_name: StringValue,
    /// `exception.message`.
    pub message: StringValue,
}

/// A type name without module paths, inside generics too: `Box<dyn Error + Send + Sync>`
/// rather than `alloc::boxed::Box<dyn core::error::Error + core::marker::Send + ...>`.
pub(crate) fn short_type_name(full: &'static str) -> StringValue {
    if !full.contains("::") {
        return StringValue::from(full);
    }
    let mut out = String::with_capacity(full.len());
    let mut path = String::new();
    let flush = |path: &mut String, out: &mut String| {
        // `a::b::C` keeps `C`; `f::{{closure}}` keeps `f::`, the segment before the braces.
        let trimmed = path.strip_suffix("::");
        match trimmed {
            Some(p) => {
                out.push_str(p.rsplit("::").next().unwrap_or(p));
                out.push_str("::");
            }
            None => out.push_str(path.rsplit("::").next().unwrap_or(path)),
        }
        path.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            path.push(c);
        } else {
            flush(&mut path, &mut out);
            out.push(c);
        }
    }
    flush(&mut path, &mut out);
    StringValue::from(out)
}

/// The marker appended to a value cut at the byte cap, when the size of the rest is known.
pub(crate) fn truncation_marker(dropped: usize) -> String {
    format!("…[truncated {dropped} bytes]")
}

/// The marker when formatting stopped at the cap: at least `dropped` bytes were cut, how many
/// more is not known, because they were never formatted.
fn open_truncation_marker(dropped: usize) -> String {
    format!("…[truncated {dropped}+ bytes]")
}

/// How far past the cap a value is looked at, and how far back from it, so that a cut never
/// keeps part of a secret (see [`cut_point`]).
pub(crate) const SECRET_MARGIN: usize = 1024;

/// Where to cut `text` to keep at most `cap` bytes: at the last char boundary before `cap`,
/// or earlier, in front of a secret that the cut would split, so that the export-side redactor
/// never sees half of a secret it could not recognise. Only the bytes around the cut are
/// scanned, and only for a value that is cut.
pub(crate) fn cut_point(text: &str, cap: usize) -> usize {
    if text.len() <= cap {
        return text.len();
    }
    let cut = floor_char_boundary(text, cap);
    let from = floor_char_boundary(text, cut.saturating_sub(SECRET_MARGIN));
    let to = floor_char_boundary(text, cut.saturating_add(SECRET_MARGIN));
    let window = &text[from..to];
    for found in crate::secrets::scanner().find_all(window) {
        let (start, end) = (from + found.whole.start, from + found.whole.end);
        if start < cut && cut < end {
            return cut.min(from + found.secret.start);
        }
    }
    cut
}

pub(crate) fn truncated_text(s: &str, cap: usize) -> StringValue {
    if s.len() <= cap {
        return StringValue::from(s.to_owned());
    }
    let cut = cut_point(s, cap);
    let mut out = String::with_capacity(cut + 32);
    out.push_str(&s[..cut]);
    out.push_str(&truncation_marker(s.len() - cut));
    StringValue::from(out)
}

fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `Debug` text of `v`, at most `cap` bytes and about that much work; never panics.
pub(crate) fn debug_text<T: Debug + ?Sized>(v: &T, cap: usize) -> StringValue {
    format_capped(cap, |w| write!(w, "{v:?}"))
}

/// `Display` text of `v`, at most `cap` bytes and about that much work; never panics.
pub(crate) fn display_text<T: Display + ?Sized>(v: &T, cap: usize) -> StringValue {
    format_capped(cap, |w| write!(w, "{v}"))
}

/// Runs a user's `Debug` / `Display` into a [`CappedWriter`]. Formatting stops soon after the
/// cap (the writer fails, and `?` in formatting code returns at once), so a value of a million
/// items costs about the cap's worth of formatting. A panic in the user's impl is caught and
/// recorded as `<panicked while formatting: message>`; it does not reach the traced function.
pub(crate) fn format_capped(
    cap: usize,
    format: impl FnOnce(&mut CappedWriter) -> fmt::Result,
) -> StringValue {
    let mut w = CappedWriter::new(cap.saturating_add(SECRET_MARGIN));
    match guarded(|| format(&mut w)) {
        Ok(result) => w.finish(cap, result.is_err()),
        Err(message) => panicked_marker(&message, cap),
    }
}

/// The marker that stands for a value whose formatting panicked.
pub(crate) fn panicked_marker(message: &str, cap: usize) -> StringValue {
    panicked_marker_while("formatting", message, cap)
}

/// The marker that stands for a value whose making (`doing`) panicked.
pub(crate) fn panicked_marker_while(doing: &str, message: &str, cap: usize) -> StringValue {
    let marker = format!("<panicked while {doing}: {message}>");
    truncated_text(&marker, cap.max(64))
}

thread_local! {
    /// Set while user formatting code runs under [`guarded`], so that our panic hook neither
    /// prints nor keeps the message of a panic that capture catches.
    static FORMATTING: Cell<bool> = const { Cell::new(false) };
}

/// Whether a panic now comes from user formatting code that capture catches.
pub(crate) fn in_guarded_formatting() -> bool {
    FORMATTING.with(Cell::get)
}

/// Runs `f`, which calls user code for capture (a `Debug` impl, an `Into` conversion), and
/// turns a panic into its message. The panic hook stays quiet meanwhile: such a panic is not
/// the program's, only a value that could not be captured.
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let outer = FORMATTING.replace(true);
    let result = caught(f);
    FORMATTING.set(outer);
    result
}

/// Runs `f`, user code that does the program's own work (an evaluator), and turns a panic into
/// its message. Unlike [`guarded`], the panic is the program's: the panic hooks see it (the
/// program's own, and ours, which keeps its message for the spans it unwinds through).
pub(crate) fn caught<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_owned());
        // A payload whose own drop panics must not unwind from here either.
        if let Err(again) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
        message
    })
}

/// A `fmt::Write` that keeps at most `limit` bytes and then fails, which stops the formatting
/// code that writes to it: capture treats that failure as "cut here", not as an error.
#[doc(hidden)]
pub(crate) struct CappedWriter {
    buf: String,
    limit: usize,
    full: bool,
}

impl CappedWriter {
    fn new(limit: usize) -> Self {
        CappedWriter {
            buf: String::new(),
            limit,
            full: false,
        }
    }

    /// The text, cut at `cap` (see [`cut_point`]) with a marker. `failed`: the formatting
    /// returned an error.
    fn finish(mut self, cap: usize, failed: bool) -> StringValue {
        if self.full {
            let cut = cut_point(&self.buf, cap);
            let dropped = self.buf.len() - cut;
            self.buf.truncate(cut);
            self.buf.push_str(&open_truncation_marker(dropped.max(1)));
        } else if self.buf.len() > cap {
            let total = self.buf.len();
            let cut = cut_point(&self.buf, cap);
            self.buf.truncate(cut);
            self.buf.push_str(&truncation_marker(total - cut));
        } else if failed {
            // The user's impl failed on its own: keep what it wrote, and say so.
            self.buf.push_str("…[formatting failed]");
        }
        StringValue::from(self.buf)
    }
}

impl fmt::Write for CappedWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.full {
            return Err(fmt::Error);
        }
        let room = self.limit - self.buf.len();
        if s.len() <= room {
            self.buf.push_str(s);
            return Ok(());
        }
        self.buf.push_str(&s[..floor_char_boundary(s, room)]);
        self.full = true;
        Err(fmt::Error)
    }
}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the references are the dispatch
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_char_boundary_with_a_marker() {
        let v = truncated_text("héllo wörld", 2);
        assert_eq!(v.as_str(), "h…[truncated 12 bytes]");
        assert_eq!(truncated_text("short", 8).as_str(), "short");
    }

    #[test]
    fn debug_formatting_stops_soon_after_the_cap() {
        struct Counting<'a>(&'a Cell<usize>);
        impl Debug for Counting<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.set(self.0.get() + 1);
                f.write_str("item")
            }
        }
        let calls = Cell::new(0);
        let big: Vec<Counting<'_>> = (0..100_000).map(|_| Counting(&calls)).collect();
        let v = debug_text(&big, 16);
        assert!(v.as_str().starts_with("[item, item, ite"), "{}", v.as_str());
        assert!(v.as_str().ends_with("+ bytes]"), "{}", v.as_str());
        // The cap, the margin looked at for secrets, and one item more: not 100,000.
        let formatted = calls.get();
        assert!(formatted <= (16 + SECRET_MARGIN) / 6 + 2, "{formatted}");
    }

    #[test]
    fn smart_pointers_record_what_they_point_to_and_options_of_collections_are_walked() {
        use std::rc::Rc;
        use std::sync::Arc;
        /// Compiles only for the kind that walks up to the cap.
        fn walked(_: &NumberKind) {}
        // Typed as what they point to, where `Debug` would give `"5"` and `"\"abc\""`.
        let boxed = Box::new(5u32);
        assert_eq!(
            (&&&Capture(&boxed)).hh_kind().value(&boxed, 64),
            Value::I64(5)
        );
        let shared = Arc::new(String::from("abc"));
        assert_eq!(
            (&&&Capture(&shared)).hh_kind().value(&shared, 64),
            Value::from("abc")
        );
        let rc: Rc<str> = Rc::from("text");
        assert_eq!(
            (&&&Capture(&rc)).hh_kind().value(&rc, 64),
            Value::from("text")
        );
        // Collections behind a pointer or in `Some` take the walk that stops at the cap
        // (`NumberKind`), not std's `Debug`, which steps over every item; same text.
        let items = Arc::new(vec![1u64, 2, 3]);
        let kind = (&&&Capture(&items)).hh_kind();
        walked(&kind);
        assert_eq!(kind.value(&items, 64), Value::from(format!("{items:?}")));
        let maybe = Some(vec![1u8, 2]);
        let kind = (&&&Capture(&maybe)).hh_kind();
        walked(&kind);
        assert_eq!(kind.value(&maybe, 64), Value::from("Some([1, 2])"));
        let borrowed = Some(Arc::new(&maybe));
        let kind = (&&&Capture(&borrowed)).hh_kind();
        walked(&kind);
        assert_eq!(kind.value(&borrowed, 64), Value::from("Some(Some([1, 2]))"));
        let none: Option<Vec<u8>> = None;
        assert_eq!(
            (&&&Capture(&none)).hh_kind().value(&none, 64),
            Value::from("None")
        );
        let slice: Box<[u8]> = Box::new([1, 2]);
        assert_eq!(
            (&&&Capture(&slice)).hh_kind().value(&slice, 64),
            Value::from("[1, 2]")
        );
        // An `Option` of anything else stays `Debug`.
        let number = Some(5u32);
        let kind: DebugKind = (&&&Capture(&number)).hh_kind();
        assert_eq!(kind.value(&number, 64), Value::from("Some(5)"));
    }

    #[test]
    fn collections_stop_walking_at_the_cap_with_their_debug_text() {
        // Counts how often it is formatted: std's list helper would visit every item after
        // the writer failed.
        struct Tally<'a>(&'a Cell<usize>);
        impl Debug for Tally<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.set(self.0.get() + 1);
                f.write_str("t")
            }
        }
        let calls = Cell::new(0);
        let tallies: Vec<Tally<'_>> = (0..1_000_000).map(|_| Tally(&calls)).collect();
        let v = (&&&Capture(&tallies)).hh_kind().value(&tallies, 64);
        assert!(v.as_str().starts_with("[t, t, t"), "{}", v.as_str());
        assert!(
            calls.get() < (64 + SECRET_MARGIN) / 3 + 2,
            "{}",
            calls.get()
        );
        let small = std::collections::BTreeMap::from([("a", vec![1, 2]), ("b", vec![])]);
        assert_eq!(
            (&&&Capture(&small)).hh_kind().value(&small, 64),
            Value::from(format!("{small:?}"))
        );
        let set = std::collections::BTreeSet::from([3, 1]);
        assert_eq!(
            (&&&Capture(&set)).hh_kind().value(&set, 64),
            Value::from(format!("{set:?}"))
        );
        let arr = [Some(1), None];
        assert_eq!(
            (&&&Capture(&arr)).hh_kind().value(&arr, 64),
            Value::from(format!("{arr:?}"))
        );
    }

    #[test]
    fn a_collection_inside_a_user_struct_stops_being_formatted_at_the_cap() {
        // A derived `Debug` hands the field to std's list helper, not to `BoundedDebug`: what
        // stops it is the writer failing, and every later item is skipped unformatted.
        #[derive(Debug)]
        #[allow(dead_code)] // read through the derived `Debug` only
        struct Batch<'a> {
            name: &'static str,
            items: Vec<Tally<'a>>,
            after: Vec<Tally<'a>>,
        }
        struct Tally<'a>(&'a Cell<usize>);
        impl Debug for Tally<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.set(self.0.get() + 1);
                f.write_str("t")
            }
        }
        let calls = Cell::new(0);
        let batch = Batch {
            name: "big",
            items: (0..1_000_000).map(|_| Tally(&calls)).collect(),
            after: (0..1_000).map(|_| Tally(&calls)).collect(),
        };
        let v = (&&&Capture(&batch)).hh_kind().value(&batch, 64);
        assert!(
            v.as_str()
                .starts_with("Batch { name: \"big\", items: [t, t, t"),
            "{}",
            v.as_str()
        );
        assert!(v.as_str().ends_with("+ bytes]"), "{}", v.as_str());
        // The cap and the margin looked at for secrets, three bytes an item: not a million,
        // and nothing of the field after the cut.
        assert!(
            calls.get() < (64 + SECRET_MARGIN) / 3 + 2,
            "{}",
            calls.get()
        );
    }

    #[test]
    fn a_value_that_fits_in_the_margin_has_an_exact_marker() {
        let v = debug_text(&vec![7u8; 100], 16);
        let full = format!("{:?}", vec![7u8; 100]).len();
        assert_eq!(
            v.as_str(),
            format!("[7, 7, 7, 7, 7, {}", truncation_marker(full - 16))
        );
    }

    #[test]
    fn a_cut_never_keeps_part_of_a_secret() {
        let text = "key=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t end";
        // A plain cut at 12 would keep `sk-proj-` and a few characters.
        assert_eq!(
            truncated_text(text, 12).as_str(),
            format!("key={}", truncation_marker(36))
        );
        let auth = "Authorization: Bearer 8f3kQ-Zz91.aa";
        let cut = truncated_text(auth, 26);
        assert!(
            cut.as_str().starts_with("Authorization: Bearer …"),
            "{}",
            cut.as_str()
        );
    }

    #[test]
    fn a_panicking_debug_impl_is_recorded_as_a_marker() {
        struct Bad;
        impl Debug for Bad {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("bad impl")
            }
        }
        assert_eq!(
            debug_text(&Bad, 64).as_str(),
            "<panicked while formatting: bad impl>"
        );
        assert!(!in_guarded_formatting());
    }

    #[test]
    fn type_names_are_short_inside_generics_too() {
        let cases = [
            (
                "alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>",
                "Box<dyn Error + Send + Sync>",
            ),
            ("std::io::error::Error", "Error"),
            ("my_app::errors::ApiError", "ApiError"),
            (
                "my_app::Wrapper<std::io::error::Error, alloc::string::String>",
                "Wrapper<Error, String>",
            ),
            ("&[core::option::Option<u8>; 4]", "&[Option<u8>; 4]"),
            ("my_app::run::{{closure}}", "run::{{closure}}"),
            ("u32", "u32"),
        ];
        for (full, short) in cases {
            assert_eq!(short_type_name(full).as_str(), short, "{full}");
        }
    }

    #[test]
    fn dispatch_picks_text_number_then_debug() {
        let s = "plain";
        assert_eq!(
            (&&&Capture(&s)).hh_kind().value(&s, 64),
            Value::from("plain")
        );
        let owned = String::from("owned");
        assert_eq!(
            (&&&Capture(&owned)).hh_kind().value(&owned, 64),
            Value::from("owned")
        );
        let n = 42u64;
        assert_eq!((&&&Capture(&n)).hh_kind().value(&n, 64), Value::I64(42));
        let big = u64::MAX;
        assert_eq!(
            (&&&Capture(&big)).hh_kind().value(&big, 64),
            Value::from(u64::MAX.to_string())
        );
        let v = vec!["a"];
        assert_eq!(
            (&&&Capture(&v)).hh_kind().value(&v, 64),
            Value::from("[\"a\"]")
        );
    }
}
