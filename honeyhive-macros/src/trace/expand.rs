//! Code generation for `#[trace]`. Validates nothing: `check` did.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::args::TraceArgs;
use super::check::{Plan, unraw};
use syn::visit_mut::VisitMut;

use crate::inline_body::tracks_caller;
use crate::item::{
    Expect, Function, FutureKind, StreamKind, assoc_type, closure_expected_body,
    contains_impl_trait, expect_closure, expect_inline, fake_return, future_expect, future_kind,
    prefixed_body, rebind_arguments, request_id_sources, stream_kind, with_body,
};

#[allow(clippy::too_many_lines)] // one quote! per part of the expansion, in order
pub(crate) fn expand(
    args: &TraceArgs,
    plan: &Plan<'_>,
    function: &mut Function,
    in_place: bool,
) -> TokenStream {
    let meta = meta(plan);
    let inputs = capture_inputs(plan);

    let local_span = quote!(&mut __hh_span);
    if function.async_trait_block_ref() {
        let output = capture_output(plan, true, &quote!(__hh_span), None);
        return async_trait_method(function, &meta, &inputs, &output);
    }

    let declared = function.return_type();
    let closure_body = function
        .is_async()
        .then(|| closure_expected_body(declared, &function.item.block))
        .flatten();
    let body = closure_body.as_ref().unwrap_or(&function.item.block);
    // A unit fn records no output; naming `()` gives a diverging body (`panic!`, `loop {}`) its type.
    let unit: Type = syn::parse_quote!(());
    let ret_ty = declared
        .or(Some(&unit))
        .filter(|ty| !contains_impl_trait(ty));
    let never = matches!(ret_ty, Some(Type::Never(_)));
    let returns_value = declared.is_some_and(|ty| !is_unit(ty));
    // The `-> !` forms record no output: `let mut` only if inputs are recorded, or rustc warns.
    let mutability = (!inputs.is_empty()).then(|| quote!(mut));
    let stream = stream_kind(declared);
    let future = if function.is_async() {
        None
    } else {
        future_kind(declared).ok().flatten()
    };
    // The paths that move the body into a closure or an async block of their own move the
    // arguments in with it (see `rebind_arguments`); the others keep the body in the fn (a
    // `#[track_caller]` sync fn's labelled block), or do it themselves (`traced_call`), or
    // are a stand-in whose block `#[retry]` runs once per attempt, where the arguments stay
    // the fn's.
    let labelled = !function.is_async()
        && stream.is_none()
        && future.is_none()
        && tracks_caller(&function.item.attrs);
    let traced_call_path = stream.is_none()
        && function.is_async()
        && !never
        && !in_place
        && returns_future_safely(function);
    if !function.is_async()
        && !in_place
        && returns_closure(declared)
        && plan.evaluators.is_empty()
        && !plan.resources
    {
        return closure_in_tail(function, &meta, &inputs);
    }
    let mut moved_sig = function.item.sig.clone();
    let rebind = if in_place || labelled || traced_call_path {
        TokenStream::new()
    } else {
        let from = request_id_sources(&function.item, args.krate.get().map(|k| &k.value));
        rebind_arguments(&mut moved_sig, &|ident| {
            recorded(plan, ident) || from.contains(ident)
        })
    };
    let moved_body = prefixed_body(&rebind, body);
    let new_body: TokenStream = if let Some(kind) = stream {
        traced_stream(plan, function, kind, (&meta, &inputs), &moved_body)
    } else if let Some(kind) = future {
        let output = capture_output(
            plan,
            future_output_is_value(declared),
            &quote!(__hh_span),
            None,
        );
        traced_future(plan, function, kind, (&meta, &inputs, &output), &moved_body)
    } else if traced_call_path {
        return traced_call(plan, function, &meta, &inputs, returns_value, ret_ty);
    } else if function.is_async() && never {
        // `!` cannot be named in a `let`, and there is no value to record.
        let inputs_in_span = with_current(&quote!(__hh_span), &inputs);
        quote! {
            #meta
            let #mutability __hh_span = __hh::Span::detached(&__HH_META);
            #inputs_in_span
            __hh::Instrumented::new(__hh_span, async move #moved_body).await.1
        }
    } else if function.is_async() {
        // Gives the async block the function's return type, so `?` infers its error type
        // and a wrong return type is reported at the user's signature.
        let fake_return = ret_ty.map_or_else(TokenStream::new, |ty| fake_return(ty, &quote!(__hh)));
        let fake_body = prefixed_body(&quote!(#rebind #fake_return), body);
        let output = if returns_value {
            capture_output(plan, true, &quote!(__hh_span), declared)
        } else {
            TokenStream::new()
        };
        let inputs = with_current(&quote!(__hh_scoped.span()), &inputs);
        // The body's future is pinned in this fn's own state and polled with the span
        // current (see the runtime's `Scoped`): one type level per traced fn, and one small
        // `poll` instantiated for it.
        let run = if plan.resources {
            // The CPU of each poll of the body, on the thread that polls it.
            quote! {
                let __hh_usage = __hh::Usage::start(__hh_scoped.span());
                let __hh_body = ::core::pin::pin!(__hh::PollCpu::new(
                    __hh_usage,
                    async move #fake_body,
                ));
                let (__hh_ret, __hh_usage) = __hh_scoped.run(__hh_body).await;
                __hh::Usage::finish_async(__hh_usage, __hh_scoped.span());
            }
        } else {
            quote! {
                let __hh_body = ::core::pin::pin!(async move #fake_body);
                let __hh_ret = __hh_scoped.run(__hh_body).await;
            }
        };
        let evaluate = evaluate(plan, &quote!(__hh_span));
        let done = with_current(&quote!(__hh_scoped.span()), &quote!(#output #evaluate));
        quote! {
            #meta
            let mut __hh_scoped = __hh::Scoped::new(
                __hh::Span::detached(&__HH_META),
            );
            #inputs
            #run
            #done
            __hh_ret
        }
    } else if never {
        let run = sync_body(plan, function, ret_ty, &moved_body);
        quote! {
            #meta
            let #mutability __hh_span = __hh::Span::enter(&__HH_META);
            #inputs
            #run
        }
    } else {
        let run = sync_body(plan, function, ret_ty, &moved_body);
        let extras = plan.resources || !plan.evaluators.is_empty();
        let (output, span_mut) = if returns_value {
            (
                capture_output(plan, true, &local_span, declared),
                quote!(mut),
            )
        } else if extras {
            (TokenStream::new(), quote!(mut))
        } else {
            (TokenStream::new(), mutability.clone().unwrap_or_default())
        };
        let (usage, usage_end) = if plan.resources {
            (
                quote!(let __hh_usage = __hh::Usage::start(&__hh_span);),
                quote!(__hh::Usage::finish_sync(__hh_usage, &mut __hh_span);),
            )
        } else {
            (TokenStream::new(), TokenStream::new())
        };
        let evaluate = evaluate(plan, &local_span);
        // For a unit body moved into the closure.
        let unit_lints = (!returns_value)
            .then(|| quote!(#[allow(clippy::semicolon_if_nothing_returned, clippy::unit_arg)]));
        quote! {
            #meta
            let #span_mut __hh_span = __hh::Span::enter(&__HH_META);
            #inputs
            #usage
            #unit_lints
            let __hh_ret = #run;
            #usage_end
            #output
            #evaluate
            __hh_ret
        }
    };
    function.item.sig = moved_sig;
    with_body(&function.item, &new_body)
}

/// Whether the argument `ident` is recorded on the span.
fn recorded(plan: &Plan<'_>, ident: &Ident) -> bool {
    plan.inputs.iter().any(|(input, ..)| input == ident)
}

/// Whether the fn returns a closure, `impl Fn(..)` (`FnMut`, `FnOnce`): a closure's argument
/// types are inferred from the bound it is returned as (`|s| s.is_empty()` for
/// `impl Fn(&str) -> bool`), which only the fn's own tail sees.
fn returns_closure(ret: Option<&Type>) -> bool {
    let Some(Type::ImplTrait(imp)) = ret else {
        return false;
    };
    imp.bounds.iter().any(|bound| {
        matches!(bound, syn::TypeParamBound::Trait(t)
        if t.path.segments.last().is_some_and(|s| {
            matches!(s.arguments, syn::PathArguments::Parenthesized(_))
                && ["Fn", "FnMut", "FnOnce"].iter().any(|f| s.ident == f)
        }))
    })
}

/// A sync fn returning a closure: the body stays the fn's own, its tail the fn's tail (see
/// `returns_closure`), and the span is open while it runs, ending when the fn returns. There
/// is no output to record (a closure has nothing to show) and `return` needs no catching.
/// The expansion's names are declared in a block of their own, out of the body's scope.
fn closure_in_tail(function: &Function, meta: &TokenStream, inputs: &TokenStream) -> TokenStream {
    let stmts = &function.item.block.stmts;
    let mutability = (!inputs.is_empty()).then(|| quote!(mut));
    let body = quote! {
        let __hh_span = {
            #meta
            let #mutability __hh_span = __hh::Span::enter(&__HH_META);
            #inputs
            __hh_span
        };
        #(#stmts)*
    };
    with_body(&function.item, &body)
}

/// Whether an `async fn` can be written as a plain fn returning its traced future: not when
/// an attribute left below `#[trace]` may need the `async` (another crate's `#[tokio::test]`;
/// `#[retry]`, which loops over the body; `#[with_request_id]`, which settles an `async fn`'s
/// request id at the first poll but a returned future's at the call): only the compiler's
/// inert attributes may follow. Not `#[must_use]`, which on an `async fn` is about the output
/// (an unused `total(1).await` warns) but on a fn returning a future is about the future.
fn returns_future_safely(function: &Function) -> bool {
    const INERT: &[&str] = &[
        "doc",
        "allow",
        "warn",
        "deny",
        "forbid",
        "expect",
        "inline",
        "cold",
        "deprecated",
    ];
    function.item.attrs.iter().all(|attr| {
        let path = attr.path();
        path.get_ident()
            .is_some_and(|i| INERT.iter().any(|n| i == n))
    })
}

/// An `async fn` written as a plain fn returning the runtime's `TracedCall`, which at the
/// first poll opens the span and runs a closure that records the arguments and returns the
/// body's `async move` block: one coroutine per traced fn instead of two (the fn's own and
/// the body's). The span is current during each poll; what the body returns is recorded by
/// the `done` closure when it completes.
///
/// The returned `impl Future` is written by this macro, so it follows the capture rules of
/// this crate's edition (2024: every lifetime and type in scope, as an `async fn`'s future),
/// whatever the user's crate's edition.
fn traced_call(
    plan: &Plan<'_>,
    function: &Function,
    meta: &TokenStream,
    inputs: &TokenStream,
    returns_value: bool,
    ret_ty: Option<&Type>,
) -> TokenStream {
    let closure_body = closure_expected_body(function.return_type(), &function.item.block);
    let body = closure_body.as_ref().unwrap_or(&function.item.block);
    let fake_return = ret_ty.map(|ty| fake_return(ty, &quote!(__hh)));
    let mut sig = function.item.sig.clone();
    // (No `#[with_request_id]` is left below: see `returns_future_safely`.)
    let mut rebind = rebind_arguments(&mut sig, &|ident| recorded(plan, ident));
    rebind.extend(fake_return);
    let body = prefixed_body(&rebind, body);
    let future = quote!(async move #body);
    let span = quote!(__hh_span);
    let output = returns_value.then(|| capture_output(plan, true, &span, function.return_type()));
    let evaluate = evaluate(plan, &span);
    let (usage, future, ret) = if plan.resources {
        (
            Some(quote!(let __hh_usage = __hh::Usage::start(__hh_span);)),
            quote!(__hh::PollCpu::new(__hh_usage, #future)),
            quote!((__hh_ret, __hh_usage)),
        )
    } else {
        (None, future, quote!(__hh_ret))
    };
    let finish_usage = plan
        .resources
        .then(|| quote!(__hh::Usage::finish_async(__hh_usage, __hh_span);));
    let done = if output.is_none() && evaluate.is_empty() && !plan.resources {
        quote!(__hh::pass)
    } else {
        quote! {
            |__hh_span: &mut __hh::Span, #ret| {
                #finish_usage
                #output
                #evaluate
                __hh_ret
            }
        }
    };
    let new_body = quote! {
        #meta
        __hh::TracedCall::new(
            &__HH_META,
            move |__hh_span: &mut __hh::Span| {
                #inputs
                #usage
                #future
            },
            #done,
        )
    };
    let item = &function.item;
    let attrs = &item.attrs;
    let vis = &item.vis;
    sig.asyncness = None;
    let output_ty = function
        .return_type()
        .map_or_else(|| quote!(()), ToTokens::to_token_stream);
    sig.output = syn::parse_quote!(-> impl ::core::future::Future<Output = #output_ty>);
    quote! {
        #(#attrs)*
        #vis #sig {
            #new_body
        }
    }
}

/// The sync body, run so that `return` and `?` end the body rather than the function: in a
/// closure whose return type is the function's (a wrong return value is reported at the
/// user's expression, "expected because of" the user's signature), or, for a
/// `#[track_caller]` fn, inline as a labelled block (see `inline_body`).
fn sync_body(
    plan: &Plan<'_>,
    function: &Function,
    ret_ty: Option<&Type>,
    moved_body: &TokenStream,
) -> TokenStream {
    if tracks_caller(&function.item.attrs) {
        // `!` cannot be named in a `let`.
        let expect = ret_ty
            .filter(|ty| !matches!(ty, Type::Never(_)))
            .map(Expect::Type);
        let body = function.item.block.to_token_stream();
        return expect_inline((&quote!(__hh), &plan.krate), "'__hh_body", &body, expect);
    }
    let closure_return = ret_ty.map(|ty| quote!(-> #ty));
    quote!(__hh::call_once(move || #closure_return #moved_body))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// Whether the future a fn returns has an output worth recording (not `()`).
fn future_output_is_value(ret: Option<&Type>) -> bool {
    struct Output(Option<bool>);
    impl VisitMut for Output {
        fn visit_assoc_type_mut(&mut self, a: &mut syn::AssocType) {
            if a.ident == "Output" && self.0.is_none() {
                self.0 = Some(!is_unit(&a.ty));
            }
        }
    }
    let Some(ret) = ret else { return false };
    let mut found = Output(None);
    found.visit_type_mut(&mut ret.clone());
    // `BoxFuture<'a, T>` names its output without `Output =`.
    found.0.unwrap_or(true)
}

/// A sync fn returning a future: the span opens at the call (what the body does before
/// returning the future runs inside it) and stays open while the future runs, as for an
/// `async fn`; the output is the future's. The future is wrapped in the runtime's
/// `TracedFuture`, which is `Unpin` (and `Send`, `Sync`) when the user's future is.
fn traced_future(
    plan: &Plan<'_>,
    function: &Function,
    kind: FutureKind,
    (meta, inputs, output): (&TokenStream, &TokenStream, &TokenStream),
    body: &TokenStream,
) -> TokenStream {
    let inputs = with_current(&quote!(__hh_span), inputs);
    let declared = function.return_type();
    let run = body_in_span(plan, function, body, future_expect(declared, kind));
    let done = if output.is_empty() {
        quote!(__hh::pass)
    } else {
        quote!(|__hh_span: &mut __hh::Span, __hh_ret| {
            #output
            __hh_ret
        })
    };
    let future = quote!(__hh::TracedFuture::new(__hh_span, __hh_future, #done));
    let future = match kind {
        FutureKind::Impl => future,
        FutureKind::Boxed => quote!(::std::boxed::Box::pin(#future)),
    };
    quote! {
        #meta
        let mut __hh_span = __hh::Span::detached(&__HH_META);
        #inputs
        let __hh_future = #run;
        #future
    }
}

/// The body of a sync fn run with the detached `__hh_span` current, as an expression of the
/// body's value: in a closure (`return` and `?` end the body), or inline in a labelled block
/// for a `#[track_caller]` fn (see `inline_body`), checked against `expect`.
fn body_in_span(
    plan: &Plan<'_>,
    function: &Function,
    body: &TokenStream,
    expect: Option<Expect<'_>>,
) -> TokenStream {
    let support = quote!(__hh);
    if tracks_caller(&function.item.attrs) {
        let value = expect_inline((&support, &plan.krate), "'__hh_body", body, expect);
        return quote! {{
            let __hh_scope = __hh_span.enter_scope();
            let __hh_ret = #value;
            ::core::mem::drop(__hh_scope);
            __hh_ret
        }};
    }
    let closure = expect_closure(&support, body, expect);
    quote!(__hh_span.in_scope(#closure))
}

/// `body` run on the detached span `span` (a `Span` or `&mut Span` place) with the span
/// current, the span bound as `__hh_span: &mut Span`: so that what recording runs (a `Debug`
/// impl, an evaluator) is inside the span, as in a sync fn.
fn with_current(span: &TokenStream, body: &TokenStream) -> TokenStream {
    if body.is_empty() {
        return TokenStream::new();
    }
    quote!(#span.with_current(|__hh_span| { #body });)
}

fn meta(plan: &Plan<'_>) -> TokenStream {
    let krate = &plan.krate;
    let name = &plan.name;
    let event_type = &plan.event_type;
    let sample_rate = plan
        .sample_rate
        .map_or_else(|| quote!(__hh::None), |rate| quote!(__hh::Some(#rate)));
    let resources = if plan.resources { 6 } else { 0 };
    let capacity = plan.inputs.len() + plan.metadata.len() + 2 + plan.evaluators.len() + resources;
    // One short name for the runtime's macro support: the paths below are most of the
    // expansion's tokens, which rustc parses, resolves and lowers once per traced fn.
    quote! {
        // With the probes that pick how values are recorded (unused when nothing is).
        #[allow(unused_imports)]
        use #krate::__private::{self as __hh, probes::*};
        static __HH_META: __hh::Meta = __hh::Meta {
            name: #name,
            event_type: __hh::EventType::#event_type,
            sample_rate: #sample_rate,
            attr_capacity: #capacity,
            root: __hh::RootState::NEW,
        };
    }
}

fn capture_inputs(plan: &Plan<'_>) -> TokenStream {
    if plan.inputs.is_empty() && plan.metadata.is_empty() {
        return TokenStream::new();
    }
    let inputs = plan.inputs.iter().map(|(ident, ty, cfg)| {
        let key = format!("honeyhive_inputs.{}", unraw(ident));
        // Spanned at the argument's type, so "does not implement Debug" underlines it.
        let arg = borrow_located_at(ident, ty);
        // `_name` arguments are captured too.
        let underscore = unraw(ident)
            .starts_with('_')
            .then(|| quote!(#[allow(clippy::used_underscore_binding)]));
        quote_spanned! {at(ty.span())=>
            #cfg
            #underscore
            (&&&__hh::Capture(&#ident)).hh_kind().record(__hh_rec, #key, #arg);
        }
    });
    let metadata = plan.metadata.iter().map(|m| {
        let key = format!("honeyhive_metadata.{}", unraw(&m.key));
        let value = &m.value;
        // At the user's key, so that errors about the value are not moved to the attribute.
        let tmp = format_ident!("__hh_meta_{}", unraw(&m.key), span = m.key.span());
        let arg = borrow_located_at(&tmp, value);
        // Evaluated under a guard: a panic in the expression is recorded, not propagated.
        quote_spanned! {at(value.span())=>
            if let __hh::Some(#tmp) = __hh::eval_metadata(__hh_rec, #key, || #value) {
                (&&&__hh::Capture(&#tmp)).hh_kind().metadata(__hh_rec, #key, #arg);
            }
        }
    });
    quote! {
        if let __hh::Some(__hh_rec) = __hh_span.recording() {
            #(#inputs)*
            #(#metadata)*
        }
    }
}

/// Reported at `user`'s tokens, but resolved as code the macro wrote: the tokens of a
/// `metadata(..)` or of an argument's type may come from a `macro_rules!` expansion, whose
/// hygiene would not see the expansion's locals.
fn at(user: proc_macro2::Span) -> proc_macro2::Span {
    proc_macro2::Span::call_site().located_at(user)
}

/// `&ident`, located from the first to the last token of `at`, so that an error about the
/// borrowed value underlines all of `at`. The identifier keeps its own hygiene: only its
/// location moves.
fn borrow_located_at(ident: &Ident, at: &impl ToTokens) -> TokenStream {
    let mut tokens = at.to_token_stream().into_iter();
    let first = tokens.next().map_or_else(|| ident.span(), |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    let mut ident = ident.clone();
    ident.set_span(ident.span().located_at(last));
    quote_spanned!(first=> &#ident)
}

/// Runs the evaluators on `__hh_ret` if the span `span` (a `&mut Span`) is recorded. Each call
/// is located at the user's path, so a wrong signature is reported there.
fn evaluate(plan: &Plan<'_>, span: &TokenStream) -> TokenStream {
    if plan.evaluators.is_empty() {
        return TokenStream::new();
    }
    let calls = plan.evaluators.iter().map(|e| {
        let path = e.path;
        let name = &e.name;
        let metric = format!("honeyhive_metrics.{name}");
        if e.is_async {
            quote_spanned! {at(path.span())=>
                __hh_evals.spawn(#path, #name, #metric);
            }
        } else {
            quote_spanned! {at(path.span())=>
                __hh_evals.run(#path, #name, #metric, &__hh_ret);
            }
        }
    });
    quote! {
        if let __hh::Some(mut __hh_evals) =
            __hh::Evaluations::new(#span)
        {
            #(#calls)*
        }
    }
}

/// Records what `__hh_ret` holds on the span `span` (a `&mut Span`): the output unless
/// skipped, and the error of a `Result`. Two generic calls; the probes pick what they record.
/// When `declared` (the type of `__hh_ret`, if the signature names it) has a shape no
/// `Result` has (a tuple, array, slice, reference or pointer), the error probe is left out:
/// the probes are a large part of what a traced fn costs to type-check. Names are never read, since any
/// of them may be the user's own (see `tests/ui/pass/shadowed_prelude.rs`).
fn capture_output(
    plan: &Plan<'_>,
    returns_value: bool,
    span: &TokenStream,
    declared: Option<&Type>,
) -> TokenStream {
    let ok = (plan.record_output && returns_value).then(|| {
        quote! {
            (&&&&&&&&__hh::Returned(&__hh_ret)).hh_ok_kind().record(#span, &__hh_ret);
        }
    });
    let err = (!declared.is_some_and(never_a_result)).then(|| {
        quote! {
            (&&&&__hh::Returned(&__hh_ret)).hh_record_err(#span);
        }
    });
    if ok.is_none() && err.is_none() {
        return TokenStream::new();
    }
    quote! {
        #ok
        #err
    }
}

/// Whether a type is, by its shape alone, not a `Result`.
fn never_a_result(ty: &Type) -> bool {
    match ty {
        Type::Group(g) => never_a_result(&g.elem),
        Type::Paren(p) => never_a_result(&p.elem),
        Type::Tuple(_) | Type::Array(_) | Type::Slice(_) | Type::Reference(_) | Type::Ptr(_) => {
            true
        }
        _ => false,
    }
}

/// A fn returning `impl Iterator` / `impl Stream`: the span moves into the adapter returned in
/// place of the value and ends when the stream does (see the runtime's `stream` module).
fn traced_stream(
    plan: &Plan<'_>,
    function: &Function,
    kind: StreamKind,
    (meta, inputs): (&TokenStream, &TokenStream),
    body: &TokenStream,
) -> TokenStream {
    let is_async = function.is_async();
    // A bare `Stream` may be a trait of the user's: the value's type decides (see the
    // runtime's `MaybeStream`).
    let inputs = &with_current(&quote!(__hh_span), inputs);
    let adapter = match kind {
        StreamKind::Iterator => quote!(__hh::TracedIter::new),
        StreamKind::Stream => quote! {
            {
                #[allow(unused_imports)]
                use __hh::{NotStreamProbe as _, StreamProbe as _};
                (&&__hh::MaybeStream(&__hh_ret)).hh_stream_kind()
            }
            .wrap
        },
    };
    let record_output = plan.record_output;
    let call = if is_async {
        let mutability = (!inputs.is_empty()).then(|| quote!(mut));
        quote! {
            let #mutability __hh_span = __hh::Span::detached(&__HH_META);
            #inputs
            let (__hh_span, __hh_ret) =
                __hh::Instrumented::new(__hh_span, async move #body).await;
        }
    } else {
        let expect = match kind {
            StreamKind::Iterator => assoc_type(function.return_type(), "Item").map(Expect::Iter),
            // `Stream` may be a trait of the user's, to which nothing can be bound.
            StreamKind::Stream => None,
        };
        let run = body_in_span(plan, function, body, expect);
        quote! {
            let mut __hh_span = __hh::Span::detached(&__HH_META);
            #inputs
            let __hh_ret = #run;
        }
    };
    quote! {
        #meta
        #call
        #adapter(
            __hh_span,
            __hh_ret,
            #record_output,
            |__hh_item, __hh_log, __hh_cap| {
                #[allow(unused_imports)]
                use __hh::{
                    ItemOtherProbe as _, ItemResultProbe as _, ItemResultTextProbe as _,
                    ItemTextProbe as _,
                };
                (&&&&__hh::Capture(__hh_item))
                    .hh_item_kind()
                    .observe(__hh_item, __hh_log, __hh_cap);
            },
        )
    }
}

/// `#[async_trait]` turned `async fn` into `fn -> Pin<Box<dyn Future>>` returning
/// `Box::pin(async move { body })`: instrument that future, not its creation.
fn async_trait_method(
    function: &mut Function,
    meta: &TokenStream,
    inputs: &TokenStream,
    output: &TokenStream,
) -> TokenStream {
    let function_output = function.return_type().cloned();
    let function_output = function_output.as_ref();
    let Some(block) = function.async_trait_block() else {
        return TokenStream::new();
    };
    // `#[async_trait]` turned `async fn` into `fn -> Pin<Box<dyn Future>>` returning
    // `Box::pin(async move { body })`: instrument that future, not its creation.
    // A fn written by hand as `Box::pin(async move { .. })` (not by `#[async_trait]`, which
    // annotates its block's value) gets its output type from the signature, as the async
    // block did in the fn's tail.
    let fake = crate::item::boxed_future_output(function_output)
        .map(|ty| fake_return(ty, &quote!(__hh)))
        .unwrap_or_default();
    let inner = prefixed_body(&fake, &block.block);
    let attrs = &block.attrs;
    let output = with_current(&quote!(__hh_span), output);
    let inputs = with_current(&quote!(__hh_span), inputs);
    let new_block: syn::ExprAsync = syn::parse_quote! {
        #(#attrs)*
        async move {
            let (mut __hh_span, __hh_ret) = __hh::Instrumented::new(__hh_span, async move #inner).await;
            #output
            __hh_ret
        }
    };
    *block = new_block;
    let item = &mut function.item;
    let stmts = &item.block.stmts;
    let body: syn::Block = syn::parse_quote! {{
        #meta
        let mut __hh_span = __hh::Span::detached(&__HH_META);
        #inputs
        #(#stmts)*
    }};
    *item.block = body;
    quote!(#item)
}

#[cfg(test)]
mod tests {
    use super::never_a_result;

    #[test]
    fn only_shapes_that_cannot_be_a_result_skip_the_error_probe() {
        let never = |ty: &str| never_a_result(&syn::parse_str(ty).unwrap());
        for ty in [
            "(u32, String)",
            "[u8; 4]",
            "&[u8]",
            "&str",
            "&mut Result<u8, E>",
            "*const u8",
        ] {
            assert!(never(ty), "{ty}");
        }
        // Any name may be a `Result` (an alias, or the user's own type): the probe decides.
        for ty in [
            "Result<u32, String>",
            "io::Result<()>",
            "String",
            "u32",
            "Option<u8>",
            "T",
        ] {
            assert!(!never(ty), "{ty}");
        }
    }
}
