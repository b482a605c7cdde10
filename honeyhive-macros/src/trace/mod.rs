//! `#[trace]`: one span per call.

mod args;
mod check;
mod expand;

use proc_macro2::TokenStream;

use crate::errors::{Errors, with_item};
use crate::item::Function;

pub(crate) fn entry(args: TokenStream, item: TokenStream) -> TokenStream {
    entry_as(args, item, false)
}

/// `#[trace]` for `#[retry]`'s stand-in function, whose block becomes the body of an attempt:
/// an `async fn` keeps its `async` (the block is awaited in place).
pub(crate) fn entry_in_place(args: TokenStream, item: TokenStream) -> TokenStream {
    entry_as(args, item, true)
}

fn entry_as(args: TokenStream, item: TokenStream, in_place: bool) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::TraceArgs::parse(args, &mut errors);
    let function = Function::parse("trace", &item, &mut errors);
    if let Err(e) = errors.check() {
        return with_item(&e, item);
    }
    let (Some(args), Some(mut function)) = (args, function) else {
        return item;
    };
    let plan = check::check(&args, &function, &mut errors);
    if let Err(e) = errors.check() {
        return with_item(&e, item);
    }
    expand::expand(&args, &plan, &mut function, in_place)
}
