//! Shared by the Kafka tests: the brokers and unique names.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_kafka::{KafkaConfig, BROKERS_VAR};

/// The test brokers: `KAFKA_EVENT_SOURCE_BROKERS`, or 127.0.0.1:9092 (where
/// `scripts/start-kafka` starts tansu).
pub fn config() -> KafkaConfig {
    let brokers = std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    KafkaConfig::new(&brokers).expect("a valid KAFKA_EVENT_SOURCE_BROKERS")
}
