//! The expansion names everything absolutely: user types called `Result`, `Option`, `Box`,
//! `Some`, `Ok`, `Err` and `Vec` in scope do not break it, and rustc lints stay quiet even when
//! denied (clippy is checked by `tests/lints.rs`). Traits of the user's named `Iterator` and
//! `Future`, written by their path, are the user's: the value is returned as it is.

#![deny(warnings, clippy::pedantic)]
#![allow(clippy::unused_async)]

use honeyhive_runtime::trace;

#[derive(Debug)]
pub struct MyError;

type Result<T> = ::core::result::Result<T, MyError>;

#[derive(Debug)]
enum Option {
    Yes,
    No,
}

#[derive(Debug)]
struct Box;

#[derive(Debug)]
struct Vec;

#[derive(Debug)]
struct Some;

#[derive(Debug)]
struct Ok;

#[derive(Debug)]
struct Err;

#[derive(Debug)]
struct String;

mod core {}
mod std {}

mod own {
    pub trait Iterator {
        type Item;
        fn next_one(&mut self) -> ::core::option::Option<Self::Item>;
    }
    pub trait Future {
        type Output;
        fn get(self) -> Self::Output;
    }
    pub struct Once(pub ::core::option::Option<u8>);
    impl Iterator for Once {
        type Item = u8;
        fn next_one(&mut self) -> ::core::option::Option<u8> {
            self.0.take()
        }
    }
    impl Future for Once {
        type Output = u8;
        fn get(self) -> u8 {
            7
        }
    }
}

#[trace]
fn own_iterator() -> impl own::Iterator<Item = u8> {
    own::Once(::core::option::Option::Some(1))
}

#[trace]
fn own_future() -> impl own::Future<Output = u8> {
    own::Once(::core::option::Option::None)
}

#[trace]
fn fallible(flag: bool) -> Result<u32> {
    if flag {
        return Result::Err(MyError);
    }
    Result::Ok(1)
}

#[trace]
fn choose(flag: bool) -> Option {
    if flag { Option::Yes } else { Option::No }
}

#[trace]
fn boxed(b: Box, v: Vec, s: Some, o: Ok, e: Err, t: String) -> (Box, Vec, Some, Ok, Err, String) {
    (b, v, s, o, e, t)
}

#[trace]
async fn fallible_async(flag: bool) -> Result<u32> {
    let n = fallible(flag)?;
    Result::Ok(n + 1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert!(fallible(false).is_ok());
    assert!(matches!(choose(true), Option::Yes));
    let _ = boxed(Box, Vec, Some, Ok, Err, String);
    assert!(fallible_async(true).await.is_err());
    {
        use own::{Future as _, Iterator as _};
        assert_eq!(own_iterator().next_one(), ::core::option::Option::Some(1));
        assert_eq!(own_future().get(), 7);
    }
}
