// A trait of the user's named `Iterator` or `Future`, imported under the bare name: `#[trace]`
// reads the bare name as std's trait and says so, with the way out.

mod own {
    pub trait Iterator {
        type Item;
    }
    pub trait Future {
        type Output;
    }
    pub struct Once;
    impl Iterator for Once {
        type Item = u8;
    }
    impl Future for Once {
        type Output = u8;
    }
}

use honeyhive_runtime::trace;
use own::{Future, Iterator};

#[trace]
fn items() -> impl Iterator<Item = u8> {
    own::Once
}

#[trace]
fn later() -> impl Future<Output = u8> {
    own::Once
}

fn main() {}
