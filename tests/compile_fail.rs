//! `#[event_contract]` refuses what a contract cannot be, with a clear
//! message at the right place, and its output compiles under
//! `#![deny(missing_docs)]` and with `crate = ...`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
