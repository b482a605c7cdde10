// What a user sees when `honeyhive-runtime` is built without its `tokio` feature and no
// `sleep = path` is given. The tests build the runtime with the feature, so this stands in for
// it: `crate = ..` points the expansion at a runtime whose default timer has no clock behind it.
mod runtime_without_tokio {
    pub mod __private {
        pub use honeyhive_runtime::__private::*;
        pub struct DefaultTimer;
    }
}

#[honeyhive_runtime::retry(crate = "runtime_without_tokio")]
async fn complete() -> Result<String, std::io::Error> {
    Ok(String::new())
}

fn main() {}
