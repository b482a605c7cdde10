//! A span that is not recorded captures, formats and allocates nothing.
//!
//! A counting global allocator counts this thread's allocations around traced calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use honeyhive_runtime::sampling::Sampler;
use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[derive(Debug)]
struct Big(#[allow(dead_code)] Vec<u64>);

#[trace(event_type = "tool", metadata(label = format!("expensive {}", 1)))]
fn leaf(text: &str, n: u64, big: &Big) -> Result<u64, String> {
    if n == 0 {
        return Err(String::new());
    }
    Ok(n + text.len() as u64 + big.0.len() as u64)
}

#[trace(event_type = "chain", sample_rate = 0.0)]
fn never_sampled(text: &str, big: &Big) -> u64 {
    leaf(text, 1, big).unwrap_or(0) + leaf(text, 2, big).unwrap_or(0)
}

#[trace(event_type = "chain")]
fn root(text: &str, big: &Big) -> u64 {
    leaf(text, 3, big).unwrap_or(0)
}

#[test]
fn unsampled_spans_allocate_nothing() {
    let big = Big(vec![1; 1000]);
    {
        let _rec = Recorder::with(|b| b.sampler(Sampler::AlwaysOff));
        root("warm", &big); // first use of thread-locals may allocate once
        let n = allocations_in(|| {
            for _ in 0..100 {
                assert_eq!(root("hello", &big), 1008);
            }
        });
        assert_eq!(n, 0, "unsampled roots allocated");
    }
    {
        // Sampled parent, but `sample_rate = 0.0` on the child: the subtree is not recorded.
        let rec = Recorder::start();
        never_sampled("warm", &big);
        let n = allocations_in(|| {
            for _ in 0..100 {
                assert_eq!(never_sampled("hello", &big), 2013);
            }
        });
        assert_eq!(n, 0, "unsampled subtrees allocated");
        assert!(rec.spans().is_empty());
    }
    // And with tracing off altogether (no pipeline installed).
    let n = allocations_in(|| {
        for _ in 0..100 {
            root("hello", &big);
        }
    });
    assert_eq!(n, 0, "no-pipeline spans allocated");
    // The same calls do allocate when recorded: the counter sees captures.
    let _rec = Recorder::start();
    root("warm", &big);
    let n = allocations_in(|| {
        root("hello", &big);
    });
    assert!(n > 0, "a recorded call allocates its attributes");
}
