use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::memory::MemoryStore;
use crate::{Consumer, ConsumerBuilder, KeyValueStore, Producer, Result, StreamChannel};

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

/// What a channel case gets: the channel, a store for payloads (in-memory
/// unless the runner was given one), and a namespace unique to the case.
#[derive(Clone, Debug)]
pub struct ChannelHarness {
    /// The channel under test.
    pub channel: Arc<dyn StreamChannel>,
    /// The store payloads go to.
    pub store: Arc<dyn KeyValueStore>,
    /// A prefix unique to this case run.
    pub namespace: String,
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
        }
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
        Consumer::builder()
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
