use honeyhive_runtime::retry;

// `ref mut` binds into the argument itself, which every attempt shares: the second attempt
// would start from what the first left.
#[retry]
fn send((ref mut items, n): (Vec<u32>, u32)) -> Result<usize, String> {
    items.push(n);
    Ok(items.len())
}

fn main() {}
