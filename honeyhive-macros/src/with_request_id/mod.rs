//! `#[with_request_id]`: ensures a request id for the function's scope.

mod args;
mod expand;

use proc_macro2::TokenStream;

use crate::errors::{Errors, with_item};
use crate::item::Function;

pub(crate) use args::RequestIdArgs;

pub(crate) fn entry(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let raw_args = args.clone();
    let args = RequestIdArgs::parse(args, &mut errors);
    let function = Function::parse("with_request_id", &item, &mut errors);
    if let Err(e) = errors.check() {
        return with_item(&e, item);
    }
    let (Some(args), Some(mut function)) = (args, function) else {
        return item;
    };
    args.check(&function, &mut errors);
    if let Err(e) = errors.check() {
        return with_item(&e, item);
    }
    expand::expand(&args, &raw_args, &mut function)
}
