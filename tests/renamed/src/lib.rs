//! Fixture: `honeyhive-runtime` depended on as `hh`, so the expansion of `#[trace]` must use
//! the path given by `crate = "hh"`: `::honeyhive_runtime` does not resolve in this crate.
//!
//! The crate is on the 2021 edition, whose `-> impl Trait` does not capture elided lifetimes:
//! `#[trace]` writes a traced `async fn` as a fn returning `impl Future`, and that future
//! must still borrow every argument, as the `async fn`'s would (`Counter::add_from`,
//! `longest`).

/// A traced sync fn.
#[hh::trace(crate = "hh", event_type = "tool")]
pub fn lookup(city: &str) -> usize {
    city.len()
}

/// A traced async fn with a `Result` return.
///
/// # Errors
/// When `question` is empty.
#[hh::trace(crate = "hh", event_type = "chain", metadata(source = "renamed"))]
pub async fn answer(question: &str) -> Result<String, String> {
    if question.is_empty() {
        return Err("empty question".to_owned());
    }
    Ok(format!("{} letters", lookup(question)))
}

/// A method, traced with an absolute path.
pub struct Counter(pub u32);

impl Counter {
    /// Adds `by` and returns the new count.
    #[hh::trace(crate = "::hh")]
    pub fn add(&mut self, by: u32) -> u32 {
        self.0 += by;
        self.0
    }
}

impl Counter {
    /// Adds the length of each word (two elided lifetimes: `&mut self` and `words`).
    #[hh::trace(crate = "hh")]
    pub async fn add_from(&mut self, words: &[&str]) -> u32 {
        for word in words {
            self.0 += u32::try_from(word.len()).unwrap_or(u32::MAX);
        }
        self.0
    }
}

/// The longer of two borrowed strings, borrowed from them: a lifetime named in the output.
#[hh::trace(crate = "hh")]
pub async fn longest<'a>(a: &'a str, b: &'a str, _unused: &str) -> &'a str {
    if a.len() >= b.len() {
        a
    } else {
        b
    }
}
