#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod connection;
pub mod document;
mod error;
mod store;

pub use config::{CouchbaseConfig, BUCKET_VAR, CONNSTR_VAR, PASSWORD_VAR, USER_VAR};
pub use connection::Couchbase;
pub use error::{Error, Result};
pub use store::{CouchbaseStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// The `couchbase` SDK this crate is built on, for what the store does not
/// do (`Couchbase::cluster`).
pub use couchbase as sdk;

/// The backend's name, as `KeyValueStore::backend` reports it and errors
/// name it.
pub const BACKEND: &str = "couchbase";
