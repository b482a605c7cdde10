//! What the attribute macros share when reading their arguments: the raw `key = value` /
//! `key(...)` / `key` syntax, a setter that reports duplicate keys, and "did you mean"
//! suggestions.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Expr, Ident, Token};

use crate::errors::Errors;

/// One value, with the tokens it came from (for errors at the user's tokens).
pub(crate) struct Spanned<T> {
    pub(crate) tokens: TokenStream,
    pub(crate) value: T,
}

/// An argument that may be given once; a second time is an error at the second.
pub(crate) struct Once<T> {
    key: &'static str,
    value: Option<Spanned<T>>,
}

impl<T> Once<T> {
    pub(crate) fn new(key: &'static str) -> Self {
        Once { key, value: None }
    }

    pub(crate) fn set(&mut self, errors: &mut Errors, at: &Ident, value: T) {
        if self.value.is_some() {
            errors.error(
                at,
                format!(
                    "duplicate argument `{}`: each argument may be given once",
                    self.key
                ),
            );
        } else {
            self.value = Some(Spanned {
                tokens: at.to_token_stream(),
                value,
            });
        }
    }

    pub(crate) fn get(&self) -> Option<&Spanned<T>> {
        self.value.as_ref()
    }
}

/// The closest candidate within a small edit distance.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    candidates
        .map(|c| (edit_distance(&input, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A value without the invisible groups `macro_rules!` fragments arrive in (`$n:expr`,
/// `$p:path`, `$n:literal`), so that `max_attempts = $n` reads as `max_attempts = 5` does:
/// around the whole value, and around a literal or a path inside it (`constant($delay)`). A
/// group around an expression inside stays, keeping its precedence.
fn ungrouped(mut expr: Expr) -> Expr {
    struct Leaves;
    impl syn::visit_mut::VisitMut for Leaves {
        fn visit_expr_mut(&mut self, expr: &mut Expr) {
            syn::visit_mut::visit_expr_mut(self, expr);
            if let Expr::Group(group) = expr
                && matches!(&*group.expr, Expr::Lit(_) | Expr::Path(_))
            {
                *expr = (*group.expr).clone();
            }
        }
    }
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    syn::visit_mut::VisitMut::visit_expr_mut(&mut Leaves, &mut expr);
    expr
}

/// What follows a key.
pub(crate) enum Value {
    /// A bare key: `skip_all`.
    None,
    /// `key = <expr>`.
    Eq(Expr),
    /// `key(<tokens>)`.
    List(TokenStream),
}

/// Reads `key = <expr>`, `key(<tokens>)` and bare `key` arguments, separated by commas; what
/// each key means is up to the macro. `keys` lists the valid keys for the error message.
pub(crate) fn parse_raw(input: ParseStream, keys: &str) -> syn::Result<Vec<(Ident, Value)>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        // `crate` is a keyword; accept it as a key like the others.
        let key = Ident::parse_any(input).map_err(|e| {
            syn::Error::new(e.span(), format!("expected an argument: one of {keys}"))
        })?;
        let value = if input.peek(Token![=]) {
            let eq = input.parse::<Token![=]>()?;
            if input.is_empty() || input.peek(Token![,]) {
                // At the end of the arguments syn would point at the whole attribute.
                return Err(syn::Error::new(
                    eq.span,
                    format!("expected a value after `{key} =`"),
                ));
            }
            Value::Eq(ungrouped(input.parse::<Expr>()?))
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            Value::List(content.parse::<TokenStream>()?)
        } else {
            Value::None
        };
        out.push((key, value));
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(out)
}
