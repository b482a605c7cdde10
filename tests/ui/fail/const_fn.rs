use honeyhive_runtime::trace;

#[trace]
const fn double(x: u32) -> u32 {
    x * 2
}

const FOUR: u32 = double(2);

fn main() {
    assert_eq!(FOUR, 4);
}
