use honeyhive_runtime::trace;

unsafe extern "C" {
    #[trace]
    safe fn abs(x: i32) -> i32;
}

fn main() {
    abs(-3);
}
