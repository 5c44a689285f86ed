//! What producer and consumer builders share: the channel, the stores and
//! the address they attach to, as configured, and their validation.

use std::fmt;
use std::sync::Arc;

use crate::address::StreamAddress;
use crate::channel::StreamChannel;
use crate::store_set::StoreSet;
use crate::{Error, Result};

#[derive(Default)]
pub(crate) struct Endpoint {
    pub(crate) channel: Option<Arc<dyn StreamChannel>>,
    pub(crate) stores: StoreSet,
    pub(crate) uri: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) environment_var: Option<String>,
    /// Read the stream's dead-letter stream instead.
    pub(crate) dead_letters: bool,
}

pub(crate) struct Resolved {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stores: StoreSet,
    pub(crate) address: StreamAddress,
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
            .finish()
    }
}
