//! A body that runs inline in the function instead of in a closure, for `#[track_caller]`
//! functions: a closure is not `#[track_caller]` (not on stable Rust), so a body moved into
//! one would report its own lines, not the caller's, to `Location::caller()` and panics.
//!
//! The body becomes a labelled block; its `return e` become `break 'label e` and its `e?`
//! become a `match` that breaks with the residual, so the value still passes through the
//! code after the block (output capture, the retry decision). Closures, async blocks and
//! nested items keep their own `return` and `?`. In a macro's arguments the `return` and `?`
//! the user wrote (`vec![load()?]`, `format!("{}", f()?)`) are rewritten too, when the
//! arguments read as expressions separated by commas, as those of std's macros do. A `return`
//! that a macro writes itself (`bail!`) cannot be seen: it returns from the function directly,
//! and the span ends without the value.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Lifetime};

/// Whether the function is `#[track_caller]`.
pub(crate) fn tracks_caller(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("track_caller"))
}

/// `'label: { body }` with `return` and `?` rewritten to leave the block; `krate` is where
/// the runtime's `Branch` / `FromResidual` live.
pub(crate) fn labelled(block: &Block, label: &str, krate: &TokenStream) -> TokenStream {
    let label = Lifetime::new(label, Span::call_site());
    let mut block = block.clone();
    Rewriter {
        label: &label,
        krate,
    }
    .visit_block_mut(&mut block);
    quote!(#label: #block)
}

struct Rewriter<'a> {
    label: &'a Lifetime,
    krate: &'a TokenStream,
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            // Their own `return` and `?`.
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => {}
            Expr::Return(ret) => {
                if let Some(inner) = &mut ret.expr {
                    self.visit_expr_mut(inner);
                }
                let label = self.label;
                let value = ret.expr.take().map(|e| quote!(#e));
                let attrs = &ret.attrs;
                *expr = syn::parse_quote!(#(#attrs)* break #label #value);
            }
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                let (label, k) = (self.label, self.krate);
                let inner = &t.expr;
                let attrs = &t.attrs;
                *expr = syn::parse_quote! {
                    #(#attrs)*
                    match #k::__private::Branch::hh_branch(#inner) {
                        ::core::ops::ControlFlow::Continue(__hh_v) => __hh_v,
                        ::core::ops::ControlFlow::Break(__hh_r) => {
                            break #label #k::__private::FromResidual::hh_from_residual(__hh_r)
                        }
                    }
                };
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        if !leaves_early(mac.tokens.clone()) {
            return;
        }
        let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        if let Ok(mut args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            for arg in &mut args {
                self.visit_expr_mut(arg);
            }
            mac.tokens = quote!(#args);
        }
    }
}

/// Whether `tokens` hold a `?` or a `return`, at any depth.
fn leaves_early(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Punct(p) => p.as_char() == '?',
        proc_macro2::TokenTree::Ident(i) => i == "return",
        proc_macro2::TokenTree::Group(g) => leaves_early(g.stream()),
        proc_macro2::TokenTree::Literal(_) => false,
    })
}
