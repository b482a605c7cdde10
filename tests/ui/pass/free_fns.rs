//! Free fns: sync, async, `?` and early `return`, `unsafe fn`, raw identifiers.

use honeyhive_runtime::testing::Recorder;
use honeyhive_runtime::trace;

#[derive(Debug)]
struct TooLong(usize);

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes is too long", self.0)
    }
}

#[trace]
fn no_args() {}

#[trace]
fn lookup(city: &str) -> usize {
    city.len()
}

#[trace]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.trim().parse()?;
    Ok(n * 2)
}

#[trace]
fn check(prompt: &str) -> Result<&str, TooLong> {
    if prompt.len() > 8 {
        return Err(TooLong(prompt.len()));
    }
    Ok(prompt)
}

#[trace]
fn early_unit(flag: bool) {
    if flag {
        return;
    }
    println!("not flagged");
}

#[trace]
async fn answer(question: String) -> Result<String, TooLong> {
    let checked = check(&question)?;
    if checked.is_empty() {
        return Ok("nothing to answer".to_owned());
    }
    Ok(format!("answer to {checked}"))
}

#[trace]
async fn nothing() {}

#[trace]
fn fail(reason: &str) -> ! {
    panic!("{reason}")
}

#[trace]
async fn fail_async() -> ! {
    panic!("async failure")
}

/// # Safety
/// `ptr` must be valid for reads.
#[trace]
unsafe fn read(ptr: *const u32) -> u32 {
    // SAFETY: the caller promises `ptr` is valid.
    unsafe { *ptr }
}

#[trace]
fn raw(r#type: &str, r#fn: u32) -> String {
    format!("{type}{fn}", type = r#type, fn = r#fn)
}

#[trace]
fn r#match(_ignored: u8, (a, b): (u8, u8)) -> u8 {
    a + b
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let recorder = Recorder::start();
    no_args();
    assert_eq!(lookup("Paris"), 5);
    assert_eq!(parse(" 21 "), Ok(42));
    assert!(parse("x").is_err());
    assert_eq!(check("hi").unwrap(), "hi");
    assert!(check("far too long").is_err());
    early_unit(true);
    early_unit(false);
    assert_eq!(answer("why".to_owned()).await.unwrap(), "answer to why");
    assert_eq!(answer(String::new()).await.unwrap(), "nothing to answer");
    assert!(answer("far too long".to_owned()).await.is_err());
    nothing().await;
    let x = 7;
    // SAFETY: `&x` is valid.
    assert_eq!(unsafe { read(&raw const x) }, 7);
    assert_eq!(raw("t", 1), "t1");
    assert_eq!(r#match(0, (1, 2)), 3);
    assert!(std::panic::catch_unwind(|| fail("boom")).is_err());
    assert!(tokio::spawn(fail_async()).await.is_err());

    let spans = recorder.spans();
    let lookup = spans.get("lookup");
    assert_eq!(lookup.str("honeyhive_inputs.city"), Some("Paris"));
    assert_eq!(lookup.i64("honeyhive_outputs.result"), Some(5));
    let raw = spans.get("raw");
    assert_eq!(raw.str("honeyhive_inputs.type"), Some("t"));
    assert_eq!(raw.i64("honeyhive_inputs.fn"), Some(1));
    // `_name` is a name like any other; pattern-bound arguments are not captured.
    let matched = spans.get("match");
    assert_eq!(matched.i64("honeyhive_inputs._ignored"), Some(0));
    assert!(matched.attr("honeyhive_inputs.a").is_none());
    assert_eq!(spans.all("parse").filter(|s| s.is_error()).count(), 1);
    assert_eq!(spans.all("check").filter(|s| s.is_error()).count(), 2);
    let errors: Vec<_> = spans.all("answer").filter(|s| s.is_error()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_message(), Some("12 bytes is too long"));
    assert_eq!(spans.all("early_unit").count(), 2);
    spans.get("nothing");
    assert_eq!(spans.get("read").i64("honeyhive_outputs.result"), Some(7));
    assert_eq!(spans.get("fail").error_message(), Some("boom"));
    assert_eq!(
        spans.get("fail").str("honeyhive_inputs.reason"),
        Some("boom")
    );
    assert_eq!(
        spans.get("fail_async").error_message(),
        Some("async failure")
    );
}
