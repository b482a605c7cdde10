//! 59 realistic fake secret formats, generated from a fixed seed, put in the 8 places of a span
//! where captured text ends up: 472 cases. Shared by `privacy.rs` (our recall, on real exported
//! spans) and `detect_secrets.rs` (the same strings given to detect-secrets).

#![allow(dead_code)] // each test file uses its part

use std::fmt;

use honeyhive_runtime::testing::FinishedSpan;
use honeyhive_runtime::{LlmCall, enrich_span, retry, trace};
use opentelemetry::Value;

/// A secret, and the text it is written in.
pub(crate) struct Case {
    pub format: &'static str,
    /// The sensitive part: no piece of it may be exported.
    pub secret: String,
    /// How it appears in an application's text.
    pub text: String,
}

/// A small deterministic generator (xorshift64*), so the cases are the same on every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick(&mut self, alphabet: &str, n: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..n)
            .map(|_| chars[usize::try_from(self.next() % chars.len() as u64).unwrap()])
            .collect()
    }
}

const B62: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const HEX: &str = "0123456789abcdef";
const DIGITS: &str = "0123456789";
const PASSWORD: &str = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%^*()-_+=~";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64.as_bytes()[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64url(bytes: &[u8]) -> String {
    base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The 46 formats.
#[allow(clippy::too_many_lines)] // one short block per format
pub(crate) fn secrets() -> Vec<Case> {
    let mut g = Gen(0x5EC2_E75E_ED00_0001);
    let mut out = Vec::new();
    let mut add = |format: &'static str, secret: String, text: String| {
        out.push(Case {
            format,
            secret,
            text,
        });
    };
    let s = format!("sk-proj-{}", g.pick(URLSAFE, 64));
    add(
        "openai project key",
        s.clone(),
        format!("OPENAI_API_KEY={s}"),
    );
    let s = format!("sk-{}T3BlbkFJ{}", g.pick(B62, 20), g.pick(B62, 20));
    add("openai legacy key", s.clone(), s);
    let s = format!("sk-ant-api03-{}AA", g.pick(URLSAFE, 93));
    add("anthropic key", s.clone(), format!("x-api-key: {s}"));
    let s = format!("AKIA{}", g.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    add(
        "aws access key id",
        s.clone(),
        format!("aws_access_key_id={s}"),
    );
    let s = format!("ASIA{}", g.pick(UPPER_DIGITS, 16));
    add(
        "aws temporary key id",
        s.clone(),
        format!("AccessKeyId: {s}"),
    );
    let s = g.pick(B64, 40);
    add(
        "aws secret access key",
        s.clone(),
        format!("aws_secret_access_key = {s}"),
    );
    let s = format!("ghp_{}", g.pick(B62, 36));
    add(
        "github classic token",
        s.clone(),
        format!("GITHUB_TOKEN={s}"),
    );
    let s = format!("github_pat_11{}_{}", g.pick(B62, 20), g.pick(B62, 59));
    add("github fine-grained token", s.clone(), s);
    let s = format!("gho_{}", g.pick(B62, 36));
    add("github oauth token", s.clone(), format!("token {s}"));
    let s = format!(
        "xoxb-{}-{}-{}",
        g.pick(DIGITS, 11),
        g.pick(DIGITS, 13),
        g.pick(B62, 24)
    );
    add("slack bot token", s.clone(), s);
    let s = format!(
        "T{}/B{}/{}",
        g.pick(UPPER_DIGITS, 8),
        g.pick(UPPER_DIGITS, 10),
        g.pick(B62, 24)
    );
    add(
        "slack webhook",
        s.clone(),
        format!("https://hooks.slack.com/services/{s}"),
    );
    let s = format!("AIza{}", g.pick(URLSAFE, 35));
    add("google api key", s.clone(), format!("?key={s}"));
    let s = format!("GOCSPX-{}", g.pick(URLSAFE, 28));
    add(
        "google oauth client secret",
        s.clone(),
        format!(r#"{{"client_id": "1234.apps.googleusercontent.com", "client_secret": "{s}"}}"#),
    );
    let s = format!("sk_live_51{}", g.pick(B62, 97));
    add("stripe live key", s.clone(), s);
    let s = format!("rk_live_51{}", g.pick(B62, 97));
    add("stripe restricted key", s.clone(), s);
    let s = format!("hf_{}", g.pick(B62, 34));
    add("hugging face token", s.clone(), format!("HF_TOKEN={s}"));
    let s = format!("glpat-{}", g.pick(URLSAFE, 20));
    add("gitlab token", s.clone(), s);
    let s = format!("npm_{}", g.pick(B62, 36));
    add(
        "npm token",
        s.clone(),
        format!("//registry.npmjs.org/:_authToken={s}"),
    );
    let s = format!("SG.{}.{}", g.pick(URLSAFE, 22), g.pick(URLSAFE, 43));
    add("sendgrid key", s.clone(), s);
    let s = format!("{}==", g.pick(B64, 86));
    add(
        "azure storage key",
        s.clone(),
        format!(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={s};EndpointSuffix=core.windows.net"
        ),
    );
    let claims = format!(
        r#"{{"sub":"{}","name":"svc-{}","iat":1700000000}}"#,
        g.pick(DIGITS, 10),
        g.pick(B62, 8)
    );
    let s = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
        base64url(claims.as_bytes()),
        g.pick(URLSAFE, 43)
    );
    add("jwt", s.clone(), s);
    let s = g.pick(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
        40,
    );
    add(
        "opaque bearer token",
        s.clone(),
        format!("Authorization: Bearer {s}"),
    );
    let s = base64(format!("deploy:{}", g.pick(B62, 16)).as_bytes());
    add("basic auth", s.clone(), format!("Authorization: Basic {s}"));
    let s = g.pick(B62, 18);
    add(
        "credentials in an https url",
        s.clone(),
        format!("https://admin:{s}@internal.example.com/api"),
    );
    let s = g.pick(B62, 18);
    add(
        "credentials in a postgres url",
        s.clone(),
        format!("postgres://app_user:{s}@db.internal:5432/orders"),
    );
    let body = (0..4)
        .map(|_| g.pick(B64, 64))
        .collect::<Vec<_>>()
        .join("\n");
    add(
        "pem rsa private key",
        body.clone(),
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"),
    );
    let body = (0..4)
        .map(|_| g.pick(B64, 70))
        .collect::<Vec<_>>()
        .join("\n");
    add(
        "pem openssh private key",
        body.clone(),
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----"),
    );
    let s = format!(
        "{}!{}#{}",
        g.pick(PASSWORD, 8),
        g.pick(PASSWORD, 4),
        g.pick(PASSWORD, 5)
    );
    add("password with symbols", s.clone(), format!("password={s}"));
    let s = format!("hh_{}", g.pick(B62, 32));
    add("honeyhive key", s.clone(), format!("HH_API_KEY={s}"));
    let s = format!("{}-us14", g.pick(HEX, 32));
    add("mailchimp key", s.clone(), s);
    let s = g.pick(B62, 32);
    add(
        "opaque key query parameter",
        s.clone(),
        format!("GET https://maps.example.com/api/geocode/json?address=Paris&key={s}"),
    );
    let s = g.pick(URLSAFE, 24);
    add(
        "api_key query parameter",
        s.clone(),
        format!("GET /v2/report?format=csv&api_key={s} 200"),
    );
    let s = format!("tok-{}", g.pick(B62, 20));
    add(
        "token query parameter before punctuation",
        s.clone(),
        format!("fetch(https://api.example.com/v1/data?token={s}): timed out"),
    );
    let s = format!("key-{}", g.pick(HEX, 32));
    add("mailgun key", s.clone(), format!("MAILGUN_KEY={s}"));
    let s = format!("{}:AA{}", g.pick(DIGITS, 10), g.pick(URLSAFE, 33));
    add(
        "telegram bot token",
        s.clone(),
        format!("https://api.telegram.org/bot{s}/sendMessage"),
    );
    let s = format!("hvs.{}", g.pick(URLSAFE, 90));
    add("vault token", s.clone(), format!("vault login {s}"));
    let s = format!("dp.st.prd.{}", g.pick(B62, 43));
    add(
        "doppler service token",
        s.clone(),
        format!("doppler run -t {s} -- ./serve"),
    );
    let s = format!("ntn_{}", g.pick(B62, 46));
    add("notion integration token", s.clone(), s);
    let s = g.pick(HEX, 32);
    add(
        "sentry dsn",
        s.clone(),
        format!("dsn: https://{s}@o4504.ingest.sentry.io/4505"),
    );
    let s = format!("dckr_pat_{}", g.pick(URLSAFE, 27));
    add(
        "docker hub token",
        s.clone(),
        format!("docker login -p {s}"),
    );
    let s = format!("pcsk_{}_{}", g.pick(B62, 5), g.pick(B62, 64));
    add("pinecone key", s.clone(), s);
    let s = format!("sbp_{}", g.pick(HEX, 40));
    add("supabase access token", s.clone(), s);
    let s = format!("glsa_{}_{}", g.pick(B62, 32), g.pick(HEX, 8));
    add("grafana service account token", s.clone(), s);
    let s = format!("figd_{}", g.pick(URLSAFE, 40));
    add("figma token", s.clone(), s);
    let s = format!(
        "ATATT3xFfGF0{}={}",
        g.pick(URLSAFE, 180),
        g.pick(UPPER_DIGITS, 8)
    );
    add("atlassian api token", s.clone(), s);
    let s = format!("s%3A{}.{}", g.pick(URLSAFE, 32), g.pick(B62, 43));
    add(
        "session cookie",
        s.clone(),
        format!("Cookie: connect.sid={s}"),
    );
    // Formats with no literal, found by their shape.
    let s = format!(
        "MT{}.{}.{}",
        g.pick(B62, 24),
        g.pick(URLSAFE, 6),
        g.pick(URLSAFE, 27)
    );
    add("discord bot token", s.clone(), format!("client.run({s})"));
    let s = g.pick(B64, 40);
    add(
        "aws secret key in a quoted list",
        s.clone(),
        format!(r#"keys: ["AKIAIOSFODNN7EXAMPLE", "{s}"]"#),
    );
    let s = g.pick(B64, 40);
    add(
        "aws secret key without its name",
        s.clone(),
        format!("aws configure set default {s} for us-east-1"),
    );
    // Formats with a prefix, of services LLM apps use.
    let hex_uuid = |g: &mut Gen| {
        format!(
            "{}-{}-{}-{}-{}",
            g.pick(HEX, 8),
            g.pick(HEX, 4),
            g.pick(HEX, 4),
            g.pick(HEX, 4),
            g.pick(HEX, 12)
        )
    };
    let s = format!("pk-lf-{}", hex_uuid(&mut g));
    add("langfuse public key", s.clone(), s);
    let s = format!("sk-lf-{}", hex_uuid(&mut g));
    add(
        "langfuse secret key",
        s.clone(),
        format!("Langfuse(secret_key={s})"),
    );
    let s = format!("sq0csp-{}", g.pick(URLSAFE, 43));
    add("square oauth secret", s.clone(), s);
    let s = format!("AKCp8{}", g.pick(B62, 68));
    add(
        "artifactory api key",
        s.clone(),
        format!("X-JFrog-Art-Api: {s}"),
    );
    // detect-secrets' short keywords.
    let s = g.pick(PASSWORD, 16);
    add(
        "db password by a short name",
        s.clone(),
        format!("DB_PASS={s}"),
    );
    let s = g.pick(PASSWORD, 14);
    add(
        "pwd assignment",
        s.clone(),
        format!(r#"{{"user": "admin", "pwd": "{s}"}}"#),
    );
    // Passwords named in other languages (detect-secrets knows `contraseña` alone).
    let s = g.pick(PASSWORD, 14);
    add(
        "password named in spanish",
        s.clone(),
        format!("contraseña={s}"),
    );
    let s = g.pick(PASSWORD, 14);
    add(
        "password named in russian",
        s.clone(),
        format!("логин: admin, пароль: {s}"),
    );
    let s = g.pick(PASSWORD, 14);
    add(
        "password named in chinese",
        s.clone(),
        format!(r#"{{"用户": "admin", "密码": "{s}"}}"#),
    );
    // In running text, with the full-width separators CJK text uses.
    let s = g.pick(PASSWORD, 14);
    add(
        "password in chinese prose",
        s.clone(),
        format!("用户名：admin，新密码：{s}，请尽快修改"),
    );
    out
}

/// Where captured text ends up on a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Argument,
    Output,
    Enrichment,
    LlmMessage,
    ErrorMessage,
    SpanName,
    EnrichmentKey,
    EventAttribute,
}

pub(crate) const PLACES: [Place; 8] = [
    Place::Argument,
    Place::Output,
    Place::Enrichment,
    Place::LlmMessage,
    Place::ErrorMessage,
    Place::SpanName,
    Place::EnrichmentKey,
    Place::EventAttribute,
];

/// The string an application puts in `place` for `secret`.
pub(crate) fn text_in(place: Place, secret: &Case) -> String {
    let t = &secret.text;
    match place {
        Place::Argument => format!("calling the tool with {t}"),
        Place::Output => format!("config loaded: {t}"),
        Place::Enrichment => format!("request sent with {t} attached"),
        Place::LlmMessage => format!("Here is my config, please debug it:\n{t}\nThanks!"),
        Place::ErrorMessage => format!("401 Unauthorized: {t} was rejected"),
        Place::SpanName => format!("GET {t}"),
        Place::EnrichmentKey => t.clone(),
        Place::EventAttribute => format!("503 from upstream while using {t}"),
    }
}

#[derive(Debug)]
pub(crate) struct ApiError(pub String);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[trace(event_type = "tool")]
fn call_tool(request: &str) -> usize {
    request.len()
}

#[trace(event_type = "tool")]
fn load_config(text: &str) -> String {
    text.to_owned()
}

#[trace(event_type = "chain")]
fn enriched(value: &str, key: &str) {
    let _ = (value, key);
    if key.is_empty() {
        enrich_span().metadata("note", value);
    } else {
        enrich_span().metadata(key, 1);
    }
}

#[trace(event_type = "model", skip_all)]
fn ask_llm(prompt: &str) {
    LlmCall::new("gpt-4o")
        .message("user", prompt)
        .completion("ok")
        .record();
}

#[trace(event_type = "tool", skip_all)]
fn fails(message: &str) -> Result<(), ApiError> {
    Err(ApiError(message.to_owned()))
}

#[trace(event_type = "tool", skip_all, skip_output)]
#[retry(max_attempts = 2, backoff = constant(0ms), jitter = none)]
fn flaky(message: &str, calls: &std::cell::Cell<u32>) -> Result<(), ApiError> {
    calls.set(calls.get() + 1);
    if calls.get() == 1 {
        Err(ApiError(message.to_owned()))
    } else {
        Ok(())
    }
}

/// A span named at run time. `#[trace]` names spans with a literal, so this builds the static
/// facts the macro would write (leaked, once per case) and opens the span the same way.
fn named(name: &str) {
    use honeyhive_runtime::__private::{EventType, Meta, RootState, Span};
    let meta: &'static Meta = Box::leak(Box::new(Meta {
        name: Box::leak(name.to_owned().into_boxed_str()),
        event_type: EventType::Tool,
        sample_rate: None,
        attr_capacity: 2,
        root: RootState::new(),
    }));
    drop(Span::enter(meta));
}

/// Runs the traced code that puts `text` in `place`.
pub(crate) fn run(place: Place, text: &str) {
    match place {
        Place::Argument => {
            call_tool(text);
        }
        Place::Output => {
            load_config(text);
        }
        Place::Enrichment => enriched(text, ""),
        Place::LlmMessage => ask_llm(text),
        Place::ErrorMessage => {
            let _ = fails(text);
        }
        Place::SpanName => named(text),
        Place::EnrichmentKey => enriched("", text),
        Place::EventAttribute => {
            let _ = flaky(text, &std::cell::Cell::new(0));
        }
    }
}

/// Every string of a span: name, keys, values, event names and attributes, status.
pub(crate) fn exported_text(span: &FinishedSpan) -> String {
    let mut out = String::new();
    let value = |v: &Value| v.as_str().into_owned();
    out.push_str(&span.name);
    for kv in &span.attributes {
        out.push('\n');
        out.push_str(kv.key.as_str());
        out.push('=');
        out.push_str(&value(&kv.value));
    }
    for event in &span.events.events {
        out.push('\n');
        out.push_str(&event.name);
        for kv in &event.attributes {
            out.push('\n');
            out.push_str(kv.key.as_str());
            out.push('=');
            out.push_str(&value(&kv.value));
        }
    }
    if let opentelemetry::trace::Status::Error { description } = &span.status {
        out.push('\n');
        out.push_str(description);
    }
    out
}

/// Whether any 8-character piece of `secret` shows in `exported`.
pub(crate) fn leaks(secret: &str, exported: &str) -> bool {
    let chars: Vec<char> = secret.chars().filter(|c| *c != '\n').collect();
    let width = chars.len().min(8);
    chars
        .windows(width)
        .any(|w| exported.contains(&w.iter().collect::<String>()))
}
