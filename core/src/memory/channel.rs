use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::capabilities::ChannelCapabilities;
use crate::channel::{
    Delivery, Entry, EntryId, GroupInfo, GroupStart, MalformedEntry, MemberInfo, StreamChannel,
    StreamInfo, StreamPosition,
};
use crate::clock::now_ms;
use crate::envelope::{decode_metadata, encode_metadata, Metadata};
use crate::{Error, Result};

use super::BACKEND;

/// An in-process stream channel with consumer groups, pending lists,
/// delivery counts, claim by idle time and replay.
///
/// Entries are kept in their encoded form, as a server would keep them, so
/// the encoding is exercised too. Clones share the same streams.
///
/// ```
/// use event_backbone_core::memory::MemoryChannel;
/// use event_backbone_core::{StreamChannel, GroupStart};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let channel = MemoryChannel::new();
/// channel.ensure_group("orders", "billing", GroupStart::Beginning).await?;
/// assert_eq!(channel.info("orders").await?.group("billing").unwrap().pending, 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryChannel {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: Mutex<HashMap<String, StreamState>>,
    appended: Notify,
}

#[derive(Debug, Default)]
struct StreamState {
    entries: BTreeMap<u64, Bytes>,
    /// (append time in ms, sequence), both non-decreasing.
    times: Vec<(u64, u64)>,
    last_seq: u64,
    groups: BTreeMap<String, GroupState>,
}

#[derive(Debug)]
struct GroupState {
    /// Highest sequence delivered to the group (0: none).
    last_delivered: u64,
    pending: BTreeMap<u64, Pending>,
    /// Each member, with when it last read.
    consumers: BTreeMap<String, Instant>,
}

#[derive(Debug)]
struct Pending {
    consumer: String,
    delivered_at: Instant,
    count: u32,
}

impl MemoryChannel {
    /// An empty channel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw bytes as an entry, bypassing the metadata encoding: for
    /// testing how consumers handle entries they cannot read.
    pub fn append_raw(&self, stream: &str, bytes: impl Into<Bytes>) -> EntryId {
        let id = {
            let mut streams = self.lock();
            let state = streams.entry(stream.to_owned()).or_default();
            state.push(bytes.into())
        };
        self.inner.appended.notify_waiters();
        id
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, StreamState>> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // in a way that matters more than losing the whole channel would.
        self.inner
            .streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StreamState {
    fn push(&mut self, bytes: Bytes) -> EntryId {
        self.last_seq += 1;
        self.entries.insert(self.last_seq, bytes);
        let now = now_ms().max(self.times.last().map_or(0, |(ms, _)| *ms));
        self.times.push((now, self.last_seq));
        EntryId::new(self.last_seq.to_string())
    }

    /// The first sequence appended at or after `ms`.
    fn first_at(&self, ms: u64) -> u64 {
        let i = self.times.partition_point(|(t, _)| *t < ms);
        self.times.get(i).map_or(self.last_seq + 1, |(_, seq)| *seq)
    }

    fn entry(&self, seq: u64) -> Option<Entry> {
        self.entries.get(&seq).map(|bytes| to_entry(seq, bytes))
    }
}

fn to_entry(seq: u64, bytes: &Bytes) -> Entry {
    Entry {
        id: EntryId::new(seq.to_string()),
        body: decode_metadata(bytes).map_err(|e| MalformedEntry::undecodable(&e, bytes.clone())),
    }
}

fn parse_id(id: &EntryId) -> Result<u64> {
    id.as_str().parse().map_err(|_| Error::InvalidEntryId {
        id: id.as_str().to_owned(),
        backend: BACKEND,
        expected: "a decimal sequence number such as 42",
    })
}

/// The entries of a stream and one of its groups, or `NoSuchGroup`.
fn group_mut<'a>(
    streams: &'a mut HashMap<String, StreamState>,
    stream: &str,
    group: &str,
) -> Result<(&'a BTreeMap<u64, Bytes>, &'a mut GroupState)> {
    let no_group = || Error::NoSuchGroup {
        stream: stream.to_owned(),
        group: group.to_owned(),
    };
    let state = streams.get_mut(stream).ok_or_else(no_group)?;
    let g = state.groups.get_mut(group).ok_or_else(no_group)?;
    Ok((&state.entries, g))
}

#[async_trait]
impl StreamChannel for MemoryChannel {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> ChannelCapabilities {
        ChannelCapabilities::all()
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        let encoded: Vec<Bytes> = batch
            .iter()
            .map(|m| Bytes::from(encode_metadata(m)))
            .collect();
        let ids = {
            let mut streams = self.lock();
            let state = streams.entry(stream.to_owned()).or_default();
            encoded.into_iter().map(|b| state.push(b)).collect()
        };
        self.inner.appended.notify_waiters();
        Ok(ids)
    }

    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        let mut streams = self.lock();
        let state = streams.entry(stream.to_owned()).or_default();
        let last_delivered = match start {
            GroupStart::Beginning => 0,
            GroupStart::Latest => state.last_seq,
        };
        state
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| GroupState {
                last_delivered,
                pending: BTreeMap::new(),
                consumers: BTreeMap::new(),
            });
        Ok(())
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + block;
        loop {
            let notified = self.inner.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut streams = self.lock();
                let (entries, g) = group_mut(&mut streams, stream, group)?;
                g.consumers.insert(consumer.to_owned(), Instant::now());
                let now = Instant::now();
                let fresh: Vec<(u64, Delivery)> = entries
                    .range(g.last_delivered + 1..)
                    .take(count)
                    .map(|(seq, bytes)| {
                        let delivery = Delivery::new(to_entry(*seq, bytes), 1);
                        (*seq, delivery)
                    })
                    .collect();
                if let Some((last, _)) = fresh.last() {
                    g.last_delivered = *last;
                    for (seq, _) in &fresh {
                        g.pending.insert(
                            *seq,
                            Pending {
                                consumer: consumer.to_owned(),
                                delivered_at: now,
                                count: 1,
                            },
                        );
                    }
                    return Ok(fresh.into_iter().map(|(_, d)| d).collect());
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || count == 0 {
                return Ok(Vec::new());
            }
            if tokio::time::timeout(remaining, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let mut streams = self.lock();
        let (entries, g) = group_mut(&mut streams, stream, group)?;
        let now = Instant::now();
        let mut out = Vec::new();
        for (seq, p) in g.pending.iter_mut() {
            if out.len() >= count {
                break;
            }
            if p.consumer != consumer {
                continue;
            }
            if let Some(bytes) = entries.get(seq) {
                p.count += 1;
                p.delivered_at = now;
                out.push(Delivery::new(to_entry(*seq, bytes), p.count));
            }
        }
        Ok(out)
    }

    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        _delivered: u32,
    ) -> Result<Option<u32>> {
        let seq = parse_id(id)?;
        let mut streams = self.lock();
        let (_, g) = group_mut(&mut streams, stream, group)?;
        Ok(g.pending
            .get_mut(&seq)
            .filter(|p| p.consumer == consumer)
            .map(|p| {
                p.count += 1;
                p.delivered_at = Instant::now();
                p.count
            }))
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        let seqs = ids.iter().map(parse_id).collect::<Result<Vec<_>>>()?;
        let mut streams = self.lock();
        let (_, g) = group_mut(&mut streams, stream, group)?;
        for seq in seqs {
            g.pending.remove(&seq);
        }
        Ok(())
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let mut streams = self.lock();
        let (entries, g) = group_mut(&mut streams, stream, group)?;
        g.consumers.insert(consumer.to_owned(), Instant::now());
        let now = Instant::now();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (seq, p) in g.pending.iter_mut() {
            if out.len() >= count {
                break;
            }
            if now.duration_since(p.delivered_at) < min_idle {
                continue;
            }
            match entries.get(seq) {
                Some(bytes) => {
                    p.consumer = consumer.to_owned();
                    p.delivered_at = now;
                    p.count += 1;
                    out.push(Delivery::new(to_entry(*seq, bytes), p.count));
                }
                None => gone.push(*seq),
            }
        }
        for seq in gone {
            g.pending.remove(&seq);
        }
        Ok(out)
    }

    async fn touch(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        let seqs = ids.iter().map(parse_id).collect::<Result<Vec<_>>>()?;
        let mut streams = self.lock();
        let (_, g) = group_mut(&mut streams, stream, group)?;
        let now = Instant::now();
        let mut lost = Vec::new();
        for (seq, id) in seqs.into_iter().zip(ids) {
            match g.pending.get_mut(&seq).filter(|p| p.consumer == consumer) {
                Some(p) => p.delivered_at = now,
                None => lost.push(id.clone()),
            }
        }
        Ok(lost)
    }

    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let end = to.map(parse_id).transpose()?.unwrap_or(u64::MAX);
        let streams = self.lock();
        let Some(state) = streams.get(stream) else {
            return Ok(Vec::new());
        };
        let start = match from {
            StreamPosition::Start => 0,
            StreamPosition::From(id) => parse_id(id)?,
            StreamPosition::After(id) => parse_id(id)?.saturating_add(1),
            StreamPosition::Time(ms) => state.first_at(*ms),
        };
        if start > end {
            return Ok(Vec::new());
        }
        Ok(state
            .entries
            .range(start..=end)
            .take(count)
            .map(|(seq, bytes)| to_entry(*seq, bytes))
            .collect())
    }

    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        let seq = parse_id(id)?;
        Ok(self.lock().get(stream).and_then(|s| s.entry(seq)))
    }

    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        let streams = self.lock();
        let Some(state) = streams.get(stream) else {
            return Ok(StreamInfo::default());
        };
        Ok(StreamInfo {
            length: state.entries.len() as u64,
            last: state
                .entries
                .keys()
                .next_back()
                .map(|seq| EntryId::new(seq.to_string())),
            partitions: 1,
            groups: state
                .groups
                .iter()
                .map(|(name, g)| GroupInfo {
                    name: name.clone(),
                    pending: g.pending.len() as u64,
                    lag: Some(state.entries.range(g.last_delivered + 1..).count() as u64),
                    consumers: g.consumers.len() as u64,
                })
                .collect(),
        })
    }

    async fn group_members(&self, stream: &str, group: &str) -> Result<Option<Vec<MemberInfo>>> {
        let streams = self.lock();
        let Some(g) = streams.get(stream).and_then(|s| s.groups.get(group)) else {
            return Ok(Some(Vec::new()));
        };
        let now = Instant::now();
        Ok(Some(
            g.consumers
                .iter()
                .map(|(name, seen)| {
                    let pending = g.pending.values().filter(|p| &p.consumer == name).count();
                    let idle = now.duration_since(*seen).as_millis() as u64;
                    MemberInfo::new(name.clone(), pending as u64, Some(idle))
                })
                .collect(),
        ))
    }

    async fn streams(&self) -> Result<Vec<String>> {
        let mut streams: Vec<String> = self.lock().keys().cloned().collect();
        streams.sort_unstable();
        Ok(streams)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
