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
//!   database's outbox (the same stream key, in the database's channel and
//!   store), and an [`OutboxRelay`] moves committed messages on to the
//!   producer's channel and stores, as they are (same message ids), at
//!   least once and in order.

mod relay;
mod report;

pub use crate::transaction::Transaction;
pub use relay::{OutboxRelay, OutboxRelayBuilder, RELAY_CONSUMER, RELAY_GROUP};
pub use report::RelayReport;
