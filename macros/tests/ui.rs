//! Compile-time behaviour of `#[channel]`: what compiles, and the exact errors for each mistake.
//!
//! Regenerate the expected errors with `TRYBUILD=overwrite cargo test -p tidings-macros --test ui`,
//! then read every `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
