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
    let krate = crate::item::crate_arg(trace_args);
    if let Some(between) = function.attrs[..index]
        .iter()
        .find(|a| may_be_a_macro(a, krate.as_ref()))
    {
        let path = between.path().to_token_stream();
        let message = format!(
            "`#[trace]` above `#[retry]` runs every attempt inside one span, so `#[{path}]` written between them cannot end up inside each attempt as Rust's order would put it: move it below `#[retry]` (once per attempt) or above `#[trace]` (once per call)",
            path = path.to_string().replace(' ', "")
        );
        let error = syn::Error::new_spanned(between.path(), message).to_compile_error();
        let block = &function.block;
        *function.block = syn::parse_quote!({ #error #block });
        return function.into_token_stream();
    }
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

/// Whether `attr` may be an attribute macro: not one of Rust's own attributes or a tool's
/// (`clippy::`, `rustfmt::`, `diagnostic::`), nor one of ours.
fn may_be_a_macro(attr: &syn::Attribute, krate: Option<&syn::Path>) -> bool {
    const BUILTIN: &[&str] = &[
        "allow",
        "warn",
        "deny",
        "forbid",
        "expect",
        "doc",
        "inline",
        "cold",
        "must_use",
        "deprecated",
        "cfg",
        "cfg_attr",
        "track_caller",
        "no_mangle",
        "export_name",
        "link_section",
        "target_feature",
        "unsafe",
        "optimize",
        "coverage",
    ];
    let path = attr.path();
    if let Some(first) = path.segments.first()
        && path.segments.len() > 1
        && ["clippy", "rustfmt", "diagnostic"]
            .iter()
            .any(|t| first.ident == t)
    {
        return false;
    }
    let ours = ["trace", "retry", "with_request_id"]
        .iter()
        .any(|name| crate::item::is_ours(attr, name, krate));
    let builtin = BUILTIN.iter().any(|b| path.is_ident(b));
    !(ours || builtin)
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
