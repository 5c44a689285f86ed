//! Shared by the Kafka tests: the brokers and unique names.
#![allow(dead_code)]

use event_backbone_kafka::{KafkaConfig, BROKERS_VAR};

/// The test brokers: `KAFKA_EVENT_SOURCE_BROKERS`, or 127.0.0.1:9092 (where
/// `scripts/start-kafka` starts tansu).
pub fn config() -> KafkaConfig {
    let brokers = std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    KafkaConfig::new(&brokers).expect("a valid KAFKA_EVENT_SOURCE_BROKERS")
}

/// A uri no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

/// Polls until `check` holds, panicking with `what` after 60 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
