//! The arguments of `#[trace(...)]`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitStr, Token};

use crate::args::{Once, Value, did_you_mean, parse_raw};
use crate::errors::Errors;

const KEYS: &[&str] = &[
    "name",
    "event_type",
    "sample_rate",
    "skip",
    "skip_all",
    "skip_output",
    "metadata",
    "evaluate",
    "resources",
    "crate",
];

/// `HoneyHive`'s event types; the first four are `HoneyHive`'s own, the rest are span kinds that
/// `OpenInference` and Phoenix render.
pub(crate) const EVENT_TYPES: &[(&str, &str)] = &[
    ("model", "Model"),
    ("tool", "Tool"),
    ("chain", "Chain"),
    ("session", "Session"),
    ("agent", "Agent"),
    ("retriever", "Retriever"),
    ("embedding", "Embedding"),
    ("evaluator", "Evaluator"),
    ("guardrail", "Guardrail"),
];

/// A `metadata(key = expr)` entry.
pub(crate) struct MetadataEntry {
    pub(crate) key: Ident,
    pub(crate) value: Expr,
}

/// An evaluator named in `evaluate = path` or `evaluate(path, async path)`.
pub(crate) struct EvaluatorArg {
    pub(crate) path: syn::Path,
    /// `async path`: an async evaluator, run off the caller's task.
    pub(crate) asyncness: Option<Token![async]>,
}

pub(crate) struct TraceArgs {
    pub(crate) name: Once<LitStr>,
    /// The variant of `EventType`.
    pub(crate) event_type: Once<&'static str>,
    pub(crate) sample_rate: Once<f64>,
    pub(crate) skip: Once<Vec<Ident>>,
    pub(crate) skip_all: Once<()>,
    pub(crate) skip_output: Once<()>,
    pub(crate) metadata: Once<Vec<MetadataEntry>>,
    /// Every `evaluate` argument, in order (the key may be repeated).
    pub(crate) evaluate: Vec<(Ident, EvaluatorArg)>,
    pub(crate) resources: Once<()>,
    pub(crate) krate: Once<syn::Path>,
}

impl TraceArgs {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Option<Self> {
        let raw = match Parser::parse2(|input: ParseStream| parse_raw(input, &key_list()), tokens) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut args = TraceArgs {
            name: Once::new("name"),
            event_type: Once::new("event_type"),
            sample_rate: Once::new("sample_rate"),
            skip: Once::new("skip"),
            skip_all: Once::new("skip_all"),
            skip_output: Once::new("skip_output"),
            metadata: Once::new("metadata"),
            evaluate: Vec::new(),
            resources: Once::new("resources"),
            krate: Once::new("crate"),
        };
        for (key, value) in raw {
            args.interpret(&key, value, errors);
        }
        Some(args)
    }

    fn interpret(&mut self, key: &Ident, value: Value, errors: &mut Errors) {
        let k = key.to_string();
        match (k.as_str(), value) {
            ("name", Value::Eq(e)) => {
                if let Some(s) = lit_str(&e, "name", errors) {
                    if s.value().is_empty() {
                        errors.error(&s, "the span name cannot be empty");
                    }
                    self.name.set(errors, key, s);
                }
            }
            ("event_type", Value::Eq(e)) => {
                if let Some(s) = lit_str(&e, "event_type", errors) {
                    match EVENT_TYPES.iter().find(|(name, _)| *name == s.value()) {
                        Some((_, variant)) => self.event_type.set(errors, key, variant),
                        None => errors.error(&s, unknown_event_type(&s.value())),
                    }
                }
            }
            ("sample_rate", Value::Eq(e)) => {
                if let Some(rate) = sample_rate(&e, errors) {
                    self.sample_rate.set(errors, key, rate);
                }
            }
            ("crate", Value::Eq(e)) => {
                if let Some(s) = lit_str(&e, "crate", errors) {
                    match s.parse::<syn::Path>() {
                        Ok(path) => self.krate.set(errors, key, path),
                        Err(_) => errors.error(
                            &s,
                            "`crate` must be a path, e.g. `crate = \"my_honeyhive\"`",
                        ),
                    }
                }
            }
            ("skip", Value::List(list)) => self.skip_list(key, list, errors),
            ("metadata", Value::List(list)) => match Parser::parse2(parse_metadata, list) {
                Ok(entries) => self.metadata.set(errors, key, entries),
                Err(e) => errors.push(e),
            },
            ("evaluate", Value::Eq(e)) => match e {
                Expr::Path(p) if p.attrs.is_empty() && p.qself.is_none() => {
                    let arg = EvaluatorArg {
                        path: p.path,
                        asyncness: None,
                    };
                    self.evaluate.push((key.clone(), arg));
                }
                other => errors.error(&other, NOT_AN_EVALUATOR),
            },
            ("evaluate", Value::List(list)) => match Parser::parse2(parse_evaluators, list) {
                Ok(list) => {
                    for arg in list {
                        self.evaluate.push((key.clone(), arg));
                    }
                }
                Err(e) => errors.push(e),
            },
            ("evaluate", Value::None) => errors.error(key, NOT_AN_EVALUATOR),
            ("resources", Value::None) => self.resources.set(errors, key, ()),
            ("skip_all", Value::None) => self.skip_all.set(errors, key, ()),
            ("skip_output", Value::None) => self.skip_output.set(errors, key, ()),
            ("name" | "event_type" | "sample_rate" | "crate", _) => {
                let example = match k.as_str() {
                    "name" => "name = \"my_span\"",
                    "event_type" => "event_type = \"model\"",
                    "sample_rate" => "sample_rate = 0.25",
                    _ => "crate = \"my_honeyhive\"",
                };
                errors.error(key, format!("`{k}` takes a value: `{example}`"));
            }
            ("skip", value) => {
                let example = match value {
                    Value::Eq(e) => e.to_token_stream().to_string(),
                    _ => "api_key".to_owned(),
                };
                errors.error(
                    key,
                    format!("`skip` takes a list of argument names: `skip({example})`"),
                );
            }
            ("metadata", _) => {
                errors.error(
                    key,
                    "`metadata` takes a list of entries: `metadata(key = value, ...)`",
                );
            }
            ("skip_all" | "skip_output" | "resources", _) => {
                errors.error(key, format!("`{k}` takes no value: write `{k}` alone"));
            }
            _ => errors.error(key, unknown_key(&k)),
        }
    }

    /// `skip(a, b)`.
    fn skip_list(&mut self, key: &Ident, list: TokenStream, errors: &mut Errors) {
        match Parser::parse2(
            Punctuated::<Ident, Token![,]>::parse_terminated,
            list.clone(),
        ) {
            Ok(idents) => match self.skip.get() {
                // `skip(a), skip(b)`: say how to write it once.
                Some(first) => {
                    let all: Vec<String> = first
                        .value
                        .iter()
                        .chain(&idents)
                        .map(ToString::to_string)
                        .collect();
                    errors.error(
                        key,
                        format!(
                            "duplicate argument `skip`: list every skipped argument in one `skip({})`",
                            all.join(", ")
                        ),
                    );
                }
                None => self.skip.set(errors, key, idents.into_iter().collect()),
            },
            Err(e) => {
                let message =
                    match Parser::parse2(Punctuated::<LitStr, Token![,]>::parse_terminated, list) {
                        Ok(names) => format!(
                            "`skip` takes argument names, not strings: `skip({})`",
                            names
                                .iter()
                                .map(LitStr::value)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Err(_) => "expected argument names: `skip(a, b)`".to_owned(),
                    };
                errors.push(syn::Error::new(e.span(), message));
            }
        }
    }
}

/// "`name`, `event_type`, ...".
fn key_list() -> String {
    KEYS.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key(key: &str) -> String {
    let list = key_list();
    match did_you_mean(key, KEYS.iter().copied()) {
        Some(guess) => {
            format!("unknown argument `{key}`; did you mean `{guess}`? Expected one of {list}")
        }
        None => format!("unknown argument `{key}`; expected one of {list}"),
    }
}

fn unknown_event_type(value: &str) -> String {
    let list = EVENT_TYPES
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(value, EVENT_TYPES.iter().map(|(k, _)| *k)) {
        Some(guess) => format!(
            "unknown event type \"{value}\"; did you mean \"{guess}\"? Expected one of {list}"
        ),
        None => format!("unknown event type \"{value}\"; expected one of {list}"),
    }
}

fn lit_str(e: &Expr, key: &str, errors: &mut Errors) -> Option<LitStr> {
    if let Expr::Lit(lit) = e
        && let Lit::Str(s) = &lit.lit
    {
        return Some(s.clone());
    }
    // `name = answer` or `crate = hh`: the fix is to quote what the user wrote.
    let example = match e {
        Expr::Path(_) => e.to_token_stream().to_string().replace(' ', ""),
        _ => "...".to_owned(),
    };
    errors.error(
        e,
        format!("`{key}` must be a string literal: `{key} = \"{example}\"`"),
    );
    None
}

fn sample_rate(e: &Expr, errors: &mut Errors) -> Option<f64> {
    let parsed = match e {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok(),
            Lit::Int(i) => i.base10_parse::<f64>().ok(),
            Lit::Str(s) if s.value().trim().parse::<f64>().is_ok() => {
                errors.error(
                    e,
                    format!(
                        "`sample_rate` is a number, not a string: `sample_rate = {}`",
                        s.value().trim()
                    ),
                );
                return None;
            }
            _ => None,
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => Some(-1.0),
        _ => None,
    };
    match parsed {
        Some(rate) if (0.0..=1.0).contains(&rate) => Some(rate),
        Some(_) => {
            errors.error(
                e,
                "`sample_rate` must be between 0 and 1: it is the fraction of calls kept, e.g. `sample_rate = 0.25` keeps one in four",
            );
            None
        }
        None => {
            errors.error(
                e,
                "`sample_rate` must be a number literal between 0 and 1, e.g. `sample_rate = 0.25`; it is checked at compile time, so constants and expressions are not accepted",
            );
            None
        }
    }
}

const NOT_AN_EVALUATOR: &str = "`evaluate` takes the path of an evaluator function: `evaluate = my_evaluator`, or several: `evaluate(relevance, async judge)`";

/// `evaluate(a, async b, path::c)`.
fn parse_evaluators(input: ParseStream) -> syn::Result<Vec<EvaluatorArg>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let asyncness: Option<Token![async]> = input.parse()?;
        let path = match input.parse::<syn::Path>() {
            Ok(path) if input.is_empty() || input.peek(Token![,]) => path,
            _ => {
                let bad: TokenStream = input.parse()?;
                let at = bad
                    .into_iter()
                    .next()
                    .map_or_else(|| input.span(), |t| t.span());
                return Err(syn::Error::new(at, NOT_AN_EVALUATOR));
            }
        };
        out.push(EvaluatorArg { path, asyncness });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(out)
}

fn parse_metadata(input: ParseStream) -> syn::Result<Vec<MetadataEntry>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        if let Ok(Lit::Str(s)) = input.fork().parse::<Lit>() {
            let key = syn::parse_str::<Ident>(&s.value())
                .map_or_else(|_| "key".to_owned(), |k| k.to_string());
            return Err(syn::Error::new(
                s.span(),
                format!("metadata keys are identifiers, not strings: `metadata({key} = ...)`"),
            ));
        }
        let key: Ident = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "expected `key = <expression>` in `metadata(...)`")
        })?;
        // Errors at the end of the list would point at the whole attribute: point at the key.
        let Ok(eq) = input.parse::<Token![=]>() else {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "expected `{key} = <expression>`: each metadata entry is a key and a value"
                ),
            ));
        };
        if input.is_empty() || input.peek(Token![,]) {
            return Err(syn::Error::new(
                eq.span,
                format!("expected a value after `{key} =`"),
            ));
        }
        let value: Expr = input.parse()?;
        out.push(MetadataEntry { key, value });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(out)
}
