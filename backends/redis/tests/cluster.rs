//! The conformance suites against a real Redis Cluster (three masters,
//! three replicas): every case, by name, on one stream key and on a stream
//! spread over four partitions.
//!
//! The cluster is `REDIS_CLUSTER_ENDPOINTS` (comma-separated seed nodes),
//! or the one `scripts/start-redis-cluster` started; `scripts/test` starts
//! one. A cluster that cannot be reached fails every case.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_redis::entry::FIELD_METADATA;
use event_backbone_redis::{Redis, RedisHashStore, RedisStreamChannel, BACKEND};

async fn redis() -> event_backbone_core::Result<Redis> {
    Ok(Redis::connect(support::cluster_config()).await?)
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
        .query_async(&mut support::raw_cluster().await)
        .await
        .map_err(|e| event_backbone_core::Error::transient(BACKEND, "writing a raw entry", e))?;
    Ok(())
}

/// The suites with channels of `partitions` partitions.
fn suite(name: &str, partitions: u16) -> Conformance {
    Conformance::new(name)
        .channel(move || async move {
            Ok(
                Arc::new(RedisStreamChannel::new(&redis().await?).partitions(partitions)?)
                    as Arc<dyn StreamChannel>,
            )
        })
        .raw_entries(append_raw)
        .channel_payloads_in(store)
}

fn main() -> ExitCode {
    Conformance::run_all([
        suite("redis-cluster", 1).store(store),
        suite("redis-cluster-partitions4", 4),
    ])
}
