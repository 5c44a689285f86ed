//! Where a copy goes ([`CopyTarget`]) and what it did ([`CopyReport`]).

use std::sync::Arc;

use crate::address::StreamAddress;
use crate::channel::{EntryId, StreamChannel};
use crate::store::KeyValueStore;

/// Header of a copy: the key of the stream it was copied from.
pub const HEADER_COPIED_FROM_STREAM: &str = "copied.from-stream";
/// Header of a copy: its entry id in the stream it was copied from.
pub const HEADER_COPIED_FROM_ENTRY: &str = "copied.from-entry";

/// Where a [`StreamCopy`](super::StreamCopy) copies to: a channel, the
/// store its payloads go to (the target's default store), and the stream.
#[derive(Clone)]
pub struct CopyTarget {
    pub(super) channel: Arc<dyn StreamChannel>,
    pub(super) store: Arc<dyn KeyValueStore>,
    pub(super) address: StreamAddress,
}

impl CopyTarget {
    /// The stream `address` on `channel`, its payloads in `store`.
    pub fn new(
        channel: Arc<dyn StreamChannel>,
        store: Arc<dyn KeyValueStore>,
        address: StreamAddress,
    ) -> Self {
        Self {
            channel,
            store,
            address,
        }
    }
}

impl std::fmt::Debug for CopyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyTarget")
            .field("channel", &self.channel.backend())
            .field("store", &self.store.backend())
            .field("stream", &self.address.stream_key())
            .finish()
    }
}

/// What a [`StreamCopy`](super::StreamCopy) did, so far (as
/// [`on_progress`](super::StreamCopyBuilder::on_progress) sees it) or in
/// all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Where an earlier run had stopped, when this one went on from there
    /// (`None`: a first run, or one that looked through the whole target).
    pub resumed_after: Option<EntryId>,
    /// Whether this run read the source from the start position and
    /// looked through the whole target for what it holds (a first run, a
    /// restart, a source in several partitions, an earlier run's mark not
    /// followed or not usable).
    pub rescanned: bool,
    /// Source entries read.
    pub read: u64,
    /// Copies appended.
    pub copied: u64,
    /// Entries found already copied (by a run that stopped mid-page, or
    /// any earlier run when the whole target is looked through).
    pub already_copied: u64,
    /// Entries that could not be copied, with why. A later run that goes
    /// on from where this one stopped leaves them behind; one that reads
    /// the source again ([`StreamCopyBuilder::restart`](super::StreamCopyBuilder::restart),
    /// a source in several partitions) tries them again.
    pub not_copied: Vec<NotCopied>,
    /// Stored segments not found in the source's stores, copied as missing:
    /// personal data erased or expired, or kept in a class store this copy
    /// was not given.
    pub segments_not_found: u64,
    /// The last source entry the copy went past.
    pub last: Option<EntryId>,
    /// Why the mark of an earlier run was not followed, if it was not (it
    /// named a copy the target does not hold: another server's mark in a
    /// shared store, or a target stream removed since): the copy started
    /// over, looking through the whole target for what it holds.
    pub ignored_mark: Option<String>,
    /// What the copy noticed and went on despite.
    pub warnings: Vec<String>,
}

/// A source entry a [`StreamCopy`](super::StreamCopy) could not copy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotCopied {
    /// Its entry id in the source stream.
    pub entry: EntryId,
    /// Why.
    pub reason: String,
}
