//! Compile-time behaviour of `#[trace]`: each mistake in `ui/fail` is a spanned error pinned by
//! its `.stderr`; every fn shape in `ui/pass` compiles and runs.
//!
//! After changing an error message: `TRYBUILD=overwrite cargo test -p honeyhive-tests --test
//! compiletest`, then read the new `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
