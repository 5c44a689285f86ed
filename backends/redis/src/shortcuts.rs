//! Builders that read like the seed: `Producer::builder().redis(&redis)`.

use std::sync::Arc;

use event_backbone_core::{ConsumerBuilder, ProducerBuilder};

use crate::{Redis, RedisHashStore, RedisStreamChannel};

/// Sets both the channel and the default store of a builder from one Redis
/// connection.
pub trait RedisBuilderExt: Sized {
    /// Redis Streams for the channel, Redis hashes for the payloads.
    fn redis(self, redis: &Redis) -> Self;
}

impl RedisBuilderExt for ProducerBuilder {
    fn redis(self, redis: &Redis) -> Self {
        self.channel(Arc::new(RedisStreamChannel::new(redis)))
            .store(Arc::new(RedisHashStore::new(redis)))
    }
}

impl RedisBuilderExt for ConsumerBuilder {
    fn redis(self, redis: &Redis) -> Self {
        self.channel(Arc::new(RedisStreamChannel::new(redis)))
            .store(Arc::new(RedisHashStore::new(redis)))
    }
}
