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
use std::fmt::{self, Debug, Display, Write as _};

use opentelemetry::{StringValue, Value};

/// Wraps a reference so that method resolution can choose how to record it.
#[doc(hidden)]
pub struct Capture<'a, T: ?Sized>(pub &'a T);

/// A value recorded as text.
#[doc(hidden)]
pub struct TextKind;
/// A value recorded as a typed number or bool.
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
impl AsText for Box<str> {
    fn as_text(&self) -> &str {
        self
    }
}
impl AsText for std::sync::Arc<str> {
    fn as_text(&self) -> &str {
        self
    }
}
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

/// Types recorded as typed attribute values.
#[doc(hidden)]
pub trait AsNumber {
    /// The typed value.
    fn as_value(&self) -> Value;
}

macro_rules! small_ints {
    ($($t:ty),*) => {$(
        impl AsNumber for $t {
            fn as_value(&self) -> Value {
                Value::I64(i64::from(*self))
            }
        }
    )*};
}
small_ints!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! wide_ints {
    ($($t:ty),*) => {$(
        impl AsNumber for $t {
            fn as_value(&self) -> Value {
                // OTel attributes are i64; a value that does not fit is kept exactly as text.
                i64::try_from(*self).map_or_else(|_| Value::String(self.to_string().into()), Value::I64)
            }
        }
    )*};
}
wide_ints!(u64, u128, i128, usize, isize);

impl AsNumber for f64 {
    fn as_value(&self) -> Value {
        Value::F64(*self)
    }
}
impl AsNumber for f32 {
    fn as_value(&self) -> Value {
        Value::F64(f64::from(*self))
    }
}
impl AsNumber for bool {
    fn as_value(&self) -> Value {
        Value::Bool(*self)
    }
}
impl<T: AsNumber + ?Sized> AsNumber for &T {
    fn as_value(&self) -> Value {
        (**self).as_value()
    }
}
impl<T: AsNumber + ?Sized> AsNumber for &mut T {
    fn as_value(&self) -> Value {
        (**self).as_value()
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

/// Picks [`NumberKind`] for numbers and bools.
#[doc(hidden)]
pub trait NumberProbe {
    /// The kind.
    fn hh_kind(&self) -> NumberKind {
        NumberKind
    }
}
impl<T: AsNumber + ?Sized> NumberProbe for &Capture<'_, T> {}

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
    pub fn value<T: AsNumber + ?Sized>(self, v: &T, _cap: usize) -> Value {
        v.as_value()
    }
}

impl DebugKind {
    /// Records the `Debug` text, cut at `cap` bytes.
    pub fn value<T: Recordable + ?Sized>(self, v: &T, cap: usize) -> Value {
        Value::String(debug_text(v, cap))
    }
}

/// Output probes: like the input ones, with a last resort that records nothing, because a
/// return type such as `impl Iterator` is legitimately not `Debug`.
#[doc(hidden)]
pub trait OutTextProbe {
    /// The kind.
    fn hh_out_kind(&self) -> TextKind {
        TextKind
    }
}
impl<T: AsText + ?Sized> OutTextProbe for &&&Capture<'_, T> {}
#[doc(hidden)]
/// Output number probe.
pub trait OutNumberProbe {
    /// The kind.
    fn hh_out_kind(&self) -> NumberKind {
        NumberKind
    }
}
impl<T: AsNumber + ?Sized> OutNumberProbe for &&Capture<'_, T> {}
#[doc(hidden)]
/// Output Debug probe.
pub trait OutDebugProbe {
    /// The kind.
    fn hh_out_kind(&self) -> DebugKind {
        DebugKind
    }
}
impl<T: Debug + ?Sized> OutDebugProbe for &Capture<'_, T> {}
#[doc(hidden)]
/// Output fallback probe.
pub trait OutSkipProbe {
    /// The kind.
    fn hh_out_kind(&self) -> SkipKind {
        SkipKind
    }
}
impl<T: ?Sized> OutSkipProbe for Capture<'_, T> {}

impl SkipKind {
    /// Nothing to record.
    pub fn value<T: ?Sized>(self, _v: &T, _cap: usize) -> Option<Value> {
        None
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
impl SkipKind {
    /// Nothing to record.
    pub fn out<T: ?Sized>(self, _v: &T, _cap: usize) -> Option<Value> {
        None
    }
}

/// Splits a return value into success and error: `Result`s (through any alias) are split,
/// every other type is a success.
#[doc(hidden)]
pub trait ResultProbe {
    /// The kind.
    fn hh_result_kind(&self) -> ResultKind {
        ResultKind
    }
}
impl<T, E> ResultProbe for &Capture<'_, Result<T, E>> {}
/// Every non-`Result` return value.
#[doc(hidden)]
pub trait PlainProbe {
    /// The kind.
    fn hh_result_kind(&self) -> PlainKind {
        PlainKind
    }
}
impl<T: ?Sized> PlainProbe for Capture<'_, T> {}

/// A `Result` return.
#[doc(hidden)]
pub struct ResultKind;
/// Any other return.
#[doc(hidden)]
pub struct PlainKind;

impl ResultKind {
    /// `Ok` value or error.
    pub fn split<T, E>(self, r: &Result<T, E>) -> Result<&T, &E> {
        r.as_ref()
    }
}
impl PlainKind {
    /// Always a success.
    pub fn split<T: ?Sized>(self, r: &T) -> Result<&T, &core::convert::Infallible> {
        Ok(r)
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
        let mut w = CappedWriter::new(cap);
        let _ = write!(w, "{e}");
        ErrorInfo {
            type_name: short_type_name(std::any::type_name::<E>()),
            message: w.finish(),
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

/// `std::io::Error` rather than the whole path of every generic argument.
fn short_type_name(full: &'static str) -> StringValue {
    StringValue::from(full)
}

/// The marker appended to a value cut at the byte cap.
pub(crate) fn truncation_marker(dropped: usize) -> String {
    format!("…[truncated {dropped} bytes]")
}

pub(crate) fn truncated_text(s: &str, cap: usize) -> StringValue {
    if s.len() <= cap {
        return StringValue::from(s.to_owned());
    }
    let cut = floor_char_boundary(s, cap);
    let mut out = String::with_capacity(cut + 32);
    out.push_str(&s[..cut]);
    out.push_str(&truncation_marker(s.len() - cut));
    StringValue::from(out)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub(crate) fn debug_text<T: Debug + ?Sized>(v: &T, cap: usize) -> StringValue {
    let mut w = CappedWriter::new(cap);
    let _ = write!(w, "{v:?}");
    w.finish()
}

/// A `fmt::Write` that keeps at most `cap` bytes and counts the rest, so formatting a 2 MB
/// value allocates no more than the cap.
struct CappedWriter {
    buf: String,
    cap: usize,
    dropped: usize,
}

impl CappedWriter {
    fn new(cap: usize) -> Self {
        CappedWriter {
            buf: String::new(),
            cap,
            dropped: 0,
        }
    }

    fn finish(mut self) -> StringValue {
        if self.dropped > 0 {
            self.buf.push_str(&truncation_marker(self.dropped));
        }
        StringValue::from(self.buf)
    }
}

impl fmt::Write for CappedWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.cap - self.buf.len();
        if s.len() <= room && self.dropped == 0 {
            self.buf.push_str(s);
        } else {
            let cut = if self.dropped == 0 {
                floor_char_boundary(s, room)
            } else {
                0
            };
            self.buf.push_str(&s[..cut]);
            self.dropped += s.len() - cut;
        }
        Ok(())
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
    fn debug_is_capped_while_formatting() {
        let big = vec![7u8; 10_000];
        let v = debug_text(&big, 16);
        assert!(v.as_str().starts_with("[7, 7, 7, 7, 7, "), "{}", v.as_str());
        let full = format!("{big:?}").len();
        assert!(
            v.as_str().ends_with(&truncation_marker(full - 16)),
            "{}",
            v.as_str()
        );
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
