//! Where the events travel: Kafka (`KAFKA_EVENT_SOURCE_BROKERS`) with the
//! payloads in Redis (`REDIS_EVENT_SOURCE_ENDPOINT`) when both are set,
//! else in memory, in this process only.

use std::sync::Arc;

use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::redis::{Redis, RedisHashStore};
use event_backbone::{KeyValueStore, StreamChannel};

use crate::Error;

/// The channel (the stream) and the store (the payloads).
#[derive(Clone)]
pub struct Backend {
    /// The stream channel.
    pub channel: Arc<dyn StreamChannel>,
    /// The payload store.
    pub store: Arc<dyn KeyValueStore>,
}

impl Backend {
    /// Kafka and Redis when `KAFKA_EVENT_SOURCE_BROKERS` and
    /// `REDIS_EVENT_SOURCE_ENDPOINT` are set, else in memory.
    pub async fn from_env() -> Result<Self, Error> {
        let set = |name: &str| std::env::var_os(name).is_some();
        if !set("KAFKA_EVENT_SOURCE_BROKERS") {
            return Ok(Self::in_memory());
        }
        if !set("REDIS_EVENT_SOURCE_ENDPOINT") {
            return Err("Kafka carries the stream; set REDIS_EVENT_SOURCE_ENDPOINT for the payload store".into());
        }
        let kafka = Kafka::connect(KafkaConfig::from_env()?).await?;
        let redis = Redis::from_env().await?;
        Ok(Self {
            channel: Arc::new(KafkaStreamChannel::new(&kafka)),
            store: Arc::new(RedisHashStore::new(&redis)),
        })
    }

    /// In memory.
    pub fn in_memory() -> Self {
        Self {
            channel: Arc::new(MemoryChannel::new()),
            store: Arc::new(MemoryStore::new()),
        }
    }

    /// Whether it is in memory (one process only).
    pub fn is_in_memory(&self) -> bool {
        self.channel.backend() == "memory"
    }
}
