//! Validation of the names that end up in keys: uri, environment, group,
//! operation, consumer name and segment class.
//!
//! Keys are built by joining names with `:` (see [`crate::address`]), so a
//! name must not contain `:`; whitespace and control characters are refused
//! because they make keys ambiguous in logs and in `redis-cli`.

use crate::{Error, Result};

/// Checks one name and returns it owned, or an [`Error::InvalidName`] that
/// names `what` and the refused value.
pub fn validate(what: &'static str, value: &str) -> Result<String> {
    check(what, value).map(|()| value.to_owned())
}

/// Checks one name, without copying it.
pub fn check(what: &'static str, value: &str) -> Result<()> {
    let refuse = |reason| {
        Err(Error::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        })
    };
    // The common case in one pass: printable ASCII without ':'.
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Ok(());
    }
    if value.is_empty() {
        return refuse("it is empty; give a non-empty name");
    }
    if value.chars().all(char::is_whitespace) {
        return refuse("it is blank; give a non-empty name");
    }
    if value.contains(':') {
        return refuse("':' separates the parts of a key; use '.', '-' or '/' instead");
    }
    if value.chars().any(char::is_control) {
        return refuse("control characters are not allowed");
    }
    if value.chars().any(char::is_whitespace) {
        return refuse("whitespace is not allowed; use '-' or '_' instead");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "orders",
            "hello.event-sourcing",
            "a/b_c",
            "événements",
            "v2",
        ] {
            assert_eq!(validate("uri", ok).unwrap(), ok);
        }
    }

    #[test]
    fn refuses_bad_names_naming_the_value() {
        for bad in ["", "   ", "a:b", "a b", "tab\there", "nl\n", "nul\0"] {
            let err = validate("group", bad).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("invalid group "), "{text}");
            assert!(text.contains(&format!("{bad:?}")), "{text}");
        }
    }
}
