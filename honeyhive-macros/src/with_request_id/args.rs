//! The arguments of `#[with_request_id(...)]`: `from = arg`, `new`, `crate = "path"`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Token};

use crate::errors::Errors;
use crate::item::Function;

const KEYS: &str = "`from`, `new`, `crate`";

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
        let parsed = Parser::parse2(
            |input: ParseStream| {
                let mut out: Vec<(Ident, Option<syn::Expr>)> = Vec::new();
                while !input.is_empty() {
                    let key = Ident::parse_any(input).map_err(|e| {
                        syn::Error::new(e.span(), format!("expected one of {KEYS}"))
                    })?;
                    let value = if input.peek(Token![=]) {
                        input.parse::<Token![=]>()?;
                        Some(input.parse::<syn::Expr>()?)
                    } else {
                        None
                    };
                    out.push((key, value));
                    if input.is_empty() {
                        break;
                    }
                    input.parse::<Token![,]>()?;
                }
                Ok(out)
            },
            tokens,
        );
        let raw = match parsed {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut from: Option<Ident> = None;
        let mut new: Option<Ident> = None;
        let mut krate: Option<syn::Path> = None;
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in raw {
            let k = key.to_string();
            if seen.contains(&k) {
                errors.error(&key, format!("duplicate argument `{k}`"));
                continue;
            }
            seen.push(k.clone());
            match (k.as_str(), value) {
                ("from", Some(syn::Expr::Path(p))) if p.path.get_ident().is_some() => {
                    from = p.path.get_ident().cloned();
                }
                ("from", Some(other)) => errors.error(
                    other,
                    "`from` names an argument of the function, e.g. `from = headers`",
                ),
                ("from", None) => errors.error(&key, "expected `from = <argument>`"),
                ("new", None) => new = Some(key),
                ("new", Some(v)) => errors.error(v, "`new` takes no value"),
                (
                    "crate",
                    Some(syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    })),
                ) => match s.parse::<syn::Path>() {
                    Ok(p) => krate = Some(p),
                    Err(_) => errors.error(
                        &s,
                        "`crate` must be a path, e.g. `crate = \"my_honeyhive\"`",
                    ),
                },
                ("crate", _) => errors.error(&key, "expected `crate = \"path\"`"),
                _ => errors.error(
                    &key,
                    format!("unknown argument `{k}`; expected one of {KEYS}"),
                ),
            }
        }
        if let (Some(new), Some(_)) = (&new, &from) {
            errors.error(
                new,
                "`new` always generates a fresh id, so `from` would be ignored; use one of them",
            );
        }
        let policy = if new.is_some() {
            RequestIdPolicy::New
        } else {
            RequestIdPolicy::Ensure(from.clone())
        };
        Some(RequestIdArgs {
            policy,
            krate,
            from_tokens: from,
        })
    }

    /// `from` must name an argument.
    pub(crate) fn check(&self, function: &Function, errors: &mut Errors) {
        if let Some(from) = &self.from_tokens
            && !function.args().iter().any(|a| a.ident == *from)
        {
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
