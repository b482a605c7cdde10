//! Code generation for `#[with_request_id]`.

use proc_macro2::TokenStream;
use quote::quote;

use super::args::RequestIdArgs;
use crate::item::{Function, fake_return};

pub(crate) fn expand(args: &RequestIdArgs, function: &mut Function) -> TokenStream {
    // A `#[trace]` below this attribute expands after it; left alone it would open its span
    // outside the request scope. Hand it the policy instead, so the function's own span
    // carries the request id whichever order the attributes are written in.
    if let Some(trace) = function.trace_attribute(args.krate.as_ref()) {
        add_trace_argument(trace, &args.policy.as_trace_arg());
        let item = &function.item;
        return quote!(#item);
    }
    let krate = args.krate();
    let correlation = args.policy.correlation(&krate);
    if let Some(block) = function.async_trait_block() {
        let inner = block.block.clone();
        *block = syn::parse_quote! {
            async move {
                let __hh_correlation = #correlation;
                #krate::__private::WithCorrelation::new(__hh_correlation, async move #inner).await
            }
        };
        let item = &function.item;
        return quote!(#item);
    }
    let body = &function.item.block;
    let new_body = if function.is_async() {
        let fake = function.return_type().map(fake_return);
        quote! {
            let __hh_correlation = #correlation;
            #krate::__private::WithCorrelation::new(__hh_correlation, async move { #fake #body }).await
        }
    } else {
        quote! {
            let __hh_request_scope = #krate::__private::CorrelationGuard::enter(#correlation);
            #body
        }
    };
    let item = &function.item;
    let attrs = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    quote! {
        #(#attrs)*
        #vis #sig {
            #new_body
        }
    }
}

/// Appends `extra` to the arguments of an attribute: `#[trace]` becomes `#[trace(extra)]`,
/// `#[trace(a = 1)]` becomes `#[trace(a = 1, extra)]`.
fn add_trace_argument(attr: &mut syn::Attribute, extra: &TokenStream) {
    let path = attr.path().clone();
    let existing = match &attr.meta {
        syn::Meta::List(list) => list.tokens.clone(),
        syn::Meta::Path(_) | syn::Meta::NameValue(_) => TokenStream::new(),
    };
    let tokens = if existing.is_empty() {
        extra.clone()
    } else {
        let trailing_comma =
            existing.clone().into_iter().last().is_some_and(
                |t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','),
            );
        if trailing_comma {
            quote!(#existing #extra)
        } else {
            quote!(#existing, #extra)
        }
    };
    *attr = syn::parse_quote!(#[#path(#tokens)]);
}
