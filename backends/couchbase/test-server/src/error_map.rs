//! GET_ERROR_MAP's answer: the map of extended error codes a client may
//! consult for statuses it does not know. This server sends only statuses
//! every client knows, so its map lists none; the C++ core (the Python
//! SDK's) refuses a server that answers the command with an error.

use serde_json::{json, Value};

/// The map for a client that asked for `version` (it gets at most 2).
pub fn error_map(version: u16) -> Value {
    json!({"version": version.clamp(1, 2), "revision": 1, "errors": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_has_the_version_asked_for_up_to_2() {
        assert_eq!(error_map(2)["version"], 2);
        assert_eq!(error_map(7)["version"], 2);
        assert_eq!(error_map(1)["version"], 1);
        assert!(error_map(2)["errors"].as_object().unwrap().is_empty());
    }
}
