use honeyhive_runtime::retry;

// A `mut` binding of a pattern, or a `mut _name`, is an owned argument like any other: each
// attempt starts from the caller's value, so it must be `Copy` or in `clone(..)`.
#[retry]
fn send((mut items, n): (Vec<u32>, u32)) -> Result<usize, String> {
    items.push(n);
    Ok(items.len())
}

#[retry]
fn log(mut _lines: Vec<String>) -> Result<(), String> {
    _lines.push("retried".to_owned());
    Ok(())
}

fn main() {}
