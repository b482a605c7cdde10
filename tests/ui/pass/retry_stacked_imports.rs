//! An attribute consumed by the other macro (`#[trace]` under `#[retry]`, `#[retry]` under
//! `#[trace]`) still counts as a use of its import.
#![deny(warnings)]

mod retry_outside {
    use honeyhive_runtime::{retry, trace};

    #[retry(backoff = constant(0ms))]
    #[trace]
    pub fn call() -> Result<u8, String> {
        Ok(1)
    }
}

mod trace_outside {
    use honeyhive_runtime::{retry, trace};

    #[trace]
    #[retry(backoff = constant(0ms))]
    pub fn call() -> Result<u8, String> {
        Ok(2)
    }
}

fn main() {
    assert_eq!(retry_outside::call(), Ok(1));
    assert_eq!(trace_outside::call(), Ok(2));
}
