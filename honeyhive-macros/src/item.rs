//! The annotated item: a function with a body, and what the expansions need to know of it.

use proc_macro2::TokenStream;
use syn::visit_mut::VisitMut;
use syn::{Expr, FnArg, Ident, ItemFn, Pat, ReturnType, Stmt, Type};

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
}

impl Function {
    /// Parses `tokens` as a function with a body, or says at the user's tokens why not.
    pub(crate) fn parse(
        macro_name: &str,
        tokens: TokenStream,
        errors: &mut Errors,
    ) -> Option<Self> {
        // Worked out before parsing consumes the tokens; used only if parsing fails.
        let (at, what) = (first_tokens(&tokens), describe(&tokens));
        let Ok(item) = syn::parse2::<ItemFn>(tokens) else {
            let message = match what {
                // A trait method declaration, or a fn in an `extern` block.
                None => format!(
                    "`#[{macro_name}]` needs a function body to wrap: put it on the method's implementation in each `impl` block, not on the declaration"
                ),
                Some(what) => format!(
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
        let Some(Stmt::Expr(Expr::Call(call), None)) = self.item.block.stmts.last() else {
            return false;
        };
        let Expr::Path(func) = &*call.func else {
            return false;
        };
        let n = func.path.segments.len();
        n >= 2
            && func.path.segments[n - 2].ident == "Box"
            && func.path.segments[n - 1].ident == "pin"
            && call.args.len() == 1
            && matches!(call.args.first(), Some(Expr::Async(block)) if block.capture.is_some())
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

/// A never-taken `return` of the function's return type at the top of an async block, so the
/// block's output type is known (`?` infers its error type) and a wrong return type is
/// reported at the user's signature. Empty when the type cannot be named in a `let`.
pub(crate) fn fake_return(ty: &Type) -> TokenStream {
    if contains_impl_trait(ty) || matches!(ty, Type::Never(_)) {
        return TokenStream::new();
    }
    quote::quote_spanned! {syn::spanned::Spanned::span(ty)=>
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value
        )]
        if false {
            let __hh_fake_return: #ty = loop {};
            return __hh_fake_return;
        }
    }
}

impl Function {
    /// Whether one of this crate's attributes named in `names` is left on the function (it
    /// expands after the current one).
    pub(crate) fn has_attribute_below(&self, names: &[&str]) -> bool {
        self.item
            .attrs
            .iter()
            .any(|attr| names.iter().any(|name| is_ours(attr, name)))
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

/// Crates whose `#[...::trace]` attributes are not ours.
const FOREIGN_TRACE: &[&str] = &["fastrace", "minitrace", "tracing", "log"];

/// Whether `attr` is this crate's attribute `name`: `#[trace]`, `#[honeyhive_runtime::trace]`,
/// or the same under a renamed crate; not another crate's attribute of the same name.
pub(crate) fn is_ours(attr: &syn::Attribute, name: &str) -> bool {
    let segments = &attr.path().segments;
    segments.last().is_some_and(|s| s.ident == name)
        && !(segments.len() > 1 && FOREIGN_TRACE.iter().any(|c| segments[0].ident == c))
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

/// The name a user would give the item, for "not a function" errors; `None` for a function
/// without a body.
fn describe(tokens: &TokenStream) -> Option<&'static str> {
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
    /// `impl Stream<..>` (futures' trait).
    Stream,
}

/// Whether the function returns `impl Iterator` (or `DoubleEndedIterator`, `ExactSizeIterator`,
/// `FusedIterator`) or `impl Stream`, possibly with auto traits
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
        let name = t.path.segments.last()?.ident.to_string();
        match (name.as_str(), kind) {
            (
                "Iterator" | "DoubleEndedIterator" | "ExactSizeIterator" | "FusedIterator",
                None | Some(StreamKind::Iterator),
            ) => kind = Some(StreamKind::Iterator),
            ("Stream", None) => kind = Some(StreamKind::Stream),
            ("Send" | "Sync" | "Unpin", _) => {}
            _ => return None,
        }
    }
    kind
}
