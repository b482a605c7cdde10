//! Secrets recognised by their shape, found in one scan.
//!
//! A cheap prefilter (Aho-Corasick over the literal every format contains, ASCII
//! case-insensitive) answers "no secret here" for almost every string without running a regular
//! expression. Only text with a hit is searched with one combined expression (no capture groups),
//! and only each match found is looked at again, to keep the part in front of the secret
//! (`Bearer `, `password=`, `postgres://user:`) and to drop look-alikes (`max_tokens: 100000`,
//! `Bearer authentication`).
//!
//! A few formats have no literal (a Discord bot token, an AWS secret key without its name, a
//! quoted base64 string of high entropy): those are recognised by the [shape](shapes) of one
//! long token, looked at only where the first screen saw a run long enough.
//!
//! Used by [`redact`](crate::redact) on the export thread, and by the capture cut on the caller's
//! thread (only for a value that is being cut), so that a cut never keeps part of a secret.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// Names that make the value after `=` or `:` a secret (`db_password = ...`, `"api_key": ...`).
/// The name may have any prefix (`aws_secret_access_key`) and a short suffix (`_id`, `s`).
const KEY_NAMES: &str = r"pwd|(?:db|database|key)[_\-]?pass|(?:service|db|database|client|priv)[_\-]?key|contrasena|api[_\-]?key|x[_\-]api[_\-]key|secret|password|passwd|token|credentials?|private[_\-]?key|access[_\-]?key|client[_\-]?secret|auth[_\-]?key|signing[_\-]?key|account[_\-]?key|shared[_\-]?access[_\-]?key|connection[_\-]?string|contrase(?:n|ñ)a|passwort|kennwort|wachtwoord|mot[_\-]?de[_\-]?passe|has(?:l|ł)o|heslo|salasana|l(?:o|ö)senord|passord|adgangskode|kata[_\-]?sandi";

/// Names that end common words too (`resenha`, a review; `deşifre`, decipher): they start the
/// name or follow a `_`, `.` or `-` in it (`db_senha`).
const BOUNDED_NAMES: &str = "senha|sifre";

/// What a name that stands alone ([`BOUNDED_NAMES`], [`NON_ASCII_NAMES`]) follows, besides the
/// start of the text and a `\n`-style escape: a space, a quote, a bracket or a separator. A
/// short list rather than "anything but a letter", which would let these formats start at
/// every byte and slow the expression down for all text.
const STANDS_AFTER: &str = r#"[\s"'`{(\[,;?&，；、（【「『“]"#;

/// What joins a name to its value: a quote, `=` or `:`, a quote, with spaces between; the
/// separators and quotes of CJK text too (`密码：...`, `「パスワード」＝...`).
const ASSIGNS: &str = r#"["'」』”】]?\s*(?:=|:|：|＝)\s*["'「『“]?"#;

/// "Password" in languages whose word starts with a letter outside ASCII, which has no ASCII
/// word boundary in front of it: these names stand alone (`пароль: ...`, `"κωδικός": ...`).
const NON_ASCII_NAMES: &str = "пароль|şifre|ŞİFRE|पासवर्ड|סיסמה|κωδικός";

/// "Password" in Chinese, Japanese and Korean, written without spaces inside compounds
/// (`新密码`, a new password; `数据库密码`, the database's): these names end a name of any
/// length. Their values start with an ASCII character, as typed passwords do; a value of CJK
/// text after them is prose (`忘记密码：点击这里`, forgot the password: click here).
const CJK_NAMES: &str = "密码|密碼|パスワード|비밀번호";

/// [`VALUE`], starting with a printable ASCII character.
const ASCII_LED_VALUE: &str = r#"[!-~&&[^"'`,;&<>]][^\s"'`,;&<>，；、。」』”】）]{4,}[^\s"'`,;&<>)\]}:.!?，；、。」』”】）：！？]"#;

/// Whether an attribute key's part (`db_password`, `openai_api_key`, `github_token`, `пароль`)
/// names a secret, by the names the assignment formats know: a name of [`KEY_NAMES`] at its
/// end (with a short suffix), one of [`BOUNDED_NAMES`] standing alone, "password" in other
/// scripts, or `token` ending it. `tokens` does not (`max_tokens`, `input_tokens` are counts).
pub(crate) fn names_a_secret_key(name: &str) -> bool {
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        let keys = KEY_NAMES.replace("|token|", "|");
        Regex::new(&format!(
            r"^(?i:[a-z0-9_\-]*?(?:{keys})(?:[_\-]?(?:id|key|value|secret))?s?|(?:[a-z0-9\-]*[_\-])?(?:{BOUNDED_NAMES})|(?:[a-z0-9_\-]*[_\-])?token|.*(?:{NON_ASCII_NAMES}|{CJK_NAMES}))$"
        ))
        .expect("the secret key names compile")
    });
    NAME.is_match(name)
}

/// The value of an assignment: at least 6 bytes up to a space, a quote or a separator, not
/// ending in what closes or follows it in text (`f(token=abc123)`, `?token=abc123): x`, a
/// sentence's `.`), so that the match ends where the secret ends.
const VALUE: &str =
    r#"[^\s"'`,;&<>，；、。」』”】）]{5,}[^\s"'`,;&<>)\]}:.!?，；、。」』”】）：！？]"#;

/// The formats, as one alternation. Each alternative contains a literal of [`LITERALS`].
fn pattern() -> String {
    let formats: &[&str] = &[
        // `name = value` assignments, in code, JSON, Debug output, env files, query strings.
        &format!(
            r"(?i:\b[a-z0-9_.\-]*?(?:{KEY_NAMES})(?:[_\-]?(?:id|key|value|token|secret))?s?){ASSIGNS}{VALUE}"
        ),
        // The same, under names that must stand alone.
        &format!(
            r"(?i:(?:^|{STANDS_AFTER}|\\[nrt])(?:[a-z0-9.\-]*[_.\-])?(?:{BOUNDED_NAMES})(?:[_\-]?(?:id|key|value|token|secret))?s?){ASSIGNS}{VALUE}"
        ),
        &format!(r"(?:^|{STANDS_AFTER}|\\[nrt])(?i:{NON_ASCII_NAMES}){ASSIGNS}{VALUE}"),
        // Compounds ending in "password" in CJK text.
        &format!(r"(?:{CJK_NAMES}){ASSIGNS}{ASCII_LED_VALUE}"),
        // A plain `key` query parameter (Google Maps, YouTube, many REST APIs): only in a
        // query, where `key=` names a credential; `sort_key=name` elsewhere is no secret.
        // The value ends at a fragment too.
        r#"[?&](?i:key)=[^\s"'`,;&#<>]{5,}[^\s"'`,;&#<>)\]}:.!?]"#,
        // HTTP authorization schemes.
        r"(?i:\b(?:bearer|basic|token))\s+[A-Za-z0-9._~+/=\-]{7,}[A-Za-z0-9_~+/=\-]",
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
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]+)?",
        r"\bkey-[0-9a-f]{32}\b",
        r"\b(?:bot)?[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}",
        r"\bhv[sbr]\.[A-Za-z0-9_\-]{24,}",
        r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9_.\-]{20,}",
        r"\b(?:secret_[A-Za-z0-9]{40,}|ntn_[A-Za-z0-9]{40,})\b",
        r"\bdckr_pat_[A-Za-z0-9_\-]{20,}",
        r"\bpcsk_[A-Za-z0-9_]{40,}",
        r"\bsbp_[a-f0-9]{40}\b",
        r"\bgl(?:sa|c)_[A-Za-z0-9_=+/]{32,}",
        r"\bfigd_[A-Za-z0-9_\-]{30,}",
        r"\bATATT3[A-Za-z0-9_=\-]{50,}",
        // Keys of the tools LLM apps call: Tavily, Firecrawl, Voyage AI, ElevenLabs.
        r"\btvly-[A-Za-z0-9_\-]{24,}",
        r"\bfc-[0-9a-f]{32}\b",
        r"\bpa-[A-Za-z0-9_\-]{40,}",
        r"\bsk_[0-9a-f]{48}\b",
        // Langfuse public keys (its secret keys are `sk-lf-..`, found as `sk-`), Square,
        // Artifactory.
        r"\bpk-lf-[0-9a-fA-F\-]{30,}",
        r"\bsq0(?:csp|atp)-[0-9A-Za-z_\-]{22,}",
        r"\bEAAA[A-Za-z0-9_\-]{56,}",
        r"\bAKC[A-Za-z0-9]{12,}",
        // A key as a URL's whole user part, without a password (Sentry's DSN,
        // `https://<token>@host/repo.git`): the `@` stays.
        r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[A-Za-z0-9_\-]{20,}@",
        // A cookie header: its value is the session.
        r#"(?i:\b(?:set-)?cookie)\s*:\s*[^\r\n"'\\]{7,}[^\r\n"'\\\s]"#,
    ];
    // A word boundary, or the end of a `\n`-style escape: LLM messages are rendered as JSON
    // before redaction, and `\nsk-...` has no boundary in front of the key. A key by its
    // prefix may also follow a `_` (`key_sk-...`, `token_ghp_...`), which is a word byte: the
    // `_` is matched and kept, as the escape is ([`Scanner::classify`]). Boundaries are ASCII
    // ones: a Unicode `\b` keeps the fast DFA engines off any text with a non-ASCII byte.
    formats
        .iter()
        .map(|f| {
            const BOUNDARY: &str = r"(?:\b|\\[nrt])";
            const KEY_BOUNDARY: &str = r"(?:\b|\\[nrt]|_)";
            if let Some(rest) = f.strip_prefix(r"(?i:\b") {
                format!("(?i:{BOUNDARY}{rest}")
            } else if let Some(rest) = f.strip_prefix(r"\b") {
                format!("{KEY_BOUNDARY}{rest}")
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
    "connectionstring",
    // detect-secrets' keywords: `pwd`, `db_pass`, `key_pass`, `service_key`, `db_key`,
    // `client_key`, `priv_key`, `contrasena`
    "pwd",
    "pass",
    "_key",
    "-key",
    "servicekey",
    "dbkey",
    "databasekey",
    "clientkey",
    "privkey",
    "contrasena",
    // "password" in other languages (`passwort`, `passord`, `mot_de_passe` hold `pass`); this
    // automaton ignores ASCII case only, so the other cases are spelt out
    "contraseña",
    "contraseÑa",
    "kennwort",
    "wachtwoord",
    "senha",
    "haslo",
    "hasło",
    "hasŁo",
    "heslo",
    "salasana",
    "losenord",
    "lösenord",
    "lÖsenord",
    "adgangskode",
    "sifre",
    "şifre",
    "Şifre",
    "ŞİFRE",
    "sandi",
    "пароль",
    "Пароль",
    "ПАРОЛЬ",
    "密码",
    "密碼",
    "パスワード",
    "비밀번호",
    "पासवर्ड",
    "סיסמה",
    "κωδικός",
    "Κωδικός",
    "ΚΩΔΙΚΌΣ",
    // schemes and URLs
    "bearer",
    "basic",
    "://",
    "-----begin",
    "sig=",
    "key=", // prefixes
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
    "key-",
    ":aa",
    "hvs.",
    "hvb.",
    "hvr.",
    "dp.",
    "ntn_",
    "dckr_pat_",
    "pcsk_",
    "sbp_",
    "glsa_",
    "glc_",
    "figd_",
    "atatt3",
    "tvly-",
    "fc-",
    "pa-",
    "pk-lf-",
    "sq0",
    "eaaa",
    "akc",
    "cookie",
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
            r#"^(?:(?i:[a-z0-9_.\-]*?(?:{KEY_NAMES})(?:[_\-]?(?:id|key|value|token|secret))?s?){ASSIGNS}|(?i:{STANDS_AFTER}?(?:[a-z0-9.\-]*[_.\-])?(?:{BOUNDED_NAMES})(?:[_\-]?(?:id|key|value|token|secret))?s?){ASSIGNS}|{STANDS_AFTER}?(?i:{NON_ASCII_NAMES}){ASSIGNS}|(?:{CJK_NAMES}){ASSIGNS}|(?i:(?:bearer|basic|token))\s+|[A-Za-z][A-Za-z0-9+.\-]{{1,20}}://[^\s:/@"'<>]*:|(?i:(?:AccountKey|SharedAccessKey)=)|[?&](?:sig|(?i:key))=|(?i:(?:set-)?cookie)\s*:\s*)"#
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
    /// Every secret in `text`, in order, not overlapping. Most text stops at the first
    /// prefilter, [`screen`]; what passes it is searched with the literal prefilter and the
    /// expression, or for [shapes](shapes), or both, as the screen saw.
    pub(crate) fn find_all(&self, text: &str) -> Vec<Found> {
        let seen = screen(text.as_bytes());
        let mut found = Vec::new();
        if seen.keyed && self.prefilter.is_match(text) {
            found.extend(
                self.formats
                    .find_iter(text)
                    .filter_map(|m| self.classify(text, m.range())),
            );
        }
        if seen.token {
            shapes::add(text, &mut found);
        }
        found
    }

    /// The secret inside one match, or `None` for a look-alike.
    fn classify(&self, text: &str, whole: Range<usize>) -> Option<Found> {
        let mut matched = &text[whole.clone()];
        // An escape in front (`\n` in JSON text), or the `_` a key follows, is kept, and is
        // not part of the secret.
        let escape = if matched.starts_with('\\') {
            2
        } else {
            usize::from(matched.starts_with('_'))
        };
        matched = &matched[escape..];
        let whole = whole.start + escape..whole.end;
        let keep = self.keep.find(matched).map_or(0, |k| k.end());
        let mut end = matched.len();
        if matched.ends_with('@') && matched.contains("://") {
            end -= 1; // the `@` of `user:password@host` stays
        }
        // A value cut at the cap ends at its marker (`…[truncated 1015 bytes]`), which says the
        // value was cut and is no part of the secret: a format that runs to the next space or
        // to the end of the text (a PEM key cut before its end) stops there.
        if let Some(marker) = matched[keep..end].find("…[") {
            end = keep + marker;
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

/// Byte classes of [`screen`].
const OTHER: u8 = 0;
/// `[A-Za-z0-9_.-]`: what key names, key prefixes and the keys themselves are made of.
const WORD: u8 = 1;
/// ASCII whitespace and control bytes, and every byte of a non-ASCII character (Unicode `\s`
/// is among them).
const SPACE: u8 = 2;
const QUOTE: u8 = 3;
const COLON: u8 = 4;
const EQUALS: u8 = 5;

const CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let byte = b as u8;
        table[b] = match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => WORD,
            0..=0x20 | 0x80..=0xff => SPACE,
            b'"' | b'\'' => QUOTE,
            b':' => COLON,
            b'=' => EQUALS,
            _ => OTHER,
        };
        b += 1;
    }
    table
};

/// The shortest run of [`WORD`] bytes a key found by its prefix makes (`hh_` and 12, `xoxb-` and
/// 10); every prefixed format is such a run.
const MIN_KEY_RUN: usize = 15;

/// What every name of an assignment contains (see [`KEY_NAMES`] and [`NON_ASCII_NAMES`]), and
/// the cookie header's name, in lower case (non-ASCII letters in their other cases too).
const KEY_NAME_PARTS: &[&[u8]] = &[
    b"key",
    b"secret",
    b"pass",
    b"pwd",
    b"contrasena",
    b"token",
    // "password" in other languages, in UTF-8 (ASCII case is ignored, other cases spelt out)
    "contraseña".as_bytes(),
    "contraseÑa".as_bytes(),
    b"kennwort",
    b"wachtwoord",
    b"senha",
    b"haslo",
    "hasło".as_bytes(),
    "hasŁo".as_bytes(),
    b"heslo",
    b"salasana",
    b"losenord",
    "lösenord".as_bytes(),
    "lÖsenord".as_bytes(),
    b"adgangskode",
    b"sifre",
    "şifre".as_bytes(),
    "Şifre".as_bytes(),
    "ŞİFRE".as_bytes(),
    b"sandi",
    "пароль".as_bytes(),
    "Пароль".as_bytes(),
    "ПАРОЛЬ".as_bytes(),
    "密码".as_bytes(),
    "密碼".as_bytes(),
    "パスワード".as_bytes(),
    "비밀번호".as_bytes(),
    "पासवर्ड".as_bytes(),
    "סיסמה".as_bytes(),
    "κωδικός".as_bytes(),
    "Κωδικός".as_bytes(),
    "ΚΩΔΙΚΌΣ".as_bytes(),
    b"credential",
    b"connection",
    b"cookie",
];

/// Whether `text` may hold a secret of the built-in formats: a necessary condition of each,
/// checked in one pass over the bytes, so that plain prose and most JSON never reach the
/// literal prefilter (an automaton walked byte by byte) or the expression. A format matches only
/// where one of these holds:
///
/// - a key by its prefix, or a JWT: a run of at least [`MIN_KEY_RUN`] `[A-Za-z0-9_.-]` bytes;
/// - an assignment or a cookie header: `=` or `:` after a name holding one of
///   [`KEY_NAME_PARTS`] (quotes and spaces between);
/// - a credential in a URL, or a webhook: `://`; a SAS signature: `sig=`;
/// - `Bearer`, `Basic` or `Token` followed by a space;
/// - a PEM key: `-----BEGIN`.
///
/// Like the literal prefilter, names are matched ASCII case-insensitively. The screen also tells
/// whether a [shape](shapes) may be there: a run of at least [`MIN_TOKEN_RUN`]
/// `[A-Za-z0-9_.+/-]` bytes.
fn screen(text: &[u8]) -> Seen {
    // The wide screen costs about as much for 1 byte as for 64 (one padded chunk); a byte at
    // a time is cheaper below about 24 bytes.
    #[cfg(target_arch = "x86_64")]
    if text.len() >= WIDE_FROM {
        return wide::screen(text);
    }
    screen_bytes(text)
}

/// Text of at least this many bytes is screened [64 bytes at a time](wide::screen).
#[cfg(target_arch = "x86_64")]
const WIDE_FROM: usize = 24;

/// [`screen`], a byte at a time.
fn screen_bytes(text: &[u8]) -> Seen {
    Seen {
        keyed: keyed_bytes(text),
        token: shapes::runs(text).next().is_some(),
    }
}

/// What [`screen`] saw in a text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    /// A format of the expression may match: the literal prefilter and the expression are
    /// worth running.
    keyed: bool,
    /// A run long enough for a [shape](shapes).
    token: bool,
}

/// The shortest run of `[A-Za-z0-9_.+/-]` bytes a [shape](shapes) is found in.
const MIN_TOKEN_RUN: usize = 20;

/// Whether `text` may hold a format of the expression, a byte at a time.
fn keyed_bytes(text: &[u8]) -> bool {
    let n = text.len();
    let mut i = 0;
    while i < n {
        match CLASS[usize::from(text[i])] {
            WORD => {
                let start = i;
                while i < n && CLASS[usize::from(text[i])] == WORD {
                    i += 1;
                }
                let run = &text[start..i];
                if run.len() >= MIN_KEY_RUN
                    || (run.len() >= 10 && run.windows(10).any(|w| w == b"-----BEGIN"))
                {
                    return true;
                }
                if i < n && CLASS[usize::from(text[i])] == SPACE && names_a_scheme(run) {
                    return true;
                }
                continue;
            }
            COLON | EQUALS if assigns_a_secret(text, i) => return true,
            SPACE if text[i] == FULL_WIDTH_LEAD && assigns_a_secret(text, i) => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Whether a word followed by a space is an HTTP authorization scheme.
fn names_a_scheme(run: &[u8]) -> bool {
    [&b"bearer"[..], b"basic", b"token"]
        .iter()
        .any(|word| ends_with_ignore_case(run, word))
}

/// The first byte of a full-width `：` or `＝` (U+FF1A, U+FF1D), the separators of CJK text.
const FULL_WIDTH_LEAD: u8 = 0xEF;

/// At the `:` or `=` at `at`, or the `：` or `＝` that starts there: a URL with a scheme, a
/// secret's name, or a SAS signature.
fn assigns_a_secret(text: &[u8], at: usize) -> bool {
    match text[at] {
        b':' => text[at + 1..].starts_with(b"//") || names_a_secret(text, at),
        b'=' => names_a_secret(text, at) || ends_with_ignore_case(name_before(text, at), b"sig"),
        _ => {
            matches!(text.get(at + 1..at + 3), Some([0xBC, 0x9A | 0x9D]))
                && names_a_secret(text, at)
        }
    }
}

/// [`screen`] 64 bytes at a time: SSE2 (part of every x86-64) compares 16 bytes at once into
/// bit masks, the runs are found on the masks, and only the rare `:` and `=` and the words
/// that end in `n`, `c` or `r` before a space are looked at byte by byte. Bytes past the end
/// are zeros, which are spaces here and so end every run.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };

    use super::{
        FULL_WIDTH_LEAD, MIN_KEY_RUN, MIN_TOKEN_RUN, Seen, assigns_a_secret, names_a_scheme,
    };

    /// Bit `i` describes byte `i` of a 64-byte chunk.
    struct Masks {
        /// `[A-Za-z0-9_.-]`.
        word: u64,
        /// ASCII space and control bytes, and non-ASCII bytes.
        space: u64,
        /// `:` and `=`, and the first byte of `：` and `＝` (and of the other characters from
        /// U+F000 up: rare outside CJK punctuation, and dismissed by the two bytes after it).
        special: u64,
        /// `n`, `c` and `r` in either case: the last letters of `token`, `basic` and `bearer`.
        scheme_end: u64,
        /// `-`.
        dash: u64,
        /// `[A-Za-z0-9_.+/-]`: what the [shapes](super::shapes) are made of.
        token: u64,
    }

    #[target_feature(enable = "sse2")]
    fn byte(b: u8) -> __m128i {
        _mm_set1_epi8(i8::from_ne_bytes([b]))
    }

    /// `x` in `lo..lo + len` (unsigned): shifted so that `lo` is -128, then one signed compare.
    #[target_feature(enable = "sse2")]
    fn within(x: __m128i, lo: u8, len: u8) -> __m128i {
        _mm_cmplt_epi8(
            _mm_add_epi8(x, byte(128u8.wrapping_sub(lo))),
            byte(128u8.wrapping_add(len)),
        )
    }

    /// The 16 compare results of `x` as bits, moved to `shift`.
    #[target_feature(enable = "sse2")]
    fn bits(x: __m128i, shift: usize) -> u64 {
        u64::from(u32::try_from(_mm_movemask_epi8(x)).unwrap_or(0)) << shift
    }

    #[target_feature(enable = "sse2")]
    fn masks(chunk: &[u8; 64]) -> Masks {
        let mut m = Masks {
            word: 0,
            space: 0,
            special: 0,
            scheme_end: 0,
            dash: 0,
            token: 0,
        };
        for (k, block) in chunk.chunks_exact(16).enumerate() {
            // SAFETY: `block` is 16 readable bytes; this load has no alignment requirement.
            let v = unsafe { _mm_loadu_si128(block.as_ptr().cast()) };
            let lower = _mm_or_si128(v, byte(0x20));
            let dash = _mm_cmpeq_epi8(v, byte(b'-'));
            let word = _mm_or_si128(
                _mm_or_si128(within(lower, b'a', 26), within(v, b'0', 10)),
                _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, byte(b'_')), _mm_cmpeq_epi8(v, byte(b'.'))),
                    dash,
                ),
            );
            // Signed, bytes of 0x80 and above are negative: one compare finds both kinds.
            let space = _mm_cmplt_epi8(v, byte(0x21));
            let special = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, byte(b':')), _mm_cmpeq_epi8(v, byte(b'='))),
                _mm_cmpeq_epi8(v, byte(FULL_WIDTH_LEAD)),
            );
            let scheme_end = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(lower, byte(b'n')),
                    _mm_cmpeq_epi8(lower, byte(b'c')),
                ),
                _mm_cmpeq_epi8(lower, byte(b'r')),
            );
            let token = _mm_or_si128(
                word,
                _mm_or_si128(_mm_cmpeq_epi8(v, byte(b'/')), _mm_cmpeq_epi8(v, byte(b'+'))),
            );
            let shift = 16 * k;
            m.token |= bits(token, shift);
            m.word |= bits(word, shift);
            m.space |= bits(space, shift);
            m.special |= bits(special, shift);
            m.scheme_end |= bits(scheme_end, shift);
            m.dash |= bits(dash, shift);
        }
        m
    }

    /// Whether `mask`, after `carry` set bits that end the chunk before, has `len` set bits in
    /// a row.
    fn has_run(mask: u64, carry: u32, len: u32) -> bool {
        if carry + mask.trailing_ones() >= len {
            return true;
        }
        // Bit i of `x` stays set while bits i..i + covered are all set.
        let mut x = mask;
        let mut covered = 1;
        while covered < len {
            let step = covered.min(len - covered);
            x &= x >> step;
            covered += step;
        }
        x != 0
    }

    pub(super) fn screen(text: &[u8]) -> Seen {
        #[allow(clippy::cast_possible_truncation)] // a small constant
        const TOKEN_RUN: u32 = MIN_TOKEN_RUN as u32;
        let mut seen = Seen::default();
        let mut word_carry = 0;
        let mut dash_carry = 0;
        let mut scheme_carry = 0;
        let mut token_carry = 0;
        let mut pad = [0u8; 64];
        let mut at = 0;
        while at < text.len() {
            let chunk: &[u8; 64] = if let Some(full) = text.get(at..at + 64) {
                full.try_into().expect("64 bytes")
            } else {
                let rest = &text[at..];
                pad[..rest.len()].copy_from_slice(rest);
                &pad
            };
            // SAFETY: SSE2 is part of every x86-64 CPU (and enabled for every x86-64 target).
            let m = unsafe { masks(chunk) };
            if !seen.token {
                seen.token = has_run(m.token, token_carry, TOKEN_RUN);
                token_carry = m.token.leading_ones();
            }
            if !seen.keyed {
                seen.keyed = keyed(text, at, &m, word_carry, dash_carry, scheme_carry);
                word_carry = m.word.leading_ones();
                dash_carry = m.dash.leading_ones();
                scheme_carry = m.scheme_end >> 63;
            }
            if seen.keyed && seen.token {
                break;
            }
            at += 64;
        }
        seen
    }

    /// Whether the chunk at `at` holds what a format of the expression needs, given what the
    /// chunk before ended with.
    fn keyed(
        text: &[u8],
        at: usize,
        m: &Masks,
        word_carry: u32,
        dash_carry: u32,
        scheme_carry: u64,
    ) -> bool {
        #[allow(clippy::cast_possible_truncation)] // a small constant
        const KEY_RUN: u32 = MIN_KEY_RUN as u32;
        // A key by its prefix; a PEM key (`-----BEGIN`).
        if has_run(m.word, word_carry, KEY_RUN) || has_run(m.dash, dash_carry, 5) {
            return true;
        }
        // `Bearer`, `Basic`, `Token` and a space.
        let mut ends = m.space & ((m.scheme_end << 1) | scheme_carry);
        while ends != 0 {
            let space = at + ends.trailing_zeros() as usize;
            ends &= ends - 1;
            // Only the word's end is compared.
            if names_a_scheme(&text[space.saturating_sub(6)..space]) {
                return true;
            }
        }
        // Assignments, URLs, signatures.
        let mut specials = m.special;
        while specials != 0 {
            let i = at + specials.trailing_zeros() as usize;
            specials &= specials - 1;
            if assigns_a_secret(text, i) {
                return true;
            }
        }
        false
    }
}

/// Secrets with no literal to find them by, recognised by the shape of one token: a run of
/// `[A-Za-z0-9_.+/-]` bytes (the `=` of base64 padding after it) at least [`MIN_TOKEN_RUN`]
/// long, looked at whole:
///
/// - a Discord bot token: `[MNO]` and 23 to 25 more, `.`, 6, `.`, 27 to 38 (the base64 of the
///   bot's id, a timestamp, a signature);
/// - a quoted base64 string of 20 to 256 characters with a Shannon entropy of at least 4.5
///   bits per character, detect-secrets' `Base64HighEntropyString` rule (a hex string cannot
///   reach it: trace ids and hashes stay);
/// - a bare 40-character base64 token of upper and lower case letters and digits with that
///   entropy, an AWS secret access key written without its name.
///
/// A UUID, an id with `_` or `-` (`chatcmpl-..`, `call_..`, `msg_..`), a path or a word never
/// has these shapes.
mod shapes {
    use super::{CLASS, Found, MIN_TOKEN_RUN, WORD};

    fn in_token(b: u8) -> bool {
        CLASS[usize::from(b)] == WORD || b == b'/' || b == b'+'
    }

    fn base64_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
    }

    fn url_safe(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    }

    /// The runs of at least [`MIN_TOKEN_RUN`] token bytes in `text`, as ranges.
    pub(super) fn runs(text: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            while i < text.len() {
                if !in_token(text[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < text.len() && in_token(text[i]) {
                    i += 1;
                }
                if i - start >= MIN_TOKEN_RUN {
                    return Some(start..i);
                }
            }
            None
        })
    }

    /// Adds the shapes found in `text` to `found` (the expression's finds, in order), keeping
    /// it in order and without overlaps; a shape inside a find is that find.
    pub(super) fn add(text: &str, found: &mut Vec<Found>) {
        let bytes = text.as_bytes();
        let shapes: Vec<_> = runs(bytes)
            .filter_map(|run| shape(bytes, run))
            .filter(|s| {
                !found
                    .iter()
                    .any(|f| f.whole.start < s.end && s.start < f.whole.end)
            })
            .collect();
        if shapes.is_empty() {
            return;
        }
        found.extend(shapes.into_iter().map(|s| Found {
            whole: s.clone(),
            secret: s,
        }));
        found.sort_by_key(|f| f.whole.start);
    }

    /// The secret in the run `start..end` of `text`, if it has one of the shapes.
    fn shape(text: &[u8], run: std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
        let (mut start, mut end) = (run.start, run.end);
        // An escape in front (`\n` in JSON text) is not part of the token.
        if start > 0 && text[start - 1] == b'\\' && matches!(text[start], b'n' | b'r' | b't') {
            start += 1;
        }
        // Base64 padding after the run.
        let mut padded = end;
        while padded < text.len() && padded - end < 2 && text[padded] == b'=' {
            padded += 1;
        }
        if quoted(text, start, padded)
            && (20..=256).contains(&(end - start))
            && text[start..end].iter().all(|&b| base64_byte(b))
            && entropy(&text[start..end]) >= 4.5
        {
            return Some(start..padded);
        }
        // A sentence's full stop is not part of the token.
        while end > start && text[end - 1] == b'.' {
            end -= 1;
        }
        let token = &text[start..end];
        (discord(token) || bare_aws_secret(token)).then_some(start..end)
    }

    /// Whether `start..end` is between two equal quotes, or two escaped ones (`\"..\"`).
    fn quoted(text: &[u8], start: usize, end: usize) -> bool {
        let Some(&open) = start.checked_sub(1).and_then(|i| text.get(i)) else {
            return false;
        };
        if open != b'"' && open != b'\'' {
            return false;
        }
        match text.get(end) {
            Some(&close) if close == open => true,
            Some(b'\\') => text.get(end + 1) == Some(&open),
            _ => false,
        }
    }

    fn discord(token: &[u8]) -> bool {
        let mut parts = token.split(|&b| b == b'.');
        let (Some(id), Some(time), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        matches!(id.first(), Some(b'M' | b'N' | b'O'))
            && (24..=26).contains(&id.len())
            && time.len() == 6
            && (27..=38).contains(&mac.len())
            && [id, time, mac]
                .iter()
                .all(|p| p.iter().all(|&b| url_safe(b)))
    }

    fn bare_aws_secret(token: &[u8]) -> bool {
        token.len() == 40
            && token[0] != b'/'
            && token.iter().all(|&b| base64_byte(b))
            && token.iter().any(u8::is_ascii_uppercase)
            && token.iter().any(u8::is_ascii_lowercase)
            && token.iter().any(u8::is_ascii_digit)
            && entropy(token) >= 4.5
    }

    /// Shannon entropy in bits per byte.
    fn entropy(bytes: &[u8]) -> f64 {
        let mut counts = [0u32; 256];
        for &b in bytes {
            counts[usize::from(b)] += 1;
        }
        #[allow(clippy::cast_precision_loss)] // at most a few hundred bytes
        let n = bytes.len() as f64;
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = f64::from(c) / n;
                -p * p.log2()
            })
            .sum()
    }
}

/// The longest name [`name_before`] returns, its last bytes: every secret's name ends within
/// about 30 bytes of its longest part (a name of [`KEY_NAMES`], a short suffix and a closing
/// bracket), and a bound keeps a text of many separators and no spaces (CJK prose) linear.
const NAME_TAIL: usize = 64;

/// The run of [`WORD`] and non-ASCII bytes in front of `at`, past any ASCII quotes and spaces,
/// at most its last [`NAME_TAIL`] bytes.
fn name_before(text: &[u8], at: usize) -> &[u8] {
    let mut end = at;
    while end > 0
        && text[end - 1].is_ascii()
        && matches!(CLASS[usize::from(text[end - 1])], SPACE | QUOTE)
    {
        end -= 1;
    }
    // A name may be written in any script (`contraseña`, `пароль`): the bytes of a non-ASCII
    // character are part of it.
    let mut start = end;
    let floor = end.saturating_sub(NAME_TAIL);
    while start > floor
        && (CLASS[usize::from(text[start - 1])] == WORD || !text[start - 1].is_ascii())
    {
        start -= 1;
    }
    &text[start..end]
}

/// Whether the name in front of the `=` or `:` at `at` is one an assignment of a secret has.
fn names_a_secret(text: &[u8], at: usize) -> bool {
    static PARTS: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(KEY_NAME_PARTS)
            .expect("the key name parts build an automaton")
    });
    let name = name_before(text, at);
    name.len() >= 3 && PARTS.is_match(name)
}

fn ends_with_ignore_case(run: &[u8], word: &[u8]) -> bool {
    run.len() >= word.len() && run[run.len() - word.len()..].eq_ignore_ascii_case(word)
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
    // `PWD=/home/app`: the working directory, in an environment dump.
    if lower
        .trim_end_matches(['=', ':', ' ', '"', '\''])
        .ends_with("pwd")
        && (value.starts_with('/') || value.starts_with('~') || value.get(1..3) == Some(":\\"))
    {
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
        assert_eq!(secrets("DB_PASS=Hunter2Hunter2"), ["Hunter2Hunter2"]);
        assert_eq!(secrets(r#"{"pwd": "s3cr3t!x"}"#), ["s3cr3t!x"]);
        assert_eq!(secrets("service_key: abcdef123456"), ["abcdef123456"]);
        assert_eq!(secrets("contrasena=Secreto123"), ["Secreto123"]);
        assert_eq!(
            secrets("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            ["YWxhZGRpbjpvcGVuc2VzYW1l"]
        );
    }

    #[test]
    fn passwords_named_in_other_languages_are_found() {
        for (text, secret) in [
            ("contraseña=Secreto!123", "Secreto!123"),
            ("CONTRASEÑA: Secreto!123", "Secreto!123"),
            (r#"{"contraseña": "Secreto!123"}"#, "Secreto!123"),
            ("Passwort = Geheim!2024x", "Geheim!2024x"),
            ("db_kennwort=Geheim!2024x", "Geheim!2024x"),
            ("mot_de_passe: Secret!2024x", "Secret!2024x"),
            ("wachtwoord=Geheim2024x", "Geheim2024x"),
            (r#"{"senha":"Segredo@2024"}"#, "Segredo@2024"),
            ("usuario.senha=Segredo@2024", "Segredo@2024"),
            ("hasło: Tajne!2024x", "Tajne!2024x"),
            ("heslo=Tajne!2024x", "Tajne!2024x"),
            ("salasana = Salainen99", "Salainen99"),
            ("lösenord: Hemligt#42x", "Hemligt#42x"),
            ("LÖSENORD: Hemligt#42x", "Hemligt#42x"),
            ("passord=Hemmelig42x", "Hemmelig42x"),
            ("şifre: Gizli!2024x", "Gizli!2024x"),
            ("ŞİFRE: Gizli!2024x", "Gizli!2024x"),
            ("kata_sandi=Rahasia2024", "Rahasia2024"),
            ("пароль: Секрет!2024", "Секрет!2024"),
            ("Пароль=qwerty12345", "qwerty12345"),
            (r#"{"ПАРОЛЬ": "qwerty12345"}"#, "qwerty12345"),
            ("密码: mima2024abc", "mima2024abc"),
            (r#"{"密碼":"mima2024abc"}"#, "mima2024abc"),
            ("パスワード=himitsu2024", "himitsu2024"),
            ("비밀번호: bimil!2024", "bimil!2024"),
            (
                r#"{"content":"the login:\nпароль: Секрет!2024"}"#,
                "Секрет!2024",
            ),
        ] {
            assert_eq!(secrets(text), [secret], "{text}");
            assert!(screen(text.as_bytes()).keyed, "{text}");
            assert!(screen_bytes(text.as_bytes()).keyed, "{text}");
        }
    }

    #[test]
    fn secrets_in_cjk_punctuation_are_found_and_end_where_the_secret_ends() {
        for (text, secret) in [
            ("密码：mima2024abc", "mima2024abc"),
            ("密码： mima2024abc", "mima2024abc"),
            ("密码＝mima2024abc", "mima2024abc"),
            (
                "用户名：admin，密码：mima2024abc，请妥善保管。",
                "mima2024abc",
            ),
            ("账号信息（密码：mima2024abc）", "mima2024abc"),
            ("登录后请修改「密码」：mima2024abc。", "mima2024abc"),
            ("新しいパスワード：himitsu2024、忘れないで", "himitsu2024"),
            ("パスワード＝“himitsu2024”", "himitsu2024"),
            ("密碼：mima2024abc；帳號：admin", "mima2024abc"),
            ("数据库 password：Hunter2!2024，已更新", "Hunter2!2024"),
            ("api_key＝abcdEFGH12345678！", "abcdEFGH12345678"),
            ("비밀번호：bimil!2024", "bimil!2024"),
            // Across the wide screen's 64-byte chunks.
            (
                "这是一段很长的说明文字，用来把分隔符推到下一个块里去。密码：mima2024abc",
                "mima2024abc",
            ),
        ] {
            assert_eq!(secrets(text), [secret], "{text}");
            assert!(screen(text.as_bytes()).keyed, "{text}");
            assert!(screen_bytes(text.as_bytes()).keyed, "{text}");
        }
        // The same words in prose, or ending another word, name no secret.
        for text in [
            "注意：请检查配置文件，然后重试。",
            "忘记密码：点击这里重置",
            "新しいパスワード：英数字を含めてください",
            "パスワードを忘れた場合：管理者に連絡してください",
            "Olvidé mi contraseña y la cambié ayer",
            "Введите пароль ниже, пожалуйста",
            "请输入密码以继续",
            "resenha: excelente livro de aventura",
            "O artista desenha: paisagens e retratos",
            "metni deşifre: uzunca bir süreç",
            "Kennwort vergessen? Hier zurücksetzen",
        ] {
            assert_eq!(secrets(text), Vec::<&str>::new(), "{text}");
        }
    }

    #[test]
    fn a_secret_cut_at_the_cap_ends_before_the_marker() {
        for (text, secret) in [
            (
                "password=Hunter2!secret…[truncated 1015 bytes]",
                "Hunter2!secret",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B…[truncated 2998 bytes]",
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B",
            ),
        ] {
            assert_eq!(secrets(text), [secret], "{text}");
        }
    }

    #[test]
    fn a_key_after_an_underscore_is_found_and_the_underscore_kept() {
        for (text, secret) in [
            (
                "key_sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
                "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
            ),
            (
                "x_ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c",
                "ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c",
            ),
            (
                "tok_xoxb-1234567890-abcdefghij",
                "xoxb-1234567890-abcdefghij",
            ),
            ("aws_AKIAIOSFODNN7EXAMPLE done", "AKIAIOSFODNN7EXAMPLE"),
        ] {
            assert_eq!(secrets(text), [secret], "{text}");
        }
        // A prefix inside a word is not one.
        assert!(secrets("task-abcdefghijklmnopqrstuvwx").is_empty());
        assert!(secrets("my_task-abcdefghijklmnopqrstuvwx").is_empty());
    }

    #[test]
    fn a_secret_after_a_json_escape_is_found_and_the_escape_kept() {
        let text = r#"{"content":"my key:\nsk-abcDEF0123456789xyzXYZ\nthanks"}"#;
        assert_eq!(secrets(text), ["sk-abcDEF0123456789xyzXYZ"]);
        assert!(secrets("task-abcdefghijklmnopqrstuvwx").is_empty());
    }

    #[test]
    fn keys_of_the_tools_llm_apps_call_are_found() {
        for (text, secret) in [
            (
                "TAVILY key 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.",
                "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",
            ),
            (
                "firecrawl: fc-0123456789abcdef0123456789abcdef",
                "fc-0123456789abcdef0123456789abcdef",
            ),
            (
                "voyage pa-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3 ok",
                "pa-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3",
            ),
            (
                "xi sk_0123456789abcdef0123456789abcdef0123456789abcdef",
                "sk_0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            (
                "LANGFUSE_PUBLIC_KEY pk-lf-1234abcd-5678-90ef-abcd-1234567890ab",
                "pk-lf-1234abcd-5678-90ef-abcd-1234567890ab",
            ),
            (
                "square sq0csp-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3",
                "sq0csp-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3",
            ),
            (
                "square EAAAEAb3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3Ab3dEf6hIj9kLm2n",
                "EAAAEAb3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3Ab3dEf6hIj9kLm2n",
            ),
            (
                "jfrog AKCp8Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
                "AKCp8Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
            ),
        ] {
            assert_eq!(secrets(text), [secret], "{text}");
        }
        // Look-alikes: too short, or inside a word.
        for text in [
            "spa-treatment",
            "pa-12",
            "fc-barcelona",
            "tvly-x",
            "sk_live",
        ] {
            assert!(secrets(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn secrets_without_a_literal_are_found_by_their_shape() {
        let discord = "MTE4NjQ3MzIxOTg1NzE2NzM2MA.GxYz12.abcdEFGHijklMNOPqrstUVWXyz0123456";
        let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let b64 = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg+/XyZ==";
        for (text, secret) in [
            (format!("DISCORD bot: {discord}."), discord),
            (format!(r#"{{"content":"\n{discord}\n"}}"#), discord),
            (format!("aws {aws} in us-east-1"), aws),
            (format!("x={aws}"), aws),
            (format!(r#"keys = ["{b64}"]"#), b64),
            (format!(r#""found \"{b64}\" here""#), b64),
            (format!("'{aws}'"), aws),
        ] {
            assert_eq!(secrets(&text), [secret], "{text}");
        }
        // Inside a find of the expression: one secret.
        let jwt = "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig";
        assert_eq!(scanner().find_all(jwt).len(), 1);
        // In order, with the expression's finds.
        let both = format!("{aws} and sk-abcDEF0123456789xyzXYZ and '{b64}'");
        assert_eq!(
            secrets(&both),
            [aws, "sk-abcDEF0123456789xyzXYZ", b64],
            "{both}"
        );
    }

    #[test]
    fn ids_hashes_and_paths_are_not_shapes() {
        for text in [
            // Hex cannot reach the entropy: trace ids, hashes.
            r#""trace_id": "4bf92f3577b34da6a3ce929d0e0e4736""#,
            r#""sha": "da39a3ee5e6b4b0d3255bfef95601890afd80709""#,
            // Ids with `_` or `-`, UUIDs.
            r#""id": "chatcmpl-9pQXyZaBcDeFgHiJkLmNoPqRsTuV""#,
            r#""tool_call_id": "call_Ab3dEf6hIj9kLm2nOp5qRs8t""#,
            r#""id": "123e4567-e89b-12d3-a456-426614174000""#,
            // Paths, words, low-entropy or short base64.
            "/home/user/projects/MyApp2/src/Main/Lib1",
            "/usr/local/lib/python3.11/site-packages/honeyhive",
            r#""AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA""#,
            r#""aGVsbG8gd29ybGQ=""#,
            "supercalifragilisticexpialidocious",
            "internationalization and localization",
            // 40 characters without digits or without upper case.
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
            "MTE4NjQ3MzIxOTg1NzE2NzM2MA.Gx.abcdEFGHijklMNOPqrstUVWXyz0123456",
        ] {
            assert_eq!(secrets(text), Vec::<&str>::new(), "{text}");
        }
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
            "PWD=/home/app/current",
            "OLDPWD=~/src",
            "passenger: Jane Doe",
            "compass: north-east",
        ] {
            assert_eq!(secrets(text), Vec::<&str>::new(), "{text}");
        }
    }

    /// Pieces of every format, and of look-alikes.
    const PIECES: &[&str] = &[
        "sk-",
        "sk-ant-",
        "sk_",
        "tvly-",
        "fc-",
        "pa-",
        "pk-lf-",
        "sq0csp-",
        "EAAA",
        "AKCp8",
        "rk_live_",
        "whsec_",
        "AIza",
        "GOCSPX-",
        "ya29.",
        "hh_",
        "hf_",
        "glpat-",
        "glc-",
        "npm_",
        "pypi-AgE",
        "SG.",
        "ghp_",
        "github_pat_",
        "xoxb-",
        "xapp-1-",
        "AKIA",
        "SK",
        "-us1",
        "dop_v1_",
        "shpat_",
        "dapi",
        "lin_api_",
        "PMAK-",
        "NRAK-",
        "gsk_",
        "r8_",
        "pplx-",
        "xai-",
        "lsv2_pt_",
        "AGE-SECRET-KEY-1",
        "eyJ",
        "eyJhbGciOiJIUzI1NiJ9",
        "abcdefghijklmnop",
        "ABCDEFGHIJKLMNOP0123",
        "0123456789",
        "0123456789abcdef0123456789abcdef",
        "a1B2c3",
        ".",
        "-",
        "_",
        "-----BEGIN",
        "-----BEGIN RSA",
        " PRIVATE KEY-----",
        "MIIEow",
        "-----END PRIVATE KEY-----",
        "password",
        "pwd",
        "DB_PASS",
        "key-pass",
        "service_key",
        "contrasena",
        "Passwd",
        "api_key",
        "x-api-key",
        "API-KEY",
        "token",
        "Token",
        "tokens",
        "secret",
        "client_secret",
        "credentials",
        "connection_string",
        "AccountKey",
        "SharedAccessKey",
        "sig",
        "?",
        "&",
        "=",
        ":",
        ": ",
        " = ",
        "\"",
        "'",
        " ",
        "  ",
        "\t",
        "\n",
        "\\n",
        "\\t",
        "\u{a0}",
        "\u{2003}",
        "é",
        "Bearer ",
        "bearer",
        "BEARER",
        "bea",
        "rer ",
        "basic ",
        "BaSiC",
        "TOKEN ",
        "to",
        "ken ",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "postgres://",
        "https://",
        "mongodb+srv://",
        "user",
        ":pw",
        "@host",
        "hooks.slack.com/services/",
        "T000/B000/XXXXXXXX",
        "discord.com/api/webhooks/123/",
        "max_tokens",
        "100000",
        ",",
        "{",
        "}",
        "<",
        ">",
        "/",
        "+",
        "~",
        "the ",
        "ask ",
        "task",
        "contraseña",
        "CONTRASEÑA",
        "senha",
        "re",
        "_",
        "şifre",
        "ŞİFRE",
        "пароль",
        "Пароль",
        "密码",
        "パスワード",
        "lösenord",
        "hasło",
    ];

    #[test]
    fn the_screen_lets_through_every_text_a_format_matches() {
        // The pieces joined at random: wherever the expression finds a secret, the screen must
        // have let the text through.
        let formats = &scanner().formats;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).unwrap()
        };
        let mut matched = 0;
        for _ in 0..8_000 {
            // Prose in front moves the pieces across the 64-byte chunks of the wide screen.
            let mut text = "lorem ipsum dolor sit amet ".repeat(4)[..next(100)].to_owned();
            for _ in 0..=next(12) {
                text.push_str(PIECES[next(PIECES.len())]);
            }
            if formats.is_match(&text) {
                matched += 1;
                assert!(screen(text.as_bytes()).keyed, "{text:?}");
                assert!(screen_bytes(text.as_bytes()).keyed, "{text:?}");
            }
            // The wide screen sees a token run wherever the scalar one does.
            assert_eq!(
                screen(text.as_bytes()).token,
                screen_bytes(text.as_bytes()).token,
                "{text:?}"
            );
        }
        assert!(matched > 400, "only {matched} texts held a secret");
        for prose in [
            "You are a careful assistant. Answer questions about the weather, and ask when unsure.",
            r#"[{"role":"user","content":"what is the capital of France?"}]"#,
            "Tokens used: 1234; the budget is fine.",
        ] {
            assert_eq!(screen(prose.as_bytes()), Seen::default(), "{prose}");
            assert_eq!(screen_bytes(prose.as_bytes()), Seen::default(), "{prose}");
        }
    }

    #[test]
    fn an_unterminated_pem_key_is_a_secret_to_the_end() {
        let text = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc";
        assert_eq!(scanner().find_all(text)[0].whole.end, text.len());
    }
}
