//! The derive's accepted shapes compile, and each misuse is one spanned error.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p dbsync-derive`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
