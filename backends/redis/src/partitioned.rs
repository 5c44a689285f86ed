//! What the channel does on a partitioned stream
//! ([`RedisStreamChannel::partitions`]): each operation on the partitions
//! it concerns, all at once, through the operations on one stream key
//! ([`crate::stream_ops`]); entry ids carry their partition
//! ([`crate::partitions`]).

use std::collections::{HashMap, VecDeque};
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

/// How long a woken read may take before it is woken again.
const REWAKE: Duration = Duration::from_millis(50);

/// The time and sequence of a Redis stream id (checked by the channel).
fn id_parts(id: &EntryId) -> (u64, u64) {
    let (ms, seq) = id.as_str().split_once('-').unwrap_or((id.as_str(), "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The Redis id just before `id`, none before `0-0`.
fn before(id: &EntryId) -> Option<EntryId> {
    match id_parts(id) {
        (0, 0) => None,
        (ms, 0) => Some(EntryId::new(format!("{}-{}", ms - 1, u64::MAX))),
        (ms, seq) => Some(EntryId::new(format!("{ms}-{}", seq - 1))),
    }
}

/// Gives deliveries of partition `p` their partitioned ids.
fn tag_deliveries(p: usize, mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    for d in &mut deliveries {
        d.entry.id = entry_id(p, d.entry.id.as_str());
    }
    deliveries
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

    /// A look at every partition (in rounds of reads at once, each reading
    /// its share of what is left of `count`); when none has anything and
    /// the read may block, a blocking read on each partition with a share
    /// (all of them when `count` is at least the number of partitions), the
    /// first to answer waking the others. Any read that fails fails the
    /// whole read: what the others delivered stays pending for this
    /// consumer, which takes it back (`read_pending`) once reads work.
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
        let count = count.max(1);
        let owed = self
            .take_back_owed(stream, &keys, group, consumer, count)
            .await?;
        if !owed.is_empty() {
            return Ok(owed);
        }
        let from = self.turn.fetch_add(1, AtomicOrdering::Relaxed) % n;
        // Rounds of reads at once: each partition in the round reads its
        // share of what is left of `count`; one that gave its whole share
        // may hold more and goes round again, one that gave less is drained.
        let mut queue: VecDeque<usize> = (0..n).map(|j| (from + j) % n).collect();
        let mut found = Vec::new();
        while found.len() < count && !queue.is_empty() {
            let want = count - found.len();
            let round: Vec<usize> = queue.drain(..queue.len().min(want)).collect();
            let round_shares = shares(want, round.len(), 0);
            let looked = try_join_all(round.iter().zip(round_shares).map(|(&p, share)| {
                let key = &keys[p];
                async move {
                    let got = self
                        .read_group_key(key, group, consumer, share, Duration::ZERO)
                        .await?;
                    Ok::<_, event_backbone_core::Error>((p, share, got))
                }
            }))
            .await?;
            for (p, share, got) in looked {
                if got.len() == share {
                    queue.push_back(p);
                }
                found.extend(tag_deliveries(p, got));
            }
        }
        if !found.is_empty() || block.is_zero() {
            return Ok(found);
        }
        let shares = shares(count, n, from);
        self.wait_on_partitions(stream, &keys, group, consumer, &shares, block)
            .await
    }

    /// Blocks on every partition with a share, each on a dedicated
    /// connection. The first to answer with entries (or an error) wakes the
    /// others (`CLIENT UNBLOCK`, again until they answer); every read is
    /// awaited, and whatever they delivered is returned (or, if one failed,
    /// an error, and the consumer takes back what it has pending), so that
    /// nothing is left delivered and unseen.
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
        loop {
            let next = if woken {
                // A wake that reached a node before its read blocked did
                // nothing: wake what still waits again, every 50 ms.
                match tokio::time::timeout(REWAKE, reads.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        join_all(ids.iter().map(|(&q, &id)| self.redis.wake(&keys[q], id))).await;
                        continue;
                    }
                }
            } else {
                reads.next().await
            };
            let Some((p, read)) = next else { break };
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
        // A read that failed may have delivered entries whose reply was
        // lost: fail, and the consumer takes back all it has pending.
        match failed {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Partition after partition (from a turning start) until `count`. A
    /// partition that fails, or that `count` did not reach, is owed: the
    /// next reads of new entries take its pending entries back first
    /// ([`RedisStreamChannel::take_back_owed`]). What was taken back is
    /// returned even when a partition failed: failing the whole would have
    /// the consumer take it back again, counting another delivery each
    /// time (and, while a master is down, again and again).
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
        let mut failed = None;
        for j in 0..n {
            let p = (from + j) % n;
            if out.len() >= count {
                self.owe(stream, group, consumer, p);
                continue;
            }
            match self
                .read_pending_key(&keys[p], group, consumer, count - out.len())
                .await
            {
                Ok(found) => {
                    self.paid(stream, group, consumer, p);
                    out.extend(tag_deliveries(p, found));
                }
                Err(e) => {
                    self.owe(stream, group, consumer, p);
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Takes back, once, the pending entries of the partitions owed to this
    /// consumer (up to `count`): a partition whose `read_pending` failed
    /// or was not reached. Entries it holds come back too, and are skipped
    /// by the consumer as held.
    pub(crate) async fn take_back_owed(
        &self,
        stream: &str,
        keys: &[String],
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let owed: Vec<usize> = self
            .unrecovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(s, g, c, _)| s == stream && g == group && c == consumer)
            .map(|(.., p)| *p)
            .collect();
        let mut out = Vec::new();
        for p in owed {
            if out.len() >= count {
                break;
            }
            match self
                .read_pending_key(&keys[p], group, consumer, count - out.len())
                .await
            {
                Ok(found) => {
                    self.paid(stream, group, consumer, p);
                    out.extend(tag_deliveries(p, found));
                }
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    fn owe(&self, stream: &str, group: &str, consumer: &str, p: usize) {
        self.unrecovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((stream.to_owned(), group.to_owned(), consumer.to_owned(), p));
    }

    fn paid(&self, stream: &str, group: &str, consumer: &str, p: usize) {
        let mut owed = self.unrecovered.lock().unwrap_or_else(|p| p.into_inner());
        if !owed.is_empty() {
            owed.remove(&(stream.to_owned(), group.to_owned(), consumer.to_owned(), p));
        }
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
            let claimed = match self
                .claim_stale_key(&keys[p], group, consumer, min_idle, count - out.len())
                .await
            {
                Ok(claimed) => claimed,
                // What is claimed already is returned (claiming it again
                // would count another delivery); the rest waits for the
                // next claim.
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(stream, group, error = %e, "claiming on one partition failed; the next claim tries again");
                    break;
                }
            };
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
        // Each partition on its own: one that fails (its master failing
        // over) hides neither the others' answers nor their lost entries.
        let answers = join_all(by.iter().map(|(p, ids)| {
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
        .await;
        let mut lost = Vec::new();
        let mut failed = None;
        let mut answered = false;
        for answer in answers {
            match answer {
                Ok(found) => {
                    answered = true;
                    lost.extend(found);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) if !answered => Err(e),
            _ => Ok(lost),
        }
    }

    /// The partitions merged in the order of their entries' ids (time,
    /// sequence, then partition), each partition in its own order: a page
    /// that goes on after its last entry is exact, and a read from a time
    /// starts every partition there. Each page reads up to `count` entries
    /// of every partition.
    pub(crate) async fn read_range_partitioned(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let keys = self.stream_keys(stream)?;
        let n = keys.len();
        let starts: Vec<StreamPosition> = match from {
            StreamPosition::Start | StreamPosition::Time(_) => vec![from.clone(); n],
            StreamPosition::From(id) | StreamPosition::After(id) => {
                let (p, redis_id) = split_id(id, n as u16)?;
                let inclusive = matches!(from, StreamPosition::From(_));
                // At one Redis id, a lower partition comes first.
                (0..n)
                    .map(|q| {
                        if q > p || (q == p && inclusive) {
                            StreamPosition::From(redis_id.clone())
                        } else {
                            StreamPosition::After(redis_id.clone())
                        }
                    })
                    .collect()
            }
        };
        let ends: Vec<Option<Option<EntryId>>> = match to {
            None => vec![None; n],
            Some(id) => {
                let (tp, redis_id) = split_id(id, n as u16)?;
                (0..n)
                    .map(|q| {
                        Some(if q <= tp {
                            Some(redis_id.clone())
                        } else {
                            before(&redis_id)
                        })
                    })
                    .collect()
            }
        };
        let read = try_join_all((0..n).map(|q| {
            let (key, start, end) = (&keys[q], &starts[q], &ends[q]);
            async move {
                let entries = match end {
                    // Nothing of this partition is early enough.
                    Some(None) => Vec::new(),
                    Some(Some(end)) => self.read_range_key(key, start, Some(end), count).await?,
                    None => self.read_range_key(key, start, None, count).await?,
                };
                Ok::<_, event_backbone_core::Error>((q, entries))
            }
        }))
        .await?;
        let mut merged: Vec<((u64, u64, usize), Entry)> = read
            .into_iter()
            .flat_map(|(q, entries)| {
                entries.into_iter().map(move |entry| {
                    let (ms, seq) = id_parts(&entry.id);
                    ((ms, seq, q), entry)
                })
            })
            .collect();
        merged.sort_by_key(|(order, _)| *order);
        merged.truncate(count);
        Ok(merged
            .into_iter()
            .map(|((_, _, q), mut entry)| {
                entry.id = entry_id(q, entry.id.as_str());
                entry
            })
            .collect())
    }

    /// The partitions' lengths summed; per group, pending and lag summed
    /// and the most consumers any partition has.
    pub(crate) async fn info_partitioned(&self, stream: &str) -> Result<StreamInfo> {
        let keys = self.stream_keys(stream)?;
        let infos = try_join_all(keys.iter().map(|key| self.info_key(key))).await?;
        let mut merged = StreamInfo::default();
        if infos.iter().any(|i| i.partitions > 0) {
            merged.partitions = keys.len() as u32;
        }
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
