//! The message builder: `producer.message("op").segment(..)?.send()`.

use serde::Serialize;

use super::outgoing::OutgoingMessage;
use super::receipt::Receipt;
use super::Producer;
use crate::envelope::{MessageId, Origin, SegmentClass, Segments};
use crate::privacy::{AsSubject, Subject};
use crate::Result;

impl Producer {
    /// Starts a message for `operation` (version 0, no segments).
    pub fn message(&self, operation: &str) -> MessageBuilder<'_> {
        MessageBuilder::new(self, OutgoingMessage::new(operation))
    }
}

/// Builds and sends one message; from [`Producer::message`].
#[must_use = "a message is sent only by .send().await"]
#[derive(Debug)]
pub struct MessageBuilder<'p> {
    producer: &'p Producer,
    message: OutgoingMessage,
}

impl<'p> MessageBuilder<'p> {
    fn new(producer: &'p Producer, message: OutgoingMessage) -> Self {
        Self { producer, message }
    }

    pub(super) fn into_parts(self) -> (&'p Producer, OutgoingMessage) {
        (self.producer, self.message)
    }

    /// The operation version (default 0).
    pub fn version(mut self, version: u32) -> Self {
        self.message.version = version;
        self
    }

    /// Encodes `value` with the producer's codec as a `normal` segment.
    pub fn segment<T: Serialize + ?Sized>(self, name: &str, value: &T) -> Result<Self> {
        self.classed(name, SegmentClass::NORMAL, value)
    }

    /// Encodes `value` as a `personal` segment (its own key, its own store).
    pub fn personal<T: Serialize + ?Sized>(self, name: &str, value: &T) -> Result<Self> {
        self.classed(name, SegmentClass::PERSONAL, value)
    }

    /// Encodes `value` as a segment of the given class.
    pub fn classed<T: Serialize + ?Sized>(
        mut self,
        name: &str,
        class: SegmentClass,
        value: &T,
    ) -> Result<Self> {
        let data = self.producer.codec().encode(name, value)?;
        self.message.segments.insert_classed(name, class, data);
        Ok(self)
    }

    /// Replaces the segments with already-encoded ones.
    pub fn segments(mut self, segments: Segments) -> Self {
        self.message.segments = segments;
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.message.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id (the message that caused this one).
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.message.causation_id = Some(id.into());
        self
    }

    /// Sets the W3C `traceparent`.
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.message.traceparent = Some(traceparent.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.message.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the partition key (header
    /// [`PARTITION_KEY_HEADER`](crate::envelope::PARTITION_KEY_HEADER)):
    /// messages with the same key keep their order, on Kafka's partitions
    /// and in consumers with per-key ordering.
    pub fn partition_key(self, key: impl Into<String>) -> Self {
        self.header(crate::envelope::PARTITION_KEY_HEADER, key)
    }

    /// Names the data subject, the person the message's personal data
    /// belongs to: its personal segments are sealed with that person's key
    /// and can be erased with it ([`crate::privacy`]). The stream carries a
    /// keyed hash of the id, never the id. `None` (of an `Option`) names no
    /// one. Needs `.personal_data(...)` on the producer.
    pub fn subject(mut self, subject: impl AsSubject) -> Self {
        self.message.subject = Subject::new(subject);
        self
    }

    /// Marks the message as a copy of `original`.
    pub fn copy_of(mut self, original: MessageId) -> Self {
        self.message.origin = Origin::Copy { original };
        self
    }

    /// The message as built so far.
    pub fn into_message(self) -> OutgoingMessage {
        self.message
    }

    /// Sends it. (The future is the producer's own, not wrapped in
    /// another: a send's future is moved and polled as it is.)
    pub fn send(self) -> impl std::future::Future<Output = Result<Receipt>> + Send + 'p {
        self.producer.send_message(self.message)
    }
}
