//! Token streams: the span of a `#[trace]` fn that returns `impl Iterator` or `impl Stream`
//! stays open until the stream ends or is dropped.
//!
//! The expansion wraps the returned value in [`TracedIter`] or [`TracedStream`], which own the
//! span, make it current while the next item is produced (so spans opened inside nest under
//! it), and record when the stream ends:
//!
//! | key | value |
//! |---|---|
//! | `honeyhive.stream.items` | items produced |
//! | `honeyhive.stream.time_to_first_item_ms` | from the call to the first item |
//! | `honeyhive.stream.completed` | `true` when the stream ran to its end, `false` when dropped early (then also `honeyhive.cancelled`) |
//! | `honeyhive_outputs.result` | text items (`String`, `&str`, or `Ok` text of `Result` items) joined, cut at the capture byte cap; not with `skip_output` |
//!
//! An `Err` item marks the span ERROR (the first one is recorded). Nothing of this runs for a
//! span that is not recorded.

use std::fmt::{Debug, Display};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use opentelemetry::{StringValue, Value};

use crate::capture::{
    AsText, Capture, SECRET_MARGIN, cut_point, debug_text, display_text, short_type_name,
    truncation_marker,
};
use crate::clock;
use crate::span::Span;

/// What a stream produced so far.
#[doc(hidden)]
#[derive(Debug)]
pub struct StreamLog {
    items: u64,
    first_item_at: Option<u64>,
    text: Option<String>,
    dropped_bytes: usize,
    error: Option<(StringValue, StringValue)>,
    record_output: bool,
    cap: usize,
}

impl StreamLog {
    fn new(record_output: bool) -> Self {
        StreamLog {
            items: 0,
            first_item_at: None,
            text: None,
            dropped_bytes: 0,
            error: None,
            record_output,
            cap: usize::MAX,
        }
    }

    /// Joins `text`, keeping up to [`SECRET_MARGIN`] bytes past `cap` so that the final cut
    /// ([`cut_point`]) can see a secret that spans it.
    fn push_text(&mut self, text: &str, cap: usize) {
        if !self.record_output {
            return;
        }
        self.cap = cap;
        let buf = self.text.get_or_insert_with(String::new);
        let room = cap.saturating_add(SECRET_MARGIN).saturating_sub(buf.len());
        if self.dropped_bytes == 0 && text.len() <= room {
            buf.push_str(text);
            return;
        }
        let mut cut = if self.dropped_bytes == 0 {
            room.min(text.len())
        } else {
            0
        };
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        buf.push_str(&text[..cut]);
        self.dropped_bytes += text.len() - cut;
    }

    fn error(&mut self, type_name: &'static str, message: impl FnOnce() -> StringValue) {
        if self.error.is_none() {
            self.error = Some((short_type_name(type_name), message()));
        }
    }

    /// The joined text, cut at the cap with its marker.
    fn take_text(&mut self) -> Option<String> {
        let mut text = self.text.take()?;
        let total = text.len() + self.dropped_bytes;
        if text.len() > self.cap || self.dropped_bytes > 0 {
            let cut = cut_point(&text, self.cap);
            text.truncate(cut);
            text.push_str(&truncation_marker(total - cut));
        }
        Some(text)
    }
}

/// Owns the span of a traced stream and records what the stream produced when it ends.
#[derive(Debug)]
struct Tracker {
    span: Option<Span>,
    log: StreamLog,
}

impl Tracker {
    fn new(span: Span, record_output: bool) -> Self {
        Tracker {
            span: Some(span),
            log: StreamLog::new(record_output),
        }
    }

    /// Produces the next item with the span current; `Pending` leaves everything as it was.
    #[inline]
    fn next<T>(
        &mut self,
        produce: impl FnOnce() -> Poll<Option<T>>,
        observe: fn(&T, &mut StreamLog, usize),
    ) -> Poll<Option<T>> {
        let Some(span) = self.span.as_mut() else {
            return produce();
        };
        let poll = span.in_scope(produce);
        let Poll::Ready(item) = &poll else {
            return poll;
        };
        match (item, span.recording()) {
            (Some(value), Some(record)) => {
                if self.log.first_item_at.is_none() {
                    self.log.first_item_at = Some(clock::now().saturating_sub(record.start));
                }
                self.log.items += 1;
                let cap = record.cap();
                observe(value, &mut self.log, cap);
            }
            (Some(_), None) => {}
            (None, _) => self.end(true),
        }
        poll
    }

    fn end(&mut self, completed: bool) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        let Some(record) = span.recording() else {
            return;
        };
        let log = &mut self.log;
        record.attr(
            "honeyhive.stream.items",
            Value::I64(i64::try_from(log.items).unwrap_or(i64::MAX)),
        );
        if let Some(ns) = log.first_item_at {
            #[allow(clippy::cast_precision_loss)] // sub-nanosecond precision is not needed for ms
            let ms = ns as f64 / 1e6;
            record.attr("honeyhive.stream.time_to_first_item_ms", Value::F64(ms));
        }
        record.attr("honeyhive.stream.completed", Value::Bool(completed));
        if !completed {
            record.attr("honeyhive.cancelled", Value::Bool(true));
        }
        if let Some(text) = log.take_text() {
            record.output(Some(Value::from(text)));
        }
        if let Some((type_name, message)) = log.error.take() {
            record.set_error(type_name, message);
        }
        // `span` ends here, when the stream did.
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// An iterator that owns the span of the traced fn that returned it.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TracedIter<I: Iterator> {
    inner: I,
    tracker: Tracker,
    observe: fn(&I::Item, &mut StreamLog, usize),
}

impl<I: Iterator> TracedIter<I> {
    /// Wraps `inner`; `observe` records each item (chosen by the expansion for the item type).
    pub fn new(
        span: Span,
        inner: I,
        record_output: bool,
        observe: fn(&I::Item, &mut StreamLog, usize),
    ) -> Self {
        TracedIter {
            inner,
            tracker: Tracker::new(span, record_output),
            observe,
        }
    }
}

impl<I: Iterator> Iterator for TracedIter<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        let inner = &mut self.inner;
        match self
            .tracker
            .next(|| Poll::Ready(inner.next()), self.observe)
        {
            Poll::Ready(item) => item,
            Poll::Pending => None, // never: an iterator is always ready
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<I: DoubleEndedIterator> DoubleEndedIterator for TracedIter<I> {
    fn next_back(&mut self) -> Option<I::Item> {
        let inner = &mut self.inner;
        match self
            .tracker
            .next(|| Poll::Ready(inner.next_back()), self.observe)
        {
            Poll::Ready(item) => item,
            Poll::Pending => None, // never: an iterator is always ready
        }
    }
}

impl<I: ExactSizeIterator> ExactSizeIterator for TracedIter<I> {}

impl<I: std::iter::FusedIterator> std::iter::FusedIterator for TracedIter<I> {}

/// A stream that owns the span of the traced fn that returned it.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct TracedStream<S: Stream> {
    inner: S,
    tracker: Tracker,
    observe: fn(&S::Item, &mut StreamLog, usize),
}

impl<S: Stream> TracedStream<S> {
    /// Wraps `inner`; `observe` records each item (chosen by the expansion for the item type).
    pub fn new(
        span: Span,
        inner: S,
        record_output: bool,
        observe: fn(&S::Item, &mut StreamLog, usize),
    ) -> Self {
        TracedStream {
            inner,
            tracker: Tracker::new(span, record_output),
            observe,
        }
    }
}

impl<S: Stream> Stream for TracedStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and neither
        // `Tracker`'s Drop nor this type's drop glue moves it. The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        this.tracker.next(|| inner.poll_next(cx), this.observe)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A text item, joined into the output.
#[doc(hidden)]
pub struct TextItem;
/// A `Result` with text: `Ok` joined, `Err` recorded.
#[doc(hidden)]
pub struct ResultTextItem;
/// Another `Result`: `Err` recorded.
#[doc(hidden)]
pub struct ResultItem;
/// Anything else: counted.
#[doc(hidden)]
pub struct OtherItem;

/// Picks [`TextItem`].
#[doc(hidden)]
pub trait ItemTextProbe {
    /// The kind.
    fn hh_item_kind(&self) -> TextItem {
        TextItem
    }
}
impl<T: AsText + ?Sized> ItemTextProbe for &&&Capture<'_, T> {}

/// Picks [`ResultTextItem`].
#[doc(hidden)]
pub trait ItemResultTextProbe {
    /// The kind.
    fn hh_item_kind(&self) -> ResultTextItem {
        ResultTextItem
    }
}
impl<T: AsText, E: Display> ItemResultTextProbe for &&Capture<'_, Result<T, E>> {}

/// Picks [`ResultItem`].
#[doc(hidden)]
pub trait ItemResultProbe {
    /// The kind.
    fn hh_item_kind(&self) -> ResultItem {
        ResultItem
    }
}
impl<T, E: Debug> ItemResultProbe for &Capture<'_, Result<T, E>> {}

/// Picks [`OtherItem`].
#[doc(hidden)]
pub trait ItemOtherProbe {
    /// The kind.
    fn hh_item_kind(&self) -> OtherItem {
        OtherItem
    }
}
impl<T: ?Sized> ItemOtherProbe for Capture<'_, T> {}

#[allow(clippy::unused_self)] // the kind selects the method; it carries no data
impl TextItem {
    /// Joins the text.
    pub fn observe<T: AsText + ?Sized>(self, item: &T, log: &mut StreamLog, cap: usize) {
        log.push_text(item.as_text(), cap);
    }
}

#[allow(clippy::unused_self)] // the kind selects the method; it carries no data
impl ResultTextItem {
    /// Joins `Ok` text, records the first `Err`.
    pub fn observe<T: AsText, E: Display>(
        self,
        item: &Result<T, E>,
        log: &mut StreamLog,
        cap: usize,
    ) {
        match item {
            Ok(text) => log.push_text(text.as_text(), cap),
            Err(e) => log.error(std::any::type_name::<E>(), || display_text(e, cap)),
        }
    }
}

#[allow(clippy::unused_self)] // the kind selects the method; it carries no data
impl ResultItem {
    /// Records the first `Err`.
    pub fn observe<T, E: Debug>(self, item: &Result<T, E>, log: &mut StreamLog, cap: usize) {
        if let Err(e) = item {
            log.error(std::any::type_name::<E>(), || debug_text(e, cap));
        }
    }
}

#[allow(clippy::unused_self)] // the kind selects the method; it carries no data
impl OtherItem {
    /// Nothing beyond the count.
    pub fn observe<T: ?Sized>(self, _item: &T, _log: &mut StreamLog, _cap: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_text_is_capped_with_a_marker() {
        let mut log = StreamLog::new(true);
        for piece in ["héllo", " wörld", "!"] {
            log.push_text(piece, 8);
        }
        assert_eq!(
            log.take_text().as_deref(),
            Some("héllo w…[truncated 6 bytes]")
        );
        let mut off = StreamLog::new(false);
        off.push_text("x", 8);
        assert_eq!(off.text, None);
    }
}
