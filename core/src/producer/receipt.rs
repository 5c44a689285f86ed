use std::sync::Arc;

use crate::channel::EntryId;
use crate::envelope::MessageId;

/// What a send returns: the message id and where each copy landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The message id (shared by every copy of a fan-out).
    pub message_id: MessageId,
    /// One entry per target stream, in the producer's order.
    pub entries: Vec<SentEntry>,
}

impl Receipt {
    /// The entry id in the first (usually the only) stream.
    pub fn entry_id(&self) -> &EntryId {
        &self.entries[0].entry_id
    }
}

/// Where one copy of a message landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentEntry {
    /// The stream key.
    pub stream: Arc<str>,
    /// The entry id in that stream.
    pub entry_id: EntryId,
}
