#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod batch;
mod config;
mod connection;
mod error;
mod insert;
pub mod item;
pub mod piece;
mod store;
mod table;

pub use config::{DynamoConfig, DEFAULT_TABLE, ENDPOINT_VAR, TABLE_VAR};
pub use connection::Dynamo;
pub use error::{Error, Result};
pub use store::{DynamoStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// The SDK this crate is built on, for what the store does not do
/// (`Dynamo::client`).
pub use aws_sdk_dynamodb as sdk;

/// The backend's name, as `KeyValueStore::backend` reports it and errors
/// name it.
pub const BACKEND: &str = "dynamodb";
