//! Secrets recognised by their shape, found in one scan.
//!
//! A cheap prefilter (Aho-Corasick over the literal every format contains, ASCII
//! case-insensitive) answers "no secret here" for almost every string without running a regular
//! expression. Only text with a hit is searched with one combined expression (no capture groups),
//! and only each match found is looked at again, to keep the part in front of the secret
//! (`Bearer `, `password=`, `postgres://user:`) and to drop look-alikes (`max_tokens: 100000`,
//! `Bearer authentication`).
//!
//! Used by [`redact`](crate::redact) on the export thread, and by the capture cut on the caller's
//! thread (only for a value that is being cut), so that a cut never keeps part of a secret.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// Names that make the value after `=` or `:` a secret (`db_password = ...`, `"api_key": ...`).
/// The name may have any prefix (`aws_secret_access_key`) and a short suffix (`_id`, `s`).
const KEY_NAMES: &str = r"api[_\-]?key|x[_\-]api[_\-]key|secret|password|passwd|token|credentials?|private[_\-]?key|access[_\-]?key|client[_\-]?secret|auth[_\-]?key|signing[_\-]?key|account[_\-]?key|shared[_\-]?access[_\-]?key|connection[_\-]?string";

/// The formats, as one alternation. Each alternative contains a literal of [`LITERALS`].
fn pattern() -> String {
    let formats: &[&str] = &[
        // `name = value` assignments, in code, JSON, Debug output, env files, query strings.
        &format!(
            r#"(?i:\b[a-z0-9_.\-]*?(?:{KEY_NAMES})(?:[_\-]?(?:id|key|value|token|secret))?s?)["']?\s*(?:=|:)\s*["']?[^\s"'`,;&<>]{{6,}}"#
        ),
        // HTTP authorization schemes.
        r"(?i:\b(?:bearer|basic|token))\s+[A-Za-z0-9._~+/=\-]{8,}",
        // Credentials in URLs, any scheme (https, postgres, mongodb+srv, redis, amqp, ...).
        r#"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@"'<>]*:[^\s/@"'<>]+@"#,
        // PEM private keys; one cut before its end is redacted to the end of the text.
        r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----|\z)",
        // Azure storage and service bus connection strings, SAS signatures.
        r"(?i:\b(?:AccountKey|SharedAccessKey)=)[A-Za-z0-9+/]{20,}={0,2}",
        r"[?&]sig=[A-Za-z0-9%+/=]{20,}",
        // Provider keys by prefix.
        r"\bsk-ant-[A-Za-z0-9_\-]{16,}",
        r"\bsk-[A-Za-z0-9_\-]{16,}",
        r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
        r"\bwhsec_[A-Za-z0-9]{16,}",
        r"\bAIza[0-9A-Za-z_\-]{30,}",
        r"\bGOCSPX-[A-Za-z0-9_\-]{20,}",
        r"\bya29\.[A-Za-z0-9_\-]{20,}",
        r"\bhh_[A-Za-z0-9_\-]{12,}",
        r"\bhf_[A-Za-z0-9]{30,}",
        r"\bglpat-[A-Za-z0-9_\-]{20,}",
        r"\bgl(?:dt|ptt|rt|cbt|soat|c|sa)-[A-Za-z0-9_\-]{20,}",
        r"\bnpm_[A-Za-z0-9]{36}\b",
        r"\bpypi-AgE[A-Za-z0-9_\-]{50,}",
        r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
        r"\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"\bgithub_pat_[A-Za-z0-9_]{20,}",
        r"\bxox[abposre]-[A-Za-z0-9\-]{10,}",
        r"\bxapp-[0-9]-[A-Za-z0-9\-]{10,}",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]{10,}",
        r"https://(?:discord|discordapp)\.com/api/webhooks/[0-9]+/[A-Za-z0-9_\-]{20,}",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[0-9A-Z]{16}\b",
        r"\bSK[0-9a-fA-F]{32}\b",
        r"\b[0-9a-f]{32}-us[0-9]{1,2}\b",
        r"\bdop_v1_[a-f0-9]{64}\b",
        r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b",
        r"\bdapi[0-9a-f]{32}\b",
        r"\blin_api_[A-Za-z0-9]{32,}",
        r"\bPMAK-[A-Za-z0-9]{24}-[A-Za-z0-9]{34}",
        r"\bNRAK-[A-Z0-9]{27}\b",
        r"\bgsk_[A-Za-z0-9]{40,}",
        r"\br8_[A-Za-z0-9]{30,}",
        r"\bpplx-[A-Za-z0-9]{40,}",
        r"\bxai-[A-Za-z0-9]{40,}",
        r"\blsv2_(?:pt|sk)_[A-Za-z0-9_]{30,}",
        r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?",
    ];
    // A word boundary, or the end of a `\n`-style escape: LLM messages are rendered as JSON
    // before redaction, and `\nsk-...` has no boundary in front of the key. Boundaries are
    // ASCII ones: a Unicode `\b` keeps the fast DFA engines off any text with a non-ASCII byte.
    formats
        .iter()
        .map(|f| {
            const BOUNDARY: &str = r"(?:\b|\\[nrt])";
            if let Some(rest) = f.strip_prefix(r"(?i:\b") {
                format!("(?i:{BOUNDARY}{rest}")
            } else if let Some(rest) = f.strip_prefix(r"\b") {
                format!("{BOUNDARY}{rest}")
            } else {
                (*f).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
        .replace(r"\b", r"(?-u:\b)")
}

/// One literal at least of each format, for the prefilter.
const LITERALS: &[&str] = &[
    // assignments
    "api_key",
    "api-key",
    "apikey",
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "private_key",
    "private-key",
    "privatekey",
    "access_key",
    "access-key",
    "accesskey",
    "auth_key",
    "auth-key",
    "authkey",
    "signing_key",
    "signing-key",
    "account_key",
    "account-key",
    "accountkey",
    "sharedaccesskey",
    "shared_access_key",
    "connection_string",
    "connection-string",
    "connectionstring", // schemes and URLs
    "bearer",
    "basic",
    "://",
    "-----begin",
    "sig=", // prefixes
    "sk-",
    "sk_",
    "rk_",
    "whsec_",
    "aiza",
    "gocspx-",
    "ya29.",
    "hh_",
    "hf_",
    "glpat-",
    "gldt-",
    "glptt-",
    "glrt-",
    "glcbt-",
    "glsoat-",
    "glc-",
    "glsa-",
    "npm_",
    "pypi-",
    "sg.",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "xapp-",
    "akia",
    "asia",
    "abia",
    "acca",
    "agpa",
    "aida",
    "aipa",
    "anpa",
    "anva",
    "apka",
    "aroa",
    "asca",
    "sk",
    "-us",
    "dop_v1_",
    "shpat_",
    "shpss_",
    "shpca_",
    "shppa_",
    "dapi",
    "lin_api_",
    "pmak-",
    "nrak-",
    "gsk_",
    "r8_",
    "pplx-",
    "xai-",
    "lsv2_",
    "age-secret-key-",
    "eyj",
];

/// The compiled scanner, shared by every redactor and by the capture cut.
pub(crate) struct Scanner {
    prefilter: AhoCorasick,
    formats: Regex,
    /// What stays in front of a secret, found again in a match only.
    keep: Regex,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").finish_non_exhaustive()
    }
}

/// The built-in scanner, compiled once.
pub(crate) fn scanner() -> &'static Scanner {
    static SCANNER: LazyLock<Scanner> = LazyLock::new(|| {
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(LITERALS)
            .expect("the secret literals build an automaton");
        let formats = Regex::new(&pattern()).expect("the secret formats compile");
        let keep = Regex::new(&format!(
            r#"^(?:(?i:[a-z0-9_.\-]*?(?:{KEY_NAMES})(?:[_\-]?(?:id|key|value|token|secret))?s?)["']?\s*(?:=|:)\s*["']?|(?i:(?:bearer|basic|token))\s+|[A-Za-z][A-Za-z0-9+.\-]{{1,20}}://[^\s:/@"'<>]*:|(?i:(?:AccountKey|SharedAccessKey)=)|[?&]sig=)"#
        ))
        .expect("the keep pattern compiles");
        Scanner {
            prefilter,
            formats,
            keep,
        }
    });
    &SCANNER
}

/// A secret found in a text: `secret` is what is replaced, inside `whole`, the match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// The whole match, with the context kept in front (`Bearer `) and behind (`@`).
    pub(crate) whole: Range<usize>,
    /// The secret itself.
    pub(crate) secret: Range<usize>,
}

impl Scanner {
    /// Whether the prefilter lets `text` through; most text stops here.
    #[inline]
    pub(crate) fn may_contain(&self, text: &str) -> bool {
        self.prefilter.is_match(text)
    }

    /// Every secret in `text`, in order, not overlapping.
    pub(crate) fn find_all(&self, text: &str) -> Vec<Found> {
        if !self.may_contain(text) {
            return Vec::new();
        }
        self.formats
            .find_iter(text)
            .filter_map(|m| self.classify(text, m.range()))
            .collect()
    }

    /// The secret inside one match, or `None` for a look-alike.
    fn classify(&self, text: &str, whole: Range<usize>) -> Option<Found> {
        let mut matched = &text[whole.clone()];
        // An escape in front (`\n` in JSON text) is kept, and is not part of the secret.
        let escape = if matched.starts_with('\\') { 2 } else { 0 };
        matched = &matched[escape..];
        let whole = whole.start + escape..whole.end;
        let keep = self.keep.find(matched).map_or(0, |k| k.end());
        let mut end = matched.len();
        if matched.ends_with('@') && matched.contains("://") {
            end -= 1; // the `@` of `user:password@host` stays
        }
        let value = &matched[keep..end];
        if keep > 0 && !plausible(&matched[..keep], value) {
            return None;
        }

        Some(Found {
            secret: whole.start + keep..whole.start + end,
            whole,
        })
    }
}

/// Values after a secret-like name that are flags or placeholders.
const BORING: &[&str] = &[
    "true",
    "false",
    "null",
    "none",
    "nil",
    "undefined",
    "enabled",
    "disabled",
    "required",
    "optional",
    "redacted",
    "changeme",
    "<redacted>",
    "********",
];

/// Drops values after a secret-like name or scheme that are not secrets: placeholders, flags,
/// counts of tokens, an already redacted value, a `Bearer` followed by a word.
fn plausible(context: &str, value: &str) -> bool {
    let lower = context.to_ascii_lowercase();
    // Already redacted, a placeholder, or the capture cut's marker (`…[truncated N bytes]`).
    if value.starts_with("[REDACTED")
        || value.starts_with("${")
        || value.starts_with("{{")
        || value.starts_with("…[")
    {
        return false;
    }
    if BORING.iter().any(|b| value.eq_ignore_ascii_case(b)) || value.bytes().all(|b| b == b'*') {
        return false;
    }
    let scheme = lower.trim_end();
    if scheme.ends_with("basic") {
        return decodes_to_credentials(value);
    }
    if scheme.ends_with("bearer") || (scheme.ends_with("token") && !lower.contains(['=', ':'])) {
        // `Bearer authentication`, `token expiration`: a word of prose, not a credential.
        let word = value.bytes().all(|b| b.is_ascii_lowercase());
        return !(word && PROSE.contains(&value));
    }
    if lower.contains("token") && value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return false; // `max_tokens: 100000`, `tokens=1.5`
    }
    true
}

/// Words that follow `bearer` or `token` in prose, in lower case.
const PROSE: &[&str] = &[
    "authentication",
    "authorization",
    "credentials",
    "expiration",
    "expiry",
    "expired",
    "invalid",
    "missing",
    "required",
    "refresh",
    "rotation",
    "validation",
    "verification",
    "generation",
    "tokens",
    "scheme",
    "header",
    "headers",
    "format",
    "strategy",
    "exchange",
    "introspection",
    "revocation",
    "provided",
    "returned",
    "received",
    "accounting",
    "budgeting",
    "counting",
    "limits",
    "overflow",
];

/// `Basic` credentials are base64 of `user:password`.
fn decodes_to_credentials(value: &str) -> bool {
    let mut bits = 0u32;
    let mut nbits = 0;
    for b in value.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return false,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            if (bits >> nbits) & 0xff == u32::from(b':') {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(text: &str) -> Vec<&str> {
        scanner()
            .find_all(text)
            .into_iter()
            .map(|f| &text[f.secret])
            .collect()
    }

    #[test]
    fn the_part_in_front_of_a_secret_is_kept() {
        assert_eq!(secrets("password=P@ss!w0rd#2024$"), ["P@ss!w0rd#2024$"]);
        assert_eq!(
            secrets(r#"{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#),
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
        );
        assert_eq!(secrets("postgres://app:s3cr3t@db:5432/x"), ["s3cr3t"]);
        assert_eq!(
            secrets("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            ["YWxhZGRpbjpvcGVuc2VzYW1l"]
        );
    }

    #[test]
    fn a_secret_after_a_json_escape_is_found_and_the_escape_kept() {
        let text = r#"{"content":"my key:\nsk-abcDEF0123456789xyzXYZ\nthanks"}"#;
        assert_eq!(secrets(text), ["sk-abcDEF0123456789xyzXYZ"]);
        assert!(secrets("task-abcdefghijklmnopqrstuvwx").is_empty());
    }

    #[test]
    fn look_alikes_are_not_secrets() {
        for text in [
            "max_tokens: 100000",
            "Bearer authentication is used here",
            "Basic information about the user",
            "password: ${DB_PASSWORD}",
            "secret: true",
            "https://example.com:8080/path",
            "tokens used: 1234567",
            "the tokenizer is cl100k_base",
            "token expiration is one hour",
        ] {
            assert_eq!(secrets(text), Vec::<&str>::new(), "{text}");
        }
    }

    #[test]
    fn an_unterminated_pem_key_is_a_secret_to_the_end() {
        let text = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc";
        assert_eq!(scanner().find_all(text)[0].whole.end, text.len());
    }
}
