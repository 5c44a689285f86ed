//! # event-backbone-kafka
//!
//! The Kafka backend of [event-backbone](https://docs.rs/event-backbone):
//! [`KafkaStreamChannel`], a stream channel on
//! [rdkafka](https://docs.rs/rdkafka) (librdkafka, built from source), one
//! topic per stream. Kafka carries the sequence and the metadata; payloads
//! go to any key-value store (Redis Hash, in-memory, your own):
//!
//! ```no_run
//! use std::sync::Arc;
//! use event_backbone_core::{memory::MemoryStore, Producer};
//! use event_backbone_kafka::KafkaStreamChannel;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // KAFKA_EVENT_SOURCE_BROKERS, e.g. 127.0.0.1:9092
//! let kafka = Arc::new(KafkaStreamChannel::from_env()?);
//! let producer = Producer::builder()
//!     .channel(kafka)
//!     .store(Arc::new(MemoryStore::new()))
//!     .uri("hello.event-sourcing")
//!     .build()?;
//! producer.message("hello").segment("who", "world")?.send().await?;
//! # Ok(()) }
//! ```
//!
//! Targets Apache Kafka 3.x and later (and brokers speaking its protocol);
//! the project's own tests run against tansu.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
pub mod entry;
mod error;
mod member;
mod topic;
mod tracker;

pub use channel::{group_id, KafkaStreamChannel};
pub use config::{KafkaConfig, BROKERS_VAR};
pub use error::{Error, Result};
pub use topic::{topic_of, MAX_TOPIC_LEN};
