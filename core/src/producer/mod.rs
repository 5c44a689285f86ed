//! Sending messages: [`Producer`] and its builder.
//!
//! A send stores the payload first (one key per segment class), then appends
//! the metadata to the stream, so a consumer never sees a message whose
//! payload is not stored yet. Concurrent sends through one producer coalesce
//! into batches (`put_many`, then `append_many`), which a backend pipelines.

mod batcher;
mod builder;
mod in_transaction;
mod message;
mod outgoing;
mod receipt;
mod sending;
mod specialize;
mod target;

pub use builder::{ProducerBuilder, Producing};
pub use message::MessageBuilder;
pub use outgoing::OutgoingMessage;
pub use receipt::{Receipt, SentEntry};
pub use specialize::Specialize;

use std::future::Future;
use std::sync::Arc;

use crate::codec::Codec;
use crate::envelope::{MessageId, Segments};
use crate::message::Message;
use crate::{Error, Result};
use sending::{MessageSend, Sends, TargetSend};
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
    cause: Option<Arc<Cause>>,
}

/// What a producer made with [`Producer::caused_by`] stamps on its messages.
#[derive(Debug)]
struct Cause {
    correlation_id: String,
    causation_id: String,
    traceparent: Option<String>,
}

impl Producer {
    /// The codec segments are encoded with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Its targets, one per stream (the outbox relay writes to them).
    pub(crate) fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    /// The stream keys this producer sends to.
    pub fn streams(&self) -> Vec<&str> {
        self.targets
            .iter()
            .map(|t| t.address.stream_key())
            .collect()
    }

    /// Sends already-encoded segments: the untyped API, usable with no macro.
    pub fn send(
        &self,
        operation: &str,
        version: u32,
        segments: Segments,
    ) -> impl Future<Output = Result<Receipt>> + Send + '_ {
        let mut message = OutgoingMessage::new(operation);
        message.version = version;
        message.segments = segments;
        self.send_message(message)
    }

    /// A producer whose messages continue the conversation of `message`:
    /// its correlation id (or, if it has none, its message id), its message
    /// id as causation id, and its `traceparent`, unless a message sets its
    /// own. This is how a handler that reacts to one event with another keeps
    /// the chain traceable. With the `opentelemetry` feature and a layer
    /// listening, a message carries the context of its own `send` span
    /// instead: a child of the current span (in a handler, the `process`
    /// span of `message`), or of `message`'s trace when no span is current.
    pub fn caused_by(&self, message: &Message) -> Producer {
        let metadata = message.metadata();
        Producer {
            targets: self.targets.clone(),
            codec: self.codec,
            cause: Some(Arc::new(Cause {
                correlation_id: metadata
                    .correlation_id
                    .clone()
                    .unwrap_or_else(|| metadata.message_id.to_string()),
                causation_id: metadata.message_id.to_string(),
                traceparent: metadata.traceparent.clone(),
            })),
        }
    }

    /// Sends a message to every target; all copies share one message id.
    ///
    /// The message is checked, stamped and placed when the future is made
    /// (unless interceptors or personal data need awaiting); nothing is
    /// queued before the future is first polled.
    pub fn send_message(
        &self,
        mut message: OutgoingMessage,
    ) -> impl Future<Output = Result<Receipt>> + Send + '_ {
        let message_id = MessageId::new();
        let sends = match crate::names::check("operation", &message.operation) {
            Err(e) => Sends::Refused(Some(e)),
            Ok(()) => {
                let cause_traceparent = self.carry_cause(&mut message);
                if let [target] = &self.targets[..] {
                    Sends::One(TargetSend::new(
                        target,
                        message_id,
                        message,
                        cause_traceparent,
                    ))
                } else {
                    Sends::Many(futures_util::future::join_all(self.targets.iter().map(
                        |t| TargetSend::new(t, message_id, message.clone(), cause_traceparent),
                    )))
                }
            }
        };
        MessageSend::new(message_id, sends)
    }

    /// Stamps the correlation and causation ids of [`Self::caused_by`] on
    /// `message` (where it sets none); the cause's `traceparent`.
    fn carry_cause(&self, message: &mut OutgoingMessage) -> Option<&str> {
        let cause = self.cause.as_ref()?;
        message
            .correlation_id
            .get_or_insert_with(|| cause.correlation_id.clone());
        message
            .causation_id
            .get_or_insert_with(|| cause.causation_id.clone());
        cause.traceparent.as_deref()
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
            cause: None,
        })
    }
}
