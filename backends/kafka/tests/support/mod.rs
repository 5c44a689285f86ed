//! Shared by the Kafka tests: the brokers, channels on them, unique names.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_kafka::{Kafka, KafkaConfig, KafkaStreamChannel, BROKERS_VAR};

/// Where `scripts/start-kafka` starts tansu when no broker is named.
pub const LOCAL: &str = "127.0.0.1:9092";

/// The test brokers: `KAFKA_EVENT_SOURCE_BROKERS`, else the local one.
pub fn config() -> KafkaConfig {
    match std::env::var_os(BROKERS_VAR) {
        Some(_) => KafkaConfig::from_env().expect("a valid KAFKA_EVENT_SOURCE_BROKERS"),
        None => KafkaConfig::from_brokers(LOCAL).expect("the local address"),
    }
}

/// A channel on a new connection with this configuration. A broker that
/// is not there fails the test, with how to start one.
pub async fn channel(config: KafkaConfig) -> Arc<KafkaStreamChannel> {
    match Kafka::connect(config).await {
        Ok(kafka) => Arc::new(KafkaStreamChannel::new(&kafka)),
        Err(e) => panic!("{e}; run scripts/start-kafka"),
    }
}
