//! [`Transaction`]: a caller's database transaction that a producer writes
//! messages into (the transactional outbox, see [`crate::outbox`]).

use async_trait::async_trait;

use crate::channel::{EntryId, StreamChannel};
use crate::envelope::Metadata;
use crate::store::{KeyValueStore, PutItem};
use crate::Result;

/// A caller's database transaction that a producer writes messages into
/// ([`Producer::send_in`](crate::Producer::send_in)): the backend writes
/// them with the transaction's statements, so that they commit, or roll
/// back, with the caller's changes.
///
/// An implementation writes `payloads` before, or in the same statement
/// as, the entries, as [`StreamChannel::store_and_append`] does; a payload
/// written outside the transaction (a store of another kind) is harmless
/// when the transaction rolls back, since no entry points at it. A message
/// for a channel that is not its database's goes to the outbox the
/// [`OutboxRelay`](crate::outbox::OutboxRelay) reads: its entries to
/// [`outbox_stream`](crate::outbox::outbox_stream)`(stream)`, its payloads
/// under [`outbox_key`](crate::outbox::outbox_key)`(key)`, without TTL, in
/// the outbox's channel and store.
#[async_trait]
pub trait Transaction: Send {
    /// Writes the payloads and appends `batch` to `stream`, for `channel`
    /// (the producer's: the transaction's own database's channel, or
    /// another one, whose messages then go to the outbox). Returns the ids
    /// of the entries written in the transaction (in the outbox: there).
    async fn store_and_append(
        &mut self,
        channel: &dyn StreamChannel,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>>;
}
