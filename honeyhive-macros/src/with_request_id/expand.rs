//! Code generation for `#[with_request_id]`.

use proc_macro2::TokenStream;
use quote::quote;

use super::args::{RequestIdArgs, RequestIdPolicy};
use crate::inline_body::tracks_caller;
use crate::item::{
    Function, FutureKind, expect_closure, expect_inline, fake_return, future_expect, prefixed_body,
    rebind_arguments, with_body,
};

pub(crate) fn expand(
    args: &RequestIdArgs,
    raw_args: &TokenStream,
    function: &mut Function,
) -> TokenStream {
    // Attributes expand outermost first, and each wraps the body the ones above produced. A
    // `#[trace]` or `#[retry]` below this attribute would so end up outside the request
    // scope: the function's span would miss the id, and each retry attempt would get its own.
    // Moving this attribute to the end makes it expand last, so its scope encloses the span
    // and every attempt, whichever order the attributes are written in.
    if function.has_attribute_below(&["trace", "retry"], args.krate.as_ref()) {
        let krate = args.krate();
        function
            .item
            .attrs
            .push(syn::parse_quote!(#[#krate::with_request_id(#raw_args)]));
        let item = &function.item;
        return quote!(#item);
    }
    let krate = args.krate();
    let correlation = args.policy.correlation(&krate);
    if function.async_trait_block_ref() {
        // `#[async_trait]`: the scope is current for the call (where a `#[trace]` above opens
        // its span) and for the boxed future.
        let Some(block) = function.async_trait_block() else {
            return TokenStream::new();
        };
        let inner = block.block.clone();
        *block = syn::parse_quote! {
            async move {
                #krate::__private::WithCorrelation::new(__hh_correlation, async move #inner).await
            }
        };
        let item = &mut function.item;
        let stmts = &item.block.stmts;
        *item.block = syn::parse_quote! {{
            let __hh_correlation = #correlation;
            let __hh_request_scope = #krate::__private::CorrelationGuard::enter(
                ::core::clone::Clone::clone(&__hh_correlation),
            );
            #(#stmts)*
        }};
        let item = &function.item;
        return quote!(#item);
    }
    let body = &function.item.block;
    let future = if function.is_async() {
        None
    } else {
        crate::item::future_kind(function.return_type())
            .ok()
            .flatten()
    };
    // A body moved into an async block or closure takes the arguments with it, so that they
    // drop after its locals, in reverse order, as in the fn (see `rebind_arguments`).
    let mut moved_sig = function.item.sig.clone();
    let rebind = if function.is_async() || future.is_some() {
        let from = match &args.policy {
            RequestIdPolicy::Ensure(from) => from.clone(),
            RequestIdPolicy::New => None,
        };
        rebind_arguments(&mut moved_sig, &|ident| from.as_ref() == Some(ident))
    } else {
        TokenStream::new()
    };
    let moved_body = prefixed_body(&rebind, body);
    let new_body = if let Some(kind) = future {
        // A sync fn returning a future: the scope is current for the call (where a
        // `#[trace]` opens its span) and while the returned future runs.
        let wrapped = quote! {
            #krate::__private::WithCorrelation::new(__hh_correlation, __hh_future)
        };
        let wrapped = match kind {
            FutureKind::Impl => wrapped,
            FutureKind::Boxed => quote!(::std::boxed::Box::pin(#wrapped)),
        };
        let support = quote!(#krate::__private);
        let expect = future_expect(function.return_type(), kind);
        let run = if tracks_caller(&function.item.attrs) {
            expect_inline((&support, &krate), "'__hh_request", &moved_body, expect)
        } else {
            let closure = expect_closure(&support, &moved_body, expect);
            quote!(#support::call_once(#closure))
        };
        quote! {
            let __hh_correlation = #correlation;
            let __hh_request_scope = #krate::__private::CorrelationGuard::enter(
                ::core::clone::Clone::clone(&__hh_correlation),
            );
            let __hh_future = #run;
            #wrapped
        }
    } else if function.is_async() {
        let support = quote!(#krate::__private);
        let fake = function
            .return_type()
            .map_or_else(TokenStream::new, |ty| fake_return(ty, &support));
        let body = crate::item::prefixed_body(&quote!(#rebind #fake), body);
        quote! {
            let __hh_correlation = #correlation;
            #krate::__private::WithCorrelation::new(__hh_correlation, async move #body).await
        }
    } else {
        // The body's statements stay the fn's own: its tail is the fn's, `return` returns.
        let stmts = &body.stmts;
        quote! {
            let __hh_request_scope = #krate::__private::CorrelationGuard::enter(#correlation);
            #(#stmts)*
        }
    };
    function.item.sig = moved_sig;
    with_body(&function.item, &new_body)
}
