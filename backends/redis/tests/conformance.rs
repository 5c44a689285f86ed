//! The conformance suites against a real Redis server: every case, by name,
//! on one stream key and on a stream spread over four partitions.
//!
//! The server is `REDIS_EVENT_SOURCE_ENDPOINT` (with
//! `REDIS_EVENT_SOURCE_PASS`), or 127.0.0.1:6379; `scripts/test` starts one
//! if none runs. A server that cannot be reached fails every case.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_redis::entry::FIELD_METADATA;
use event_backbone_redis::{Redis, RedisHashStore, RedisStreamChannel, BACKEND};

async fn redis() -> event_backbone_core::Result<Redis> {
    Ok(Redis::connect(support::config()).await?)
}

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    Ok(Arc::new(RedisHashStore::new(&redis().await?)))
}

/// Writes bytes as an entry's `metadata` field, the way the channel keeps
/// it, without the encoding.
async fn append_raw(
    channel: Arc<dyn StreamChannel>,
    stream: String,
    bytes: Bytes,
) -> event_backbone_core::Result<()> {
    // On a partitioned stream, into its first partition.
    let key = match channel
        .as_any()
        .and_then(|c| c.downcast_ref::<RedisStreamChannel>())
    {
        Some(redis_channel) => redis_channel.stream_keys(&stream)?[0].clone(),
        None => stream,
    };
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg(FIELD_METADATA)
        .arg(bytes.as_ref())
        .query_async(&mut support::raw().await)
        .await
        .map_err(|e| event_backbone_core::Error::transient(BACKEND, "writing a raw entry", e))?;
    Ok(())
}

fn main() -> ExitCode {
    Conformance::run_all([
        Conformance::new(BACKEND)
            .channel(|| async {
                Ok(Arc::new(RedisStreamChannel::new(&redis().await?)) as Arc<dyn StreamChannel>)
            })
            .raw_entries(append_raw)
            .store(store)
            .channel_payloads_in(store),
        // One stream over four stream keys, on one server.
        Conformance::new("redis-partitions4")
            .channel(|| async {
                Ok(
                    Arc::new(RedisStreamChannel::new(&redis().await?).partitions(4)?)
                        as Arc<dyn StreamChannel>,
                )
            })
            .raw_entries(append_raw)
            .channel_payloads_in(store),
    ])
}
