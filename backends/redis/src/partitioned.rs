//! What the channel does on a partitioned stream
//! ([`RedisStreamChannel::partitions`]): each operation on the partitions
//! it concerns, all at once, through the operations on one stream key
//! ([`crate::stream_ops`]); entry ids carry their partition
//! ([`crate::partitions`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use event_backbone_core::{
    Delivery, Entry, EntryId, GroupInfo, GroupStart, Metadata, PutItem, Result, StreamInfo,
    StreamPosition,
};
use futures_util::future::{join_all, try_join_all};
use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::Value;

use crate::channel::RedisStreamChannel;
use crate::entry;
use crate::error::backend;
use crate::partitions::{entry_id, partition_of, shares, split_id};
use crate::stream_ops::{no_group_or, xreadgroup};

/// Gives deliveries of partition `p` their partitioned ids.
fn tag_deliveries(p: usize, mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    for d in &mut deliveries {
        d.entry.id = entry_id(p, d.entry.id.as_str());
    }
    deliveries
}

/// Gives entries of partition `p` their partitioned ids.
fn tag_entries(p: usize, mut entries: Vec<Entry>) -> Vec<Entry> {
    for e in &mut entries {
        e.id = entry_id(p, e.id.as_str());
    }
    entries
}

impl RedisStreamChannel {
    /// The stream key and the Redis id of a partitioned entry id.
    pub(crate) fn locate(&self, stream: &str, id: &EntryId) -> Result<(String, EntryId)> {
        let keys = self.stream_keys(stream)?;
        let (p, redis_id) = split_id(id, keys.len() as u16)?;
        Ok((keys[p].clone(), redis_id))
    }

    /// Ids grouped by partition, as Redis ids.
    fn ids_by_partition(&self, n: usize, ids: &[EntryId]) -> Result<Vec<(usize, Vec<EntryId>)>> {
        let mut by: Vec<Vec<EntryId>> = vec![Vec::new(); n];
        for id in ids {
            let (p, redis_id) = split_id(id, n as u16)?;
            by[p].push(redis_id);
        }
        Ok(by
            .into_iter()
            .enumerate()
            .filter(|(_, ids)| !ids.is_empty())
            .collect())
    }

    /// Message positions grouped by partition.
    fn batch_by_partition(n: usize, batch: &[Metadata]) -> Vec<(usize, Vec<usize>)> {
        let mut by: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, metadata) in batch.iter().enumerate() {
            by[partition_of(metadata, n as u16)].push(i);
        }
        by.into_iter()
            .enumerate()
            .filter(|(_, at)| !at.is_empty())
            .collect()
    }

    /// One pipeline per partition, all at once. Should one fail after
    /// others were written, the batch fails and is sent again whole: the
    /// entries already written are there twice (at least once).
    pub(crate) async fn append_partitioned(
        &self,
        stream: &str,
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let keys = self.stream_keys(stream)?;
        let groups = Self::batch_by_partition(keys.len(), batch);
        let written = try_join_all(groups.iter().map(|(p, at)| {
            let key = &keys[*p];
            async move {
                self.append_many_key(key, at.iter().map(|&i| &batch[i]))
                    .await
            }
        }))
        .await?;
        let mut ids = vec![EntryId::new(""); batch.len()];
        for ((p, at), redis_ids) in groups.iter().zip(written) {
            for (&i, redis_id) in at.iter().zip(redis_ids) {
                ids[i] = entry_id(*p, redis_id.as_str());
            }
        }
        Ok(ids)
    }

    /// On a single server: one pipeline, every payload, then every entry
    /// to its partition.
    pub(crate) async fn store_and_append_partitioned(
        &self,
        stream: &str,
        shared: &[&[PutItem]],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let keys = self.stream_keys(stream)?;
        let n = keys.len() as u16;
        let partitions: Vec<usize> = batch.iter().map(|m| partition_of(m, n)).collect();
        let message_keys: Vec<&str> = partitions.iter().map(|&p| keys[p].as_str()).collect();
        let redis_ids = self
            .store_and_append_pipelined(stream, shared, batch, &message_keys)
            .await?;
        let mut appended = vec![0usize; keys.len()];
        for &p in &partitions {
            appended[p] += 1;
        }
        for (key, count) in keys.iter().zip(appended) {
            if count > 0 {
                self.trimmer.appended(&self.redis, key, count).await;
            }
        }
        Ok(partitions
            .iter()
            .zip(redis_ids)
            .map(|(&p, id)| entry_id(p, &id))
            .collect())
    }

    pub(crate) async fn ensure_group_partitioned(
        &self,
        stream: &str,
        group: &str,
        start: GroupStart,
    ) -> Result<()> {
        let keys = self.stream_keys(stream)?;
        try_join_all(
            keys.iter()
                .map(|key| self.ensure_group_key(key, group, start)),
        )
        .await?;
        Ok(())
    }

    /// A look at every partition (each reads its share of `count`, then
    /// those that may hold more, one after the other, for the rest); when
    /// none has anything and the read may block, a blocking read on each
    /// partition with a share (all of them when `count` is at least the
    /// number of partitions), the first to answer waking the others.
    pub(crate) async fn read_group_partitioned(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let keys = self.stream_keys(stream)?;
        let n = keys.len();
        let from = self.turn.fetch_add(1, AtomicOrdering::Relaxed) % n;
        let shares = shares(count.max(1), n, from);
        let looked = try_join_all(
            shares
                .iter()
                .enumerate()
                .filter(|(_, share)| **share > 0)
                .map(|(p, share)| {
                    let key = &keys[p];
                    async move {
                        let found = self
                            .read_group_key(key, group, consumer, *share, Duration::ZERO)
                            .await?;
                        Ok::<_, event_backbone_core::Error>((p, tag_deliveries(p, found)))
                    }
                }),
        )
        .await?;
        // Partitions that gave less than their share are drained; the
        // others (and those without a share) may hold more: a second look,
        // one after the other, for what is left of `count`.
        let mut more: Vec<usize> = (0..n)
            .map(|j| (from + j) % n)
            .filter(|&p| shares[p] == 0)
            .collect();
        let mut found = Vec::new();
        for (p, got) in looked {
            if got.len() == shares[p] {
                more.push(p);
            }
            found.extend(got);
        }
        for p in more {
            if found.len() >= count {
                break;
            }
            let got = self
                .read_group_key(
                    &keys[p],
                    group,
                    consumer,
                    count - found.len(),
                    Duration::ZERO,
                )
                .await?;
            found.extend(tag_deliveries(p, got));
        }
        if !found.is_empty() || block.is_zero() {
            return Ok(found);
        }
        self.wait_on_partitions(stream, &keys, group, consumer, &shares, block)
            .await
    }

    /// Blocks on every partition with a share, each on a dedicated
    /// connection. The first to answer with entries (or an error) wakes the
    /// others (`CLIENT UNBLOCK`); every read is awaited, and whatever they
    /// delivered is returned, so that nothing is left delivered and unseen.
    async fn wait_on_partitions(
        &self,
        stream: &str,
        keys: &[String],
        group: &str,
        consumer: &str,
        shares: &[usize],
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let action = format!("reading stream {stream:?} as {group:?}/{consumer:?}");
        let waiting: Vec<usize> = (0..keys.len()).filter(|&p| shares[p] > 0).collect();
        let prepared = try_join_all(waiting.iter().map(|&p| self.redis.wakeable(&keys[p])))
            .await
            .map_err(|e| backend(action.clone(), e))?;
        let mut ids = HashMap::new();
        let mut reads = FuturesUnordered::new();
        for (&p, (connection, client_id)) in waiting.iter().zip(prepared) {
            ids.insert(p, client_id);
            let key = keys[p].as_str();
            let action = &action;
            reads.push(async move {
                let cmd = xreadgroup(key, group, consumer, shares[p], Some(block));
                let reply: Result<Value> = self
                    .redis
                    .run_dedicated(connection, Some(key), action, &cmd, block, |e| {
                        no_group_or(key, group, action.clone(), e)
                    })
                    .await;
                (p, reply.and_then(|r| entry::read_reply(r, action)))
            });
        }
        let mut found = Vec::new();
        let mut failed = None;
        let mut woken = false;
        while let Some((p, read)) = reads.next().await {
            ids.remove(&p);
            match read {
                Ok(entries) => {
                    let got = !entries.is_empty();
                    found.extend(tag_deliveries(
                        p,
                        entries
                            .into_iter()
                            .map(|entry| Delivery::new(entry, 1))
                            .collect(),
                    ));
                    if !got {
                        continue;
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
            if !woken {
                woken = true;
                join_all(ids.iter().map(|(&q, &id)| self.redis.wake(&keys[q], id))).await;
            }
        }
        match failed {
            Some(e) if found.is_empty() => Err(e),
            _ => Ok(found),
        }
    }

    /// Partition after partition (from a turning start) until `count`.
    pub(crate) async fn read_pending_partitioned(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let keys = self.stream_keys(stream)?;
        let n = keys.len();
        let from = self.turn.fetch_add(1, AtomicOrdering::Relaxed) % n;
        let mut out = Vec::new();
        for j in 0..n {
            let p = (from + j) % n;
            let found = self
                .read_pending_key(&keys[p], group, consumer, count - out.len())
                .await?;
            out.extend(tag_deliveries(p, found));
            if out.len() >= count {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) async fn ack_partitioned(
        &self,
        stream: &str,
        group: &str,
        ids: &[EntryId],
    ) -> Result<()> {
        let keys = self.stream_keys(stream)?;
        let by = self.ids_by_partition(keys.len(), ids)?;
        try_join_all(
            by.iter()
                .map(|(p, ids)| self.ack_key(&keys[*p], group, ids)),
        )
        .await?;
        Ok(())
    }

    /// Partition after partition (from a turning start) until `count`.
    pub(crate) async fn claim_stale_partitioned(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let keys = self.stream_keys(stream)?;
        let n = keys.len();
        let from = self.turn.fetch_add(1, AtomicOrdering::Relaxed) % n;
        let mut out = Vec::new();
        for j in 0..n {
            let p = (from + j) % n;
            let claimed = self
                .claim_stale_key(&keys[p], group, consumer, min_idle, count - out.len())
                .await?;
            out.extend(tag_deliveries(p, claimed));
            if out.len() >= count {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) async fn touch_partitioned(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        let keys = self.stream_keys(stream)?;
        let by = self.ids_by_partition(keys.len(), ids)?;
        let lost = try_join_all(by.iter().map(|(p, ids)| {
            let key = &keys[*p];
            async move {
                let lost = self.touch_key(key, group, consumer, ids).await?;
                Ok::<_, event_backbone_core::Error>(
                    lost.iter()
                        .map(|id| entry_id(*p, id.as_str()))
                        .collect::<Vec<_>>(),
                )
            }
        }))
        .await?;
        Ok(lost.into_iter().flatten().collect())
    }

    /// Partition after partition, each in order, as Kafka's replay: from
    /// an entry, the rest of its partition and the later partitions from
    /// their start; from a time, every partition from that time; up to an
    /// entry, the earlier partitions whole and its own up to it.
    pub(crate) async fn read_range_partitioned(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let keys = self.stream_keys(stream)?;
        let n = keys.len();
        let (first, start) = match from {
            StreamPosition::Start => (0, StreamPosition::Start),
            StreamPosition::Time(ms) => (0, StreamPosition::Time(*ms)),
            StreamPosition::From(id) => {
                let (p, redis_id) = split_id(id, n as u16)?;
                (p, StreamPosition::From(redis_id))
            }
            StreamPosition::After(id) => {
                let (p, redis_id) = split_id(id, n as u16)?;
                (p, StreamPosition::After(redis_id))
            }
        };
        let to = to.map(|id| split_id(id, n as u16)).transpose()?;
        let mut out = Vec::new();
        for p in first..n {
            if out.len() >= count || to.as_ref().is_some_and(|(tp, _)| p > *tp) {
                break;
            }
            let position = match (p == first, from) {
                (true, _) => start.clone(),
                (false, StreamPosition::Time(ms)) => StreamPosition::Time(*ms),
                (false, _) => StreamPosition::Start,
            };
            let until = to
                .as_ref()
                .filter(|(tp, _)| *tp == p)
                .map(|(_, redis_id)| redis_id);
            let entries = self
                .read_range_key(&keys[p], &position, until, count - out.len())
                .await?;
            out.extend(tag_entries(p, entries));
        }
        Ok(out)
    }

    /// The partitions' lengths summed; per group, pending and lag summed
    /// and the most consumers any partition has.
    pub(crate) async fn info_partitioned(&self, stream: &str) -> Result<StreamInfo> {
        let keys = self.stream_keys(stream)?;
        let infos = try_join_all(keys.iter().map(|key| self.info_key(key))).await?;
        let mut merged = StreamInfo::default();
        let mut groups: Vec<GroupInfo> = Vec::new();
        for info in infos {
            merged.length += info.length;
            for group in info.groups {
                match groups.iter_mut().find(|g| g.name == group.name) {
                    Some(g) => {
                        g.pending += group.pending;
                        g.lag = g.lag.zip(group.lag).map(|(a, b)| a + b);
                        g.consumers = g.consumers.max(group.consumers);
                    }
                    None => groups.push(group),
                }
            }
        }
        merged.groups = groups;
        Ok(merged)
    }
}
