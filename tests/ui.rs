//! Compile-fail (UI) tests: every error the macros can emit, with its expected
//! `.stderr` in `tests/ui/`. Regenerate with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
