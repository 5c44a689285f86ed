#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
mod connection;
mod entry;
mod error;
pub mod schema;
mod store;
mod wake;

pub use channel::SqliteStreamChannel;
pub use config::{SqliteConfig, URL_VAR};
pub use connection::Sqlite;
pub use error::{Error, Result};
pub use store::{SqliteStore, MAX_VALUE_BYTES};

/// sqlx, which this crate is built on (`Sqlite::pool`).
pub use sqlx;

/// The backend's name, as `StreamChannel::backend` and
/// `KeyValueStore::backend` report it and errors name it.
pub const BACKEND: &str = "sqlite";
