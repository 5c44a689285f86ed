//! Where messages go: a validated environment and uri, and the standard
//! keys of that stream.
//!
//! | what | key |
//! |---|---|
//! | stream | `{env}:{uri}`, or `{uri}` without environment |
//! | payload | `{stream}:{operation}:v{version}:{class}:{message-id}` |
//! | dead letters | `{stream}:dead-letter` |
//!
//! The key format itself belongs to the envelope (a [`crate::Metadata`]
//! knows its own keys); this module re-exports its functions.

use std::fmt;

pub use crate::envelope::keys::{dead_letter_key, payload_key, stream_key, DEAD_LETTER_SUFFIX};
use crate::envelope::{MessageId, SegmentClass};
use crate::names::validate;
use crate::Result;

/// A validated environment + uri pair: the address of one stream.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StreamAddress {
    environment: Option<String>,
    uri: String,
    stream_key: String,
}

impl StreamAddress {
    /// Validates the parts and builds the address.
    ///
    /// ```
    /// use event_backbone_core::StreamAddress;
    /// let a = StreamAddress::new(Some("prod"), "orders")?;
    /// assert_eq!(a.stream_key(), "prod:orders");
    /// assert!(StreamAddress::new(None, "bad uri").is_err());
    /// # Ok::<(), event_backbone_core::Error>(())
    /// ```
    pub fn new(environment: Option<&str>, uri: &str) -> Result<Self> {
        let uri = validate("uri", uri)?;
        let environment = environment
            .map(|e| validate("environment", e))
            .transpose()?;
        let stream_key = stream_key(environment.as_deref(), &uri);
        Ok(Self {
            environment,
            uri,
            stream_key,
        })
    }

    /// The same address with `:{part}` after its stream key (a stream of
    /// the library's own beside this one, such as its outbox): no stream a
    /// user names can have that key, since names hold no `:`.
    pub(crate) fn beside(&self, part: &str) -> Self {
        Self {
            environment: self.environment.clone(),
            uri: self.uri.clone(),
            stream_key: format!("{}:{part}", self.stream_key),
        }
    }

    /// The environment, if any.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The uri.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The stream key: `{env}:{uri}` or `{uri}`.
    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    /// The key of the dead-letter stream: `{stream}:dead-letter`.
    pub fn dead_letter_key(&self) -> String {
        dead_letter_key(&self.stream_key)
    }

    /// The address of this stream's dead-letter stream (same environment
    /// and uri; stream key `{stream}:dead-letter`), to read it.
    ///
    /// ```
    /// use event_backbone_core::StreamAddress;
    /// let a = StreamAddress::new(Some("prod"), "orders")?;
    /// assert_eq!(a.dead_letters().stream_key(), "prod:orders:dead-letter");
    /// # Ok::<(), event_backbone_core::Error>(())
    /// ```
    pub fn dead_letters(&self) -> StreamAddress {
        StreamAddress {
            environment: self.environment.clone(),
            uri: self.uri.clone(),
            stream_key: self.dead_letter_key(),
        }
    }

    /// The payload key of one segment class of one message:
    /// `{stream}:{operation}:v{version}:{class}:{message-id}`.
    ///
    /// ```
    /// use event_backbone_core::{MessageId, SegmentClass, StreamAddress};
    /// let a = StreamAddress::new(Some("prod"), "orders")?;
    /// let id: MessageId = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b".parse()?;
    /// assert_eq!(
    ///     a.payload_key("order_placed", 1, &SegmentClass::personal(), &id),
    ///     "prod:orders:order_placed:v1:personal:0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"
    /// );
    /// # Ok::<(), event_backbone_core::Error>(())
    /// ```
    pub fn payload_key(
        &self,
        operation: &str,
        version: u32,
        class: &SegmentClass,
        message_id: &MessageId,
    ) -> String {
        payload_key(&self.stream_key, operation, version, class, message_id)
    }
}

impl fmt::Debug for StreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamAddress({:?})", self.stream_key)
    }
}

impl fmt::Display for StreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_key_without_environment_is_the_uri() {
        let a = StreamAddress::new(None, "hello.event-sourcing").unwrap();
        assert_eq!(a.stream_key(), "hello.event-sourcing");
        assert_eq!(a.dead_letter_key(), "hello.event-sourcing:dead-letter");
    }

    #[test]
    fn bad_environment_is_named() {
        let err = StreamAddress::new(Some("pro d"), "orders").unwrap_err();
        assert!(err.to_string().contains("environment \"pro d\""), "{err}");
    }
}
