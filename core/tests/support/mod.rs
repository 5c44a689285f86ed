//! Wrappers around the in-memory backend that inject failures or observe
//! calls, for the producer and consumer tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::{
    ChannelCapabilities, Delivery, Entry, EntryId, Error, Fields, GroupInfo, GroupStart,
    KeyValueStore, Metadata, PutItem, Result, SegmentLocation, StoreCapabilities, StreamChannel,
    StreamInfo, StreamPosition,
};

/// A memory store whose next `fail_puts` writes fail.
#[derive(Debug, Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub fail_puts: AtomicU32,
    pub permanent: bool,
    pub puts: AtomicU32,
}

#[async_trait]
impl KeyValueStore for FlakyStore {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let left = self.fail_puts.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_puts.store(left - 1, Ordering::SeqCst);
            return Err(if self.permanent {
                Error::permanent("flaky", "storing payloads", "disk full")
            } else {
                Error::transient("flaky", "storing payloads", "connection reset")
            });
        }
        self.inner.put_many(items).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        self.inner.get_many(keys).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
}

/// A memory channel that counts `append_many` calls, can be slow, checks
/// that every payload key is stored before its entry is appended, can
/// declare other capabilities, and can lose its acks.
#[derive(Debug)]
pub struct WatchedChannel {
    pub inner: MemoryChannel,
    pub store: Option<Arc<dyn KeyValueStore>>,
    pub appends: AtomicUsize,
    pub delay: Duration,
    pub unstored: AtomicUsize,
    /// Stored segments whose payload was looked up before their append.
    pub checked: AtomicUsize,
    pub capabilities: Option<ChannelCapabilities>,
    pub forget_acks: bool,
    /// The next appends of several entries append every other one and
    /// fail the rest (a transient error), as a channel that appends to
    /// several partitions at once may.
    pub split_appends: AtomicU32,
}

impl WatchedChannel {
    pub fn new(store: Option<Arc<dyn KeyValueStore>>, delay: Duration) -> Self {
        Self {
            inner: MemoryChannel::new(),
            store,
            appends: AtomicUsize::new(0),
            delay,
            unstored: AtomicUsize::new(0),
            checked: AtomicUsize::new(0),
            capabilities: None,
            forget_acks: false,
            split_appends: AtomicU32::new(0),
        }
    }

    /// Declares these capabilities instead of the memory channel's.
    pub fn declaring(mut self, capabilities: ChannelCapabilities) -> Self {
        self.capabilities = Some(capabilities);
        self
    }

    /// Acknowledges nothing (a broken backend).
    pub fn forgetting_acks(mut self) -> Self {
        self.forget_acks = true;
        self
    }
}

#[async_trait]
impl StreamChannel for WatchedChannel {
    fn backend(&self) -> &'static str {
        "watched"
    }
    fn capabilities(&self) -> ChannelCapabilities {
        self.capabilities
            .unwrap_or_else(|| self.inner.capabilities())
    }
    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        if let Some(store) = &self.store {
            for m in batch {
                for s in &m.segments {
                    let key = match &s.location {
                        SegmentLocation::Inline(_) => continue,
                        SegmentLocation::Standard => m.standard_payload_key(&s.class),
                        SegmentLocation::Stored { key, .. } => key.clone(),
                    };
                    self.checked.fetch_add(1, Ordering::SeqCst);
                    let stored = store.get(&key).await?;
                    if !stored.is_some_and(|fields| fields.contains_key(&s.name)) {
                        self.unstored.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        tokio::time::sleep(self.delay).await;
        let split = self.split_appends.load(Ordering::SeqCst);
        if split > 0 && batch.len() > 1 {
            self.split_appends.store(split - 1, Ordering::SeqCst);
            let mut appended = Vec::new();
            for (i, m) in batch.iter().enumerate() {
                appended.push(if i % 2 == 0 {
                    Some(self.inner.append(stream, m).await?)
                } else {
                    None
                });
            }
            return Err(Error::PartlyAppended {
                stream: stream.to_owned(),
                appended,
                source: Box::new(Error::transient(
                    "watched",
                    "appending",
                    "partition leader moved",
                )),
            });
        }
        self.inner.append_many(stream, batch).await
    }
    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        self.inner.ensure_group(stream, group, start).await
    }
    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .read_group(stream, group, consumer, count, block)
            .await
    }
    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .read_pending(stream, group, consumer, count)
            .await
    }
    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        delivered: u32,
    ) -> Result<Option<u32>> {
        self.inner
            .redeliver(stream, group, consumer, id, delivered)
            .await
    }
    async fn leave_group(&self, stream: &str, group: &str, consumer: &str) -> Result<()> {
        self.inner.leave_group(stream, group, consumer).await
    }
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        if self.forget_acks {
            return Ok(());
        }
        self.inner.ack(stream, group, ids).await
    }
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .claim_stale(stream, group, consumer, min_idle, count)
            .await
    }
    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        self.inner.read_range(stream, from, to, count).await
    }
    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        self.inner.get(stream, id).await
    }
    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        self.inner.info(stream).await
    }
    async fn streams(&self) -> Result<Vec<String>> {
        self.inner.streams().await
    }
    async fn group_info(&self, stream: &str, group: &str) -> Result<Option<GroupInfo>> {
        self.inner.group_info(stream, group).await
    }
    async fn group_members(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<Option<Vec<event_backbone_core::MemberInfo>>> {
        self.inner.group_members(stream, group).await
    }
    /// The memory channel inside, for writing raw entries.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(&self.inner)
    }
}
