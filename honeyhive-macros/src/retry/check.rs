//! Rules that involve both the arguments and the function; the result is a plan that
//! `expand` follows without further checks.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, Meta, Pat, ReceiverKind, Type, TypeParamBound};

use super::args::{Backoff, DEFAULT_FACTOR, DEFAULT_INITIAL, DEFAULT_MAX, RetryArgs};
use crate::errors::Errors;
use crate::item::is_ours;
use crate::item::{Function, contains_impl_trait};

/// Everything the expansion needs, already validated.
pub(crate) struct Plan {
    pub(crate) krate: TokenStream,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    /// The variant of the runtime's `Jitter`.
    pub(crate) jitter: Ident,
    pub(crate) max_delay: Option<Duration>,
    pub(crate) max_elapsed: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) decide: Decide,
    pub(crate) sleep: Option<syn::Path>,
    /// The return type, to annotate the body with (absent when it names `impl Trait`).
    pub(crate) ret: Option<Type>,
    /// Where a return type that is not a `Result` is reported.
    pub(crate) ret_span: Span,
    /// Owned arguments, copied or cloned for each attempt.
    pub(crate) per_attempt: Vec<PerAttempt>,
    /// `#[retry] #[trace(..)]`: each attempt gets its own span.
    pub(crate) trace: Option<TraceAttr>,
    /// With a span per attempt: the `&mut` arguments, passed to the body at each attempt
    /// rather than captured, so that `#[trace]` can record them before the body borrows them.
    pub(crate) reborrowed: Vec<(Ident, Type)>,
}

/// A `#[trace]` attribute below `#[retry]`.
pub(crate) struct TraceAttr {
    /// Its index among the function's attributes.
    pub(crate) index: usize,
    pub(crate) path: syn::Path,
    pub(crate) args: TokenStream,
}

/// How a failed attempt's error is classified.
pub(crate) enum Decide {
    /// Every error is retried.
    Always,
    /// `when = path`: `fn(&E) -> bool`.
    When(syn::Path),
    /// `classify = path`: `fn(&E) -> Decision`.
    Classify(syn::Path),
}

/// An owned argument that each attempt gets its own copy of.
pub(crate) struct PerAttempt {
    pub(crate) ident: Ident,
    pub(crate) mutable: bool,
    /// `clone(arg)`; otherwise the argument must be `Copy`.
    pub(crate) cloned: bool,
    /// Its `cfg` attributes, and its lint attributes (`#[allow(unused_variables)]`, which
    /// is about the copy the attempt uses), for the statement that copies it.
    pub(crate) cfg: proc_macro2::TokenStream,
}

/// A statement that resolves an attribute's path, for an attribute consumed by the other
/// macro: rustc never resolves it, so its `use` would be reported unused.
pub(crate) fn uses(path: &syn::Path) -> syn::Stmt {
    syn::parse_quote! {
        #[allow(unused_imports)]
        use #path as _;
    }
}

/// The arguments of an attribute: `x` in `#[name(x)]`.
pub(crate) fn attr_args(attr: &Attribute) -> TokenStream {
    match &attr.meta {
        Meta::List(list) => list.tokens.clone(),
        Meta::Path(_) | Meta::NameValue(_) => TokenStream::new(),
    }
}

pub(crate) fn check(args: &RetryArgs, function: &Function, errors: &mut Errors) -> Plan {
    let sig = &function.item.sig;
    // `#[async_trait]` made the `async fn` a fn returning `Box::pin(async move { .. })`, whose
    // `let __ret: R = { body };` the attempts run.
    let async_trait = function.async_trait_block_ref();
    let is_async = function.is_async() || async_trait;
    let mut rebound_mut = Vec::new();
    let mut rebound_patterns = Vec::new();
    if async_trait {
        match async_trait_body(function) {
            Some((stmts, index)) => {
                rebound_mut = mutable_rebindings(stmts);
                rebound_patterns = pattern_rebindings(&stmts[..index]);
            }
            None => errors.error(
                sig,
                "`#[retry]` cannot retry this `#[async_trait]` method (its body is not in the shape `#[async_trait]` writes): put the body in an `async fn` with `#[retry]` and call it from the method",
            ),
        }
    }
    let (ret, ret_span) = return_type(function, errors);

    check_twice(args, function, errors);
    let trace = function
        .item
        .attrs
        .iter()
        .position(|a| is_ours(a, "trace", args.krate.get().map(|k| &k.value)))
        .map(|index| {
            let attr = &function.item.attrs[index];
            TraceAttr {
                index,
                path: attr.path().clone(),
                args: attr_args(attr),
            }
        });

    let cloned: Vec<&Ident> = args
        .clone
        .get()
        .map_or_else(Vec::new, |c| c.value.iter().collect());
    if async_trait && let Some(trace) = &trace {
        errors.error(
            &function.item.attrs[trace.index],
            "on an `#[async_trait]` method, `#[retry]` cannot give each attempt its own span: put `#[trace]` above `#[retry]` (one span, with an event per failed attempt)",
        );
    }
    let (per_attempt, reborrowed) = arguments(
        function,
        &cloned,
        trace.is_some(),
        (&rebound_mut, &rebound_patterns),
        errors,
    );

    if let Some(timeout) = args.attempt_timeout.get()
        && !is_async
    {
        errors.error(
            &timeout.tokens,
            "`attempt_timeout` needs an `async fn`: a sync attempt cannot be interrupted",
        );
    }
    let decide = match (args.when.get(), args.classify.get()) {
        (Some(_), Some(classify)) => {
            errors.error(
                &classify.tokens,
                "`when` and `classify` both decide which errors are retried; use one",
            );
            Decide::Always
        }
        (Some(when), None) => Decide::When(when.value.clone()),
        (None, Some(classify)) => Decide::Classify(classify.value.clone()),
        (None, None) => Decide::Always,
    };

    let krate = args.krate.get().map_or_else(
        || quote!(::honeyhive_runtime),
        |k| k.value.to_token_stream(),
    );
    Plan {
        krate,
        max_attempts: args.max_attempts.get().map_or(3, |m| m.value),
        backoff: args.backoff.get().map_or(
            Backoff::Exponential {
                initial: DEFAULT_INITIAL,
                factor: DEFAULT_FACTOR,
                max: DEFAULT_MAX,
            },
            |b| b.value,
        ),
        jitter: Ident::new(
            args.jitter.get().map_or("Full", |j| j.value),
            Span::call_site(),
        ),
        max_delay: args.max_delay.get().map(|d| d.value),
        max_elapsed: args.max_elapsed.get().map(|d| d.value),
        attempt_timeout: args.attempt_timeout.get().map(|d| d.value),
        decide,
        sleep: args.sleep.get().map(|s| s.value.clone()),
        ret,
        ret_span,
        per_attempt,
        trace,
        reborrowed,
    }
}

/// `#[retry] #[retry]`: each attempt of one would be a whole series of the other.
fn check_twice(args: &RetryArgs, function: &Function, errors: &mut Errors) {
    if let Some(second) = function
        .item
        .attrs
        .iter()
        .find(|a| is_ours(a, "retry", args.krate.get().map(|k| &k.value)))
    {
        errors.error(
            second,
            "`#[retry]` is applied twice to this function, which would run each attempt of one as a whole series of the other (3 x 3 calls by default); remove one, and set `max_attempts` on the other",
        );
    }
}

/// The owned arguments each attempt copies or clones, and (with a span per attempt) the `&mut`
/// arguments passed to the body; checks the receiver and `clone(..)` on the way.
///
/// `rebound` is what `#[async_trait]` moved into the body: the names it rebinds `mut`, and the
/// patterns it binds from its own `__argN`.
fn arguments<'a>(
    function: &'a Function,
    cloned: &[&Ident],
    traced: bool,
    rebound: (&[Ident], &[&'a syn::Local]),
    errors: &mut Errors,
) -> (Vec<PerAttempt>, Vec<(Ident, Type)>) {
    let (rebound_mut, rebound_patterns) = rebound;
    let mut per_attempt = Vec::new();
    let mut reborrowed = Vec::new();
    let mut named: Vec<&Ident> = Vec::new();
    for local in rebound_patterns {
        pattern_argument(
            &local.pat,
            false,
            cloned,
            &mut named,
            &mut per_attempt,
            errors,
        );
    }
    for input in &function.item.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                // `self` by value is shared by the attempts as the other arguments are; a
                // `mut self` would have to start each attempt afresh, and cannot be cloned.
                if matches!(receiver.kind, ReceiverKind::Value) && receiver.mutability.is_some() {
                    errors.error(
                        receiver,
                        "`#[retry]` runs the body once per attempt, and each would need its own `mut self`: take `&mut self`, or drop the `mut` and borrow `self`",
                    );
                }
            }
            FnArg::Typed(arg) => {
                let pat = match &*arg.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => pat,
                    pattern => {
                        let borrowed = matches!(&*arg.ty, Type::Reference(_));
                        let before = per_attempt.len();
                        pattern_argument(
                            pattern,
                            borrowed,
                            cloned,
                            &mut named,
                            &mut per_attempt,
                            errors,
                        );
                        let cfg: TokenStream = crate::item::binding_attrs(&arg.attrs)
                            .map(ToTokens::to_token_stream)
                            .collect();
                        for binding in &mut per_attempt[before..] {
                            binding.cfg.clone_from(&cfg);
                        }
                        continue;
                    }
                };
                named.push(&pat.ident);
                let is_cloned = cloned.contains(&&pat.ident);
                // `#[async_trait]` moved an argument's `mut` to its rebinding in the body.
                let mutable = pat.mutability.is_some() || rebound_mut.contains(&pat.ident);
                match &*arg.ty {
                    Type::Reference(reference) => {
                        if is_cloned {
                            errors.error(
                                &pat.ident,
                                format!("`{}` is a reference, which every attempt can share: remove it from `clone(..)`", pat.ident),
                            );
                        }
                        if traced && reference.mutability.is_some() && !contains_impl_trait(&arg.ty)
                        {
                            reborrowed.push((pat.ident.clone(), (*arg.ty).clone()));
                        }
                    }
                    // An argument neither cloned nor `mut` is shared by the attempts, as a
                    // Python decorator passes the same object to each call: the body borrows
                    // it (a `Copy` one is copied where it is used), and a body that consumes
                    // one is told by the borrow checker, at the use, that it needs `clone(..)`.
                    // A `mut _name` is used all the same: it gets its copy like any other.
                    _ if !is_cloned && !mutable => {}
                    _ => per_attempt.push(PerAttempt {
                        ident: pat.ident.clone(),
                        mutable,
                        cloned: is_cloned,
                        cfg: crate::item::binding_attrs(&arg.attrs)
                            .map(quote::ToTokens::to_token_stream)
                            .collect(),
                    }),
                }
            }
        }
    }
    check_clone_list(cloned, &named, errors);
    (per_attempt, reborrowed)
}

/// The bindings of an argument's pattern (`(mut a, b): (u32, u32)`, `Holder { mut items, .. }:
/// Holder`), each an owned argument of its own: a `mut` or `clone(..)` one gets its copy per
/// attempt. A `ref mut` binding into an argument taken by value would let every attempt change
/// the same value, and is refused; into a `&mut` argument it is the caller's value, shared as a
/// `&mut` argument is.
fn pattern_argument<'a>(
    pattern: &'a Pat,
    borrowed: bool,
    cloned: &[&Ident],
    named: &mut Vec<&'a Ident>,
    per_attempt: &mut Vec<PerAttempt>,
    errors: &mut Errors,
) {
    for binding in bindings(pattern) {
        named.push(&binding.ident);
        let ident = &binding.ident;
        if binding.by_ref.is_some() {
            if binding.mutability.is_some() && !borrowed {
                errors.error(
                    binding,
                    format!("`#[retry]` runs the body once per attempt, and `ref mut {ident}` would let every attempt change the same value: bind it by value (`mut {ident}`), and each attempt gets its own copy (or, in `clone({ident})`, its own clone)"),
                );
            }
            continue;
        }
        let is_cloned = cloned.contains(&ident);
        if is_cloned || binding.mutability.is_some() {
            per_attempt.push(PerAttempt {
                ident: ident.clone(),
                mutable: binding.mutability.is_some(),
                cloned: is_cloned,
                cfg: TokenStream::new(),
            });
        }
    }
}

/// The names a pattern binds, in order.
pub(crate) fn bindings(pattern: &Pat) -> Vec<&syn::PatIdent> {
    fn walk<'a>(pattern: &'a Pat, out: &mut Vec<&'a syn::PatIdent>) {
        match pattern {
            Pat::Ident(p) => {
                out.push(p);
                if let Some((_, sub)) = &p.subpat {
                    walk(sub, out);
                }
            }
            Pat::Tuple(t) => t.elems.iter().for_each(|p| walk(p, out)),
            Pat::TupleStruct(t) => t.elems.iter().for_each(|p| walk(p, out)),
            Pat::Struct(s) => s.fields.iter().for_each(|f| walk(&f.pat, out)),
            Pat::Slice(s) => s.elems.iter().for_each(|p| walk(p, out)),
            Pat::Reference(r) => walk(&r.pat, out),
            Pat::Paren(p) => walk(&p.pat, out),
            Pat::Type(t) => walk(&t.pat, out),
            // Every case binds the same names.
            Pat::Or(o) => {
                if let Some(first) = o.cases.first() {
                    walk(first, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(pattern, &mut out);
    out
}

/// The `let`s by which `#[async_trait]` binds a pattern argument from its `__argN`.
fn pattern_rebindings(stmts: &[syn::Stmt]) -> Vec<&syn::Local> {
    stmts
        .iter()
        .filter_map(|stmt| match stmt {
            syn::Stmt::Local(local) if !matches!(local.pat, Pat::Ident(_)) => Some(local),
            _ => None,
        })
        .collect()
}

fn check_clone_list(cloned: &[&Ident], named: &[&Ident], errors: &mut Errors) {
    for (i, ident) in cloned.iter().enumerate() {
        if cloned[..i].contains(ident) {
            errors.error(ident, format!("`{ident}` is cloned twice"));
        } else if *ident == "self" {
            errors.error(
                ident,
                "`self` cannot be cloned for each attempt: take `&self` or `&mut self`",
            );
        } else if !named.contains(ident) {
            let listed: Vec<String> = named.iter().map(|a| format!("`{a}`")).collect();
            let known = if listed.is_empty() {
                "the function has no named arguments".to_owned()
            } else {
                format!("arguments are {}", listed.join(", "))
            };
            errors.error(
                ident,
                format!("cannot clone `{ident}`: there is no such argument; {known}"),
            );
        }
    }
}

/// The return type to annotate the body with, and where a non-`Result` is reported. Streams,
/// futures and other `impl Trait` returns are rejected here, since no `Result` can be seen.
fn return_type(function: &Function, errors: &mut Errors) -> (Option<Type>, Span) {
    let sig = &function.item.sig;
    let declared = if function.async_trait_block_ref() {
        // The future's output, `R` of `Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>`.
        crate::item::boxed_future_output(function.return_type())
    } else {
        function.return_type()
    };
    let Some(ty) = declared else {
        errors.error(
            sig,
            "`#[retry]` needs a function that returns a `Result`: an attempt fails by returning `Err`",
        );
        return (None, sig.ident.span());
    };
    if let Type::ImplTrait(it) = ty {
        let names: Vec<String> = it
            .bounds
            .iter()
            .filter_map(|b| match b {
                TypeParamBound::Trait(t) => t.path.segments.last().map(|s| s.ident.to_string()),
                _ => None,
            })
            .collect();
        let message = if names.iter().any(|n| is_stream(n)) {
            "`#[retry]` cannot retry a stream: it cannot replay items already handed out. Retry the call that opens the stream, e.g. an `async fn` returning `Result<impl Stream, E>`"
        } else if names.iter().any(|n| n == "Future") {
            "`#[retry]` needs an `async fn` to retry a future: write `async fn` returning the `Result`"
        } else {
            "`#[retry]` needs a function that returns a `Result`, not `impl Trait`"
        };
        errors.error(ty, message);
    } else if let Type::Path(p) = ty
        && let Some(last) = p.path.segments.last()
        && (matches!(
            last.ident.to_string().as_str(),
            "BoxStream" | "LocalBoxStream"
        ) || (matches!(last.ident.to_string().as_str(), "Pin" | "Box")
            && mentions_stream(&last.arguments.to_token_stream())))
    {
        errors.error(
            ty,
            "`#[retry]` cannot retry a stream: it cannot replay items already handed out. Retry the call that opens the stream, e.g. an `async fn` returning `Result<impl Stream, E>`",
        );
    }
    if let Some((borrow, what)) = returned_mut_borrow(function, ty) {
        errors.error(
            borrow,
            format!("`#[retry]` cannot retry a function that returns a borrow of {what}: each attempt borrows {what} anew, and a borrow that one attempt returns would still be alive when the next attempt borrows it again. Return an owned value (e.g. `Result<(), E>`) and borrow after the call, or put `#[retry]` on a helper that returns owned data"),
        );
    }
    let annotation = (!contains_impl_trait(ty)).then(|| ty.clone());
    (annotation, ty.span())
}

/// The lifetime in the return type that, by the elision rules or by name, borrows from a
/// `&mut` argument (`Result<&mut Self, E>` from `&mut self`), and that argument.
fn returned_mut_borrow(function: &Function, ret: &Type) -> Option<(TokenStream, String)> {
    // Each input reference: its lifetime (None: elided) and whether it is `&mut`.
    let mut inputs: Vec<(Option<String>, bool, String)> = Vec::new();
    let mut receiver_ref = None;
    for input in &function.item.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if let ReceiverKind::Reference(_, lifetime, mutability) = &r.kind {
                    let entry = (
                        lifetime.as_ref().map(|l| l.ident.to_string()),
                        mutability.is_some(),
                        "`&mut self`".to_owned(),
                    );
                    receiver_ref = Some(entry.clone());
                    inputs.push(entry);
                }
            }
            FnArg::Typed(arg) => {
                let name = match &*arg.pat {
                    Pat::Ident(p) => format!("`{}`", p.ident),
                    _ => "a `&mut` argument".to_owned(),
                };
                collect_refs(&arg.ty, &name, &mut inputs);
            }
        }
    }
    // What an elided lifetime in the output borrows from.
    let elided_source = receiver_ref.or_else(|| match inputs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    });
    let mut found = None;
    let mut check = |lifetime: Option<String>, tokens: TokenStream| {
        if found.is_some() {
            return;
        }
        let source = match &lifetime {
            None => elided_source.clone(),
            Some(name) => inputs
                .iter()
                .find(|(l, _, _)| l.as_ref() == Some(name))
                .cloned(),
        };
        if let Some((_, true, what)) = source {
            found = Some((tokens, what));
        }
    };
    walk_lifetimes(ret, &mut check);
    found
}

/// The references in an argument's type (`&mut T`, `Wrapper<'a>`), with their lifetimes.
fn collect_refs(ty: &Type, name: &str, out: &mut Vec<(Option<String>, bool, String)>) {
    match ty {
        Type::Reference(r) => {
            out.push((
                r.lifetime.as_ref().map(|l| l.ident.to_string()),
                r.mutability.is_some(),
                name.to_owned(),
            ));
            collect_refs(&r.elem, name, out);
        }
        Type::Path(p) => {
            for seg in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &seg.arguments {
                    for arg in &a.args {
                        match arg {
                            syn::GenericArgument::Lifetime(l) => out.push((
                                (l.ident != "_").then(|| l.ident.to_string()),
                                false,
                                name.to_owned(),
                            )),
                            syn::GenericArgument::Type(t) => collect_refs(t, name, out),
                            _ => {}
                        }
                    }
                }
            }
        }
        Type::Paren(p) => collect_refs(&p.elem, name, out),
        Type::Slice(s) => collect_refs(&s.elem, name, out),
        Type::Array(a) => collect_refs(&a.elem, name, out),
        Type::Tuple(t) => {
            for elem in &t.elems {
                collect_refs(elem, name, out);
            }
        }
        _ => {}
    }
}

/// Calls `f` with each lifetime the type borrows for (`None`: elided), and its tokens.
fn walk_lifetimes(ty: &Type, f: &mut impl FnMut(Option<String>, TokenStream)) {
    match ty {
        Type::Reference(r) => {
            let name = r
                .lifetime
                .as_ref()
                .filter(|l| l.ident != "_")
                .map(|l| l.ident.to_string());
            if name.as_deref() != Some("static") {
                f(name, r.to_token_stream());
            }
            walk_lifetimes(&r.elem, f);
        }
        Type::Path(p) => {
            for seg in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &seg.arguments {
                    for arg in &a.args {
                        match arg {
                            syn::GenericArgument::Lifetime(l) if l.ident != "static" => f(
                                (l.ident != "_").then(|| l.ident.to_string()),
                                l.to_token_stream(),
                            ),
                            syn::GenericArgument::Type(t) => walk_lifetimes(t, f),
                            _ => {}
                        }
                    }
                }
            }
        }
        Type::Paren(p) => walk_lifetimes(&p.elem, f),
        Type::Slice(s) => walk_lifetimes(&s.elem, f),
        Type::Array(a) => walk_lifetimes(&a.elem, f),
        Type::Tuple(t) => {
            for elem in &t.elems {
                walk_lifetimes(elem, f);
            }
        }
        _ => {}
    }
}

fn is_stream(name: &str) -> bool {
    matches!(
        name,
        "Stream"
            | "TryStream"
            | "Iterator"
            | "IntoIterator"
            | "AsyncIterator"
            | "DoubleEndedIterator"
            | "ExactSizeIterator"
    )
}

fn mentions_stream(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => is_stream(&i.to_string()),
        proc_macro2::TokenTree::Group(g) => mentions_stream(&g.stream()),
        _ => false,
    })
}

/// The statements of `#[async_trait]`'s `async move { .. }` block and the index of its
/// `let __ret: R = { body };`, the user's body (the statements before it rebind the arguments).
pub(crate) fn async_trait_body(function: &Function) -> Option<(&[syn::Stmt], usize)> {
    let stmts = function.async_trait_async()?.block.stmts.as_slice();
    let index = stmts.iter().position(|stmt| ret_body(stmt).is_some())?;
    Some((stmts, index))
}

/// The `{ body }` of `let __ret: R = { body };`.
pub(crate) fn ret_body(stmt: &syn::Stmt) -> Option<&syn::Block> {
    let syn::Stmt::Local(local) = stmt else {
        return None;
    };
    let Pat::Type(typed) = &local.pat else {
        return None;
    };
    if !matches!(&*typed.pat, Pat::Ident(p) if p.ident == "__ret") {
        return None;
    }
    match local.init.as_ref().map(|init| &*init.expr) {
        Some(syn::Expr::Block(b)) => Some(&b.block),
        _ => None,
    }
}

/// The arguments `#[async_trait]` rebinds as `let mut x = x;` before the body.
fn mutable_rebindings(stmts: &[syn::Stmt]) -> Vec<Ident> {
    stmts
        .iter()
        .filter_map(|stmt| match stmt {
            syn::Stmt::Local(local) => match &local.pat {
                Pat::Ident(p) if p.mutability.is_some() => Some(p.ident.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
