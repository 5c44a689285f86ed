#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
mod connection;
mod entry;
mod error;
mod produce;
pub mod schema;
mod store;
mod sweep;
mod transaction;
mod wake;

pub use channel::PostgresStreamChannel;
pub use config::{PostgresConfig, DEFAULT_SCHEMA, URL_VAR};
pub use connection::Postgres;
pub use error::{Error, Result};
pub use store::{PostgresStore, MAX_VALUE_BYTES};
pub use transaction::InTransaction;

/// sqlx, which this crate is built on, for the pool and transactions
/// (`Postgres::pool`).
pub use sqlx;

/// The backend's name, as `StreamChannel::backend` and
/// `KeyValueStore::backend` report it and errors name it.
pub const BACKEND: &str = "postgres";
