//! [`RedisStreamChannel`]: a stream per stream key (or one stream over
//! several, [`RedisStreamChannel::partitions`]), consumer groups as Redis
//! consumer groups.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_backbone_core::{
    ChannelCapabilities, Delivery, Entry, EntryId, GroupStart, KeyValueStore, MemberInfo, Metadata,
    Ordering, PutItem, Result, StreamChannel, StreamInfo, StreamPosition,
};

use crate::connection::Redis;
use crate::partitions::{check_stream_name, partition_keys, MAX_PARTITIONS};
use crate::store::{check_sizes, put, RedisHashStore};
use crate::trim::Trimmer;
use crate::BACKEND;

/// A [`StreamChannel`] on Redis Streams.
///
/// | operation | commands |
/// |---|---|
/// | append | `XADD key * message_id .. operation .. metadata ..` (pipelined) |
/// | trim (with a maximum length) | a script, every tenth of it: `XTRIM MINID ~` below the lowest entry a group has not read or acknowledged |
/// | groups | `XGROUP CREATE key group 0\|$ MKSTREAM` |
/// | read | `XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS key >` on a dedicated connection |
/// | ack | `XACK key group id...` |
/// | claim | `XAUTOCLAIM`, then `XPENDING` for the delivery counts |
/// | own pending | a script: `XPENDING ... consumer`, then `XCLAIM` to itself |
/// | redelivery after a failure | a script: `XPENDING id id 1 consumer`, then `XCLAIM ... JUSTID RETRYCOUNT n+1` |
/// | touch (entries still in hand) | a script: per entry `XPENDING id id 1 consumer`, then `XCLAIM ... 0 id JUSTID` |
/// | replay, get | `XRANGE` (`(id` for "after", `ms-0` for a time) |
/// | info | `XINFO STREAM`, `XINFO GROUPS` |
/// | group members | `XINFO CONSUMERS` |
///
/// With [`partitions(n)`](RedisStreamChannel::partitions) a stream is `n`
/// stream keys, which a Redis Cluster places on different slots (and so
/// different masters): each operation runs on the partitions it concerns,
/// all at once.
///
/// ```no_run
/// use std::sync::Arc;
/// use event_backbone_redis::{Redis, RedisStreamChannel, RedisHashStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = Redis::from_env().await?;
/// let channel = Arc::new(RedisStreamChannel::new(&redis));
/// let store = Arc::new(RedisHashStore::new(&redis));
/// // One logical stream over four stream keys, spread over a cluster.
/// let spread = Arc::new(RedisStreamChannel::new(&redis).partitions(4)?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStreamChannel {
    pub(crate) redis: Redis,
    pub(crate) trimmer: Trimmer,
    pub(crate) partitions: u16,
    /// The partitions' stream keys, by stream.
    keys: Arc<Mutex<std::collections::HashMap<String, Arc<[String]>>>>,
    /// Which partition a read gives its extra share to, turned each read.
    pub(crate) turn: Arc<AtomicUsize>,
    /// Partitions whose pending entries a consumer has still to take back
    /// (a failed or unfinished `read_pending`), by stream, group and
    /// consumer.
    pub(crate) unrecovered: Arc<Mutex<std::collections::HashSet<Owed>>>,
}

/// A partition a consumer has still to take back its pending entries of:
/// stream, group, consumer, partition.
pub(crate) type Owed = (String, String, String, usize);

impl RedisStreamChannel {
    /// A channel on this connection.
    pub fn new(redis: &Redis) -> Self {
        Self {
            redis: redis.clone(),
            trimmer: Trimmer::default(),
            partitions: 1,
            keys: Arc::default(),
            turn: Arc::default(),
            unrecovered: Arc::default(),
        }
    }

    /// Spreads every stream over `n` stream keys (partitions) whose hash
    /// tags place them on slots evenly spaced round the cluster, so that a
    /// busy stream grows past one master (default 1: a stream is one key).
    ///
    /// A message goes to the partition of its partition key (the producer's
    /// `.partition_key(..)`: same key, same partition, so order holds per
    /// key); one without a key to a partition picked by its message id. A
    /// consumer group reads every partition: its members share them, and
    /// what a member leaves pending is claimed by the others. Replay merges
    /// the partitions in the order of their entries' ids (time, sequence,
    /// partition), each partition in its own order. Order holds per key,
    /// not across the stream ([`Ordering::PerKey`]).
    ///
    /// Every producer and consumer of a stream must use the same `n`: the
    /// keys depend on it. Between 1 and
    /// [`MAX_PARTITIONS`](crate::MAX_PARTITIONS); a stream name with a `{`
    /// (a hash tag of its own) is refused when `n > 1`.
    pub fn partitions(mut self, n: u16) -> Result<Self> {
        if n == 0 || n > MAX_PARTITIONS {
            return Err(event_backbone_core::Error::permanent(
                BACKEND,
                "configuring the channel",
                format!("partitions({n}): expected 1 to {MAX_PARTITIONS}"),
            ));
        }
        self.partitions = n;
        self.keys = Arc::default();
        Ok(self)
    }

    /// How many partitions each stream has.
    pub fn partition_count(&self) -> u16 {
        self.partitions
    }

    /// The stream keys that hold `stream`: the stream itself with one
    /// partition, else one per partition.
    ///
    /// ```no_run
    /// # use event_backbone_redis::{Redis, RedisStreamChannel};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = Redis::from_env().await?;
    /// let channel = RedisStreamChannel::new(&redis).partitions(2)?;
    /// assert_eq!(channel.stream_keys("orders")?.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn stream_keys(&self, stream: &str) -> Result<Arc<[String]>> {
        if self.partitions == 1 {
            return Ok(Arc::from([stream.to_owned()]));
        }
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = keys.get(stream) {
            return Ok(found.clone());
        }
        check_stream_name(stream)?;
        let made: Arc<[String]> = partition_keys(stream, self.partitions).into();
        keys.insert(stream.to_owned(), made.clone());
        Ok(made)
    }

    /// The connection.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub(crate) fn partitioned(&self) -> bool {
        self.partitions > 1
    }

    /// The Redis stores among `payloads`, if all of them share this
    /// channel's connection.
    pub(crate) fn shared_stores<'a>(
        &self,
        payloads: &'a [(&dyn KeyValueStore, Vec<PutItem>)],
    ) -> Option<Vec<&'a [PutItem]>> {
        payloads
            .iter()
            .map(|(store, items)| {
                let redis_store = store.as_any()?.downcast_ref::<RedisHashStore>()?;
                self.redis
                    .same(redis_store.redis())
                    .then_some(items.as_slice())
            })
            .collect()
    }
}

#[async_trait]
impl StreamChannel for RedisStreamChannel {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> ChannelCapabilities {
        if self.partitioned() {
            ChannelCapabilities::all().with_ordering(Ordering::PerKey)
        } else {
            ChannelCapabilities::all()
        }
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        if self.partitioned() {
            return self.append_partitioned(stream, batch).await;
        }
        self.append_many_key(stream, batch).await
    }

    async fn store_and_append(
        &self,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let Some(shared) = self.shared_stores(payloads) else {
            for (store, items) in payloads {
                store.insert_many(items).await?;
            }
            return self.append_many(stream, batch).await;
        };
        for items in &shared {
            check_sizes(items)?;
        }
        if self.redis.is_cluster() {
            // The payload keys live on other nodes than the stream: every
            // payload is written and acknowledged before the first append
            // (docs/ARCHITECTURE.md, "Payloads before entries on a cluster"),
            // and with `wait_for_replicas`, has reached the replicas.
            put(
                &self.redis,
                shared.iter().flat_map(|items| items.iter()),
                || format!("the payloads of a batch for {stream:?}"),
            )
            .await?;
            return self.append_many(stream, batch).await;
        }
        if self.partitioned() {
            return self
                .store_and_append_partitioned(stream, &shared, batch)
                .await;
        }
        let keys = vec![stream; batch.len()];
        let ids = self
            .store_and_append_pipelined(stream, &shared, batch, &keys)
            .await?;
        self.trimmer.appended(&self.redis, stream, ids.len()).await;
        Ok(ids.into_iter().map(EntryId::new).collect())
    }

    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        if self.partitioned() {
            return self.ensure_group_partitioned(stream, group, start).await;
        }
        self.ensure_group_key(stream, group, start).await
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        if self.partitioned() {
            return self
                .read_group_partitioned(stream, group, consumer, count, block)
                .await;
        }
        self.read_group_key(stream, group, consumer, count, block)
            .await
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        if self.partitioned() {
            return self
                .read_pending_partitioned(stream, group, consumer, count)
                .await;
        }
        self.read_pending_key(stream, group, consumer, count).await
    }

    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        delivered: u32,
    ) -> Result<Option<u32>> {
        if self.partitioned() {
            let (key, id) = self.locate(stream, id)?;
            return self
                .redeliver_key(&key, group, consumer, &id, delivered)
                .await;
        }
        self.redeliver_key(stream, group, consumer, id, delivered)
            .await
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        if self.partitioned() {
            return self.ack_partitioned(stream, group, ids).await;
        }
        self.ack_key(stream, group, ids).await
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        if self.partitioned() {
            return self
                .claim_stale_partitioned(stream, group, consumer, min_idle, count)
                .await;
        }
        self.claim_stale_key(stream, group, consumer, min_idle, count)
            .await
    }

    async fn touch(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        if self.partitioned() {
            return self.touch_partitioned(stream, group, consumer, ids).await;
        }
        self.touch_key(stream, group, consumer, ids).await
    }

    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        if self.partitioned() {
            return self.read_range_partitioned(stream, from, to, count).await;
        }
        self.read_range_key(stream, from, to, count).await
    }

    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        if self.partitioned() {
            let (key, redis_id) = self.locate(stream, id)?;
            let found = self.get_key(&key, &redis_id).await?;
            return Ok(found.map(|mut entry| {
                entry.id = id.clone();
                entry
            }));
        }
        self.get_key(stream, id).await
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        if self.partitioned() {
            return self.info_partitioned(stream).await;
        }
        self.info_key(stream).await
    }

    async fn group_members(&self, stream: &str, group: &str) -> Result<Option<Vec<MemberInfo>>> {
        self.members(stream, group).await.map(Some)
    }

    async fn streams(&self) -> Result<Vec<String>> {
        self.stream_names().await
    }
}
