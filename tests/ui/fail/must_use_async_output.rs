//! `#[must_use]` on a traced `async fn` keeps its meaning: the awaited output must be used.

#![deny(unused_must_use)]

use honeyhive_runtime::trace;

#[trace]
#[must_use]
async fn total(x: u32) -> u32 {
    x
}

fn main() {
    futures_executor::block_on(async {
        total(1).await;
    });
}
