//! The annotated item: a function with a body, and what the expansions need to know of it.

use proc_macro2::TokenStream;
use syn::parse::ParseStream;
use syn::visit_mut::VisitMut;
use syn::{AttrStyle, Attribute, Block, Expr, FnArg, Ident, ItemFn, Pat, ReturnType, Stmt, Type};

use crate::errors::Errors;

/// A function an attribute was put on.
pub(crate) struct Function {
    pub(crate) item: ItemFn,
}

/// One named argument of the function.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    /// The argument's type, for error messages at the user's tokens.
    pub(crate) ty: Type,
    /// Its `#[cfg(..)]` / `#[cfg_attr(..)]` attributes, for each statement the expansions
    /// write about it: an argument configured out must not be named.
    pub(crate) cfg: TokenStream,
}

impl Function {
    /// Parses `tokens` as a function with a body, or says at the user's tokens why not.
    pub(crate) fn parse(
        macro_name: &str,
        tokens: &TokenStream,
        errors: &mut Errors,
    ) -> Option<Self> {
        let Ok(mut item) = syn::parse::Parser::parse2(shallow_fn, tokens.clone()) else {
            let (at, what) = (first_tokens(tokens), describe(tokens));
            let message = match what {
                // Only a foreign fn can be `safe`.
                Item::Bodiless { foreign: true } => format!(
                    "`#[{macro_name}]` needs a function body to wrap, and a function in an `extern` block has none: put `#[{macro_name}]` on a Rust function that calls it"
                ),
                // A trait method declaration, or a fn in an `extern` block: the tokens are
                // the same.
                Item::Bodiless { foreign: false } => format!(
                    "`#[{macro_name}]` needs a function body to wrap, and this declaration has none. For a trait method, put `#[{macro_name}]` on its implementation in each `impl` block; for a function in an `extern` block, on a Rust function that calls it"
                ),
                Item::Other("an impl block") => format!(
                    "`#[{macro_name}]` can only be applied to functions, not to an impl block: put `#[{macro_name}]` on each method of the block that should be traced"
                ),
                Item::Other("a trait") => format!(
                    "`#[{macro_name}]` can only be applied to functions, not to a trait: put `#[{macro_name}]` on each method's implementation in the `impl` blocks"
                ),
                Item::Other(what) => format!(
                    "`#[{macro_name}]` can only be applied to functions with a body, not to {what}"
                ),
            };
            errors.error(at, message);
            return None;
        };
        if let Some(constness) = &item.sig.constness {
            errors.error(
                constness,
                format!("`#[{macro_name}]` cannot be applied to a `const fn`: spans are recorded at run time, and a const fn may run at compile time; remove `const` or `#[{macro_name}]`"),
            );
        }
        if let Some(variadic) = &item.sig.variadic {
            errors.error(
                variadic,
                format!("`#[{macro_name}]` cannot be applied to a variadic function"),
            );
        }
        // Rewritten statement by statement: the body's statements are needed.
        if (crate::inline_body::tracks_caller(&item.attrs) || may_be_async_trait(&item.block))
            && let Err(e) = parse_statements(&mut item.block)
        {
            errors.push(e);
            return None;
        }
        expect_as_allow(&mut item.attrs);
        for input in &mut item.sig.inputs {
            if let FnArg::Typed(typed) = input {
                expect_as_allow(&mut typed.attrs);
            }
        }
        Some(Function { item })
    }

    pub(crate) fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }

    /// The named arguments, in order; `self` and destructuring patterns are not included.
    pub(crate) fn args(&self) -> Vec<Arg> {
        self.item
            .sig
            .inputs
            .iter()
            .filter_map(|input| match input {
                FnArg::Typed(pt) => match &*pt.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() => Some(Arg {
                        ident: pi.ident.clone(),
                        ty: (*pt.ty).clone(),
                        cfg: cfg_attrs(&pt.attrs),
                    }),
                    _ => None,
                },
                FnArg::Receiver(_) => None,
            })
            .collect()
    }

    /// The declared return type, if any.
    pub(crate) fn return_type(&self) -> Option<&Type> {
        match &self.item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(ty),
        }
    }

    /// Whether the body is `#[async_trait]`'s `Box::pin(async move { .. })`.
    pub(crate) fn async_trait_block_ref(&self) -> bool {
        self.async_trait_async().is_some()
    }

    /// The `async move { .. }` of a body that is `#[async_trait]`'s `Box::pin(async move { .. })`.
    pub(crate) fn async_trait_async(&self) -> Option<&syn::ExprAsync> {
        let Some(Stmt::Expr(Expr::Call(call), None)) = self.item.block.stmts.last() else {
            return None;
        };
        let Expr::Path(func) = &*call.func else {
            return None;
        };
        let n = func.path.segments.len();
        let boxed = n >= 2
            && func.path.segments[n - 2].ident == "Box"
            && func.path.segments[n - 1].ident == "pin"
            && call.args.len() == 1;
        match call.args.first() {
            Some(Expr::Async(block)) if boxed && block.capture.is_some() => Some(block),
            _ => None,
        }
    }

    /// The `async move { .. }` block of a method rewritten by `#[async_trait]`, which returns
    /// `Box::pin(async move { .. })`: that block is what must be instrumented.
    pub(crate) fn async_trait_block(&mut self) -> Option<&mut syn::ExprAsync> {
        if !self.async_trait_block_ref() {
            return None;
        }
        let Some(Stmt::Expr(Expr::Call(call), None)) = self.item.block.stmts.last_mut() else {
            return None;
        };
        match call.args.first_mut() {
            Some(Expr::Async(block)) => Some(block),
            _ => None,
        }
    }
}

/// A function whose body is kept as tokens, one verbatim statement: the expansions move the
/// body whole, so parsing its statements here would only be done again by rustc, which parses
/// (and reports the syntax errors of) the body once, after us. Inner attributes at the top
/// of the body (`#![allow(..)]`) become outer attributes of the function, where they mean the
/// same: in the closure or async block the body moves into, they would not be allowed.
fn shallow_fn(input: ParseStream<'_>) -> syn::Result<ItemFn> {
    let mut attrs = input.call(Attribute::parse_outer)?;
    let vis = input.parse()?;
    let sig = input.parse()?;
    let content;
    let brace_token = syn::braced!(content in input);
    for mut attr in content.call(Attribute::parse_inner)? {
        attr.style = AttrStyle::Outer;
        attrs.push(attr);
    }
    let body: TokenStream = content.parse()?;
    Ok(ItemFn {
        attrs,
        vis,
        modifiers: syn::FnModifiers::default(),
        sig,
        block: Box::new(Block {
            brace_token,
            stmts: vec![Stmt::Item(syn::Item::Verbatim(body))],
        }),
    })
}

/// Parses the statements of a body kept as tokens by [`shallow_fn`].
fn parse_statements(block: &mut Block) -> syn::Result<()> {
    if let [Stmt::Item(syn::Item::Verbatim(body))] = block.stmts.as_slice() {
        block.stmts = syn::parse::Parser::parse2(Block::parse_within, body.clone())?;
    }
    Ok(())
}

/// Whether a body kept as tokens ends as `#[async_trait]`'s do, `..Box::pin(async move { .. })`
/// (what [`Function::async_trait_block_ref`] then checks on the parsed statements).
fn may_be_async_trait(block: &Block) -> bool {
    use proc_macro2::{Delimiter, TokenTree};
    let [Stmt::Item(syn::Item::Verbatim(body))] = block.stmts.as_slice() else {
        return false;
    };
    let trees: Vec<TokenTree> = body.clone().into_iter().collect();
    let [
        ..,
        TokenTree::Ident(boxed),
        TokenTree::Punct(_),
        TokenTree::Punct(_),
        TokenTree::Ident(pin),
        TokenTree::Group(args),
    ] = trees.as_slice()
    else {
        return false;
    };
    let mut args_trees = args.stream().into_iter();
    boxed == "Box"
        && pin == "pin"
        && args.delimiter() == Delimiter::Parenthesis
        && matches!(args_trees.next(), Some(TokenTree::Ident(a)) if a == "async")
}

/// The `#[cfg(..)]` and `#[cfg_attr(..)]` among an argument's attributes.
pub(crate) fn cfg_attrs(attrs: &[Attribute]) -> TokenStream {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
        .map(quote::ToTokens::to_token_stream)
        .collect()
}

/// How a body moved into a closure or an `async move` block (a traced body, a request scope)
/// keeps the arguments: each is moved in and bound there by its own pattern, in declaration
/// order, so that it lives until the body is done and, as in the untraced fn, the arguments
/// drop after the body's locals and in reverse declaration order, also those the body never
/// names (`_guard: MutexGuard<..>`, `_: Permit`, `self`). Without this, a `move` closure
/// would capture only what the body names, in the order it first names it.
///
/// Rewrites `sig`: a named argument keeps its name (so it is recorded by name) without `mut`
/// or `ref`, which go to the binding in the body, where the body needs them; any other pattern
/// becomes `__hh_argN`. An argument's lint attributes (`#[allow(unused_variables)]`) are given
/// to its binding too, where the lints about its use now fire. Returns the statements that
/// start the body: one `let` of a tuple for each run of arguments without attributes.
///
/// `used` names the arguments the expansion itself uses (records, reads a request id from):
/// an argument the body never names is then not reported unused at its binding, as it was
/// not before the body moved.
pub(crate) fn rebind_arguments(
    sig: &mut syn::Signature,
    used: &dyn Fn(&Ident) -> bool,
) -> TokenStream {
    use quote::quote;
    // Runs of arguments bound by one `let (a, b) = (a, b);`; an argument with attributes of
    // its own (`#[cfg]`, lints) gets its own `let`.
    let mut out = TokenStream::new();
    // A pattern that is not a name is bound in two steps, `let __hh_argN = __hh_argN;` then
    // `let pat = __hh_argN;`: a `_` inside a tuple pattern would drop its part at once.
    let mut run: (Vec<Pat>, Vec<Ident>, TokenStream) = Default::default();
    let mut keep_self = TokenStream::new();
    let mut underscore = false;
    let flush =
        |run: &mut (Vec<Pat>, Vec<Ident>, TokenStream), out: &mut TokenStream, underscore: bool| {
            let (pats, values, then) = std::mem::take(run);
            let allow = binding_lints(underscore, values.iter().any(used), values.len() == 1);
            match (pats.as_slice(), values.as_slice()) {
                ([], _) => {}
                ([pat], [value]) => out.extend(quote!(#allow let #pat = #value;)),
                _ => out.extend(quote!(#allow let (#(#pats,)*) = (#(#values,)*);)),
            }
            out.extend(then);
        };
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(receiver) => {
                // A reference dropped is nothing; `self` by value must live as long as the
                // body, and drops last, after the bindings (it cannot be rebound).
                if !matches!(receiver.kind, syn::ReceiverKind::Reference(..)) {
                    keep_self = quote!(let _ = &self;);
                }
            }
            FnArg::Typed(typed) => {
                let own: Vec<&Attribute> = binding_attrs(&typed.attrs).collect();
                let user_pat = (*typed.pat).clone();
                let (pat, value, then) = match &mut *typed.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() => {
                        pi.by_ref = None;
                        pi.mutability = None;
                        let name = pi.ident.to_string();
                        underscore |= name.trim_start_matches("r#").starts_with('_');
                        (user_pat, pi.ident.clone(), TokenStream::new())
                    }
                    other => {
                        let arg = quote::format_ident!("__hh_arg{i}");
                        *other = syn::parse_quote!(#arg);
                        let then = quote!(#(#own)* let #user_pat = #arg;);
                        (syn::parse_quote!(#arg), arg, then)
                    }
                };
                if own.is_empty() {
                    // The pattern's `let` right after its own, before the next argument's,
                    // so that its bindings drop where the fn's would.
                    let split = !then.is_empty();
                    run.0.push(pat);
                    run.1.push(value);
                    run.2.extend(then);
                    if split {
                        flush(&mut run, &mut out, underscore);
                    }
                } else {
                    flush(&mut run, &mut out, underscore);
                    let allow = binding_lints(underscore, used(&value), true);
                    out.extend(quote!(#(#own)* #allow let #pat = #value; #then));
                }
            }
        }
    }
    flush(&mut run, &mut out, underscore);
    out.extend(keep_self);
    out
}

/// The lints a binding of an argument in the body may meet, which the user's code does not.
fn binding_lints(underscore: bool, used: bool, single: bool) -> TokenStream {
    // The underscore lints only where they can fire: fewer tokens for rustc to parse.
    let underscore = underscore.then(|| {
        quote::quote!(
            clippy::used_underscore_binding,
            clippy::no_effect_underscore_binding,
        )
    });
    let used = used.then(|| quote::quote!(unused_variables,));
    // `let x = x;`, not `let (x, y) = (x, y);`.
    let single = single.then(|| quote::quote!(clippy::redundant_locals,));
    quote::quote!(#[allow(
        #used
        #underscore
        #single
        clippy::shadow_same,
        clippy::shadow_reuse,
        clippy::shadow_unrelated,
    )])
}

/// The attributes of an argument that its bindings in the expansion carry too: `#[cfg]`,
/// `#[cfg_attr]` and lint levels.
pub(crate) fn binding_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs
        .iter()
        .filter(|a| is_lint_attr(a) || a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
}

/// Whether `attr` sets a lint level (`allow`, `expect`, `warn`, `deny`, `forbid`).
pub(crate) fn is_lint_attr(attr: &Attribute) -> bool {
    ["allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// `#[expect(..)]` becomes `#[allow(..)]`: a lint the user expects on their fn may no longer
/// fire once the body moves into the expansion's closure (`needless_pass_by_value`, with the
/// argument now moved into it), and an unfulfilled expectation is a warning the untraced fn
/// did not have. An `allow` never warns, and still silences the lint where it fires.
pub(crate) fn expect_as_allow(attrs: &mut [Attribute]) {
    for attr in attrs {
        if attr.path().is_ident("expect")
            && let syn::Meta::List(list) = &mut attr.meta
        {
            let span = list.path.segments[0].ident.span();
            list.path = syn::Ident::new("allow", span).into();
        }
    }
}

/// What the body of a sync fn that returns a value to wrap (a future, an iterator) is
/// type-checked against, as the fn's tail would be: the declared type, or the named
/// `Output` / `Item` of `impl Future` / `impl Iterator`. Without it, a body moved into a
/// closure is checked on its own: `?` in its `async` block cannot infer the error type, two
/// `Box::pin(async ..)` do not meet at `Pin<Box<dyn Future>>`, `.parse()` and `.collect()`
/// cannot infer their types.
#[derive(Clone, Copy)]
pub(crate) enum Expect<'a> {
    Type(&'a Type),
    Future(&'a Type),
    Iter(&'a Type),
}

/// What the body of a sync fn returning a future of `kind` is checked against.
pub(crate) fn future_expect(declared: Option<&Type>, kind: FutureKind) -> Option<Expect<'_>> {
    match kind {
        FutureKind::Impl => assoc_type(declared, "Output").map(Expect::Future),
        FutureKind::Boxed => declared
            .filter(|ty| !contains_impl_trait(ty))
            .map(Expect::Type),
    }
}

/// `body` (a block) as a `move` closure, checked against `expect`; `support` is the path of
/// the runtime's macro support.
pub(crate) fn expect_closure(
    support: &TokenStream,
    body: &TokenStream,
    expect: Option<Expect<'_>>,
) -> TokenStream {
    use quote::quote;
    match expect {
        None => quote!(move || #body),
        Some(Expect::Type(ty)) => quote!(move || -> #ty #body),
        Some(Expect::Future(o)) => quote!(#support::future_body::<#o, _, _>(move || #body)),
        Some(Expect::Iter(o)) => quote!(#support::iter_body::<#o, _, _>(move || #body)),
    }
}

/// `body` (a block) inline, as an expression: a labelled block whose `return` and `?` leave
/// it (see `inline_body`), checked against `expect`; `support` is the path of the runtime's
/// macro support, `krate` the runtime's.
pub(crate) fn expect_inline(
    (support, krate): (&TokenStream, &TokenStream),
    label: &str,
    body: &TokenStream,
    expect: Option<Expect<'_>>,
) -> TokenStream {
    use quote::quote;
    let parsed: Block = match syn::parse2(body.clone()) {
        Ok(block) => block,
        Err(e) => return e.to_compile_error(),
    };
    let block = crate::inline_body::labelled(&parsed, label, krate);
    let value = match expect {
        None => block,
        Some(Expect::Type(ty)) => quote!({ let __hh_ret: #ty = #block; __hh_ret }),
        Some(Expect::Future(o)) => quote!(#support::future_value::<#o, _>(#block)),
        Some(Expect::Iter(o)) => quote!(#support::iter_value::<#o, _>(#block)),
    };
    quote!({
        #[allow(unused_labels, clippy::needless_return)]
        let __hh_ret = #value;
        __hh_ret
    })
}

/// For an `async fn` returning a closure (`-> impl Fn(&str) -> bool`): the body's block, its
/// value passed through a local fn whose bound is the declared one, so that the closure's
/// argument types are inferred from it as they are in the fn's own tail (the async block the
/// body moves into does not see the declared bound). Only for a bound whose types a local fn
/// can name: primitives, `String`, std's `Vec`/`Option`/`Result`/`Box` of them, `std::`
/// paths, references with elided or `'static` lifetimes; a type that may be a generic of the
/// fn or its impl (any other bare name), `Self` or a named lifetime leaves the body as it is.
pub(crate) fn closure_expected_body(ret: Option<&Type>, body: &Block) -> Option<Block> {
    let Some(Type::ImplTrait(imp)) = ret else {
        return None;
    };
    let bound = imp.bounds.iter().find_map(|bound| match bound {
        syn::TypeParamBound::Trait(t)
            if t.lifetimes.is_none()
                && t.path.leading_colon.is_none()
                && t.path.segments.len() == 1
                && ["Fn", "FnMut", "FnOnce"]
                    .iter()
                    .any(|f| t.path.segments[0].ident == f) =>
        {
            let syn::PathArguments::Parenthesized(args) = &t.path.segments[0].arguments else {
                return None;
            };
            let output_ok = match &args.output {
                ReturnType::Default => true,
                ReturnType::Type(_, ty) => nameable_anywhere(ty),
            };
            (output_ok && args.inputs.iter().all(|arg| nameable_anywhere(&arg.ty))).then_some(t)
        }
        _ => None,
    })?;
    let stmts = &body.stmts;
    Some(syn::parse_quote!({
        #[inline]
        fn __hh_closure<__HhF: #bound>(f: __HhF) -> __HhF {
            f
        }
        __hh_closure({ #(#stmts)* })
    }))
}

/// Whether `ty` means the same in a local fn as in the fn around it (see
/// [`closure_expected_body`]).
fn nameable_anywhere(ty: &Type) -> bool {
    const PRIMITIVES: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
        "i64", "i128", "isize", "f32", "f64", "String",
    ];
    const CONTAINERS: &[&str] = &["Vec", "Option", "Result", "Box"];
    match ty {
        Type::Paren(p) => nameable_anywhere(&p.elem),
        Type::Group(g) => nameable_anywhere(&g.elem),
        Type::Tuple(t) => t.elems.iter().all(nameable_anywhere),
        Type::Slice(s) => nameable_anywhere(&s.elem),
        Type::Array(a) => matches!(a.len, Expr::Lit(_)) && nameable_anywhere(&a.elem),
        Type::Reference(r) => {
            r.lifetime
                .as_ref()
                .is_none_or(|l| l.ident == "static" || l.ident == "_")
                && nameable_anywhere(&r.elem)
        }
        Type::Path(p) if p.qself.is_none() => {
            let segments = &p.path.segments;
            let args_ok = |seg: &syn::PathSegment| match &seg.arguments {
                syn::PathArguments::None => true,
                syn::PathArguments::AngleBracketed(a) => a.args.iter().all(
                    |arg| matches!(arg, syn::GenericArgument::Type(t) if nameable_anywhere(t)),
                ),
                syn::PathArguments::Parenthesized(_) => false,
            };
            if let [seg] = segments.iter().collect::<Vec<_>>().as_slice() {
                let name = seg.ident.to_string();
                (PRIMITIVES.contains(&name.as_str()) && seg.arguments.is_none())
                    || (CONTAINERS.contains(&name.as_str()) && args_ok(seg))
            } else {
                let root = segments[0].ident.to_string();
                ["std", "core", "alloc"].contains(&root.as_str()) && segments.iter().all(args_ok)
            }
        }
        _ => false,
    }
}

/// The type an `impl Trait` return type binds to the associated type `name` (`Output` of
/// `impl Future<Output = T>`, `Item` of `impl Iterator<Item = T>`), if it can be named in the
/// body (it is no `impl Trait` itself).
pub(crate) fn assoc_type<'a>(ret: Option<&'a Type>, name: &str) -> Option<&'a Type> {
    let Some(Type::ImplTrait(imp)) = ret else {
        return None;
    };
    bound_assoc(&imp.bounds, name)
}

/// The type `bounds` (of an `impl Trait` or a `dyn Trait`) bind to the associated type `name`,
/// if it is no `impl Trait` itself.
fn bound_assoc<'a>(
    bounds: &'a syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>,
    name: &str,
) -> Option<&'a Type> {
    bounds.iter().find_map(|bound| {
        let syn::TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let syn::PathArguments::AngleBracketed(args) = &t.path.segments.last()?.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::AssocType(a) if a.ident == name && a.generics.is_none() => {
                (!contains_impl_trait(&a.ty)).then_some(&a.ty)
            }
            _ => None,
        })
    })
}

/// The output type of a boxed future type: `X` of `Pin<Box<dyn Future<Output = X> + ..>>` or
/// of `BoxFuture<'a, X>` / `LocalBoxFuture<'a, X>` (the types [`future_kind`] calls `Boxed`).
pub(crate) fn boxed_future_output(ty: Option<&Type>) -> Option<&Type> {
    let Some(Type::Path(p)) = ty else {
        return None;
    };
    let last = p.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let out = match last.ident.to_string().as_str() {
        "BoxFuture" | "LocalBoxFuture" => types.next()?,
        "Pin" => bound_assoc(&dyn_future_in_box(types.next()?)?.bounds, "Output")?,
        _ => return None,
    };
    (!contains_impl_trait(out)).then_some(out)
}

/// The `dyn Future<..> + ..` of `Box<dyn Future<..> + ..>`.
fn dyn_future_in_box(ty: &Type) -> Option<&syn::TypeTraitObject> {
    let Type::Path(inner) = ty else {
        return None;
    };
    let last = inner.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(b) = &last.arguments else {
        return None;
    };
    match b.args.first() {
        Some(syn::GenericArgument::Type(Type::TraitObject(o)))
            if last.ident == "Box"
                && o.bounds.iter().any(
                    |bound| matches!(bound, syn::TypeParamBound::Trait(t) if is_future(&t.path)),
                ) =>
        {
            Some(o)
        }
        _ => None,
    }
}

/// The body's block with `prefix` written before its statements, in the body's own braces:
/// `{ prefix stmts }`. Writing `{ prefix #body }` instead would make a body that is one
/// expression (`{ x }`) a block in tail position, which rustc's `unused_braces` lint reports
/// at the user's braces.
pub(crate) fn prefixed_body(prefix: &TokenStream, body: &Block) -> TokenStream {
    let mut inner = prefix.clone();
    for stmt in &body.stmts {
        quote::ToTokens::to_tokens(stmt, &mut inner);
    }
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, inner);
    group.set_span(body.brace_token.span.join());
    quote::ToTokens::into_token_stream(proc_macro2::TokenTree::Group(group))
}

/// A never-taken `return` of the function's return type at the top of an async block, so the
/// block's output type is known (`?` infers its error type) and a wrong return type is
/// reported at the user's signature. `support` is the path of the runtime's macro support
/// (`__private`), whose `fake` is never called (rustc drops the `if false` branch before
/// code generation). Empty when the type cannot be named (`impl Trait`, `!`).
pub(crate) fn fake_return(ty: &Type, support: &TokenStream) -> TokenStream {
    if contains_impl_trait(ty) || matches!(ty, Type::Never(_)) {
        return TokenStream::new();
    }
    // At the type, so that "return type inferred to be `T` here" points at the user's
    // signature (`support` is an item's path: seen from any hygiene context).
    let at = syn::spanned::Spanned::span(ty);
    let support: TokenStream = support
        .clone()
        .into_iter()
        .map(|mut tree| {
            tree.set_span(at);
            tree
        })
        .collect();
    quote::quote_spanned! {at=>
        if false {
            return #support::fake::<#ty>();
        }
    }
}

impl Function {
    /// Whether one of this crate's attributes named in `names` is left on the function (it
    /// expands after the current one). `krate` is the `crate = ".."` path of the attribute
    /// that asks, if any.
    pub(crate) fn has_attribute_below(&self, names: &[&str], krate: Option<&syn::Path>) -> bool {
        self.item
            .attrs
            .iter()
            .any(|attr| names.iter().any(|name| is_ours(attr, name, krate)))
    }
}

/// The function again, with the same attributes, visibility and signature, and `body`.
pub(crate) fn with_body(item: &ItemFn, body: &TokenStream) -> TokenStream {
    let attrs = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    quote::quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// Whether `attr` is this crate's attribute `name`, by an allow-list of paths: the bare name
/// (`#[trace]`, however it was imported), `honeyhive_runtime::trace`, `honeyhive_macros::trace`
/// (with or without a leading `::`), or `<crate>::trace` where `<crate>` is the `crate = ".."`
/// path given to the attribute itself or to `krate` (the attribute that asks). Another
/// crate's `#[other::trace]` is never taken for ours, whatever its last segment.
pub(crate) fn is_ours(attr: &syn::Attribute, name: &str, krate: Option<&syn::Path>) -> bool {
    let path = attr.path();
    let Some(last) = path.segments.last() else {
        return false;
    };
    if last.ident != name || !last.arguments.is_none() {
        return false;
    }
    if path.segments.len() == 1 {
        return path.leading_colon.is_none();
    }
    let prefix: Vec<String> = path
        .segments
        .iter()
        .take(path.segments.len() - 1)
        .map(|s| s.ident.to_string())
        .collect();
    let named = |p: &syn::Path| {
        p.segments.len() == prefix.len()
            && p.segments.iter().zip(&prefix).all(|(s, n)| s.ident == n)
    };
    matches!(
        prefix.as_slice(),
        [one] if one == "honeyhive_runtime" || one == "honeyhive_macros"
    ) || krate.is_some_and(named)
        || crate_arg(&attr_tokens(attr)).as_ref().is_some_and(named)
}

/// The tokens inside an attribute's parentheses.
fn attr_tokens(attr: &syn::Attribute) -> TokenStream {
    match &attr.meta {
        syn::Meta::List(list) => list.tokens.clone(),
        syn::Meta::Path(_) | syn::Meta::NameValue(_) => TokenStream::new(),
    }
}

/// The arguments that a `#[with_request_id(from = arg)]` left on the fn reads the request id
/// from: the attribute expands after the others (see its `expand`), outside their closures.
pub(crate) fn request_id_sources(item: &ItemFn, krate: Option<&syn::Path>) -> Vec<Ident> {
    item.attrs
        .iter()
        .filter(|attr| is_ours(attr, "with_request_id", krate))
        .filter_map(|attr| {
            let raw = syn::parse::Parser::parse2(
                |input: syn::parse::ParseStream| crate::args::parse_raw(input, ""),
                attr_tokens(attr),
            )
            .ok()?;
            raw.into_iter().find_map(|(key, value)| match value {
                crate::args::Value::Eq(Expr::Path(p)) if key == "from" => {
                    p.path.get_ident().cloned()
                }
                _ => None,
            })
        })
        .collect()
}

/// The `crate = "path"` among an attribute's arguments, if any.
pub(crate) fn crate_arg(args: &TokenStream) -> Option<syn::Path> {
    let raw = syn::parse::Parser::parse2(
        |input: syn::parse::ParseStream| crate::args::parse_raw(input, ""),
        args.clone(),
    )
    .ok()?;
    raw.into_iter().find_map(|(key, value)| match value {
        crate::args::Value::Eq(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        })) if key == "crate" => s.parse::<syn::Path>().ok(),
        _ => None,
    })
}

/// The names bound by an argument's pattern (`(a, b): (u8, u8)` binds `a` and `b`).
pub(crate) fn pattern_bindings(function: &ItemFn) -> Vec<Ident> {
    struct Bindings(Vec<Ident>);
    impl VisitMut for Bindings {
        fn visit_pat_ident_mut(&mut self, p: &mut syn::PatIdent) {
            self.0.push(p.ident.clone());
            syn::visit_mut::visit_pat_ident_mut(self, p);
        }
    }
    let mut found = Bindings(Vec::new());
    for input in &function.sig.inputs {
        if let FnArg::Typed(pt) = input
            && !matches!(&*pt.pat, Pat::Ident(pi) if pi.subpat.is_none())
        {
            found.visit_pat_mut(&mut pt.pat.clone());
        }
    }
    found.0
}

/// Whether `ty` mentions `impl Trait` (which cannot be written in a `let` annotation).
pub(crate) fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl VisitMut for Finder {
        fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}

/// What an item that is not a function with a body is.
enum Item {
    /// A function declaration; `foreign` when it can only be in an `extern` block.
    Bodiless { foreign: bool },
    /// The name a user would give the item.
    Other(&'static str),
}

/// What the item is, for "not a function" errors.
fn describe(tokens: &TokenStream) -> Item {
    let trees: Vec<proc_macro2::TokenTree> = tokens.clone().into_iter().collect();
    for (i, tt) in trees.iter().enumerate() {
        let proc_macro2::TokenTree::Ident(word) = tt else {
            continue;
        };
        if word == "extern" {
            let rest = trees[i + 1..]
                .iter()
                .find(|t| !matches!(t, proc_macro2::TokenTree::Literal(_)));
            match rest {
                Some(proc_macro2::TokenTree::Group(g))
                    if g.delimiter() == proc_macro2::Delimiter::Brace =>
                {
                    return Item::Other("an `extern` block");
                }
                Some(proc_macro2::TokenTree::Ident(c)) if c == "crate" => {
                    return Item::Other("an `extern crate` declaration");
                }
                _ => {}
            }
        }
    }
    match describe_words(tokens) {
        None => Item::Bodiless {
            foreign: trees
                .iter()
                .any(|t| matches!(t, proc_macro2::TokenTree::Ident(i) if i == "safe")),
        },
        Some(what) => Item::Other(what),
    }
}

/// The name a user would give the item, for "not a function" errors; `None` for a function
/// without a body.
fn describe_words(tokens: &TokenStream) -> Option<&'static str> {
    let words: Vec<String> = tokens
        .clone()
        .into_iter()
        .filter_map(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => Some(i.to_string()),
            _ => None,
        })
        .collect();
    let kinds = [
        ("struct", "a struct"),
        ("enum", "an enum"),
        ("trait", "a trait"),
        ("impl", "an impl block"),
        ("mod", "a module"),
        ("static", "a static"),
        ("const", "a const item"),
        ("type", "a type alias"),
        ("union", "a union"),
        ("use", "a use declaration"),
        ("macro_rules", "a macro"),
    ];
    for word in &words {
        if word == "fn" {
            return None;
        }
        if let Some((_, what)) = kinds.iter().find(|(k, _)| k == word) {
            return Some(what);
        }
    }
    Some("this item")
}

/// Where a "not a function" error is shown: the item's keyword and name (`struct Foo`), or the
/// whole item when there is no keyword.
fn first_tokens(tokens: &TokenStream) -> TokenStream {
    let trees: Vec<proc_macro2::TokenTree> = tokens.clone().into_iter().collect();
    let keywords = [
        "struct", "enum", "trait", "impl", "mod", "static", "const", "type", "union", "use", "fn",
    ];
    let start = trees.iter().position(
        |tt| matches!(tt, proc_macro2::TokenTree::Ident(i) if keywords.contains(&i.to_string().as_str())),
    );
    match start {
        Some(i) => trees[i..trees.len().min(i + 2)].iter().cloned().collect(),
        None => tokens.clone(),
    }
}

/// A return type that `#[trace]` treats as a token stream: the span stays open until it ends.
#[derive(Clone, Copy)]
pub(crate) enum StreamKind {
    /// `impl Iterator<..>` (with `DoubleEndedIterator`, `ExactSizeIterator`, `FusedIterator`).
    Iterator,
    /// `impl Stream<..>`: a stream if the returned value is a `futures_core::Stream`.
    Stream,
}

/// The iterator traits, by their bare names (the prelude's, or imported from `std::iter`).
const ITERATORS: &[&str] = &[
    "Iterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "FusedIterator",
];

/// Where the futures `Stream` trait is known to be re-exported.
const STREAM_PATHS: &[&[&str]] = &[
    &["futures", "Stream"],
    &["futures", "stream", "Stream"],
    &["futures_core", "Stream"],
    &["futures_core", "stream", "Stream"],
    &["futures_util", "Stream"],
    &["futures_util", "stream", "Stream"],
    &["tokio_stream", "Stream"],
];

/// Which stream a bound names, by this rule: the iterator traits by bare name or under
/// `std::iter` / `core::iter`; `Stream` by bare name or by one of [`STREAM_PATHS`]. A bare
/// `Stream` may be a trait of the user's: the expansion then tells the two apart by the
/// value's type (a value that is not a `futures_core::Stream` is returned unchanged). Any
/// other path (`my_crate::Stream`) is not a stream.
fn stream_bound(path: &syn::Path) -> Option<StreamKind> {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let last = names.last()?;
    let is_iter = ITERATORS.contains(&last.as_str())
        && match names.len() {
            1 => path.leading_colon.is_none(),
            3 => (names[0] == "std" || names[0] == "core") && names[1] == "iter",
            _ => false,
        };
    if is_iter {
        return Some(StreamKind::Iterator);
    }
    let is_stream = (names.len() == 1 && path.leading_colon.is_none() && last == "Stream")
        || STREAM_PATHS
            .iter()
            .any(|p| p.len() == names.len() && p.iter().zip(&names).all(|(a, b)| a == b));
    is_stream.then_some(StreamKind::Stream)
}

/// Whether the function returns `impl Iterator` (or `DoubleEndedIterator`, `ExactSizeIterator`,
/// `FusedIterator`) or `impl Stream` (see [`stream_bound`]), possibly with auto traits
/// (`Send`, `Sync`, `Unpin`) and lifetimes. Any other bound (`Clone`, a trait of the user's)
/// would not hold for the wrapper, so such functions keep plain `#[trace]` behaviour.
pub(crate) fn stream_kind(ret: Option<&Type>) -> Option<StreamKind> {
    let Some(Type::ImplTrait(imp)) = ret else {
        return None;
    };
    let mut kind = None;
    for bound in &imp.bounds {
        let syn::TypeParamBound::Trait(t) = bound else {
            if matches!(
                bound,
                syn::TypeParamBound::Lifetime(_) | syn::TypeParamBound::PreciseCapture(_)
            ) {
                continue;
            }
            return None;
        };
        if t.maybe.is_some() || t.lifetimes.is_some() {
            return None;
        }
        if is_auto_trait(&t.path) {
            continue;
        }
        match (stream_bound(&t.path)?, kind) {
            (StreamKind::Iterator, None | Some(StreamKind::Iterator)) => {
                kind = Some(StreamKind::Iterator);
            }
            (StreamKind::Stream, None) => kind = Some(StreamKind::Stream),
            _ => return None,
        }
    }
    kind
}

/// `Send`, `Sync`, `Unpin`, bare or under `std::marker` / `core::marker`.
fn is_auto_trait(path: &syn::Path) -> bool {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let Some(last) = names.last() else {
        return false;
    };
    matches!(last.as_str(), "Send" | "Sync" | "Unpin")
        && (names.len() == 1
            || (names.len() == 3
                && (names[0] == "std" || names[0] == "core")
                && names[1] == "marker"))
}

/// How a sync fn that returns a future is traced: the span covers the future's execution.
#[derive(Clone, Copy)]
pub(crate) enum FutureKind {
    /// `-> impl Future<Output = T>` (with auto traits and lifetimes): an `async move` block.
    Impl,
    /// `-> Pin<Box<dyn Future<..> + ..>>`, `BoxFuture<..>`, `LocalBoxFuture<..>`:
    /// `Box::pin(async move { .. })`.
    Boxed,
}

/// Whether a sync fn returns a future that `#[trace]` can wrap, and otherwise, if the return
/// type is `impl Future + <other bounds>`, the bound the wrapper could not promise.
pub(crate) fn future_kind(ret: Option<&Type>) -> Result<Option<FutureKind>, syn::TypeParamBound> {
    match ret {
        Some(Type::ImplTrait(imp)) => {
            let mut future = false;
            let mut other = None;
            for bound in &imp.bounds {
                match bound {
                    syn::TypeParamBound::Trait(t) if is_future(&t.path) => future = true,
                    // The wrappers (`TracedFuture`, `WithCorrelation`) are `Send`, `Sync`
                    // and `Unpin` when the user's future is.
                    syn::TypeParamBound::Trait(t)
                        if t.maybe.is_none() && is_auto_trait(&t.path) => {}
                    syn::TypeParamBound::Lifetime(_) | syn::TypeParamBound::PreciseCapture(_) => {}
                    other_bound => other = other.or_else(|| Some(other_bound.clone())),
                }
            }
            match (future, other) {
                (false, _) => Ok(None),
                (true, None) => Ok(Some(FutureKind::Impl)),
                (true, Some(bound)) => Err(bound),
            }
        }
        Some(Type::Path(p)) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Ok(None);
            };
            let boxed = match last.ident.to_string().as_str() {
                "BoxFuture" | "LocalBoxFuture" => true,
                // `Pin<Box<dyn Future<..> + ..>>`
                "Pin" => box_of_dyn_future(&last.arguments),
                _ => false,
            };
            Ok(boxed.then_some(FutureKind::Boxed))
        }
        _ => Ok(None),
    }
}

/// `Future`, bare or under `std::future` / `core::future`.
fn is_future(path: &syn::Path) -> bool {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match names.as_slice() {
        [f] => f == "Future" && path.leading_colon.is_none(),
        [root, m, f] => (root == "std" || root == "core") && m == "future" && f == "Future",
        _ => false,
    }
}

/// `<Box<dyn Future<..> + ..>>`.
fn box_of_dyn_future(args: &syn::PathArguments) -> bool {
    let syn::PathArguments::AngleBracketed(a) = args else {
        return false;
    };
    matches!(a.args.first(), Some(syn::GenericArgument::Type(ty)) if dyn_future_in_box(ty).is_some())
}

#[cfg(test)]
mod tests {
    use super::{StreamKind, is_ours, stream_kind};

    fn attr(tokens: &str) -> syn::Attribute {
        let item: syn::ItemFn = syn::parse_str(&format!("{tokens} fn f() {{}}")).unwrap();
        item.attrs.into_iter().next().unwrap()
    }

    #[test]
    fn ours_by_allow_list_not_by_last_segment() {
        let hh: syn::Path = syn::parse_str("my_hh").unwrap();
        for ours in [
            "#[retry]",
            "#[retry(max_attempts = 2)]",
            "#[honeyhive_runtime::retry]",
            "#[::honeyhive_runtime::retry]",
            "#[honeyhive_macros::retry]",
            "#[my_hh::retry]",
            "#[renamed::retry(crate = \"renamed\")]",
            "#[a::b::retry(crate = \"a::b\")]",
        ] {
            assert!(is_ours(&attr(ours), "retry", Some(&hh)), "{ours}");
        }
        for foreign in [
            "#[other::retry]",
            "#[fastrace::trace]",
            "#[tracing::retry]",
            "#[::retry]",
            "#[my_hh::inner::retry]",
            "#[renamed::retry(crate = \"other\")]",
            "#[honeyhive_runtime::trace]",
            "#[retry_all]",
        ] {
            assert!(!is_ours(&attr(foreign), "retry", Some(&hh)), "{foreign}");
        }
        assert!(!is_ours(&attr("#[my_hh::retry]"), "retry", None));
    }

    fn kind(ret: &str) -> Option<&'static str> {
        let ty: syn::Type = syn::parse_str(ret).unwrap();
        stream_kind(Some(&ty)).map(|k| match k {
            StreamKind::Iterator => "iter",
            StreamKind::Stream => "stream",
        })
    }

    #[test]
    fn stream_rule() {
        for (ret, expected) in [
            ("impl Iterator<Item = u8>", Some("iter")),
            ("impl std::iter::Iterator<Item = u8> + Send", Some("iter")),
            (
                "impl DoubleEndedIterator<Item = u8> + ExactSizeIterator",
                Some("iter"),
            ),
            (
                "impl core::iter::FusedIterator<Item = u8> + 'static",
                Some("iter"),
            ),
            ("impl Stream<Item = u8>", Some("stream")),
            (
                "impl futures::Stream<Item = u8> + Send + Unpin",
                Some("stream"),
            ),
            ("impl futures::stream::Stream<Item = u8>", Some("stream")),
            ("impl futures_core::Stream<Item = u8>", Some("stream")),
            (
                "impl futures_util::stream::Stream<Item = u8>",
                Some("stream"),
            ),
            ("impl tokio_stream::Stream<Item = u8>", Some("stream")),
            ("impl my::Stream<Item = u8>", None),
            ("impl my::Iterator<Item = u8>", None),
            ("impl ::Stream<Item = u8>", None),
            ("impl Iterator<Item = u8> + Clone", None),
            ("impl Stream<Item = u8> + Iterator<Item = u8>", None),
            ("Vec<u8>", None),
        ] {
            assert_eq!(kind(ret), expected, "{ret}");
        }
    }
}
