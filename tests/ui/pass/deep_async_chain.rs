//! A 50-deep chain of awaited traced async fns compiles without raising rustc's recursion
//! limit, and records one span per level, each the child of the one above.

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

macro_rules! chain {
    ($last:ident) => {
        #[trace]
        async fn $last(n: u32) -> u32 {
            n
        }
    };
    ($first:ident $next:ident $($rest:ident)*) => {
        #[trace]
        async fn $first(n: u32) -> u32 {
            $next(n + 1).await
        }
        chain!($next $($rest)*);
    };
}

chain!(
    l00 l01 l02 l03 l04 l05 l06 l07 l08 l09 l10 l11 l12 l13 l14 l15 l16 l17 l18 l19 l20 l21 l22
    l23 l24 l25 l26 l27 l28 l29 l30 l31 l32 l33 l34 l35 l36 l37 l38 l39 l40 l41 l42 l43 l44 l45
    l46 l47 l48 l49
);

fn main() {
    let rec = Recorder::start();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(l00(0)), 49);
    let spans = rec.spans();
    assert_eq!(spans.iter().count(), 50);
    let deepest = spans.get("l49");
    assert_eq!(spans.parent_of(deepest).map(|p| p.name.to_string()).as_deref(), Some("l48"));
}
