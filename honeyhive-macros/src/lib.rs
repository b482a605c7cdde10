//! Attribute macros for [`honeyhive-runtime`](https://docs.rs/honeyhive-runtime).
//!
//! Depend on `honeyhive-runtime`, which re-exports these macros and holds the code their
//! expansions call; this crate is not meant to be used on its own.

mod args;
mod errors;
mod inline_body;
mod item;
mod retry;
mod trace;
mod with_request_id;

use proc_macro::TokenStream;

/// Records each call of a function as a span. See `honeyhive_runtime` for the arguments.
#[proc_macro_attribute]
pub fn trace(args: TokenStream, item: TokenStream) -> TokenStream {
    // `#[trace] #[retry]`: the retry loop goes inside the one span.
    let args = args.into();
    let item = retry::within_trace(&args, item.into());
    trace::entry(args, item).into()
}

/// Retries a function that returns a `Result`, with backoff, recording every attempt on the
/// trace. See the `honeyhive_runtime::retry` module for the arguments and what is recorded.
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    retry::entry(args.into(), item.into()).into()
}

/// Ensures a request id for the function's scope: inherit the current one, else read it from
/// an argument (`from = headers`) or a method's receiver (`from = self`), else from an incoming `x-request-id` or baggage, else
/// generate one. `new` always starts a fresh id. See `honeyhive_runtime` for details.
#[proc_macro_attribute]
pub fn with_request_id(args: TokenStream, item: TokenStream) -> TokenStream {
    with_request_id::entry(args.into(), item.into()).into()
}
