//! Attribute macros for [`honeyhive-runtime`](https://docs.rs/honeyhive-runtime).
//!
//! Depend on `honeyhive-runtime`, which re-exports these macros and holds the code their
//! expansions call; this crate is not meant to be used on its own.

mod errors;
mod item;
mod trace;

use proc_macro::TokenStream;

/// Records each call of a function as a span. See `honeyhive_runtime` for the arguments.
#[proc_macro_attribute]
pub fn trace(args: TokenStream, item: TokenStream) -> TokenStream {
    trace::entry(args.into(), item.into()).into()
}
