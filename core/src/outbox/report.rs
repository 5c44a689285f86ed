//! What one pass of the relay did.

use crate::channel::EntryId;

/// What [`OutboxRelay::relay_once`](super::OutboxRelay::relay_once) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayReport {
    /// Messages written to the producer's channel and stores.
    pub relayed: u64,
    /// Messages that went to the outbox stream's dead-letter stream
    /// instead (unreadable, a payload missing from the outbox, or refused
    /// for good by the target), with why; their payloads stay in the
    /// outbox store.
    pub dead_lettered: Vec<(EntryId, String)>,
}

impl RelayReport {
    /// Whether the pass found nothing to do.
    pub fn is_empty(&self) -> bool {
        self.relayed == 0 && self.dead_lettered.is_empty()
    }

    /// Adds another pass's report to this one.
    pub fn add(&mut self, other: RelayReport) {
        self.relayed += other.relayed;
        self.dead_lettered.extend(other.dead_lettered);
    }
}
