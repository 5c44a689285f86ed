//! Sending messages: [`Producer`] and its builder.
//!
//! A send stores the payload first (one key per segment class), then appends
//! the metadata to the stream, so a consumer never sees a message whose
//! payload is not stored yet. Concurrent sends through one producer coalesce
//! into batches (`put_many`, then `append_many`), which a backend pipelines.

mod batcher;
mod builder;
mod message;
mod receipt;
mod specialize;
mod target;

pub(crate) use target::now_ms;

pub use builder::ProducerBuilder;
pub use message::{MessageBuilder, OutgoingMessage};
pub use receipt::{Receipt, SentEntry};
pub use specialize::Specialize;

use std::sync::Arc;

use crate::codec::Codec;
use crate::envelope::{MessageId, Segments};
use crate::{Error, Result};
use target::Target;

/// Sends messages to one stream (or several, after [`Producer::merge`]).
///
/// Cheap to clone; clones share the batching task.
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::Producer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let producer = Producer::builder()
///     .channel(Arc::new(MemoryChannel::new()))
///     .store(Arc::new(MemoryStore::new()))
///     .uri("orders")
///     .build()?;
/// let receipt = producer
///     .message("order_placed")
///     .segment("order_id", &42u64)?
///     .personal("email", "ann@example.com")?
///     .send()
///     .await?;
/// println!("sent {} as entry {}", receipt.message_id, receipt.entry_id());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Producer {
    targets: Arc<[Arc<Target>]>,
    codec: Codec,
}

impl Producer {
    /// Starts a builder.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    /// The codec segments are encoded with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The stream keys this producer sends to.
    pub fn streams(&self) -> Vec<&str> {
        self.targets
            .iter()
            .map(|t| t.address.stream_key())
            .collect()
    }

    /// Starts a message for `operation` (version 0, no segments).
    pub fn message(&self, operation: &str) -> MessageBuilder<'_> {
        MessageBuilder::new(self, OutgoingMessage::new(operation))
    }

    /// Sends already-encoded segments: the untyped API, usable with no macro.
    pub async fn send(&self, operation: &str, version: u32, segments: Segments) -> Result<Receipt> {
        let mut message = OutgoingMessage::new(operation);
        message.version = version;
        message.segments = segments;
        self.send_message(message).await
    }

    /// Sends a message to every target; all copies share one message id.
    pub async fn send_message(&self, message: OutgoingMessage) -> Result<Receipt> {
        let operation = crate::names::validate("operation", &message.operation)?;
        let message_id = MessageId::new();
        let mut entries = Vec::with_capacity(self.targets.len());
        if let [target] = &self.targets[..] {
            entries.push(target.send(message_id, &operation, message).await?);
        } else {
            let sends = self
                .targets
                .iter()
                .map(|t| t.send(message_id, &operation, message.clone()));
            for sent in futures_util::future::join_all(sends).await {
                entries.push(sent?);
            }
        }
        Ok(Receipt {
            message_id,
            entries,
        })
    }

    /// One producer that sends every message to all of the given producers'
    /// streams (fan-out). They must share a codec.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use event_backbone_core::{memory::MemoryChannel, Producer};
    /// let channel = Arc::new(MemoryChannel::new());
    /// let a = Producer::builder().channel(channel.clone()).uri("a").build()?;
    /// let b = Producer::builder().channel(channel).uri("b").build()?;
    /// let both = Producer::merge([a, b])?;
    /// assert_eq!(both.streams(), ["a", "b"]);
    /// # Ok::<(), event_backbone_core::Error>(())
    /// ```
    pub fn merge(producers: impl IntoIterator<Item = Producer>) -> Result<Producer> {
        let producers: Vec<Producer> = producers.into_iter().collect();
        let Some(first) = producers.first() else {
            return Err(Error::config(
                "producer",
                "merge needs at least one producer",
            ));
        };
        let codec = first.codec;
        if let Some(other) = producers.iter().find(|p| p.codec != codec) {
            return Err(Error::config(
                "producer",
                format!(
                    "merged producers must share a codec: {} and {}",
                    codec.content_type(),
                    other.codec.content_type()
                ),
            ));
        }
        let targets: Vec<Arc<Target>> = producers
            .iter()
            .flat_map(|p| p.targets.iter().cloned())
            .collect();
        Ok(Producer {
            targets: targets.into(),
            codec,
        })
    }

    /// Re-routes a copy of this producer (another uri or environment),
    /// sharing its channel, stores and settings.
    pub fn specialize(&self) -> Specialize<'_> {
        Specialize::new(self)
    }
}
