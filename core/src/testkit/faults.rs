//! Faults on demand: a store and a channel that wrap real ones and fail
//! what a case tells them to, for as long as it says, so that the fault
//! cases run on every backend's own server.
//!
//! ```
//! use std::sync::Arc;
//! use event_backbone_core::memory::MemoryStore;
//! use event_backbone_core::testkit::FaultyStore;
//! use event_backbone_core::KeyValueStore;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = FaultyStore::wrap(Arc::new(MemoryStore::new()));
//! store.reads().start();
//! assert!(store.get("k").await.unwrap_err().is_transient());
//! store.reads().stop();
//! assert!(store.get("k").await.unwrap().is_none());
//! # }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::address::DEAD_LETTER_SUFFIX;
use crate::capabilities::{ChannelCapabilities, StoreCapabilities};
use crate::channel::{
    Delivery, Entry, EntryId, GroupInfo, GroupStart, StreamChannel, StreamInfo, StreamPosition,
};
use crate::envelope::Metadata;
use crate::store::{Fields, KeyValueStore, PutItem};
use crate::{Error, Result};

/// The backend name of injected failures.
const INJECTED: &str = "testkit-fault";

/// One kind of failure, on or off; clones share the switch.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    on: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
}

impl Fault {
    /// Calls fail from now on.
    pub fn start(&self) {
        self.on.store(true, Ordering::SeqCst);
    }

    /// Calls succeed again.
    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// Fails calls for `window`, from now, then lets them through.
    pub fn start_for(&self, window: Duration) {
        self.start();
        let fault = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            fault.stop();
        });
    }

    /// Whether calls fail now.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// How many calls failed because of this fault.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// A transient error for `action` when the fault is on.
    fn check(&self, action: impl FnOnce() -> String) -> Result<()> {
        if self.is_on() {
            self.hits.fetch_add(1, Ordering::SeqCst);
            return Err(Error::transient(INJECTED, action(), "injected outage"));
        }
        Ok(())
    }
}

/// A [`KeyValueStore`] that passes everything to the one it wraps, but
/// fails reads during an outage ([`FaultyStore::reads`], a transient
/// error) and any read that names a broken key ([`FaultyStore::break_key`],
/// a permanent error, as a key of the wrong type is on a real server).
/// Writes and deletes always go through.
pub struct FaultyStore {
    inner: Arc<dyn KeyValueStore>,
    reads: Fault,
    broken: Mutex<BTreeSet<String>>,
    broken_hits: AtomicU64,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn KeyValueStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            reads: Fault::default(),
            broken: Mutex::new(BTreeSet::new()),
            broken_hits: AtomicU64::new(0),
        })
    }

    /// The outage of reads: every `get` fails while it is on.
    pub fn reads(&self) -> &Fault {
        &self.reads
    }

    /// From now on, every read that names `key` fails for good.
    pub fn break_key(&self, key: impl Into<String>) {
        self.broken.lock().expect("broken keys").insert(key.into());
    }

    /// How many reads failed because they named a broken key.
    pub fn broken_hits(&self) -> u64 {
        self.broken_hits.load(Ordering::SeqCst)
    }

    fn check(&self, keys: &[&str]) -> Result<()> {
        self.reads
            .check(|| format!("reading {} keys", keys.len()))?;
        let broken = self.broken.lock().expect("broken keys");
        if let Some(key) = keys.iter().find(|k| broken.contains(**k)) {
            self.broken_hits.fetch_add(1, Ordering::SeqCst);
            return Err(Error::permanent(
                INJECTED,
                format!("reading key {key:?}"),
                "WRONGTYPE the key holds a value of another kind (injected)",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("reads_failing", &self.reads.is_on())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyValueStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        self.inner.put_many(items).await
    }

    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        self.inner.insert_many(items).await
    }

    async fn get_fields(&self, key: &str, names: &[&str]) -> Result<Option<Fields>> {
        self.check(&[key])?;
        self.inner.get_fields(key, names).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        self.check(keys)?;
        self.inner.get_many(keys).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
}

/// A [`StreamChannel`] that passes everything to the one it wraps, but
/// fails, with a transient error while their fault is on: appends to
/// streams ([`FaultyChannel::appends`]), appends to dead-letter streams
/// ([`FaultyChannel::dead_letter_appends`]), reads of a group
/// ([`FaultyChannel::reads`]: new entries, own pending ones, claims),
/// acknowledgements ([`FaultyChannel::acks`]), the counting of
/// redeliveries ([`FaultyChannel::redeliveries`]) and touches
/// ([`FaultyChannel::touches`]).
pub struct FaultyChannel {
    inner: Arc<dyn StreamChannel>,
    appends: Fault,
    dead_letter_appends: Fault,
    reads: Fault,
    acks: Fault,
    redeliveries: Fault,
    touches: Fault,
}

impl FaultyChannel {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn StreamChannel>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            appends: Fault::default(),
            dead_letter_appends: Fault::default(),
            reads: Fault::default(),
            acks: Fault::default(),
            redeliveries: Fault::default(),
            touches: Fault::default(),
        })
    }

    /// Appends to streams that are not dead-letter streams.
    pub fn appends(&self) -> &Fault {
        &self.appends
    }

    /// Appends to dead-letter streams (`{stream}:dead-letter`).
    pub fn dead_letter_appends(&self) -> &Fault {
        &self.dead_letter_appends
    }

    /// Reads of a group: `read_group`, `read_pending`, `claim_stale`.
    pub fn reads(&self) -> &Fault {
        &self.reads
    }

    /// Touches of the entries a consumer holds.
    pub fn touches(&self) -> &Fault {
        &self.touches
    }

    /// Acknowledgements.
    pub fn acks(&self) -> &Fault {
        &self.acks
    }

    /// Counting a redelivery ([`StreamChannel::redeliver`]).
    pub fn redeliveries(&self) -> &Fault {
        &self.redeliveries
    }

    fn check_append(&self, stream: &str) -> Result<()> {
        let fault = if stream
            .rsplit_once(':')
            .is_some_and(|(_, last)| last == DEAD_LETTER_SUFFIX)
        {
            &self.dead_letter_appends
        } else {
            &self.appends
        };
        fault.check(|| format!("appending to stream {stream:?}"))
    }
}

impl fmt::Debug for FaultyChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyChannel")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl StreamChannel for FaultyChannel {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> ChannelCapabilities {
        self.inner.capabilities()
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        self.check_append(stream)?;
        self.inner.append_many(stream, batch).await
    }

    async fn store_and_append(
        &self,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        self.check_append(stream)?;
        self.inner.store_and_append(stream, payloads, batch).await
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
        self.reads
            .check(|| format!("reading stream {stream:?} as {group:?}"))?;
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
        self.reads
            .check(|| format!("reading the pending entries of {consumer:?} on {stream:?}"))?;
        self.inner
            .read_pending(stream, group, consumer, count)
            .await
    }

    async fn leave_group(&self, stream: &str, group: &str, consumer: &str) -> Result<()> {
        self.inner.leave_group(stream, group, consumer).await
    }

    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        delivered: u32,
    ) -> Result<Option<u32>> {
        self.redeliveries
            .check(|| format!("counting a redelivery of {id} on {stream:?}"))?;
        self.inner
            .redeliver(stream, group, consumer, id, delivered)
            .await
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        self.acks
            .check(|| format!("acknowledging {} entries on {stream:?}", ids.len()))?;
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
        self.reads
            .check(|| format!("claiming stale entries of {stream:?}"))?;
        self.inner
            .claim_stale(stream, group, consumer, min_idle, count)
            .await
    }

    async fn touch(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        self.touches
            .check(|| format!("touching {} entries on {stream:?}", ids.len()))?;
        self.inner.touch(stream, group, consumer, ids).await
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
    ) -> Result<Option<Vec<crate::channel::MemberInfo>>> {
        self.inner.group_members(stream, group).await
    }
}
