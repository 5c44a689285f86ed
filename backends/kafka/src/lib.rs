#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel;
mod config;
mod connection;
mod counts;
pub mod entry;
mod error;
mod group;
mod member;
mod members;
mod produce;
mod reader;
mod topic;
mod tracker;

pub use channel::KafkaStreamChannel;
pub use config::{KafkaConfig, BROKERS_VAR, SCHEME};
pub use connection::Kafka;
pub use counts::{delivery_counts_topic, DELIVERY_COUNT_GROUP_HEADER};
pub use error::{Error, Result};
pub use group::group_id;
pub use topic::{topic_of, MAX_TOPIC_LEN};

/// The backend's name, as `StreamChannel::backend` reports it and errors
/// name it.
pub const BACKEND: &str = "kafka";
