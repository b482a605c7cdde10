//! Code generation for `#[retry]`. Validates nothing: `check` did.

use std::time::Duration;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Item, Pat};

use super::args::Backoff;
use super::check::{self, Decide, Plan};
use crate::inline_body::{labelled, tracks_caller};
use crate::item::{Function, with_body};

pub(crate) fn expand(plan: &Plan, mut function: Function) -> TokenStream {
    if function.async_trait_block_ref() {
        return async_trait_method(plan, function);
    }
    let k = &plan.krate;
    let is_async = function.is_async();
    // Each attempt binds its own copy of an owned argument, so `mut` belongs to the copy.
    for input in &mut function.item.sig.inputs {
        if let FnArg::Typed(arg) = input {
            copies_own_mut(plan, &mut arg.pat);
        }
    }
    let trace_args = plan.trace.as_ref().map(|trace| {
        function.item.attrs.remove(trace.index);
        // Rustc never resolves the attribute now, so its import would look unused.
        function
            .item
            .block
            .stmts
            .insert(0, check::uses(&trace.path));
        trace.args.clone()
    });

    let policy = policy(plan);
    // A sync `#[track_caller]` fn runs each attempt inline (see `inline_body`).
    let inline = !is_async && trace_args.is_none() && tracks_caller(&function.item.attrs);
    let body = if inline {
        TokenStream::new()
    } else {
        let body = body(plan, &function);
        quote!(let mut __hh_body = #body;)
    };
    let mut start = if is_async {
        quote!(#k::__private::Retry::new_async(&__HH_RETRY))
    } else {
        quote!(#k::__private::Retry::new_sync(&__HH_RETRY))
    };
    let (attempt, next) = match trace_args {
        Some(args) => {
            start.extend(quote!(.on_attempt_spans()));
            (
                traced_attempt(plan, &function, args),
                quote!(__hh_retry.next_delay()),
            )
        }
        None if inline => (
            inline_attempt(plan, &function),
            after(plan, &quote!(__hh_retry)),
        ),
        None => (attempt(plan, is_async), after(plan, &quote!(__hh_retry))),
    };
    let sleep = sleep(plan, is_async);

    let body = quote! {
        #policy
        #body
        let mut __hh_retry = #start;
        loop {
            #attempt
            match #next {
                ::core::option::Option::Some(__hh_delay) => #sleep,
                ::core::option::Option::None => return __hh_ret,
            }
        }
    };
    with_body(&function.item, &body)
}

/// Removes `mut` from the bindings of `pattern` that each attempt copies: the copy is `mut`.
fn copies_own_mut(plan: &Plan, pattern: &mut Pat) {
    struct Strip<'a>(&'a Plan);
    impl syn::visit_mut::VisitMut for Strip<'_> {
        fn visit_pat_ident_mut(&mut self, p: &mut syn::PatIdent) {
            if p.by_ref.is_none() && self.0.per_attempt.iter().any(|a| a.ident == p.ident) {
                p.mutability = None;
            }
            syn::visit_mut::visit_pat_ident_mut(self, p);
        }
    }
    syn::visit_mut::VisitMut::visit_pat_mut(&mut Strip(plan), pattern);
}

/// `#[async_trait]` made the method return `Box::pin(async move { <the arguments rebound>;
/// let __ret: R = { body }; __ret })`: the attempts run `body` there, after the rebinding (so
/// they share the arguments, as in an `async fn`), and the loop returns from the block.
fn async_trait_method(plan: &Plan, mut function: Function) -> TokenStream {
    let k = &plan.krate;
    let Some((stmts, index)) = check::async_trait_body(&function) else {
        return function.item.into_token_stream();
    };
    let Some(user_block) = check::ret_body(&stmts[index]).cloned() else {
        return function.item.into_token_stream();
    };
    let sig = function.item.sig.clone();
    let Some(block) = function.async_trait_block() else {
        return TokenStream::new();
    };
    let mut stmts = std::mem::take(&mut block.block.stmts);
    stmts.truncate(index);
    // Each attempt binds its own copy of a `mut` argument, so `mut` belongs to the copy.
    for stmt in &mut stmts {
        if let syn::Stmt::Local(local) = stmt {
            copies_own_mut(plan, &mut local.pat);
        }
    }
    // The body as the `async fn` it was written as, for the attempt closure.
    let mut body_fn = syn::ItemFn {
        attrs: Vec::new(),
        vis: syn::Visibility::Inherited,
        modifiers: syn::FnModifiers::default(),
        sig,
        block: Box::new(user_block),
    };
    body_fn.sig.asyncness = Some(syn::token::Async::default());
    let body = body(plan, &Function { item: body_fn });
    let policy = policy(plan);
    let attempt = attempt(plan, true);
    let next = after(plan, &quote!(__hh_retry));
    let sleep = sleep(plan, true);
    let retry: syn::Stmt = syn::parse_quote! {
        {
            #policy
            let mut __hh_body = #body;
            let mut __hh_retry = #k::__private::Retry::new_async(&__HH_RETRY);
            loop {
                #attempt
                match #next {
                    ::core::option::Option::Some(__hh_delay) => #sleep,
                    ::core::option::Option::None => return __hh_ret,
                }
            }
        }
    };
    stmts.push(retry);
    block.block.stmts = stmts;
    function.item.into_token_stream()
}

fn duration(d: Duration) -> TokenStream {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    quote!(::core::time::Duration::from_nanos(#nanos))
}

fn optional_duration(d: Option<Duration>) -> TokenStream {
    d.map_or_else(
        || quote!(::core::option::Option::None),
        |d| {
            let d = duration(d);
            quote!(::core::option::Option::Some(#d))
        },
    )
}

fn policy(plan: &Plan) -> TokenStream {
    let k = &plan.krate;
    let max_attempts = plan.max_attempts;
    let backoff = match plan.backoff {
        Backoff::Constant(d) => {
            let d = duration(d);
            quote!(#k::__private::Backoff::Constant(#d))
        }
        Backoff::Exponential {
            initial,
            factor,
            max,
        } => {
            let (initial, max) = (duration(initial), duration(max));
            quote!(#k::__private::Backoff::Exponential { initial: #initial, factor: #factor, max: #max })
        }
        Backoff::Fibonacci { initial, max } => {
            let (initial, max) = (duration(initial), duration(max));
            quote!(#k::__private::Backoff::Fibonacci { initial: #initial, max: #max })
        }
    };
    let jitter = &plan.jitter;
    let max_delay = optional_duration(plan.max_delay);
    let max_elapsed = optional_duration(plan.max_elapsed);
    quote! {
        static __HH_RETRY: #k::__private::RetryPolicy = #k::__private::RetryPolicy {
            max_attempts: #max_attempts,
            backoff: #backoff,
            jitter: #k::__private::Jitter::#jitter,
            max_delay: #max_delay,
            max_elapsed: #max_elapsed,
        };
    }
}

/// The body as a closure (async for an `async fn`) that each attempt calls afresh, so that `?`
/// and `return` end the attempt. It borrows what it captures; owned arguments are copied or
/// cloned at the start of each attempt.
fn body(plan: &Plan, function: &Function) -> TokenStream {
    let per_attempt = per_attempt(plan);
    let params = plan
        .reborrowed
        .iter()
        .map(|(ident, ty)| quote!(#ident: #ty));
    let ret = plan.ret.as_ref().map(|ty| quote!(-> #ty));
    let asyncness = function.is_async().then(|| quote!(async));
    let per_attempt: TokenStream = per_attempt.into_iter().collect();
    // An async closure's body is not checked against its `-> T` (`Ok(&self.name)` for
    // `Result<&str, _>`, or a `Box<dyn Trait>` from `Box::new(x)`, would not coerce, at the
    // tail or at a `return`): a never-taken `return` of the declared type first fixes the
    // body's type, as the untraced fn's signature does.
    let k = &plan.krate;
    let fake = plan
        .ret
        .as_ref()
        .filter(|_| function.is_async())
        .map(|ty| crate::item::fake_return(ty, &quote!(#k::__private)))
        .unwrap_or_default();
    let prefix: TokenStream = fake.into_iter().chain(per_attempt).collect();
    let block = crate::item::prefixed_body(&prefix, &function.item.block);
    let closure = quote! {
        #asyncness |#(#params),*| #ret #block
    };
    if !plan.reborrowed.is_empty() {
        return closure;
    }
    // Checked callable once per attempt where it is made, so that a body consuming an
    // argument the attempts share is told to `clone(..)` it.
    if function.is_async() {
        quote!(#k::__private::async_attempt(#closure))
    } else {
        quote!(#k::__private::sync_attempt(#closure))
    }
}

/// Each attempt's own copies of the owned arguments.
fn per_attempt(plan: &Plan) -> Vec<TokenStream> {
    let k = &plan.krate;
    plan.per_attempt
        .iter()
        .map(|a| {
            let ident = &a.ident;
            let mutability = a.mutable.then(|| quote!(mut));
            let cfg = &a.cfg;
            if a.cloned {
                quote_spanned! {ident.span()=>
                    #cfg
                    #[allow(clippy::shadow_reuse, clippy::shadow_unrelated)]
                    let #mutability #ident = ::core::clone::Clone::clone(&#ident);
                }
            } else {
                // Spanned at the argument, where "needs `clone(..)`" is reported.
                quote_spanned! {ident.span()=>
                    #cfg
                    #[allow(clippy::shadow_reuse, clippy::shadow_unrelated)]
                    let #mutability #ident = #k::__private::reuse(&#ident);
                }
            }
        })
        .collect()
}

/// One attempt of a sync `#[track_caller]` fn, inline: binds its result to `__hh_ret`.
fn inline_attempt(plan: &Plan, function: &Function) -> TokenStream {
    let k = &plan.krate;
    let per_attempt = per_attempt(plan);
    let block = labelled(&function.item.block, "'__hh_attempt", k);
    let annotation = plan.ret.as_ref().map(|ty| quote!(: #ty));
    quote! {
        __hh_retry.begin();
        let __hh_ret = {
            let __hh_attempt = __hh_retry.enter_attempt();
            #(#per_attempt)*
            #[allow(unused_labels, clippy::needless_return)]
            let __hh_ret #annotation = #block;
            __hh_ret
        };
    }
}

/// One attempt: binds its result to `__hh_ret`.
fn attempt(plan: &Plan, is_async: bool) -> TokenStream {
    let run = if is_async {
        let run = run_async(plan, &quote!(__hh_retry), &quote!((&mut __hh_body)()));
        quote!(#run.await)
    } else {
        quote!(__hh_retry.run(&mut __hh_body))
    };
    quote! {
        __hh_retry.begin();
        let __hh_ret = #run;
    }
}

/// Runs the future `call` of an async attempt, under `attempt_timeout` if there is one.
fn run_async(plan: &Plan, retry: &TokenStream, call: &TokenStream) -> TokenStream {
    match plan.attempt_timeout {
        None => quote!(#retry.run_async(#call)),
        Some(limit) => {
            let limit = duration(limit);
            let timer = timer(plan, &limit);
            quote!(#retry.run_async_with_timeout(#call, #limit, #timer))
        }
    }
}

/// `#[retry] #[trace(..)]`: each attempt is a traced call with its own span, which records
/// the attempt's failure or the call's outcome. `#[trace]` expands a stand-in function with the
/// same signature, whose body runs the real body; its block becomes the attempt.
fn traced_attempt(plan: &Plan, function: &Function, trace_args: TokenStream) -> TokenStream {
    let reborrowed: Vec<_> = plan.reborrowed.iter().map(|(ident, _)| ident).collect();
    let retry = quote!(__hh_r);
    let run = if function.is_async() {
        let run = run_async(plan, &retry, &quote!(__hh_run(#(#reborrowed),*)));
        quote!(#run.await)
    } else {
        quote!(__hh_r.run(move || __hh_run(#(#reborrowed),*)))
    };
    let after = after(plan, &retry);
    let inner = quote!({
        __hh_r.enter_span();
        let __hh_ret = #run;
        #after;
        __hh_ret
    });
    let sig = &function.item.sig;
    let traced = crate::trace::entry_in_place(trace_args, quote!(#sig #inner));
    // `#[trace]` gives back the function, and `compile_error!`s next to it if its arguments
    // are wrong.
    let mut errors = TokenStream::new();
    let mut block = None;
    match syn::parse2::<syn::File>(traced) {
        Ok(file) => {
            for item in file.items {
                match item {
                    Item::Fn(f) => block = Some(f.block.into_token_stream()),
                    other => other.to_tokens(&mut errors),
                }
            }
        }
        Err(e) => errors = e.to_compile_error(),
    }
    let block = block.unwrap_or(inner);
    quote! {
        #errors
        __hh_retry.begin();
        __hh_retry.pin_sampling();
        #(let #reborrowed = &mut *#reborrowed;)*
        let __hh_run = &mut __hh_body;
        let __hh_r = &mut __hh_retry;
        let __hh_ret = #block;
    }
}

/// Records the attempt on the current span and decides what follows: `Some(delay)` or `None`
/// (return).
///
/// Spanned at the return type, where a type that is not a `Result` is reported, once: every
/// expression here depends on it. The user's `when` / `classify` paths keep their own spans.
fn after(plan: &Plan, retry: &TokenStream) -> TokenStream {
    let span = at(plan.ret_span);
    let k = &respan(plan.krate.clone(), span);
    let retry = respan(retry.clone(), span);
    let decide = match &plan.decide {
        Decide::Always => quote_spanned!(span=> |_| #k::__private::Decision::Retry),
        // At the user's `when = path`, where a wrong signature is reported with the one
        // expected.
        Decide::When(path) => {
            let at_path = at(path.span());
            let k = respan(plan.krate.clone(), at_path);
            quote_spanned!(at_path=> |__hh_err| #k::__private::retry_when(#path, __hh_err))
        }
        Decide::Classify(path) => {
            let at_path = at(path.span());
            let k = respan(plan.krate.clone(), at_path);
            quote_spanned!(at_path=> |__hh_err| #k::__private::retry_classify(#path, __hh_err))
        }
    };
    quote_spanned! {span=>
        #retry.after(#k::__private::retry_error(&__hh_ret), #decide, |__hh_err, __hh_cap| {
            #[allow(unused_imports)]
            use #k::__private::{ErrDebugProbe as _, ErrDisplayProbe as _, ErrOpaqueProbe as _};
            (&&&#k::__private::Capture(__hh_err)).hh_err_kind().describe(__hh_err, __hh_cap)
        })
    }
}

/// Reported at `user`'s tokens, but resolved, and linted, as code the macro wrote.
fn at(user: Span) -> Span {
    Span::call_site().located_at(user)
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// A future that completes after `duration`: `sleep = path`, or the runtime's default timer.
fn timer(plan: &Plan, duration: &TokenStream) -> TokenStream {
    let k = &plan.krate;
    if let Some(path) = &plan.sleep {
        return quote_spanned!(at(path.span())=> #path(#duration));
    }
    quote!(<#k::__private::DefaultTimer as #k::__private::AsyncTimer>::sleep(#duration))
}

/// Waits `__hh_delay` before the next attempt.
fn sleep(plan: &Plan, is_async: bool) -> TokenStream {
    if is_async {
        let timer = timer(plan, &quote!(__hh_delay));
        return quote!(#timer.await);
    }
    if let Some(path) = &plan.sleep {
        return quote_spanned!(at(path.span())=> #path(__hh_delay));
    }
    quote!(__hh_retry.sleep_sync(__hh_delay))
}
