//! Shared by the Couchbase tests: the server, and unique names.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::unique_uri as unique;
use event_backbone_couchbase::{CouchbaseConfig, CONNSTR_VAR};

/// The test server `scripts/start-couchbase` starts, and its credentials.
pub const LOCAL: &str = "couchbase://127.0.0.1";

/// The server of `COUCHBASE_EVENT_SOURCE_CONNSTR` (and `_USER`, `_PASS`,
/// `_BUCKET`), else the project's test server; the collection
/// `app.payloads` either way.
pub fn config() -> CouchbaseConfig {
    let config = match std::env::var_os(CONNSTR_VAR) {
        Some(_) => CouchbaseConfig::from_env().expect("COUCHBASE_EVENT_SOURCE_* set and valid"),
        None => CouchbaseConfig::from_url(LOCAL)
            .expect("the local address")
            .credentials("event-backbone", "event-backbone-test")
            .bucket("event-backbone"),
    };
    config.collection("app", "payloads")
}
