//! Resource usage per call: `#[trace(resources)]` records CPU time and resident memory on the
//! span of each sampled call (nothing is read for a call that is not sampled).
//!
//! ```
//! use honeyhive_runtime::{resources, trace};
//!
//! #[trace(resources)]
//! fn checksum(data: &[u8]) -> u64 {
//!     data.iter().map(|&b| u64::from(b)).sum()
//! }
//!
//! # let recorder = honeyhive_runtime::testing::Recorder::start();
//! assert_eq!(checksum(&[1, 2, 3]), 6);
//! # let spans = recorder.spans();
//! # let span = spans.get("checksum");
//! # if cfg!(target_os = "linux") {
//! #     assert!(span.i64(resources::CPU_NS_DELTA).is_some());
//! #     assert!(span.i64(resources::RSS_BYTES_AFTER).unwrap() > 0);
//! # }
//! ```
//!
//! - CPU: the calling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds. A sync
//!   fn records the clock before and after the body and the delta. An `async fn` is polled in
//!   pieces, perhaps on several threads: it records the sum, over its polls, of the polling
//!   thread's CPU time during the poll ([`CPU_NS_DELTA`]) and the number of polls
//!   ([`POLLS`]), so time spent waiting (a sleep, a network call) is not counted.
//! - Memory: the process's resident set (`/proc/self/statm`, Linux only), in bytes, before and
//!   after the call, and the delta (which other threads' allocations also move).
//!
//! What cannot be read on a platform is left out.

#[cfg(unix)]
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use opentelemetry::Value;

use crate::span::Span;

/// The thread's CPU clock before a sync call, in nanoseconds.
pub const CPU_NS_BEFORE: &str = "honeyhive.resources.cpu_ns.before";
/// The thread's CPU clock after a sync call, in nanoseconds.
pub const CPU_NS_AFTER: &str = "honeyhive.resources.cpu_ns.after";
/// CPU time the call used, in nanoseconds (for an `async fn`, summed over its polls).
pub const CPU_NS_DELTA: &str = "honeyhive.resources.cpu_ns.delta";
/// How many times an `async fn` was polled.
pub const POLLS: &str = "honeyhive.resources.polls";
/// Resident memory of the process before the call, in bytes.
pub const RSS_BYTES_BEFORE: &str = "honeyhive.resources.rss_bytes.before";
/// Resident memory of the process after the call, in bytes.
pub const RSS_BYTES_AFTER: &str = "honeyhive.resources.rss_bytes.after";
/// The change in resident memory over the call, in bytes (may be negative).
pub const RSS_BYTES_DELTA: &str = "honeyhive.resources.rss_bytes.delta";

/// The calling thread's CPU time, in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
        if rc != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        Some(secs * 1_000_000_000 + nanos)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The process's resident set, in bytes: the second field of `/proc/self/statm`, in pages.
/// Read into a buffer on the stack: no allocation.
fn rss_bytes() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 128];
        let mut file = std::fs::File::open("/proc/self/statm").ok()?;
        let n = file.read(&mut buf).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).ok()?)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn int(v: u64) -> Value {
    Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
}

/// What was read when a recorded call began, and, for an `async fn`, the CPU of its polls.
#[doc(hidden)]
#[derive(Debug)]
pub struct Usage {
    cpu_before: Option<u64>,
    rss_before: Option<u64>,
    polled_ns: u64,
    polls: u64,
}

impl Usage {
    /// Reads the clocks, if `span` is recorded.
    #[inline]
    pub fn start(span: &Span) -> Option<Usage> {
        span.is_recording().then(Usage::now)
    }

    #[cold]
    fn now() -> Usage {
        Usage {
            rss_before: rss_bytes(),
            cpu_before: thread_cpu_ns(),
            polled_ns: 0,
            polls: 0,
        }
    }

    /// Records a sync call's usage on its span.
    #[inline]
    pub fn finish_sync(usage: Option<Usage>, span: &mut Span) {
        if let Some(usage) = usage {
            usage.record_sync(span);
        }
    }

    #[cold]
    fn record_sync(self, span: &mut Span) {
        let cpu_after = thread_cpu_ns();
        let rss_after = rss_bytes();
        let Some(record) = span.recording() else {
            return;
        };
        if let (Some(before), Some(after)) = (self.cpu_before, cpu_after) {
            record.attr(CPU_NS_BEFORE, int(before));
            record.attr(CPU_NS_AFTER, int(after));
            record.attr(CPU_NS_DELTA, int(after.saturating_sub(before)));
        }
        record_rss(record, self.rss_before, rss_after);
    }

    /// Records an `async fn`'s usage on its span.
    #[inline]
    pub fn finish_async(usage: Option<Usage>, span: &mut Span) {
        if let Some(usage) = usage {
            usage.record_async(span);
        }
    }

    #[cold]
    fn record_async(self, span: &mut Span) {
        let rss_after = rss_bytes();
        let Some(record) = span.recording() else {
            return;
        };
        if self.cpu_before.is_some() {
            record.attr(CPU_NS_DELTA, int(self.polled_ns));
        }
        record.attr(POLLS, int(self.polls));
        record_rss(record, self.rss_before, rss_after);
    }
}

fn record_rss(record: &mut crate::record::SpanRecord, before: Option<u64>, after: Option<u64>) {
    if let (Some(before), Some(after)) = (before, after) {
        record.attr(RSS_BYTES_BEFORE, int(before));
        record.attr(RSS_BYTES_AFTER, int(after));
        let delta = i64::try_from(after)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(before).unwrap_or(i64::MAX));
        record.attr(RSS_BYTES_DELTA, Value::I64(delta));
    }
}

/// The body of an `async fn` with `resources`: adds the polling thread's CPU time during each
/// poll to the usage, when the call is recorded.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct PollCpu<F> {
    future: F,
    usage: Option<Usage>,
}

impl<F: Future> PollCpu<F> {
    /// Wraps `future`.
    #[inline]
    pub fn new(usage: Option<Usage>, future: F) -> PollCpu<F> {
        PollCpu { future, usage }
    }
}

impl<F: Future> Future for PollCpu<F> {
    /// The body's output, and what was measured.
    type Output = (F::Output, Option<Usage>);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of `self`; `usage` is not.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let poll = match this.usage.as_mut() {
            None => future.poll(cx),
            Some(usage) => {
                let before = thread_cpu_ns();
                let poll = future.poll(cx);
                if let (Some(before), Some(after)) = (before, thread_cpu_ns()) {
                    usage.polled_ns += after.saturating_sub(before);
                }
                usage.polls += 1;
                poll
            }
        };
        match poll {
            Poll::Ready(out) => Poll::Ready((out, this.usage.take())),
            Poll::Pending => Poll::Pending,
        }
    }
}
