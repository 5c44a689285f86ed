//! What every builder shares: the channel, the stores, the stream's
//! address, the personal-data settings and the backend retry, with their
//! setters, written once for the builders of every role
//! ([`EndpointBuilder`]); and what every builder that reads shares (the
//! consumer interceptors, the dead-letter stream).
//!
//! A role is what the builder makes: a producer, a consumer in a group, a
//! replay, a receiver, requests by data subject. Each role's builder has
//! these setters and its own, and no option another role would ignore.

use std::fmt;
use std::sync::Arc;

use crate::address::StreamAddress;
use crate::channel::StreamChannel;
use crate::envelope::SegmentClass;
use crate::interceptor::ConsumerInterceptor;
use crate::privacy::PersonalData;
use crate::retry::RetryPolicy;
use crate::store::KeyValueStore;
use crate::store_set::{StoreSet, DEFAULT_STORE};
use crate::{Error, Result};

/// The builder of one role (`R`): [`ProducerBuilder`](crate::ProducerBuilder),
/// [`ConsumerBuilder`](crate::ConsumerBuilder),
/// [`ReplayBuilder`](crate::ReplayBuilder),
/// [`ReceiverBuilder`](crate::ReceiverBuilder),
/// [`SubjectRequestsBuilder`](crate::SubjectRequestsBuilder). The setters
/// here are every role's; each role adds its own.
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::{Consumer, Producer, Replay};
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// // The same six calls, whatever the role.
/// let producer = Producer::builder().channel(channel.clone()).store(store.clone()).uri("orders");
/// let consumer = Consumer::builder().channel(channel.clone()).store(store.clone()).uri("orders");
/// let replay = Replay::builder().channel(channel).store(store).uri("orders");
/// # let _ = (producer, consumer, replay);
/// ```
#[must_use = "a builder does nothing until its last call (build, subscribe, messages, ...)"]
pub struct EndpointBuilder<R> {
    pub(crate) endpoint: Endpoint,
    pub(crate) role: R,
}

/// The settings every role shares, as set.
pub(crate) struct Endpoint {
    channel: Option<Arc<dyn StreamChannel>>,
    stores: StoreSet,
    uri: Option<String>,
    environment: Option<String>,
    environment_var: Option<String>,
    /// Read the stream's dead-letter stream instead.
    dead_letters: bool,
    personal: Option<PersonalData>,
    backend_retry: RetryPolicy,
}

/// The settings every role shares, checked.
pub(crate) struct Resolved {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stores: StoreSet,
    pub(crate) address: StreamAddress,
    pub(crate) personal: Option<PersonalData>,
    pub(crate) retry: RetryPolicy,
}

impl<R> EndpointBuilder<R> {
    pub(crate) fn with_role(role: R) -> Self {
        Self {
            endpoint: Endpoint {
                channel: None,
                stores: StoreSet::default(),
                uri: None,
                environment: None,
                environment_var: None,
                dead_letters: false,
                personal: None,
                backend_retry: RetryPolicy::default(),
            },
            role,
        }
    }

    /// The stream channel (required).
    pub fn channel(mut self, channel: Arc<dyn StreamChannel>) -> Self {
        self.endpoint.channel = Some(channel);
        self
    }

    /// The default store: where payloads go and are fetched from. Without
    /// any store, a producer's segments travel inline in the metadata
    /// (fine for small messages; the claim check needs a store).
    pub fn store(mut self, store: Arc<dyn KeyValueStore>) -> Self {
        self.endpoint.stores.insert(DEFAULT_STORE, store);
        self
    }

    /// The store for the segments of one class: personal data to a store
    /// of its own, say. Readers name the same stores as the producer.
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

    /// Reads the environment from a variable when built; an unset or
    /// empty variable means no environment. An explicit
    /// [`Self::environment`] wins.
    pub fn environment_from_var(mut self, variable: impl Into<String>) -> Self {
        self.endpoint.environment_var = Some(variable.into());
        self
    }

    /// The key vault and subject key of personal data ([`crate::privacy`]):
    /// a producer seals the personal segments of a message that names its
    /// data subject (without it, such a message is refused:
    /// [`Error::SubjectWithoutVault`]); a reader opens them (without it, a
    /// sealed segment is left out of its message,
    /// [`Message::sealed_segments`](crate::Message::sealed_segments), and
    /// reading it is [`Error::Sealed`]).
    pub fn personal_data(mut self, personal: PersonalData) -> Self {
        self.endpoint.personal = Some(personal);
        self
    }

    /// Retries of transient channel and store failures (default 8
    /// attempts, exponential backoff with jitter: about 6 to 11 s). A
    /// retried append may duplicate an entry: delivery is at least once.
    pub fn backend_retry(mut self, policy: RetryPolicy) -> Self {
        self.endpoint.backend_retry = policy;
        self
    }
}

/// The roles that read a stream (consumer, replay, receiver, requests by
/// data subject): they take consumer interceptors and can read the
/// dead-letter stream. Sealed: the roles are this crate's.
pub trait Reading: sealed::Sealed {
    #[doc(hidden)]
    fn interceptors_mut(&mut self) -> &mut Vec<Arc<dyn ConsumerInterceptor>>;
}

/// The roles that read a stream page by page (replay, requests by data
/// subject). Sealed: the roles are this crate's.
pub trait Paging: sealed::Sealed {
    #[doc(hidden)]
    fn page_size_mut(&mut self) -> &mut usize;
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

impl<R: Reading> EndpointBuilder<R> {
    /// Adds an interceptor; they run in the order added, on every message
    /// read, after its payload is loaded and before anyone sees it.
    pub fn interceptor(mut self, interceptor: Arc<dyn ConsumerInterceptor>) -> Self {
        self.role.interceptors_mut().push(interceptor);
        self
    }

    /// Reads the uri's dead-letter stream (`{stream}:dead-letter`) instead
    /// of the stream itself: to replay, export or re-handle what consumers
    /// gave up on.
    pub fn dead_letters(mut self) -> Self {
        self.endpoint.dead_letters = true;
        self
    }
}

impl<R: Paging> EndpointBuilder<R> {
    /// Entries read per round trip (default 256).
    pub fn page_size(mut self, entries: usize) -> Self {
        *self.role.page_size_mut() = entries.max(1);
        self
    }
}

impl Endpoint {
    /// Checks that the channel and uri are there and the names are valid.
    /// `what` (`producer`, `consumer`) goes into the error.
    pub(crate) fn resolve(&mut self, what: &'static str) -> Result<Resolved> {
        let channel = self
            .channel
            .clone()
            .ok_or_else(|| Error::config(what, "no channel: call .channel(...)"))?;
        let uri = self
            .uri
            .as_deref()
            .ok_or_else(|| Error::config(what, "no uri: call .uri(\"...\")"))?;
        let environment = self.environment.clone().or_else(|| {
            self.environment_var
                .as_deref()
                .and_then(|v| std::env::var(v).ok())
                .filter(|v| !v.trim().is_empty())
        });
        let address = StreamAddress::new(environment.as_deref(), uri)?;
        Ok(Resolved {
            address: if self.dead_letters {
                address.dead_letters()
            } else {
                address
            },
            channel,
            stores: std::mem::take(&mut self.stores),
            personal: self.personal.clone(),
            retry: self.backend_retry.clone(),
        })
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("channel", &self.channel.as_ref().map(|c| c.backend()))
            .field("stores", &self.stores)
            .field("uri", &self.uri)
            .field("environment", &self.environment)
            .field("environment_var", &self.environment_var)
            .field("dead_letters", &self.dead_letters)
            .field("personal_data", &self.personal.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: fmt::Debug> fmt::Debug for EndpointBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("endpoint", &self.endpoint)
            .field("role", &self.role)
            .finish()
    }
}
