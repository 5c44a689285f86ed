#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
mod connection;
pub mod entry;
mod error;
mod members;
mod partitioned;
mod partitions;
mod replicas;
mod shortcuts;
mod store;
mod stream_ops;
mod trim;

pub use channel::RedisStreamChannel;
pub use config::{RedisConfig, ENDPOINT_VAR, PASSWORD_VAR};
pub use connection::Redis;
pub use error::{Error, Result};
pub use partitions::MAX_PARTITIONS;
pub use shortcuts::RedisBuilderExt;
pub use store::{RedisHashStore, MAX_VALUE_BYTES};

/// The backend's name, as `StreamChannel::backend` and
/// `KeyValueStore::backend` report it and errors name it.
pub const BACKEND: &str = "redis";
