use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::target::Target;
use super::Producer;
use crate::channel::StreamChannel;
use crate::codec::Codec;
use crate::endpoint::{Endpoint, Resolved};
use crate::envelope::SegmentClass;
use crate::interceptor::ProducerInterceptor;
use crate::privacy::PersonalData;
use crate::retry::RetryPolicy;
use crate::store::KeyValueStore;
use crate::store_set::DEFAULT_STORE;
use crate::Result;

impl Producer {
    /// Starts a builder.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }
}

/// Builds a [`Producer`]; from [`Producer::builder`].
///
/// Needs a channel and a uri. Without a store, segments travel inline in the
/// metadata (fine for small messages; the claim check needs a store).
#[must_use = "a builder does nothing until .build()"]
#[derive(Default)]
pub struct ProducerBuilder {
    endpoint: Endpoint,
    codec: Codec,
    retry: Option<RetryPolicy>,
    interceptors: Vec<Arc<dyn ProducerInterceptor>>,
    payload_ttl: Option<Duration>,
    max_batch: Option<usize>,
    personal: Option<PersonalData>,
}

impl ProducerBuilder {
    /// The stream channel (required).
    pub fn channel(mut self, channel: Arc<dyn StreamChannel>) -> Self {
        self.endpoint.channel = Some(channel);
        self
    }

    /// The default store for payloads.
    pub fn store(mut self, store: Arc<dyn KeyValueStore>) -> Self {
        self.endpoint.stores.insert(DEFAULT_STORE, store);
        self
    }

    /// The store for segments of one class, e.g. personal data to a store of
    /// its own.
    pub fn class_store(mut self, class: SegmentClass, store: Arc<dyn KeyValueStore>) -> Self {
        self.endpoint.stores.insert(class.as_str(), store);
        self
    }

    /// The uri (required): the stream's name within its environment.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.endpoint.uri = Some(uri.into());
        self
    }

    /// The environment (`prod`, `staging`, ...): the stream key's prefix.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.endpoint.environment = Some(environment.into());
        self
    }

    /// Reads the environment from a variable when building; an unset or
    /// empty variable means no environment. An explicit `.environment()`
    /// wins.
    pub fn environment_from_var(mut self, variable: impl Into<String>) -> Self {
        self.endpoint.environment_var = Some(variable.into());
        self
    }

    /// The codec (default postcard).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Retry of transient store and channel failures (default: 8 attempts,
    /// exponential backoff with jitter). A retried append may duplicate an
    /// entry: delivery is at least once.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Adds an interceptor; they run in the order added.
    pub fn interceptor(mut self, interceptor: Arc<dyn ProducerInterceptor>) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// Expire payload keys after this long.
    pub fn payload_ttl(mut self, ttl: Duration) -> Self {
        self.payload_ttl = Some(ttl);
        self
    }

    /// The key vault and subject key for personal data
    /// ([`crate::privacy`]): a message that names its data subject
    /// (`.subject(...)`) has its personal segments sealed with the
    /// subject's key. A message that names a subject without this is
    /// refused ([`Error::SubjectWithoutVault`](crate::Error::SubjectWithoutVault)).
    pub fn personal_data(mut self, personal: PersonalData) -> Self {
        self.personal = Some(personal);
        self
    }

    /// Most messages per batch (default 256).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = Some(max);
        self
    }

    /// Builds the producer and wraps it in a typed one (a contract's
    /// `...Producer`, which implements `From<Producer>`).
    pub fn build_as<P: From<Producer>>(self) -> Result<P> {
        self.build().map(P::from)
    }

    /// Builds the producer, refusing a missing channel or uri and bad names.
    pub fn build(mut self) -> Result<Producer> {
        let Resolved {
            channel,
            stores,
            address,
        } = self.endpoint.resolve("producer")?;
        let target = Target::new(
            channel,
            stores,
            address,
            self.codec,
            self.retry.unwrap_or_default(),
            self.interceptors,
            self.payload_ttl,
            self.max_batch.unwrap_or(256),
            self.personal,
        );
        Ok(Producer {
            targets: vec![Arc::new(target)].into(),
            codec: self.codec,
            cause: None,
        })
    }
}

impl fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("endpoint", &self.endpoint)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}
