use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::ack::AckSender;
use crate::lease::LeaseGuard;
use crate::message::Message;

/// What a handler gets with every message: the message (metadata and
/// segments, through `Deref`), its delivery count, and the means to
/// acknowledge it early or stop the consumer.
///
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ConsumerContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    message: Message,
    delivery_count: u32,
    group: String,
    consumer: String,
    acked: AtomicBool,
    acker: AckSender,
    stop: CancellationToken,
}

impl ConsumerContext {
    pub(crate) fn new(
        message: Message,
        delivery_count: u32,
        group: &str,
        consumer: &str,
        acker: AckSender,
        stop: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                message,
                delivery_count,
                group: group.to_owned(),
                consumer: consumer.to_owned(),
                acked: AtomicBool::new(false),
                acker,
                stop,
            }),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.inner.message
    }

    /// How many times this message has been delivered, this time included.
    pub fn delivery_count(&self) -> u32 {
        self.inner.delivery_count
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.inner.group
    }

    /// This consumer's name in the group.
    pub fn consumer_name(&self) -> &str {
        &self.inner.consumer
    }

    /// Acknowledges the message now (with `AckMode::Manual`, the only way it
    /// is acknowledged). Calling it more than once is harmless.
    pub fn ack(&self) {
        if !self.inner.acked.swap(true, Ordering::AcqRel) {
            self.inner
                .acker
                .ack(self.inner.message.entry_id().clone(), None);
        }
    }

    /// Acknowledges the message once its handling is over; the work under
    /// its lease ends when the acknowledgement is written.
    pub(crate) fn ack_settled(&self, work: LeaseGuard) {
        if !self.inner.acked.swap(true, Ordering::AcqRel) {
            self.inner
                .acker
                .ack(self.inner.message.entry_id().clone(), Some(work));
        }
    }

    /// Takes the message back out of a context no one else holds (the
    /// handler is done with it); clones it otherwise.
    pub(crate) fn into_message(self) -> Message {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.message,
            Err(shared) => shared.message.clone(),
        }
    }

    /// Whether the message has been acknowledged.
    pub fn is_acked(&self) -> bool {
        self.inner.acked.load(Ordering::Acquire)
    }

    /// Stops the consumer: it fetches nothing more, finishes what is in
    /// flight (this message included) and completes.
    pub fn cancel(&self) {
        self.inner.stop.cancel();
    }

    /// Whether the consumer is stopping.
    pub fn is_cancelled(&self) -> bool {
        self.inner.stop.is_cancelled()
    }
}

impl Deref for ConsumerContext {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.inner.message
    }
}
