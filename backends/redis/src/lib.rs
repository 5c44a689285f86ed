//! # event-backbone-redis
//!
//! The Redis backend of [event-backbone](https://docs.rs/event-backbone):
//! [`RedisStreamChannel`] (Redis Streams, consumer groups) and
//! [`RedisHashStore`] (one hash per payload key, one field per segment).
//! Made from one [`Redis`] connection, a producer writes each batch — every
//! `HSET`, then every `XADD` — in a single pipeline.
//!
//! ```no_run
//! use event_backbone_core::Producer;
//! use event_backbone_redis::{Redis, RedisBuilderExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // REDIS_EVENT_SOURCE_ENDPOINT / REDIS_EVENT_SOURCE_PASS, or 127.0.0.1:6379
//! let redis = Redis::from_env().await?;
//! let producer = Producer::builder().redis(&redis).uri("hello.event-sourcing").build()?;
//! producer.message("hello").segment("who", "world")?.send().await?;
//! # Ok(()) }
//! ```
//!
//! In `redis-cli`, a stream entry shows its message id and operation in
//! plain text beside the encoded metadata (`XRANGE hello.event-sourcing - +`),
//! and the payload is a hash (`HGETALL hello.event-sourcing:hello:v0:normal:<id>`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
mod connection;
pub mod entry;
mod error;
mod shortcuts;
mod store;

pub use channel::RedisStreamChannel;
pub use config::{RedisConfig, ENDPOINT_VAR, PASSWORD_VAR};
pub use connection::Redis;
pub use error::{Error, Result};
pub use shortcuts::RedisBuilderExt;
pub use store::RedisHashStore;
