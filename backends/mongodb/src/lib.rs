#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod connection;
pub mod document;
mod error;
mod store;

pub use config::{MongoConfig, DEFAULT_COLLECTION, DEFAULT_DATABASE, URI_VAR};
pub use connection::Mongo;
pub use error::{Error, Result};
pub use store::{MongoStore, MAX_VALUE_BYTES};

/// The `mongodb` driver this crate is built on, for what the store does not
/// do (`Mongo::client`).
pub use mongodb as driver;

/// The backend's name, as `KeyValueStore::backend` reports it and errors
/// name it.
pub const BACKEND: &str = "mongodb";
