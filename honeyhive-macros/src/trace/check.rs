//! Rules that involve both the arguments and the function; the result is a plan that
//! `expand` follows without further checks.

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, LitStr, Type};

use super::args::{MetadataEntry, TraceArgs};
use crate::args::did_you_mean;
use crate::errors::Errors;
use crate::item::Function;

/// Everything the expansion needs, already validated.
pub(crate) struct Plan<'a> {
    pub(crate) krate: TokenStream,
    pub(crate) name: LitStr,
    pub(crate) event_type: Ident,
    pub(crate) sample_rate: Option<f64>,
    /// Arguments to record, with their types (for errors at the user's tokens).
    /// Each recorded argument: its name, its type and its `cfg` attributes.
    pub(crate) inputs: Vec<(Ident, Type, TokenStream)>,
    pub(crate) metadata: Vec<&'a MetadataEntry>,
    pub(crate) record_output: bool,
    pub(crate) evaluators: Vec<Evaluator<'a>>,
    /// `resources`: CPU and memory per recorded call.
    pub(crate) resources: bool,
}

/// An evaluator to run after the body.
pub(crate) struct Evaluator<'a> {
    pub(crate) path: &'a syn::Path,
    pub(crate) is_async: bool,
    /// What its result is recorded as: the last segment of the path.
    pub(crate) name: String,
}

#[allow(clippy::too_many_lines)] // one pass over the options, in their order
pub(crate) fn check<'a>(args: &'a TraceArgs, function: &Function, errors: &mut Errors) -> Plan<'a> {
    check_shape(args, function, errors);
    let all_args = function.args();
    let bound_by_pattern = crate::item::pattern_bindings(&function.item);
    let skip_all = args.skip_all.get().is_some();
    let mut skipped: Vec<&Ident> = Vec::new();
    if let Some(skip) = args.skip.get() {
        if let Some(all) = args.skip_all.get() {
            errors.error(
                &all.tokens,
                "`skip_all` already skips every argument; remove `skip(...)` or `skip_all`",
            );
        }
        for ident in &skip.value {
            if ident == "self" {
                continue;
            }
            if all_args.iter().any(|a| a.ident == *ident) {
                if skipped.contains(&ident) {
                    errors.error(ident, format!("`{ident}` is skipped twice; list it once"));
                }
                skipped.push(ident);
            } else if bound_by_pattern.contains(ident) {
                errors.error(
                    ident,
                    format!("cannot skip `{ident}`: it is bound by a pattern, and arguments bound by patterns are never captured; remove it from `skip(..)`"),
                );
            } else {
                let names: Vec<String> = all_args.iter().map(|a| a.ident.to_string()).collect();
                let known = if names.is_empty() {
                    "the function has no named arguments".to_owned()
                } else {
                    let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                    let list = list.join(", ");
                    match did_you_mean(&ident.to_string(), names.iter().map(String::as_str)) {
                        Some(guess) => {
                            format!("did you mean `{guess}`? The arguments are {list}")
                        }
                        None => format!("the arguments are {list}"),
                    }
                };
                errors.error(
                    ident,
                    format!("cannot skip `{ident}`: there is no such argument; {known}"),
                );
            }
        }
    }
    let inputs = if skip_all {
        Vec::new()
    } else {
        all_args
            .into_iter()
            .filter(|a| !skipped.contains(&&a.ident))
            .map(|a| (a.ident, a.ty, a.cfg))
            .collect()
    };
    let mut metadata: Vec<&MetadataEntry> = Vec::new();
    if let Some(entries) = args.metadata.get() {
        for entry in &entries.value {
            if metadata.iter().any(|m| m.key == entry.key) {
                errors.error(
                    &entry.key,
                    format!(
                        "duplicate metadata key `{}`: each key may be given once",
                        entry.key
                    ),
                );
            }
            if let Some((at, what)) = escape_from(&entry.value) {
                errors.push(syn::Error::new(
                    at,
                    format!(
                        "{what} in `metadata({key} = ..)` would leave the function only when the \
                         span is sampled (the expression runs only then): handle it inside the \
                         expression, e.g. with `.ok()` or `.unwrap_or_default()`",
                        key = entry.key
                    ),
                ));
            }
            metadata.push(entry);
        }
    }
    let evaluators = evaluators(args, errors);
    let resources = args.resources.get().is_some();
    check_extras(args, function, errors);
    let krate = args.krate.get().map_or_else(
        || quote!(::honeyhive_runtime),
        |k| {
            let path = &k.value;
            quote!(#path)
        },
    );
    let name = args.name.get().map_or_else(
        || {
            LitStr::new(
                &unraw(&function.item.sig.ident),
                function.item.sig.ident.span(),
            )
        },
        |n| n.value.clone(),
    );
    let event_type = Ident::new(
        args.event_type.get().map_or("Tool", |e| e.value),
        proc_macro2::Span::call_site(),
    );
    Plan {
        krate,
        name,
        event_type,
        sample_rate: args.sample_rate.get().map(|r| r.value),
        inputs,
        metadata,
        record_output: args.skip_output.get().is_none(),
        evaluators,
        resources,
    }
}

fn evaluators<'a>(args: &'a TraceArgs, errors: &mut Errors) -> Vec<Evaluator<'a>> {
    let mut out: Vec<Evaluator<'a>> = Vec::new();
    for (_, arg) in &args.evaluate {
        let Some(last) = arg.path.segments.last() else {
            continue;
        };
        let name = unraw(&last.ident);
        if out.iter().any(|e| e.name == name) {
            errors.error(
                &arg.path,
                format!("the evaluator `{name}` is listed twice; each result is recorded under its name, so list it once"),
            );
        }
        out.push(Evaluator {
            path: &arg.path,
            is_async: arg.asyncness.is_some(),
            name,
        });
    }
    out
}

/// `evaluate` and `resources` work on a sync fn or an `async fn`; not (yet) on the shapes
/// whose span outlives the call (streams, returned futures, `#[async_trait]` methods) nor on
/// a fn that never returns.
fn check_extras(args: &TraceArgs, function: &Function, errors: &mut Errors) {
    let ret = function.return_type();
    let shape = if function.async_trait_block_ref() {
        Some("an `#[async_trait]` method")
    } else if crate::item::stream_kind(ret).is_some() {
        Some("a function returning a stream or iterator")
    } else if !function.is_async() && matches!(crate::item::future_kind(ret), Ok(Some(_))) {
        Some("a function returning a future (make it an `async fn`)")
    } else if matches!(ret, Some(Type::Never(_))) {
        Some("a function that never returns")
    } else {
        None
    };
    let Some(shape) = shape else { return };
    if let Some((key, _)) = args.evaluate.first() {
        errors.error(key, format!("`evaluate` is not supported on {shape}"));
    }
    if let Some(r) = args.resources.get() {
        errors.error(
            &r.tokens,
            format!("`resources` is not supported on {shape}"),
        );
    }
}

/// Rules about the function as a whole: `#[trace]` twice, a future it cannot wrap.
fn check_shape(args: &TraceArgs, function: &Function, errors: &mut Errors) {
    let krate_path = args.krate.get().map(|k| &k.value);
    // `#[trace] #[trace]`: two spans per call is never what was meant. (`#[trace] #[retry]
    // #[trace]`, a span per call around a span per attempt, reaches here without the second:
    // the retry below took it.)
    if let Some(second) = function
        .item
        .attrs
        .iter()
        .find(|a| crate::item::is_ours(a, "trace", krate_path))
    {
        errors.error(
            second,
            "`#[trace]` is applied twice to this function, which would record two nested spans per call; remove one (for a span per retry attempt as well, write `#[trace] #[retry] #[trace]`)",
        );
    }
    if let Some(ret) = function.return_type()
        && !function.async_trait_block_ref()
        && !function.is_async()
        && let Err(bound) = crate::item::future_kind(Some(ret))
    {
        errors.error(
            bound,
            "`#[trace]` traces the future this function returns by wrapping it in a future of its own, which is `Send`, `Sync` and `Unpin` when this one is but cannot promise this bound; return `impl Future<Output = ..>` (with `Send`, `Sync`, `Unpin` if needed), `Pin<Box<dyn Future<..>>>`, or make it an `async fn`",
        );
    }
}

/// `r#type` is recorded as `type`.
pub(crate) fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#")
        .map_or_else(|| s.clone(), str::to_owned)
}

/// A `?` or `return` in `expr` that would leave the traced function (not one inside a closure,
/// an async block or an item of its own), with what it is.
fn escape_from(expr: &Expr) -> Option<(proc_macro2::Span, &'static str)> {
    struct Escapes(Option<(proc_macro2::Span, &'static str)>);
    impl VisitMut for Escapes {
        fn visit_expr_try_mut(&mut self, e: &mut syn::ExprTry) {
            self.0.get_or_insert((e.question_token.span, "`?`"));
            syn::visit_mut::visit_expr_try_mut(self, e);
        }
        fn visit_expr_return_mut(&mut self, e: &mut syn::ExprReturn) {
            self.0.get_or_insert((e.return_token.span, "`return`"));
        }
        // Their own `?` and `return` stay inside them.
        fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
        fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
        fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    }
    let mut escapes = Escapes(None);
    escapes.visit_expr_mut(&mut expr.clone());
    escapes.0
}
