use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::target::Target;
use super::Producer;
use crate::codec::Codec;
use crate::endpoint::{EndpointBuilder, Resolved};
use crate::interceptor::ProducerInterceptor;
use crate::Result;

impl Producer {
    /// Starts a builder.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::with_role(Producing::default())
    }
}

/// Builds a [`Producer`]; from [`Producer::builder`]. Needs a channel and a
/// uri ([`EndpointBuilder`]'s setters, which every builder shares), and
/// takes the producer's own options below.
pub type ProducerBuilder = EndpointBuilder<Producing>;

/// The options only a producer has; see [`ProducerBuilder`].
#[derive(Default)]
pub struct Producing {
    codec: Codec,
    interceptors: Vec<Arc<dyn ProducerInterceptor>>,
    payload_ttl: Option<Duration>,
    max_batch: Option<usize>,
}

impl EndpointBuilder<Producing> {
    /// The codec (default postcard).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.role.codec = codec;
        self
    }

    /// Adds an interceptor; they run in the order added, on every message
    /// sent, before its payload is stored.
    pub fn interceptor(mut self, interceptor: Arc<dyn ProducerInterceptor>) -> Self {
        self.role.interceptors.push(interceptor);
        self
    }

    /// Expire payload keys after this long.
    pub fn payload_ttl(mut self, ttl: Duration) -> Self {
        self.role.payload_ttl = Some(ttl);
        self
    }

    /// Most messages per batch (default 256).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.role.max_batch = Some(max);
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
            personal,
            retry,
        } = self.endpoint.resolve("producer")?;
        let role = self.role;
        let target = Target::new(
            channel,
            stores,
            address,
            role.codec,
            retry,
            role.interceptors,
            role.payload_ttl,
            role.max_batch.unwrap_or(256),
            personal,
        );
        Ok(Producer {
            targets: vec![Arc::new(target)].into(),
            codec: role.codec,
            cause: None,
        })
    }
}

impl fmt::Debug for Producing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producing")
            .field("codec", &self.codec)
            .field("interceptors", &self.interceptors.len())
            .field("payload_ttl", &self.payload_ttl)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}
