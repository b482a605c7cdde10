//! `#[retry]`: a loop in the function that runs the body again after a failed attempt, and
//! records every attempt on the trace.

mod args;
mod check;
mod expand;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ItemFn;

use crate::errors::{Errors, with_item};
use crate::item::Function;

pub(crate) fn entry(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand_item(args, item.clone()) {
        Ok(out) => out,
        Err(e) => with_item(&e, item),
    }
}

/// `#[trace] #[retry]`: one span around every attempt. `#[trace]` expands first, so it calls
/// this on its item to put the retry loop inside its span, as Python's decorators nest.
pub(crate) fn within_trace(trace_args: &TokenStream, item: TokenStream) -> TokenStream {
    // Most traced functions are not retried: look for the word before parsing the item.
    let mentions_retry = item.clone().into_iter().any(|tree| match tree {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => mentions(g.stream(), "retry"),
        _ => false,
    });
    if !mentions_retry {
        return item;
    }
    let Ok(mut function) = syn::parse2::<ItemFn>(item.clone()) else {
        return item;
    };
    let Some(index) = function.attrs.iter().position(|a| {
        crate::item::is_ours(a, "retry", crate::item::crate_arg(trace_args).as_ref())
    }) else {
        return item;
    };
    let attr = function.attrs.remove(index);
    // Rustc never resolves the attribute now, so its import would look unused.
    function.block.stmts.insert(0, check::uses(attr.path()));
    match expand_item(check::attr_args(&attr), function.to_token_stream()) {
        Ok(out) => out,
        Err(e) => {
            // `#[trace]` still gets a function to wrap, with the errors inside it.
            let errors = e.to_compile_error();
            let block = &function.block;
            *function.block = syn::parse_quote!({ #errors #block });
            function.into_token_stream()
        }
    }
}

/// Whether `word` appears at the top of `tokens`, looking through invisible groups (attributes
/// passed through `macro_rules!` as `$attr:meta` arrive wrapped in one).
fn mentions(tokens: TokenStream, word: &str) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == word,
        TokenTree::Group(g) if g.delimiter() == Delimiter::None => mentions(g.stream(), word),
        _ => false,
    })
}

fn expand_item(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = args::RetryArgs::parse(args, &mut errors);
    let function = Function::parse("retry", &item, &mut errors);
    errors.check()?;
    let (Some(args), Some(function)) = (args, function) else {
        return Ok(item);
    };
    let plan = check::check(&args, &function, &mut errors);
    errors.check()?;
    Ok(expand::expand(&plan, function))
}
