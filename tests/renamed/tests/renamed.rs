//! `crate = "hh"` makes the expansion call the runtime through the renamed dependency.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use hh::testing::Recorder;
use honeyhive_renamed_dep::{answer, longest, lookup, Counter};

/// Runs a future on this thread; this crate depends on nothing but `hh`.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => thread::park(),
        }
    }
}

#[test]
fn sync_fn_records_through_the_renamed_crate() {
    let recorder = Recorder::start();
    assert_eq!(lookup("Paris"), 5);
    let spans = recorder.spans();
    let span = spans.get("lookup");
    assert_eq!(span.str("honeyhive_inputs.city"), Some("Paris"));
    assert_eq!(span.i64("honeyhive_outputs.result"), Some(5));
    assert_eq!(span.str("honeyhive_event_type"), Some("tool"));
}

#[test]
fn async_fn_records_through_the_renamed_crate() {
    let recorder = Recorder::start();
    assert_eq!(block_on(answer("why")).as_deref(), Ok("3 letters"));
    assert!(block_on(answer("")).is_err());
    let spans = recorder.spans();
    let ok = spans
        .all("answer")
        .find(|s| !s.is_error())
        .expect("a successful answer span");
    assert_eq!(ok.str("honeyhive_inputs.question"), Some("why"));
    assert_eq!(ok.str("honeyhive_metadata.source"), Some("renamed"));
    assert_eq!(spans.children_of(ok)[0].name, "lookup");
    let failed = spans
        .all("answer")
        .find(|s| s.is_error())
        .expect("a failed answer span");
    assert_eq!(failed.error_message(), Some("empty question"));
}

#[test]
fn method_records_through_an_absolute_path() {
    let recorder = Recorder::start();
    let mut counter = Counter(1);
    assert_eq!(counter.add(2), 3);
    let spans = recorder.spans();
    assert_eq!(spans.get("add").i64("honeyhive_inputs.by"), Some(2));
}

#[test]
fn async_fns_borrowing_their_arguments_record_on_the_2021_edition() {
    let recorder = Recorder::start();
    let mut counter = Counter(1);
    let words = ["ab".to_owned(), "cde".to_owned()];
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(block_on(counter.add_from(&refs)), 6);
    let (a, b) = ("Paris".to_owned(), "Rome".to_owned());
    assert_eq!(block_on(longest(&a, &b, "x")), "Paris");
    let spans = recorder.spans();
    assert_eq!(
        spans.get("add_from").i64("honeyhive_outputs.result"),
        Some(6)
    );
    let longest = spans.get("longest");
    assert_eq!(longest.str("honeyhive_inputs.b"), Some("Rome"));
    assert_eq!(longest.str("honeyhive_outputs.result"), Some("Paris"));
}
