//! `#[trace]`: one span per call.

mod args;
mod check;
mod expand;

use proc_macro2::TokenStream;

use crate::errors::{Errors, with_item};
use crate::item::Function;

pub(crate) fn entry(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::TraceArgs::parse(args, &mut errors);
    let function = Function::parse("trace", item.clone(), &mut errors);
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
    expand::expand(&args, &plan, &mut function)
}
