use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use bytes::Bytes;

use crate::memory::{MemoryChannel, MemoryStore};
use crate::{
    Consumer, ConsumerBuilder, EndpointBuilder, KeyValueStore, Producer, Receiver, ReceiverBuilder,
    Replay, ReplayBuilder, Result, StreamChannel,
};

/// Makes the channel under test; a closure returning a future does.
#[async_trait]
pub trait ChannelFactory: Send + Sync + 'static {
    /// A channel (a new client, or a shared one: every case uses streams of
    /// its own).
    async fn channel(&self) -> Result<Arc<dyn StreamChannel>>;
}

#[async_trait]
impl<F, Fut> ChannelFactory for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn StreamChannel>>> + Send + 'static,
{
    async fn channel(&self) -> Result<Arc<dyn StreamChannel>> {
        (self)().await
    }
}

/// Makes the store under test; a closure returning a future does.
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// A store (every case uses keys of its own).
    async fn store(&self) -> Result<Arc<dyn KeyValueStore>>;
}

#[async_trait]
impl<F, Fut> StoreFactory for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn KeyValueStore>>> + Send + 'static,
{
    async fn store(&self) -> Result<Arc<dyn KeyValueStore>> {
        (self)().await
    }
}

/// Writes bytes into a stream where the channel keeps an entry's encoded
/// metadata (the Redis entry's `metadata` field, the Kafka record's value),
/// bypassing the encoding: for the cases about entries a consumer cannot
/// read (garbage, a newer format). A closure
/// `|channel, stream, bytes| async { .. }` is one; give it to
/// [`Conformance::raw_entries`](super::Conformance::raw_entries). The
/// in-memory channel needs none.
#[async_trait]
pub trait RawEntryWriter: Send + Sync + 'static {
    /// Appends `bytes` to `stream` on `channel` (the channel under test).
    async fn append_raw(
        &self,
        channel: Arc<dyn StreamChannel>,
        stream: String,
        bytes: Bytes,
    ) -> Result<()>;
}

#[async_trait]
impl<F, Fut> RawEntryWriter for F
where
    F: Fn(Arc<dyn StreamChannel>, String, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    async fn append_raw(
        &self,
        channel: Arc<dyn StreamChannel>,
        stream: String,
        bytes: Bytes,
    ) -> Result<()> {
        (self)(channel, stream, bytes).await
    }
}

/// What a channel case gets: the channel, a store for payloads (in-memory
/// unless the runner was given one), a namespace unique to the case, and
/// a writer of raw entries when the runner was given one.
#[derive(Clone)]
pub struct ChannelHarness {
    /// The channel under test.
    pub channel: Arc<dyn StreamChannel>,
    /// The store payloads go to.
    pub store: Arc<dyn KeyValueStore>,
    /// A prefix unique to this case run.
    pub namespace: String,
    raw: Option<Arc<dyn RawEntryWriter>>,
}

impl std::fmt::Debug for ChannelHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHarness")
            .field("channel", &self.channel)
            .field("store", &self.store)
            .field("namespace", &self.namespace)
            .field("raw_entries", &self.raw.is_some())
            .finish()
    }
}

impl ChannelHarness {
    /// A harness with an in-memory store and a fresh namespace.
    pub fn new(channel: Arc<dyn StreamChannel>) -> Self {
        Self::with_store(channel, Arc::new(MemoryStore::new()))
    }

    /// A harness with the given store and a fresh namespace.
    pub fn with_store(channel: Arc<dyn StreamChannel>, store: Arc<dyn KeyValueStore>) -> Self {
        Self {
            channel,
            store,
            namespace: unique_namespace(),
            raw: None,
        }
    }

    /// The same harness, writing raw entries with `writer`.
    pub fn with_raw_entries(mut self, writer: Arc<dyn RawEntryWriter>) -> Self {
        self.raw = Some(writer);
        self
    }

    /// The same harness on another channel (a wrapper of this one) and
    /// store, in the same namespace.
    pub fn on(&self, channel: Arc<dyn StreamChannel>, store: Arc<dyn KeyValueStore>) -> Self {
        Self {
            channel,
            store,
            namespace: self.namespace.clone(),
            raw: self.raw.clone(),
        }
    }

    /// Appends `bytes` as an entry's encoded metadata to `stream`: through
    /// the writer given to the runner, or [`MemoryChannel::append_raw`] on
    /// the in-memory channel.
    pub async fn append_raw(&self, stream: &str, bytes: Bytes) -> Result<()> {
        if let Some(writer) = &self.raw {
            return writer
                .append_raw(self.channel.clone(), stream.to_owned(), bytes)
                .await;
        }
        if let Some(memory) = self
            .channel
            .as_any()
            .and_then(|c| c.downcast_ref::<MemoryChannel>())
        {
            memory.append_raw(stream, bytes);
            return Ok(());
        }
        Err(crate::Error::Config {
            what: "conformance suite",
            reason: format!(
                "this case writes raw entries, and the {} channel has no writer for them: \
                 give one with `Conformance::raw_entries(...)`",
                self.channel.backend()
            ),
        })
    }

    /// A uri unique to this case.
    pub fn uri(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace)
    }

    /// A producer for `uri` (made unique) on the channel and store.
    pub fn producer(&self, name: &str) -> Result<Producer> {
        Producer::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .uri(self.uri(name))
            .build()
    }

    /// A consumer builder for `uri` (made unique) on the channel and store.
    pub fn consumer(&self, name: &str) -> ConsumerBuilder {
        self.on_endpoint(Consumer::builder(), name)
    }

    /// A replay builder for `uri` (made unique) on the channel and store.
    pub fn replay(&self, name: &str) -> ReplayBuilder {
        self.on_endpoint(Replay::builder(), name)
    }

    /// A receiver builder for `uri` (made unique) on the channel and store.
    pub fn receiver(&self, name: &str) -> ReceiverBuilder {
        self.on_endpoint(Receiver::builder(), name)
    }

    fn on_endpoint<R>(&self, builder: EndpointBuilder<R>, name: &str) -> EndpointBuilder<R> {
        builder
            .channel(self.channel.clone())
            .store(self.store.clone())
            .uri(self.uri(name))
    }
}

/// What a store case gets: the store and a namespace unique to the case.
#[derive(Clone, Debug)]
pub struct StoreHarness {
    /// The store under test.
    pub store: Arc<dyn KeyValueStore>,
    /// A prefix unique to this case run.
    pub namespace: String,
}

impl StoreHarness {
    /// A harness with a fresh namespace.
    pub fn new(store: Arc<dyn KeyValueStore>) -> Self {
        Self {
            store,
            namespace: unique_namespace(),
        }
    }

    /// A key unique to this case.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }
}

fn unique_namespace() -> String {
    format!("conformance.{}", uuid::Uuid::now_v7().simple())
}
