//! The arguments of `#[with_request_id(...)]`: `from = arg`, `new`, `crate = "path"`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, Ident, Lit};

use crate::args::{Once, Value, did_you_mean, parse_raw};
use crate::errors::Errors;
use crate::item::Function;

const KEYS: &[&str] = &["from", "new", "crate"];

fn unknown_key(key: &str, keys: &str) -> String {
    match did_you_mean(key, KEYS.iter().copied()) {
        Some(guess) => {
            format!("unknown argument `{key}`; did you mean `{guess}`? Expected one of {keys}")
        }
        None => format!("unknown argument `{key}`; expected one of {keys}"),
    }
}

/// How the id is chosen.
#[derive(Clone)]
pub(crate) enum RequestIdPolicy {
    /// Inherit, else `from`, else incoming, else generate.
    Ensure(Option<Ident>),
    /// Always fresh.
    New,
}

pub(crate) struct RequestIdArgs {
    pub(crate) policy: RequestIdPolicy,
    pub(crate) krate: Option<syn::Path>,
    /// Tokens of `from = x`, for errors.
    from_tokens: Option<Ident>,
}

impl RequestIdArgs {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Option<Self> {
        let keys = KEYS
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let raw = match Parser::parse2(|input: ParseStream| parse_raw(input, &keys), tokens) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut from: Once<Ident> = Once::new("from");
        let mut new: Once<()> = Once::new("new");
        let mut krate: Once<syn::Path> = Once::new("crate");
        for (key, value) in raw {
            let k = key.to_string();
            match (k.as_str(), value) {
                ("from", Value::Eq(Expr::Path(p))) if p.path.get_ident().is_some() => {
                    if let Some(ident) = p.path.get_ident() {
                        from.set(errors, &key, ident.clone());
                    }
                }
                ("from", Value::Eq(other)) => errors.error(
                    other,
                    "`from` names an argument of the function, e.g. `from = headers`",
                ),
                ("from", _) => errors.error(&key, "expected `from = <argument>`"),
                ("new", Value::None) => new.set(errors, &key, ()),
                ("new", Value::Eq(v)) => errors.error(v, "`new` takes no value"),
                ("new", Value::List(_)) => errors.error(&key, "`new` takes no value"),
                (
                    "crate",
                    Value::Eq(Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    })),
                ) => match s.parse::<syn::Path>() {
                    Ok(path) => krate.set(errors, &key, path),
                    Err(_) => errors.error(
                        &s,
                        "`crate` must be a path, e.g. `crate = \"my_honeyhive\"`",
                    ),
                },
                ("crate", _) => errors.error(&key, "expected `crate = \"path\"`"),
                _ => errors.error(&key, unknown_key(&k, &keys)),
            }
        }
        if let (Some(new), Some(_)) = (new.get(), from.get()) {
            errors.error(
                &new.tokens,
                "`new` always generates a fresh id, so `from` would be ignored; use one of them",
            );
        }
        let from = from.get().map(|f| f.value.clone());
        let policy = if new.get().is_some() {
            RequestIdPolicy::New
        } else {
            RequestIdPolicy::Ensure(from.clone())
        };
        Some(RequestIdArgs {
            policy,
            krate: krate.get().map(|k| k.value.clone()),
            from_tokens: from,
        })
    }

    /// `from` must name an argument, or `self` of a method.
    pub(crate) fn check(&self, function: &Function, errors: &mut Errors) {
        let Some(from) = &self.from_tokens else {
            return;
        };
        if from == "self" {
            if function.item.sig.receiver().is_none() {
                errors.error(
                    from,
                    "`from = self`: the function takes no `self`; name one of its arguments",
                );
            }
            return;
        }
        if !function.args().iter().any(|a| a.ident == *from) {
            let names: Vec<String> = function
                .args()
                .iter()
                .map(|a| format!("`{}`", a.ident))
                .collect();
            let known = if names.is_empty() {
                "the function has no named arguments".to_owned()
            } else {
                format!("arguments are {}", names.join(", "))
            };
            errors.error(
                from,
                format!("`from = {from}`: there is no such argument; {known}"),
            );
        }
    }

    pub(crate) fn krate(&self) -> TokenStream {
        self.krate
            .as_ref()
            .map_or_else(|| quote!(::honeyhive_runtime), |p| quote!(#p))
    }
}

impl RequestIdPolicy {
    /// The runtime call that computes the correlation for the scope.
    pub(crate) fn correlation(&self, krate: &TokenStream) -> TokenStream {
        match self {
            RequestIdPolicy::New => quote! {
                #krate::__private::with_request_id(#krate::__private::Policy::New, ::core::option::Option::None)
            },
            RequestIdPolicy::Ensure(None) => quote! {
                #krate::__private::with_request_id(#krate::__private::Policy::Ensure, ::core::option::Option::None)
            },
            RequestIdPolicy::Ensure(Some(from)) => {
                // Spanned at the argument, so "not a RequestIdCarrier" points at it.
                let read = quote_spanned! {from.span()=>
                    <_ as #krate::RequestIdCarrier>::request_id(&#from)
                };
                quote! {
                    #krate::__private::with_request_id(#krate::__private::Policy::Ensure, #read)
                }
            }
        }
    }
}
