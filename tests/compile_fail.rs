//! `#[event_contract]` refuses what a contract cannot be, with a clear
//! message at the right place, and its output compiles under
//! `#![deny(missing_docs)]` and with `crate = ...`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    // Errors about a type name it by its shortest unique path, which
    // depends on every crate in the build (`Default` or
    // `std::default::Default`): these run with the default features, the
    // build the expected output was written from.
    if cfg!(not(any(
        feature = "redis",
        feature = "kafka",
        feature = "mongodb",
        feature = "dynamodb",
        feature = "couchbase"
    ))) {
        cases.compile_fail("tests/ui/fail-types/*.rs");
    }
    cases.pass("tests/ui/pass/*.rs");
}
