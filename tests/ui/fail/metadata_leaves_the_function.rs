use honeyhive_runtime::trace;

fn may_fail() -> Result<u32, String> {
    Ok(1)
}

// The expression runs only when the span is sampled: a `?` or `return` in it would leave the
// function only then.
#[trace(metadata(attempt = may_fail()?))]
fn with_question_mark(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[trace(metadata(early = if n > 3 { return 0 } else { n }))]
fn with_return(n: u32) -> u32 {
    n
}

// Inside a closure of its own, a `?` stays there.
#[trace(metadata(inner = (|| -> Option<u32> { Some(may_fail().ok()? + 1) })()))]
fn with_closure(n: u32) -> u32 {
    n
}

fn main() {
    let _ = with_question_mark(1);
    let _ = with_return(1);
    let _ = with_closure(1);
}
