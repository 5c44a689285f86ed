//! The stream side of the claim check: the [`StreamChannel`] trait that every
//! stream backend (in-memory, Redis Streams, Kafka, ...) implements.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::capabilities::ChannelCapabilities;
pub use crate::entry_id::EntryId;
use crate::envelope::Metadata;
pub use crate::lease::Lease;
use crate::store::{KeyValueStore, PutItem};
use crate::Result;

/// An entry whose bytes are not readable metadata. The consumer sends it to
/// the dead-letter stream with the reason and the raw bytes, unless a newer
/// producer wrote it ([`MalformedEntry::newer_version`]): that one waits,
/// pending, for a consumer that reads its format.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MalformedEntry {
    /// Why it could not be read.
    pub reason: String,
    /// The raw bytes found, if any.
    pub raw: bytes::Bytes,
    /// The format version of the entry, when it is one this build does not
    /// read yet ([`Error::UnsupportedWireVersion`](crate::Error::UnsupportedWireVersion)):
    /// a newer producer wrote it during a rolling upgrade.
    pub newer_version: Option<u8>,
}

impl MalformedEntry {
    /// An entry that is not metadata at all (no value, a missing field):
    /// `reason` says what was found.
    pub fn new(reason: impl Into<String>, raw: bytes::Bytes) -> Self {
        Self {
            reason: reason.into(),
            raw,
            newer_version: None,
        }
    }

    /// An entry whose bytes [`decode_metadata`](crate::envelope::decode_metadata)
    /// refused with `error`; an unknown (newer) format version is kept in
    /// [`Self::newer_version`]. Backends build their unreadable entries with
    /// this, so that every channel tells a newer entry from garbage.
    ///
    /// ```
    /// use event_backbone_core::envelope::decode_metadata;
    /// use event_backbone_core::MalformedEntry;
    /// let raw = bytes::Bytes::from_static(b"EB\x07...");
    /// let entry = MalformedEntry::undecodable(&decode_metadata(&raw).unwrap_err(), raw.clone());
    /// assert_eq!(entry.newer_version, Some(7));
    /// ```
    pub fn undecodable(error: &crate::Error, raw: bytes::Bytes) -> Self {
        let newer_version = match error {
            crate::Error::UnsupportedWireVersion { version, .. } => Some(*version),
            _ => None,
        };
        Self {
            reason: error.to_string(),
            raw,
            newer_version,
        }
    }
}

impl fmt::Display for MalformedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unreadable stream entry ({} bytes): {}",
            self.raw.len(),
            self.reason
        )
    }
}

impl std::error::Error for MalformedEntry {}

/// One entry of a stream.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its id.
    pub id: EntryId,
    /// Its metadata, or why it could not be read.
    pub body: Result<Metadata, MalformedEntry>,
}

/// An entry delivered to a member of a consumer group.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Delivery {
    /// The entry.
    pub entry: Entry,
    /// How many times it has been delivered, this time included (1 on the
    /// first delivery).
    pub delivery_count: u32,
    /// Whether the member still owns the entry: a channel whose members
    /// lose entries they hold (a Kafka partition given to another member)
    /// revokes it, and the consumer then drops the entry unhandled, for the
    /// new owner. Never revoked by default.
    pub lease: Lease,
}

impl Delivery {
    /// A delivery with a lease that is never revoked.
    pub fn new(entry: Entry, delivery_count: u32) -> Self {
        Self {
            entry,
            delivery_count,
            lease: Lease::default(),
        }
    }

    /// The same delivery under `lease`.
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }
}

/// Where a new consumer group starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GroupStart {
    /// From the first entry still in the stream.
    #[default]
    Beginning,
    /// Only entries appended after the group is created.
    Latest,
}

/// A position in a stream, for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamPosition {
    /// The first entry.
    Start,
    /// This entry and those after it.
    From(EntryId),
    /// The entries after this one.
    After(EntryId),
    /// The entries appended at or after this time (milliseconds since the
    /// Unix epoch, by the channel's clock).
    Time(u64),
}

/// What a group looks like, for tooling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Entries delivered but not acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group, when the backend knows.
    pub lag: Option<u64>,
    /// Number of members known to the backend.
    pub consumers: u64,
}

/// One member of a group, for tooling
/// ([`StreamChannel::group_members`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// The member's (consumer's) name.
    pub name: String,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// How long since it last read (or claimed), in milliseconds, when the
    /// backend knows.
    pub idle_ms: Option<u64>,
}

impl MemberInfo {
    /// A member with its pending count and idle time.
    pub fn new(name: impl Into<String>, pending: u64, idle_ms: Option<u64>) -> Self {
        Self {
            name: name.into(),
            pending,
            idle_ms,
        }
    }
}

/// What a stream looks like, for tooling.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StreamInfo {
    /// Entries in the stream.
    pub length: u64,
    /// Its newest entry, when the backend knows it in one question (`None`
    /// for an empty stream, and on backends that do not say).
    pub last: Option<EntryId>,
    /// The logs it is spread over, each in its own order: 1 for one log,
    /// more for a Kafka topic or a Redis stream in partitions, 0 for a
    /// stream that does not exist. Across partitions, pages of
    /// [`StreamChannel::read_range`] go partition after partition (Kafka)
    /// or by id (Redis), not in one order of appends.
    pub partitions: u32,
    /// Its consumer groups.
    pub groups: Vec<GroupInfo>,
}

impl StreamInfo {
    /// The info of one group.
    pub fn group(&self, name: &str) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// A stream backend: an append-only log per stream key, with consumer groups.
///
/// Implementations must be safe to share (`Arc<dyn StreamChannel>`) between
/// many producers and consumers. They encode [`Metadata`] with
/// [`crate::envelope::encode_metadata`] (adding readable fields if they like)
/// and report entries they cannot decode as [`MalformedEntry`] rather than
/// failing the whole read. Prove an implementation with the conformance kit
/// (`event_backbone_core::testkit`, feature `testkit`).
#[async_trait]
pub trait StreamChannel: Send + Sync + fmt::Debug + 'static {
    /// A short name for errors and logs (`memory`, `redis`, ...), and the
    /// `messaging.system` of the spans and metrics about this channel.
    fn backend(&self) -> &'static str;

    /// What this backend promises; the conformance kit checks exactly that.
    fn capabilities(&self) -> ChannelCapabilities;

    /// Appends one entry.
    async fn append(&self, stream: &str, metadata: &Metadata) -> Result<EntryId> {
        let mut ids = self
            .append_many(stream, std::slice::from_ref(metadata))
            .await?;
        Ok(ids.remove(0))
    }

    /// Appends several entries in order, in as few round trips as the
    /// backend allows. Returns their ids in the same order.
    ///
    /// When some entries are appended and others are not (a backend that
    /// appends to several partitions at once), the error is
    /// [`Error::PartlyAppended`](crate::Error::PartlyAppended) with the ids
    /// of those appended: the producer then tries only the others again,
    /// rather than appending the first ones a second time. Any other error
    /// means that nothing was appended, as far as the backend knows (a
    /// timeout may hide an entry the server did append: delivery is at
    /// least once).
    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>>;

    /// Writes payloads, then appends entries: what a producer does with each
    /// batch. Every payload must be stored before any entry is appended, so
    /// that no consumer sees an entry whose payload is missing.
    ///
    /// The default runs `insert_many` on every store (concurrently), then
    /// [`Self::append_many`]. A channel that shares a connection with the
    /// stores (recognised through [`KeyValueStore::as_any`]) may do all of it
    /// in one pipeline, in that order.
    async fn store_and_append(
        &self,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let writes = payloads
            .iter()
            .filter(|(_, items)| !items.is_empty())
            .map(|(store, items)| store.insert_many(items));
        futures_util::future::try_join_all(writes).await?;
        self.append_many(stream, batch).await
    }

    /// Creates a consumer group if it does not exist (creating the stream
    /// too). An existing group is left as it is.
    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()>;

    /// Delivers up to `count` entries never delivered to the group, waiting up
    /// to `block` for the first one. Delivered entries are pending for
    /// `consumer` until acknowledged.
    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>>;

    /// Delivers again up to `count` entries pending for this very consumer
    /// (what it had read before a crash, when it restarts under the same
    /// name). The default returns none.
    async fn read_pending(
        &self,
        _stream: &str,
        _group: &str,
        _consumer: &str,
        _count: usize,
    ) -> Result<Vec<Delivery>> {
        Ok(Vec::new())
    }

    /// Called once when a consumer stops, after its last acknowledgement:
    /// a backend whose group members hold resources (a Kafka group member
    /// with its partitions) releases them, so that the rest of the group
    /// takes over at once. The default does nothing.
    async fn leave_group(&self, _stream: &str, _group: &str, _consumer: &str) -> Result<()> {
        Ok(())
    }

    /// Counts one more delivery of an entry pending for `consumer` whose
    /// handler failed, before the consumer gives it to the handler again
    /// (after its redelivery backoff), and returns the new delivery count;
    /// `None` if the entry is no longer pending for `consumer` (acknowledged,
    /// claimed by another member, or its partition given to another member),
    /// and the consumer then drops it.
    ///
    /// `delivered` is the count of the delivery that failed. A backend
    /// persists the count where it can, so that it survives a restart of the
    /// consumer and a rebalance: the count is what sends a poison message to
    /// the dead-letter stream after `max_deliveries`, even when every
    /// delivery crashes the process. The default counts in memory only
    /// (`delivered + 1`): a restarted consumer starts again from 1, and a
    /// channel that keeps it declares
    /// [`durable_delivery_counts`](ChannelCapabilities::durable_delivery_counts)
    /// false.
    async fn redeliver(
        &self,
        _stream: &str,
        _group: &str,
        _consumer: &str,
        _id: &EntryId,
        delivered: u32,
    ) -> Result<Option<u32>> {
        Ok(Some(delivered.saturating_add(1)))
    }

    /// Acknowledges entries: they leave the group's pending list.
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()>;

    /// Moves up to `count` entries that have been pending for at least
    /// `min_idle` (with any member) to `consumer`, and delivers them with
    /// their delivery count increased.
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>>;

    /// Tells the group that `consumer` is still working on these entries,
    /// pending under its name: their idle time starts again, so that no
    /// member's [`Self::claim_stale`] takes them while they wait in the
    /// consumer's hands (queued behind their key, or for a redelivery).
    /// Returns those of `ids` that are no longer pending for `consumer`
    /// (acknowledged, or claimed by another member): the consumer drops
    /// them unhandled. It must not take an entry from another member, and
    /// must not count a delivery.
    ///
    /// The default does nothing and reports nothing lost: right for a
    /// channel without claim. A channel that declares
    /// [`claim`](ChannelCapabilities::claim) implements it (the conformance
    /// kit checks that a long queue is not claimed).
    async fn touch(
        &self,
        _stream: &str,
        _group: &str,
        _consumer: &str,
        _ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        Ok(Vec::new())
    }

    /// Reads up to `count` entries from `from`, up to and including `to`,
    /// with no group: the replay path.
    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>>;

    /// One entry by id; `None` if there is no such entry.
    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>>;

    /// Length, newest entry, groups, pending and lag.
    async fn info(&self, stream: &str) -> Result<StreamInfo>;

    /// One group's info, `None` if the backend knows no such group. The
    /// default finds it in [`Self::info`]; a backend whose `info` may leave
    /// out groups it can find by name (Kafka: groups with no member in
    /// this process, when the broker does not list its groups) answers
    /// for them here.
    async fn group_info(&self, stream: &str, group: &str) -> Result<Option<GroupInfo>> {
        Ok(self.info(stream).await?.group(group).cloned())
    }

    /// The members of a group, by name, with their pending entries and
    /// idle time, for tooling; `None` when the backend cannot say (the
    /// default; Kafka: a group's members are known to the broker's
    /// coordinator only), an empty list for a group it does not know.
    async fn group_members(&self, _stream: &str, _group: &str) -> Result<Option<Vec<MemberInfo>>> {
        Ok(None)
    }

    /// The streams this channel holds (their keys, dead-letter streams
    /// included), sorted, for tooling. The default says the backend cannot
    /// list them.
    async fn streams(&self) -> Result<Vec<String>> {
        Err(crate::Error::permanent(
            self.backend(),
            "listing the streams",
            "this backend cannot list its streams: name the stream instead",
        ))
    }

    /// The channel as `Any`, for code that knows its concrete type (a test
    /// that writes raw entries). The default is `None`.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}
