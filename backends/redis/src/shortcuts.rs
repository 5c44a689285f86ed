//! Builders that read like the seed: `Producer::builder().redis(&redis)`.

use std::sync::Arc;

use event_backbone_core::EndpointBuilder;

use crate::{Redis, RedisHashStore, RedisStreamChannel};

/// Sets both the channel and the default store of a builder (of any role:
/// producer, consumer, replay, receiver, requests by data subject) from one
/// Redis connection.
///
/// ```no_run
/// use event_backbone_core::{Consumer, Producer, Replay};
/// use event_backbone_redis::{Redis, RedisBuilderExt};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = Redis::from_env().await?;
/// let producer = Producer::builder().redis(&redis).uri("orders").build()?;
/// let history = Replay::builder().redis(&redis).uri("orders").messages()?;
/// # Ok(()) }
/// ```
pub trait RedisBuilderExt: Sized {
    /// Redis Streams for the channel, Redis hashes for the payloads.
    fn redis(self, redis: &Redis) -> Self;
}

impl<R> RedisBuilderExt for EndpointBuilder<R> {
    fn redis(self, redis: &Redis) -> Self {
        self.channel(Arc::new(RedisStreamChannel::new(redis)))
            .store(Arc::new(RedisHashStore::new(redis)))
    }
}
