//! Sending inside a caller's database transaction: the outbox
//! ([`crate::outbox`]).

use super::message::MessageBuilder;
use super::outgoing::OutgoingMessage;
use super::receipt::Receipt;
use super::Producer;
use crate::envelope::{MessageId, Segments};
use crate::transaction::Transaction;
use crate::Result;

impl Producer {
    /// Sends a message inside the caller's transaction `tx`: it is sent if
    /// and only if `tx` commits. The message is made as
    /// [`Self::send_message`] makes it (checks, interceptors, sealing),
    /// then written by `tx` at once, not batched: on the producer's channel
    /// when that is the transaction's database's, else to its outbox, for
    /// an [`OutboxRelay`](crate::outbox::OutboxRelay) to move on. Each
    /// target of a merged producer gets its copy, in order.
    ///
    /// An error leaves the transaction as the backend left it (on
    /// PostgreSQL, a failed statement aborts it): roll it back.
    pub async fn send_message_in(
        &self,
        tx: &mut dyn Transaction,
        mut message: OutgoingMessage,
    ) -> Result<Receipt> {
        crate::names::check("operation", &message.operation)?;
        let cause_traceparent = self.carry_cause(&mut message);
        let message_id = MessageId::new();
        let mut entries = Vec::with_capacity(self.targets.len());
        let (last, first) = self.targets.split_last().expect("a producer has a target");
        for target in first {
            entries.push(
                target
                    .send_in(tx, message_id, message.clone(), cause_traceparent)
                    .await?,
            );
        }
        entries.push(
            last.send_in(tx, message_id, message, cause_traceparent)
                .await?,
        );
        Ok(Receipt {
            message_id,
            entries,
        })
    }

    /// Sends already-encoded segments inside `tx` (see
    /// [`Self::send_message_in`]).
    pub async fn send_in(
        &self,
        tx: &mut dyn Transaction,
        operation: &str,
        version: u32,
        segments: Segments,
    ) -> Result<Receipt> {
        let mut message = OutgoingMessage::new(operation);
        message.version = version;
        message.segments = segments;
        self.send_message_in(tx, message).await
    }
}

impl MessageBuilder<'_> {
    /// Sends it inside the caller's transaction `tx`
    /// ([`Producer::send_message_in`]).
    pub async fn send_in(self, tx: &mut dyn Transaction) -> Result<Receipt> {
        let (producer, message) = self.into_parts();
        producer.send_message_in(tx, message).await
    }
}
