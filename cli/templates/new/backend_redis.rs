//! Where the events travel: Redis when `REDIS_EVENT_SOURCE_ENDPOINT` is
//! set (stream and payloads), else in memory, in this process only.

use std::sync::Arc;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::redis::{Redis, RedisHashStore, RedisStreamChannel};
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
    /// Redis when `REDIS_EVENT_SOURCE_ENDPOINT` is set (with
    /// `REDIS_EVENT_SOURCE_PASS` if it needs one), else in memory.
    pub async fn from_env() -> Result<Self, Error> {
        if std::env::var_os("REDIS_EVENT_SOURCE_ENDPOINT").is_none() {
            return Ok(Self::in_memory());
        }
        let redis = Redis::from_env().await?;
        Ok(Self {
            channel: Arc::new(RedisStreamChannel::new(&redis)),
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
