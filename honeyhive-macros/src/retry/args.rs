//! The arguments of `#[retry(...)]`.

use std::time::Duration;

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitStr, Token};

use crate::args::{Once, Value, did_you_mean, parse_raw};
use crate::errors::Errors;

const KEYS: &[&str] = &[
    "max_attempts",
    "backoff",
    "jitter",
    "max_delay",
    "max_elapsed",
    "attempt_timeout",
    "when",
    "classify",
    "sleep",
    "clone",
    "crate",
];

/// The jitter modes, and the variant of the runtime's `Jitter` each names.
const JITTERS: &[(&str, &str)] = &[
    ("none", "None"),
    ("full", "Full"),
    ("equal", "Equal"),
    ("decorrelated", "Decorrelated"),
];

const BACKOFFS: &[&str] = &["constant", "exponential", "fibonacci"];

/// The defaults of the OpenAI and Anthropic SDKs.
pub(crate) const DEFAULT_INITIAL: Duration = Duration::from_millis(500);
pub(crate) const DEFAULT_FACTOR: f64 = 2.0;
pub(crate) const DEFAULT_MAX: Duration = Duration::from_secs(8);

/// The wait before each retry, before jitter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backoff {
    Constant(Duration),
    Exponential {
        initial: Duration,
        factor: f64,
        max: Duration,
    },
    Fibonacci {
        initial: Duration,
        max: Duration,
    },
}

pub(crate) struct RetryArgs {
    pub(crate) max_attempts: Once<u32>,
    pub(crate) backoff: Once<Backoff>,
    /// The variant of the runtime's `Jitter`.
    pub(crate) jitter: Once<&'static str>,
    pub(crate) max_delay: Once<Duration>,
    pub(crate) max_elapsed: Once<Duration>,
    pub(crate) attempt_timeout: Once<Duration>,
    pub(crate) when: Once<syn::Path>,
    pub(crate) classify: Once<syn::Path>,
    pub(crate) sleep: Once<syn::Path>,
    /// `clone(a, b)`: arguments cloned for each attempt.
    pub(crate) clone: Once<Vec<Ident>>,
    pub(crate) krate: Once<syn::Path>,
}

impl RetryArgs {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Option<Self> {
        let raw = match Parser::parse2(
            |input: ParseStream| parse_raw(input, &KEYS.join(", ")),
            tokens,
        ) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut args = RetryArgs {
            max_attempts: Once::new("max_attempts"),
            backoff: Once::new("backoff"),
            jitter: Once::new("jitter"),
            max_delay: Once::new("max_delay"),
            max_elapsed: Once::new("max_elapsed"),
            attempt_timeout: Once::new("attempt_timeout"),
            when: Once::new("when"),
            classify: Once::new("classify"),
            sleep: Once::new("sleep"),
            clone: Once::new("clone"),
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
            ("max_attempts", Value::Eq(e)) => {
                if let Some(n) = max_attempts(&e, errors) {
                    self.max_attempts.set(errors, key, n);
                }
            }
            ("backoff", Value::Eq(e)) => {
                if let Some(b) = backoff(&e, errors) {
                    self.backoff.set(errors, key, b);
                }
            }
            ("jitter", Value::Eq(e)) => {
                if let Some(j) = jitter(&e, errors) {
                    self.jitter.set(errors, key, j);
                }
            }
            ("max_delay", Value::Eq(e)) => {
                if let Some(d) = duration(&e, errors) {
                    self.max_delay.set(errors, key, d);
                }
            }
            ("max_elapsed", Value::Eq(e)) => {
                if let Some(d) = nonzero_duration(&e, "max_elapsed", errors) {
                    self.max_elapsed.set(errors, key, d);
                }
            }
            ("attempt_timeout", Value::Eq(e)) => {
                if let Some(d) = nonzero_duration(&e, "attempt_timeout", errors) {
                    self.attempt_timeout.set(errors, key, d);
                }
            }
            ("when", Value::Eq(e)) => {
                if let Some(p) = fn_path(&e, "when", "fn(&E) -> bool", errors) {
                    self.when.set(errors, key, p);
                }
            }
            ("classify", Value::Eq(e)) => {
                if let Some(p) = fn_path(&e, "classify", "fn(&E) -> Decision", errors) {
                    self.classify.set(errors, key, p);
                }
            }
            ("sleep", Value::Eq(e)) => {
                if let Some(p) = fn_path(&e, "sleep", "fn(Duration) -> impl Future", errors) {
                    self.sleep.set(errors, key, p);
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
            ("clone", Value::List(list)) => {
                // `self` is accepted here so that `check` can say why it cannot be cloned.
                let parse = |input: ParseStream| {
                    Punctuated::<Ident, Token![,]>::parse_terminated_with(input, Ident::parse_any)
                };
                match Parser::parse2(parse, list) {
                    Ok(idents) => self.clone.set(errors, key, idents.into_iter().collect()),
                    Err(e) => errors.push(syn::Error::new(
                        e.span(),
                        "expected argument names: `clone(a, b)`",
                    )),
                }
            }
            ("clone", _) => errors.error(key, "expected argument names: `clone(a, b)`"),
            (
                "max_attempts" | "backoff" | "jitter" | "max_delay" | "max_elapsed"
                | "attempt_timeout" | "when" | "classify" | "sleep" | "crate",
                _,
            ) => errors.error(key, format!("expected `{k} = <value>`")),
            _ => errors.error(key, unknown("argument", &k, KEYS)),
        }
    }
}

fn max_attempts(e: &Expr, errors: &mut Errors) -> Option<u32> {
    if let Expr::Lit(lit) = e
        && let Lit::Int(i) = &lit.lit
        && i.suffix().is_empty()
    {
        return match i.base10_parse::<u32>() {
            Ok(0) => {
                errors.error(
                    e,
                    "`max_attempts` counts every call, the first included, so it must be at least 1",
                );
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                errors.error(
                    e,
                    format!(
                        "`max_attempts` is too large: at most {} ({}::MAX)",
                        u32::MAX,
                        "u32"
                    ),
                );
                None
            }
        };
    }
    errors.error(
        e,
        "`max_attempts` must be a whole number of calls, e.g. `max_attempts = 3`",
    );
    None
}

fn jitter(e: &Expr, errors: &mut Errors) -> Option<&'static str> {
    let names: Vec<&str> = JITTERS.iter().map(|(j, _)| *j).collect();
    let Some(name) = ident_of(e) else {
        errors.error(
            e,
            format!("expected a jitter mode: one of {}", quoted(&names)),
        );
        return None;
    };
    let found = JITTERS.iter().find(|(j, _)| name == *j).map(|(_, v)| *v);
    if found.is_none() {
        errors.error(e, unknown("jitter", &name, &names));
    }
    found
}

fn ident_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(Ident::to_string),
        _ => None,
    }
}

fn backoff(e: &Expr, errors: &mut Errors) -> Option<Backoff> {
    let (name, args): (&Ident, Vec<&Expr>) = match e {
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            (p.path.get_ident()?, Vec::new())
        }
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                (p.path.get_ident()?, call.args.iter().collect())
            }
            _ => {
                errors.error(e, backoff_expected());
                return None;
            }
        },
        _ => {
            errors.error(e, backoff_expected());
            return None;
        }
    };
    match name.to_string().as_str() {
        "constant" => match args.as_slice() {
            [delay] if !matches!(delay, Expr::Assign(_)) => {
                duration(delay, errors).map(Backoff::Constant)
            }
            _ => {
                errors.error(e, "`constant` takes the delay: `constant(1s)`");
                None
            }
        },
        "exponential" => {
            let [initial, factor, max] =
                named(&args, "exponential", &["initial", "factor", "max"], errors)?;
            let initial = match initial {
                Some(e) => nonzero_duration(e, "initial", errors)?,
                None => DEFAULT_INITIAL,
            };
            let factor = match factor {
                Some(e) => growth_factor(e, errors)?,
                None => DEFAULT_FACTOR,
            };
            let max = bounded_max(max, initial, errors)?;
            Some(Backoff::Exponential {
                initial,
                factor,
                max,
            })
        }
        "fibonacci" => {
            let [initial, max] = named(&args, "fibonacci", &["initial", "max"], errors)?;
            let initial = match initial {
                Some(e) => nonzero_duration(e, "initial", errors)?,
                None => DEFAULT_INITIAL,
            };
            let max = bounded_max(max, initial, errors)?;
            Some(Backoff::Fibonacci { initial, max })
        }
        other => {
            errors.error(name, unknown("backoff", other, BACKOFFS));
            None
        }
    }
}

fn backoff_expected() -> &'static str {
    "expected a backoff: `constant(1s)`, `exponential(initial = 500ms, factor = 2, max = 8s)` or `fibonacci(initial = 500ms, max = 8s)`"
}

/// `max = d` of a growing backoff: at least `initial`; by default 8 s, or `initial` if larger.
fn bounded_max(max: Option<&Expr>, initial: Duration, errors: &mut Errors) -> Option<Duration> {
    let Some(e) = max else {
        return Some(DEFAULT_MAX.max(initial));
    };
    let max = duration(e, errors)?;
    if max < initial {
        errors.error(
            e,
            format!("`max` must be at least `initial` ({initial:?}), or the backoff never grows"),
        );
        return None;
    }
    Some(max)
}

/// The `key = value` arguments of a backoff, in the order of `keys`; `None` on any error.
fn named<'a, const N: usize>(
    args: &[&'a Expr],
    backoff: &str,
    keys: &[&'static str; N],
    errors: &mut Errors,
) -> Option<[Option<&'a Expr>; N]> {
    let mut out = [None; N];
    let mut ok = true;
    for arg in args {
        let Expr::Assign(assign) = arg else {
            let list: Vec<String> = keys.iter().map(|k| format!("`{k} = ..`")).collect();
            errors.error(
                arg,
                format!("`{backoff}` takes named values: {}", list.join(", ")),
            );
            ok = false;
            continue;
        };
        let Some(key) = ident_of(&assign.left) else {
            errors.error(&assign.left, format!("expected one of {}", quoted(keys)));
            ok = false;
            continue;
        };
        match keys.iter().position(|k| *k == key) {
            Some(i) if out[i].is_some() => {
                errors.error(&assign.left, format!("duplicate `{key}`"));
                ok = false;
            }
            Some(i) => out[i] = Some(&*assign.right),
            None => {
                errors.error(
                    &assign.left,
                    unknown(&format!("`{backoff}` value"), &key, keys),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn growth_factor(e: &Expr, errors: &mut Errors) -> Option<f64> {
    let factor = match e {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Float(f) if f.suffix().is_empty() => f.base10_parse::<f64>().ok(),
            Lit::Int(i) if i.suffix().is_empty() => i.base10_parse::<f64>().ok(),
            _ => None,
        },
        _ => None,
    };
    match factor {
        Some(f) if f >= 1.0 && f.is_finite() => Some(f),
        Some(_) => {
            errors.error(e, "`factor` must be at least 1, or the waits shrink");
            None
        }
        None => {
            errors.error(e, "`factor` must be a number literal, e.g. `factor = 2`");
            None
        }
    }
}

fn nonzero_duration(e: &Expr, key: &str, errors: &mut Errors) -> Option<Duration> {
    let d = duration(e, errors)?;
    if d.is_zero() {
        errors.error(e, format!("`{key}` must be more than zero"));
        return None;
    }
    Some(d)
}

/// A duration literal: `500ms`, `2s`, `1.5s`, `1m`, `1h`.
fn duration(e: &Expr, errors: &mut Errors) -> Option<Duration> {
    const EXPECTED: &str = "expected a duration such as `500ms`, `2s`, `1m` or `1h`";
    let Expr::Lit(lit) = e else {
        errors.error(e, EXPECTED);
        return None;
    };
    let (digits, suffix) = match &lit.lit {
        Lit::Int(i) => (i.base10_digits().to_owned(), i.suffix().to_owned()),
        Lit::Float(f) => (f.base10_digits().to_owned(), f.suffix().to_owned()),
        _ => {
            errors.error(e, EXPECTED);
            return None;
        }
    };
    let nanos_per_unit: u64 = match suffix.as_str() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => {
            errors.error(
                e,
                format!(
                    "`{digits}` needs a unit: `{digits}ms`, `{digits}s`, `{digits}m` or `{digits}h`"
                ),
            );
            return None;
        }
        other => {
            errors.error(
                e,
                format!("unknown unit `{other}`; expected `ms`, `s`, `m` or `h`"),
            );
            return None;
        }
    };
    let nanos = match digits.parse::<u64>() {
        Ok(whole) => whole.checked_mul(nanos_per_unit),
        // Whole nanoseconds of a fractional value (`1.5s`); f64 is exact well past a day.
        #[allow(clippy::cast_precision_loss)]
        Err(_) => digits
            .parse::<f64>()
            .ok()
            .and_then(|v| Duration::try_from_secs_f64(v * nanos_per_unit as f64 / 1e9).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok()),
    };
    let Some(nanos) = nanos else {
        errors.error(e, "this duration is too long");
        return None;
    };
    Some(Duration::from_nanos(nanos))
}

fn fn_path(e: &Expr, key: &str, shape: &str, errors: &mut Errors) -> Option<syn::Path> {
    match e {
        Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
        _ => {
            errors.error(
                e,
                format!(
                    "`{key}` must be the path of a function `{shape}`, e.g. `{key} = my_mod::{key}`"
                ),
            );
            None
        }
    }
}

fn lit_str(e: &Expr, key: &str, errors: &mut Errors) -> Option<LitStr> {
    if let Expr::Lit(lit) = e
        && let Lit::Str(s) = &lit.lit
    {
        return Some(s.clone());
    }
    errors.error(
        e,
        format!("`{key}` must be a string literal, e.g. `{key} = \"...\"`"),
    );
    None
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "unknown {what} `x`; did you mean `y`? Expected one of ...".
fn unknown(what: &str, found: &str, expected: &[&str]) -> String {
    let list = quoted(expected);
    match did_you_mean(found, expected.iter().copied()) {
        Some(guess) => {
            format!("unknown {what} `{found}`; did you mean `{guess}`? Expected one of {list}")
        }
        None => format!("unknown {what} `{found}`; expected one of {list}"),
    }
}
