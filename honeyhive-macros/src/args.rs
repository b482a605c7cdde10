//! What the attribute macros share when reading their arguments: a setter that reports
//! duplicate keys, and "did you mean" suggestions.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::Ident;

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
