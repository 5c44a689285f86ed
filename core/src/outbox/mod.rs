//! The transactional outbox: a message written inside the caller's own
//! database transaction, so that it is sent if and only if the caller's
//! changes commit.
//!
//! A producer writes into a [`Transaction`] with
//! [`Producer::send_in`](crate::Producer::send_in) (typed producers:
//! `in_transaction(&mut tx)`). A backend with transactions implements
//! [`Transaction`] on a handle of its own around the caller's transaction
//! (PostgreSQL: `Postgres::within(&mut tx)`):
//!
//! - when the producer's channel is that database's, the message's payloads
//!   and entry are written with the transaction's own statements: at commit
//!   the message is in the stream, on rollback it never was;
//! - with another channel (Redis, Kafka), the message is written to the
//!   database's outbox: its entry to the stream [`outbox_stream`] of the
//!   producer's stream key, its payloads under [`outbox_key`]s of their
//!   standard keys, in the database's channel and store. An
//!   [`OutboxRelay`] moves committed messages on to the producer's channel
//!   and stores, as they are (same message ids, standard keys), at least
//!   once and in outbox order. The outbox's names hold a `:` part no stream
//!   or payload key a producer writes has, so an outbox never mixes with
//!   the database's own streams or payloads, even in the same tables.

mod relay;
mod report;

pub use crate::transaction::Transaction;
pub use relay::{OutboxRelay, OutboxRelayBuilder, RELAY_CONSUMER, RELAY_GROUP};
pub use report::RelayReport;

/// The part after a stream key, or a payload key, that names its outbox
/// copy.
pub const OUTBOX_SUFFIX: &str = "outbox";

/// The outbox stream of stream `stream_key`: `{stream_key}:outbox`.
///
/// ```
/// assert_eq!(event_backbone_core::outbox::outbox_stream("prod:orders"), "prod:orders:outbox");
/// ```
pub fn outbox_stream(stream_key: &str) -> String {
    format!("{stream_key}:{OUTBOX_SUFFIX}")
}

/// The key a payload waits under in the outbox: `{payload_key}:outbox`.
pub fn outbox_key(payload_key: &str) -> String {
    format!("{payload_key}:{OUTBOX_SUFFIX}")
}
