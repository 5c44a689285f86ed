use std::sync::Arc;

use super::Producer;
use crate::address::StreamAddress;
use crate::Result;

impl Producer {
    /// Re-routes a copy of this producer (another uri or environment),
    /// sharing its channel, stores and settings.
    pub fn specialize(&self) -> Specialize<'_> {
        Specialize::new(self)
    }
}

/// Re-routes a copy of a producer; from [`Producer::specialize`].
///
/// ```
/// # use std::sync::Arc;
/// # use event_backbone_core::{memory::MemoryChannel, Producer};
/// let base = Producer::builder()
///     .channel(Arc::new(MemoryChannel::new()))
///     .uri("orders")
///     .environment("prod")
///     .build()?;
/// let eu = base.specialize().uri_suffix(".eu").environment("staging").build()?;
/// assert_eq!(eu.streams(), ["staging:orders.eu"]);
/// # Ok::<(), event_backbone_core::Error>(())
/// ```
#[must_use = "nothing changes until .build()"]
#[derive(Debug)]
pub struct Specialize<'p> {
    producer: &'p Producer,
    uri: Option<String>,
    prefix: String,
    suffix: String,
    environment: Option<Option<String>>,
}

impl<'p> Specialize<'p> {
    fn new(producer: &'p Producer) -> Self {
        Self {
            producer,
            uri: None,
            prefix: String::new(),
            suffix: String::new(),
            environment: None,
        }
    }

    /// Replaces the uri.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(uri.into());
        self
    }

    /// Puts text before the uri.
    pub fn uri_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Puts text after the uri.
    pub fn uri_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// Replaces the environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(Some(environment.into()));
        self
    }

    /// Removes the environment.
    pub fn without_environment(mut self) -> Self {
        self.environment = Some(None);
        self
    }

    /// Builds the re-routed producer (validating the new names).
    pub fn build(self) -> Result<Producer> {
        let mut targets = Vec::with_capacity(self.producer.targets.len());
        for target in self.producer.targets.iter() {
            let base_uri = self.uri.as_deref().unwrap_or(target.address.uri());
            let uri = format!("{}{}{}", self.prefix, base_uri, self.suffix);
            let environment = match &self.environment {
                Some(env) => env.clone(),
                None => target.address.environment().map(str::to_owned),
            };
            let address = StreamAddress::new(environment.as_deref(), &uri)?;
            targets.push(Arc::new(target.readdressed(address)));
        }
        Ok(Producer {
            targets: targets.into(),
            codec: self.producer.codec,
            cause: self.producer.cause.clone(),
        })
    }
}
