//! Putting dead letters back on their stream, once each (one redrive at a
//! time): the fix is out,
//! the messages consumers gave up on go round again.
//!
//! A redrive appends a copy of the dead letter to the stream it came from
//! (a new message id, [`Origin::Copy`] of the first message, the payload
//! where it was, the dead letter's reason in header [`HEADER_REDRIVEN_REASON`]
//! and its entry in [`HEADER_REDRIVEN_FROM`]), then marks the dead letter as
//! redriven. The mark is a key per dead letter in the default store
//! (`{dead-letter stream}:redriven:{entry}`), written with the copy's
//! message id before the copy is appended: a redrive that stops between the
//! two (a crash, an outage) is finished by the next one, which finds the
//! copy by its message id instead of appending a second one. The dead
//! letters stay where they are, on every channel (Kafka cannot delete
//! records). One redrive of a stream at a time: the store has no lock, and
//! two at once may both put the same dead letter back.

use std::sync::Arc;

use bytes::Bytes;

use super::dead_letter::{
    HEADER_DEAD_LETTER_DELIVERIES, HEADER_DEAD_LETTER_ENTRY, HEADER_DEAD_LETTER_GROUP,
    HEADER_DEAD_LETTER_REASON, HEADER_DEAD_LETTER_STREAM, MALFORMED_OPERATION,
};
use crate::address::StreamAddress;
use crate::channel::{EntryId, StreamChannel, StreamPosition};
use crate::clock::now_ms;
use crate::endpoint::{sealed::Sealed, EndpointBuilder};
use crate::envelope::{MessageId, Metadata, Origin};
use crate::retry::RetryPolicy;
use crate::store::{text_field, Fields, KeyValueStore, PutItem};
use crate::store_set::DEFAULT_STORE;
use crate::{Error, Result};

/// Header of a redriven copy: the reason its message was dead-lettered.
pub const HEADER_REDRIVEN_REASON: &str = "redriven.reason";
/// Header of a redriven copy: the entry id of its dead letter.
pub const HEADER_REDRIVEN_FROM: &str = "redriven.from";

/// The mark's field: the dead letter's own message id (a mark left by a
/// dead letter of an earlier stream of the same name is not its).
const FIELD_LETTER: &str = "letter";
/// The mark's field: the copy's message id, written before the append.
const FIELD_MESSAGE: &str = "message-id";
/// The mark's field: the stream's newest entry before the copy (where the
/// next redrive looks for it from).
const FIELD_AFTER: &str = "after";
/// The mark's field: the copy's entry id, written after the append.
const FIELD_ENTRY: &str = "entry-id";
/// Entries read per round trip.
const PAGE: usize = 256;

/// One entry of a dead-letter stream, as [`Redrive::list`] reads it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its entry id in the dead-letter stream.
    pub entry: EntryId,
    /// The dead-lettered message's metadata (`None`: the dead-letter entry
    /// itself cannot be read).
    pub metadata: Option<Metadata>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// The entry id it had in its stream.
    pub original_entry: Option<String>,
    /// The group that gave up on it.
    pub group: Option<String>,
    /// Its deliveries before it was given up on.
    pub deliveries: Option<u32>,
    /// Where it was redriven to, if it was.
    pub redriven_to: Option<EntryId>,
}

impl DeadLetter {
    /// Its operation (`None` for an unreadable dead-letter entry).
    pub fn operation(&self) -> Option<&str> {
        self.metadata.as_ref().map(|m| m.operation.as_str())
    }

    /// Why it cannot be redriven, if it cannot: an unreadable entry, kept
    /// as raw bytes, is not a message.
    pub fn not_redrivable(&self) -> Option<&'static str> {
        match &self.metadata {
            None => Some("the dead-letter entry cannot be read"),
            Some(m) if m.operation == MALFORMED_OPERATION => Some(
                "it was an unreadable entry, kept as raw bytes: there is no message to put back",
            ),
            Some(_) => None,
        }
    }
}

/// Reads a stream's dead letters and puts them back; built by
/// [`Redrive::builder`] with the stream's own uri (not its dead-letter
/// stream's) and the store where its payloads are.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::{Consumer, ConsumerContext, HandlerError, Producer, Redrive};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let producer = Producer::builder().channel(channel.clone()).store(store.clone()).uri("orders").build()?;
/// producer.message("placed").segment("amount", &12u32)?.send().await?;
/// // A handler with a bug gives up on it.
/// Consumer::builder().channel(channel.clone()).store(store.clone()).uri("orders")
///     .max_deliveries(1).block(Duration::from_millis(10)).stop_when_empty()
///     .subscribe_fn(|_ctx: ConsumerContext| async { Err::<(), _>(HandlerError::from("a bug")) })?
///     .completion().await?;
/// let redrive = Redrive::builder().channel(channel.clone()).store(store.clone()).uri("orders").build()?;
/// let letters = redrive.list().await?;
/// assert_eq!(letters.len(), 1);
/// // The fix is out: put it back, once.
/// let copy = redrive.redrive(&letters[0]).await?;
/// assert_eq!(redrive.list().await?[0].redriven_to.as_ref(), Some(&copy));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Redrive {
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    address: StreamAddress,
    retry: RetryPolicy,
}

/// Builds a [`Redrive`]: the setters every builder shares
/// ([`EndpointBuilder`]); no options of its own.
pub type RedriveBuilder = EndpointBuilder<Redriving>;

/// The options of a redrive: none beyond every builder's.
#[derive(Debug, Default)]
pub struct Redriving;

impl Sealed for Redriving {}

impl EndpointBuilder<Redriving> {
    /// The redrive, refusing a missing channel, uri or default store.
    pub fn build(mut self) -> Result<Redrive> {
        let resolved = self.endpoint.resolve("redrive")?;
        let store = resolved
            .stores
            .resolve(DEFAULT_STORE)
            .map(|i| resolved.stores.store(i).clone())
            .ok_or_else(|| {
                Error::config(
                    "redrive",
                    "no store: call .store(...) with the stream's default store, \
                     where the redrive marks what it put back",
                )
            })?;
        Ok(Redrive {
            channel: resolved.channel,
            store,
            address: resolved.address,
            retry: resolved.retry,
        })
    }
}

impl std::fmt::Debug for Redrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redrive")
            .field("channel", &self.channel.backend())
            .field("store", &self.store.backend())
            .field("stream", &self.address.stream_key())
            .finish()
    }
}

impl Redrive {
    /// Starts a builder.
    pub fn builder() -> RedriveBuilder {
        RedriveBuilder::with_role(Redriving)
    }

    /// The dead-letter stream's key.
    pub fn dead_letter_stream(&self) -> String {
        self.address.dead_letter_key()
    }

    /// Every dead letter of the stream, oldest first, with where each was
    /// redriven to, if it was.
    pub async fn list(&self) -> Result<Vec<DeadLetter>> {
        let stream = self.dead_letter_stream();
        let mut letters = Vec::new();
        let mut position = StreamPosition::Start;
        loop {
            let page = self
                .retry
                .run("reading the dead letters", || {
                    self.channel.read_range(&stream, &position, None, PAGE)
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                break;
            };
            let marks = self
                .marks(&page.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
                .await?;
            for (entry, mark) in page.into_iter().zip(marks) {
                let metadata = entry.body.ok();
                let mark = match &metadata {
                    Some(m) => mark.of(m.message_id),
                    None => Mark::default(),
                };
                letters.push(letter(entry.id, metadata, mark));
            }
            position = StreamPosition::After(last);
        }
        Ok(letters)
    }

    /// Puts one dead letter back on its stream and returns the copy's
    /// entry id; one already redriven is not appended again (its copy's
    /// entry id is returned). [`Error::NotRedrivable`] for an unreadable
    /// one, or one of another stream.
    ///
    /// Once each, for one redrive at a time: two redrives of the same dead
    /// letter at once may both append a copy (the store has no lock). The
    /// append is not retried: after a failure (a timeout may hide an
    /// append that happened), the next redrive looks for the copy by its
    /// message id, from the entry that was the newest before it, before it
    /// appends another (a copy that lands even later may be doubled).
    pub async fn redrive(&self, letter: &DeadLetter) -> Result<EntryId> {
        let stream = self.dead_letter_stream();
        let refuse = |reason: String| Error::NotRedrivable {
            stream: stream.clone(),
            entry: letter.entry.to_string(),
            reason,
        };
        if let Some(reason) = letter.not_redrivable() {
            return Err(refuse(reason.to_owned()));
        }
        let metadata = letter
            .metadata
            .as_ref()
            .expect("a redrivable letter has metadata");
        let from = metadata
            .headers
            .get(HEADER_DEAD_LETTER_STREAM)
            .cloned()
            .unwrap_or_else(|| metadata.stream_key());
        if from != self.address.stream_key() || metadata.stream_key() != from {
            return Err(refuse(format!(
                "it names stream {:?} (dead-lettered from {from:?}), not {:?}",
                metadata.stream_key(),
                self.address.stream_key()
            )));
        }
        let mark_key = self.mark_key(&letter.entry);
        let mark = self
            .retry
            .run("reading a redrive mark", || self.store.get(&mark_key))
            .await?
            .map(Mark::from)
            .unwrap_or_default()
            .of(metadata.message_id);
        if let Some(entry) = mark.entry {
            return Ok(entry);
        }
        let stream_key = self.address.stream_key();
        if let Some(id) = mark.message {
            // A redrive stopped after its mark: its copy may be there, after
            // the entry that was the newest when the mark was written.
            if let Some(entry) = self.copy_after(mark.after.as_ref(), id).await? {
                let done = Mark {
                    entry: Some(entry.clone()),
                    ..mark
                };
                self.mark(&mark_key, metadata.message_id, &done).await?;
                return Ok(entry);
            }
        }
        // A new id each time a copy is about to go, marked with the newest
        // entry before it: the next redrive looks from there.
        let copy = redriven_copy(metadata, &letter.entry, MessageId::new());
        let newest = self
            .retry
            .run("reading the stream's newest entry", || {
                self.channel.info(stream_key)
            })
            .await?
            .last;
        let mut mark = Mark {
            letter: Some(metadata.message_id),
            message: Some(copy.message_id),
            after: newest,
            entry: None,
        };
        self.mark(&mark_key, metadata.message_id, &mark).await?;
        let entry = self.channel.append(stream_key, &copy).await?;
        mark.entry = Some(entry.clone());
        self.mark(&mark_key, metadata.message_id, &mark).await?;
        Ok(entry)
    }

    /// The marks of these dead letters, in their order.
    async fn marks(&self, entries: &[EntryId]) -> Result<Vec<Mark>> {
        let keys: Vec<String> = entries.iter().map(|e| self.mark_key(e)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = self
            .retry
            .run("reading the redrive marks", || self.store.get_many(&keys))
            .await?;
        Ok(found
            .into_iter()
            .map(|fields| fields.map(Mark::from).unwrap_or_default())
            .collect())
    }

    /// The entry of the copy with message id `id`, looked for after
    /// `after` (from the start without it) to the end of the stream.
    async fn copy_after(&self, after: Option<&EntryId>, id: MessageId) -> Result<Option<EntryId>> {
        let stream = self.address.stream_key();
        let mut position = match after {
            Some(entry) => StreamPosition::After(entry.clone()),
            None => StreamPosition::Start,
        };
        loop {
            let page = self
                .retry
                .run("looking for a redriven copy", || {
                    self.channel.read_range(stream, &position, None, PAGE)
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                return Ok(None);
            };
            let found = page
                .into_iter()
                .find(|e| e.body.as_ref().is_ok_and(|m| m.message_id == id));
            if let Some(entry) = found {
                return Ok(Some(entry.id));
            }
            position = StreamPosition::After(last);
        }
    }

    /// Writes the whole mark (every field, empty ones too: a store's write
    /// keeps the fields it is not given).
    async fn mark(&self, key: &str, letter: MessageId, mark: &Mark) -> Result<()> {
        let text = |value: Option<String>| Bytes::from(value.unwrap_or_default());
        let mut fields = Fields::new();
        fields.insert(FIELD_LETTER.to_owned(), Bytes::from(letter.to_string()));
        fields.insert(
            FIELD_MESSAGE.to_owned(),
            text(mark.message.map(|m| m.to_string())),
        );
        fields.insert(
            FIELD_AFTER.to_owned(),
            text(mark.after.as_ref().map(ToString::to_string)),
        );
        fields.insert(
            FIELD_ENTRY.to_owned(),
            text(mark.entry.as_ref().map(ToString::to_string)),
        );
        let item = [PutItem {
            key: key.to_owned(),
            fields,
            ttl: None,
        }];
        self.retry
            .run("marking a dead letter redriven", || {
                self.store.put_many(&item)
            })
            .await
    }

    /// `{dead-letter stream}:redriven:{entry}`.
    fn mark_key(&self, entry: &EntryId) -> String {
        format!("{}:redriven:{entry}", self.dead_letter_stream())
    }
}

/// What a mark holds: the dead letter's id, the copy's message id and the
/// stream's newest entry before the copy, then the copy's entry id.
#[derive(Default)]
struct Mark {
    letter: Option<MessageId>,
    message: Option<MessageId>,
    after: Option<EntryId>,
    entry: Option<EntryId>,
}

impl Mark {
    /// The mark if it is this dead letter's, else none.
    fn of(self, letter: MessageId) -> Self {
        if self.letter == Some(letter) {
            self
        } else {
            Self::default()
        }
    }
}

impl From<Fields> for Mark {
    fn from(fields: Fields) -> Self {
        // An empty field is no value.
        let text = |name: &str| text_field(&fields, name);
        Self {
            letter: text(FIELD_LETTER).and_then(|t| t.parse().ok()),
            message: text(FIELD_MESSAGE).and_then(|t| t.parse().ok()),
            after: text(FIELD_AFTER).map(EntryId::new),
            entry: text(FIELD_ENTRY).map(EntryId::new),
        }
    }
}

/// A dead letter from its entry and mark.
fn letter(entry: EntryId, metadata: Option<Metadata>, mark: Mark) -> DeadLetter {
    let header = |name: &str| metadata.as_ref().and_then(|m| m.headers.get(name)).cloned();
    DeadLetter {
        reason: header(HEADER_DEAD_LETTER_REASON).unwrap_or_default(),
        original_entry: header(HEADER_DEAD_LETTER_ENTRY),
        group: header(HEADER_DEAD_LETTER_GROUP),
        deliveries: header(HEADER_DEAD_LETTER_DELIVERIES).and_then(|d| d.parse().ok()),
        redriven_to: mark.entry,
        entry,
        metadata,
    }
}

/// The copy a redrive appends: the dead letter's message (its payload where
/// it was), a new id, the dead letter's stamps replaced by the reason and
/// where it came from.
fn redriven_copy(dead: &Metadata, entry: &EntryId, id: MessageId) -> Metadata {
    let mut copy = dead.clone();
    copy.pin_locations();
    copy.origin = Origin::Copy {
        original: dead.original_id(),
    };
    copy.message_id = id;
    // Produced now: its origin names the first message.
    copy.produced_at_ms = now_ms();
    let reason = copy.headers.remove(HEADER_DEAD_LETTER_REASON);
    // The sealed text of a reason (personal data) stays, sealed, with it.
    for stamp in [
        HEADER_DEAD_LETTER_ENTRY,
        HEADER_DEAD_LETTER_STREAM,
        HEADER_DEAD_LETTER_GROUP,
        HEADER_DEAD_LETTER_DELIVERIES,
    ] {
        copy.headers.remove(stamp);
    }
    if let Some(reason) = reason {
        copy.headers
            .insert(HEADER_REDRIVEN_REASON.to_owned(), reason);
    }
    copy.headers
        .insert(HEADER_REDRIVEN_FROM.to_owned(), entry.to_string());
    copy
}
