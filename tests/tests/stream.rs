//! `#[trace]` on fns returning `impl Iterator` / `impl Stream`: the span lives as long as the
//! stream, asserted on real finished spans.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[trace(event_type = "tool")]
fn shout(word: &str) -> String {
    word.to_uppercase()
}

/// A model's token stream, simulated: each token goes through a traced post-processor.
#[trace(event_type = "model")]
fn tokens(prompt: &str) -> impl Iterator<Item = String> {
    let words: Vec<String> = prompt.split(' ').map(str::to_owned).collect();
    words.into_iter().map(|w| format!("{} ", shout(&w)))
}

#[trace(event_type = "chain")]
fn answer(prompt: &str) -> usize {
    tokens(prompt).map(|t| t.len()).sum()
}

#[test]
fn an_iterator_keeps_its_span_open_until_it_ends() {
    let rec = Recorder::start();
    assert_eq!(answer("the capital is Paris"), 21);
    let spans = rec.spans();
    let stream = spans.get("tokens");
    assert_eq!(stream.i64("honeyhive.stream.items"), Some(4));
    assert_eq!(stream.bool("honeyhive.stream.completed"), Some(true));
    assert_eq!(stream.attr("honeyhive.cancelled"), None);
    assert_eq!(
        stream.str("honeyhive_outputs.result"),
        Some("THE CAPITAL IS PARIS ")
    );
    // The first item exists once its `shout` span ended, and before the stream's span did.
    let ttft = stream
        .f64("honeyhive.stream.time_to_first_item_ms")
        .unwrap();
    let ms =
        |t: std::time::SystemTime| t.duration_since(stream.start_time).unwrap().as_secs_f64() * 1e3;
    let first_shout = spans.all("shout").map(|s| s.end_time).min().unwrap();
    // A microsecond either way: the span times are wall-clock conversions of the same clock.
    assert!(
        ttft + 1e-3 >= ms(first_shout) && ttft <= ms(stream.end_time) + 1e-3,
        "{ttft} ms, first item at {} ms, end at {} ms",
        ms(first_shout),
        ms(stream.end_time)
    );
    assert_eq!(
        stream.str("honeyhive_inputs.prompt"),
        Some("the capital is Paris")
    );
    // Spans opened while the stream produces items nest under it, and it under its caller.
    let root = spans.get("answer");
    assert_eq!(spans.parent_of(stream).unwrap().span_id(), root.span_id());
    let shouts: Vec<_> = spans.all("shout").collect();
    assert_eq!(shouts.len(), 4);
    for s in shouts {
        assert_eq!(spans.parent_of(s).unwrap().span_id(), stream.span_id());
    }
    // The span ends when the last item was asked for, after the items were produced.
    assert!(stream.end_time >= spans.children_of(stream).last().unwrap().end_time);
}

#[trace(event_type = "chain")]
fn first_two(prompt: &str) -> Vec<String> {
    tokens(prompt).take(2).collect()
}

#[test]
fn a_stream_dropped_early_is_recorded_as_such() {
    let rec = Recorder::start();
    assert_eq!(first_two("a b c d"), ["A ", "B "]);
    let spans = rec.spans();
    let stream = spans.get("tokens");
    assert_eq!(stream.i64("honeyhive.stream.items"), Some(2));
    assert_eq!(stream.bool("honeyhive.stream.completed"), Some(false));
    assert_eq!(stream.bool("honeyhive.cancelled"), Some(true));
    assert_eq!(stream.str("honeyhive_outputs.result"), Some("A B "));
    assert_eq!(spans.all("shout").count(), 2);
}

#[trace(skip_output)]
fn quiet(n: u32) -> impl Iterator<Item = &'static str> + Send {
    std::iter::repeat_n("x", usize::try_from(n).unwrap_or(0))
}

#[trace(sample_rate = 0.0)]
fn unsampled(n: u32) -> impl DoubleEndedIterator<Item = u32> + ExactSizeIterator {
    (0..n).map(|i| i * 2)
}

#[test]
fn skip_output_and_unsampled_streams() {
    let rec = Recorder::start();
    assert_eq!(quiet(3).count(), 3);
    let it = unsampled(4);
    assert_eq!(it.len(), 4);
    assert_eq!(it.rev().collect::<Vec<_>>(), [6, 4, 2, 0]);
    let spans = rec.spans();
    assert_eq!(spans.len(), 1);
    let q = spans.get("quiet");
    assert_eq!(q.i64("honeyhive.stream.items"), Some(3));
    assert_eq!(q.attr("honeyhive_outputs.result"), None);
}

/// A stream of text chunks, ready every other poll (as a network stream would be).
struct Chunks {
    chunks: Vec<Result<String, ModelError>>,
    ready: bool,
}

#[derive(Debug)]
struct ModelError(&'static str);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Stream for Chunks {
    type Item = Result<String, ModelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready = !self.ready;
        if !self.ready {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.chunks.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(self.chunks.remove(0)))
        }
    }
}

#[trace(event_type = "model")]
async fn stream_completion(
    prompt: &str,
    fail: bool,
) -> impl Stream<Item = Result<String, ModelError>> {
    let mut chunks: Vec<_> = prompt.split(' ').map(|w| Ok(format!("{w} "))).collect();
    if fail {
        chunks.insert(1, Err(ModelError("rate limited")));
    }
    Chunks {
        chunks,
        ready: false,
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[test]
fn an_async_stream_keeps_its_span_open_until_it_ends() {
    let rec = Recorder::start();
    let out = futures_executor::block_on(async {
        let mut stream = Box::pin(stream_completion("hello streaming world", false).await);
        let mut out = String::new();
        while let Some(chunk) = next(&mut stream).await {
            out.push_str(&chunk.unwrap());
        }
        out
    });
    assert_eq!(out, "hello streaming world ");
    let spans = rec.spans();
    let s = spans.get("stream_completion");
    assert_eq!(s.i64("honeyhive.stream.items"), Some(3));
    assert_eq!(s.bool("honeyhive.stream.completed"), Some(true));
    assert_eq!(
        s.str("honeyhive_outputs.result"),
        Some("hello streaming world ")
    );
    assert!(s.f64("honeyhive.stream.time_to_first_item_ms").is_some());
    assert!(!s.is_error());
}

#[test]
fn an_error_item_marks_the_stream_span_failed() {
    let rec = Recorder::start();
    futures_executor::block_on(async {
        let mut stream = Box::pin(stream_completion("a b", true).await);
        while next(&mut stream).await.is_some() {}
    });
    let spans = rec.spans();
    let s = spans.get("stream_completion");
    assert_eq!(s.error_message(), Some("rate limited"));
    assert_eq!(s.events_named("exception").count(), 1);
    assert_eq!(s.i64("honeyhive.stream.items"), Some(3));
    assert_eq!(s.str("honeyhive_outputs.result"), Some("a b "));
}

#[test]
fn an_async_stream_dropped_early_is_recorded_as_such() {
    let rec = Recorder::start();
    futures_executor::block_on(async {
        let mut stream = Box::pin(stream_completion("one two three", false).await);
        let _ = next(&mut stream).await;
    });
    let spans = rec.spans();
    let s = spans.get("stream_completion");
    assert_eq!(s.i64("honeyhive.stream.items"), Some(1));
    assert_eq!(s.bool("honeyhive.stream.completed"), Some(false));
    assert_eq!(s.bool("honeyhive.cancelled"), Some(true));
}

/// Other `impl Trait` returns keep plain `#[trace]` behaviour: the span ends at return.
#[trace]
fn adder(n: u32) -> impl Fn(u32) -> u32 {
    move |x| x + n
}

#[trace]
fn cloneable(n: u32) -> impl Iterator<Item = u32> + Clone {
    0..n
}

#[test]
fn other_impl_trait_returns_are_unchanged() {
    let rec = Recorder::start();
    assert_eq!(adder(2)(3), 5);
    let it = cloneable(3);
    assert_eq!(it.clone().chain(it).count(), 6);
    let spans = rec.spans();
    assert_eq!(spans.get("adder").attr("honeyhive.stream.items"), None);
    assert_eq!(spans.get("cloneable").attr("honeyhive.stream.items"), None);
}
