//! Fixture: `honeyhive-runtime` depended on as `hh`, so the expansion of `#[trace]` must use
//! the path given by `crate = "hh"`: `::honeyhive_runtime` does not resolve in this crate.

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
