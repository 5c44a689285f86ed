//! Copying a stream, metadata and payloads, into another stream, on the
//! same backends or others (a migration from Redis to Kafka, a copy of
//! production's history into a test environment); resumable.
//!
//! Each copy is a new message ([`Origin::Copy`] of the first message, a new
//! message id, the time it was first produced kept), its segments written
//! into the target's store under the target stream's standard payload keys,
//! its source in headers [`HEADER_COPIED_FROM_STREAM`] and
//! [`HEADER_COPIED_FROM_ENTRY`]. A mark in the target's store
//! (`{target stream}:copy-of:{source backend}:{source stream}:into:{target
//! backend}`) records how far the copy went, its newest copy's entry in the
//! target (a mark whose target does not hold that copy is not followed)
//! and, before each page is appended, the target's newest entry: a copy
//! that stops (a crash, an outage) is continued by the next run, which
//! skips the entries whose copies it finds after that entry instead of
//! appending them twice. One copy of a stream into a target at a time.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::source::Source;
use crate::address::StreamAddress;
use crate::channel::{EntryId, StreamChannel, StreamPosition};
use crate::endpoint::{sealed::Sealed, EndpointBuilder, Paging};
use crate::envelope::{MessageId, Metadata, Origin, SegmentClass, SegmentLocation, Segments};
use crate::store::{Fields, KeyValueStore, PutItem};
use crate::{Error, Result};

/// Header of a copy: the key of the stream it was copied from.
pub const HEADER_COPIED_FROM_STREAM: &str = "copied.from-stream";
/// Header of a copy: its entry id in the stream it was copied from.
pub const HEADER_COPIED_FROM_ENTRY: &str = "copied.from-entry";

/// The mark's field: the last source entry whose copy is known appended.
const FIELD_AFTER: &str = "after";
/// The mark's field: `1` while a page is being appended.
const FIELD_IN_FLIGHT: &str = "in-flight";
/// The mark's field: the target's newest entry before that page (empty:
/// look from the target's start).
const FIELD_TARGET_AFTER: &str = "target-after";
/// The mark's field: the newest copy's entry in the target (a mark whose
/// target does not hold it is another target's).
const FIELD_LAST_COPY: &str = "last-copy";

/// Where a [`StreamCopy`] copies to: a channel, the store its payloads go
/// to (the target's default store), and the stream.
#[derive(Clone)]
pub struct CopyTarget {
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    address: StreamAddress,
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

/// What a [`StreamCopy`] did, so far (as [`StreamCopyBuilder::on_progress`]
/// sees it) or in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Where an earlier run had stopped (`None`: a first run).
    pub resumed_after: Option<EntryId>,
    /// Source entries read.
    pub read: u64,
    /// Copies appended.
    pub copied: u64,
    /// Entries found already copied by a run that stopped mid-page.
    pub already_copied: u64,
    /// Entries that could not be copied, with why; they stay behind (a
    /// later run does not try them again).
    pub not_copied: Vec<NotCopied>,
    /// The last source entry the copy went past.
    pub last: Option<EntryId>,
    /// Why the mark of an earlier run was not followed, if it was not (it
    /// named a copy the target does not hold: another server's mark in a
    /// shared store, or a target stream removed since): the copy started
    /// over from its start position.
    pub ignored_mark: Option<String>,
}

/// A source entry a [`StreamCopy`] could not copy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotCopied {
    /// Its entry id in the source stream.
    pub entry: EntryId,
    /// Why.
    pub reason: String,
}

/// Copies one stream into another; built by [`StreamCopy::builder`] with
/// the source (channel, stores, uri) and [`StreamCopyBuilder::to`].
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::{CopyTarget, Producer, Replay, StreamAddress, StreamCopy};
/// use futures_util::TryStreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let producer = Producer::builder().channel(channel.clone()).store(store.clone()).uri("orders").build()?;
/// producer.message("placed").segment("amount", &12u32)?.send().await?;
/// // Into another channel and store, as stream "orders-archive".
/// let (to_channel, to_store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let target = CopyTarget::new(to_channel.clone(), to_store.clone(), StreamAddress::new(None, "orders-archive")?);
/// let copy = StreamCopy::builder().channel(channel).store(store).uri("orders").to(target).build()?;
/// assert_eq!(copy.run().await?.copied, 1);
/// // A second run continues where the first stopped: nothing new.
/// assert_eq!(copy.run().await?.copied, 0);
/// let copied: Vec<_> = Replay::builder().channel(to_channel).store(to_store).uri("orders-archive")
///     .messages()?.try_collect().await?;
/// assert_eq!(copied[0].segments().decode::<u32>("amount", &Default::default())?, Some(12));
/// # Ok(()) }
/// ```
pub struct StreamCopy {
    source: Source,
    target: CopyTarget,
    from: StreamPosition,
    page_size: usize,
    progress: Option<Progress>,
}

type Progress = Arc<dyn Fn(&CopyReport) + Send + Sync>;

/// Builds a [`StreamCopy`]: the setters every builder shares
/// ([`EndpointBuilder`], the source's), the page size, and its own.
pub type StreamCopyBuilder = EndpointBuilder<Copying>;

/// The options of a copy; see [`StreamCopyBuilder`].
pub struct Copying {
    target: Option<CopyTarget>,
    from: StreamPosition,
    page_size: usize,
    progress: Option<Progress>,
}

impl Sealed for Copying {}

impl Paging for Copying {
    fn page_size_mut(&mut self) -> &mut usize {
        &mut self.page_size
    }
}

impl std::fmt::Debug for Copying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copying")
            .field("target", &self.target)
            .field("from", &self.from)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder<Copying> {
    /// Where to copy to (required).
    pub fn to(mut self, target: CopyTarget) -> Self {
        self.role.target = Some(target);
        self
    }

    /// Where a first run starts in the source (default: its start); a run
    /// after another continues where that one stopped.
    pub fn from(mut self, position: StreamPosition) -> Self {
        self.role.from = position;
        self
    }

    /// Called after each page with what the copy did so far (for a
    /// progress bar).
    pub fn on_progress(mut self, progress: impl Fn(&CopyReport) + Send + Sync + 'static) -> Self {
        self.role.progress = Some(Arc::new(progress));
        self
    }

    /// The copy, refusing a missing channel, uri or target.
    pub fn build(mut self) -> Result<StreamCopy> {
        let resolved = self.endpoint.resolve("stream copy")?;
        let target = self.role.target.take().ok_or_else(|| {
            Error::config("stream copy", "no target: call .to(CopyTarget::new(...))")
        })?;
        Ok(StreamCopy {
            source: Source {
                channel: resolved.channel,
                stores: resolved.stores,
                address: resolved.address,
                interceptors: Vec::new(),
                retry: resolved.retry,
                personal: None,
            },
            target,
            from: std::mem::replace(&mut self.role.from, StreamPosition::Start),
            page_size: self.role.page_size.max(1),
            progress: self.role.progress.take(),
        })
    }
}

impl std::fmt::Debug for StreamCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCopy")
            .field("source", &self.source)
            .field("target", &self.target)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl StreamCopy {
    /// Starts a builder (256 entries per page).
    pub fn builder() -> StreamCopyBuilder {
        StreamCopyBuilder::with_role(Copying {
            target: None,
            from: StreamPosition::Start,
            page_size: 256,
            progress: None,
        })
    }

    /// The key of the mark in the target's store:
    /// `{target stream}:copy-of:{source backend}:{source stream}:into:{target backend}`.
    pub fn mark_key(&self) -> String {
        format!(
            "{}:copy-of:{}:{}:into:{}",
            self.target.address.stream_key(),
            self.source.channel.backend(),
            self.source.stream(),
            self.target.channel.backend()
        )
    }

    /// Copies what the source holds now (up to its newest entry, on a
    /// stream in one partition), from where the last run stopped.
    ///
    /// The append is not retried: after a failure (a timeout may hide an
    /// append that happened), the next run looks for the page's copies
    /// from the target's newest entry before it. An entry that cannot be
    /// copied (unreadable, its payload gone, personal data sealed for
    /// another stream) is reported in [`CopyReport::not_copied`] and left
    /// behind. Entries a writer adds to an earlier partition of a stream
    /// in several partitions while it is copied are not seen by later
    /// runs: copy such a stream once its writers stopped.
    pub async fn run(&self) -> Result<CopyReport> {
        let mut report = CopyReport::default();
        let mut mark = self.read_mark().await?;
        if let Some(why) = self.foreign(&mark).await? {
            // Another target's (a server of the same kind sharing this
            // store), or a stream since removed: start over rather than
            // skip what this target never got.
            report.ignored_mark = Some(why);
            mark = Mark::default();
        }
        report.resumed_after = mark.after.clone();
        let mut skip = match mark.in_flight {
            true => self.copied_after(mark.target_after.as_ref()).await?,
            false => HashSet::new(),
        };
        let source_stream = self.source.stream();
        let info = self
            .source
            .retry
            .run("reading the source stream's info", || {
                self.source.channel.info(source_stream)
            })
            .await?;
        // Up to what is there now (a copy into its own stream ends), where
        // one order runs through the stream.
        let end = match info.partitions {
            n if n > 1 => None,
            _ => info.last,
        };
        let mut position = match &mark.after {
            Some(after) => StreamPosition::After(after.clone()),
            None => self.from.clone(),
        };
        let mut after = mark.after;
        let mut last_copy = mark.last_copy;
        loop {
            let page = self
                .source
                .retry
                .run("reading the source stream", || {
                    self.source.channel.read_range(
                        source_stream,
                        &position,
                        end.as_ref(),
                        self.page_size,
                    )
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                break;
            };
            report.read += page.len() as u64;
            let mut readable = Vec::with_capacity(page.len());
            for entry in page {
                match entry.body {
                    _ if skip.remove(entry.id.as_str()) => report.already_copied += 1,
                    Ok(metadata) => readable.push((entry.id, metadata)),
                    Err(unreadable) => report.not_copied.push(NotCopied {
                        entry: entry.id,
                        reason: unreadable.to_string(),
                    }),
                }
            }
            let fetched = self.source.fetch(&readable).await?;
            let mut copies = Vec::with_capacity(readable.len());
            let mut payloads = Vec::new();
            for ((entry, metadata), segments) in readable.into_iter().zip(fetched) {
                let copied = segments
                    .map_err(|e| e.to_string())
                    .and_then(|s| self.copy_of(&entry, &metadata, &s));
                match copied {
                    Ok((copy, items)) => {
                        copies.push(copy);
                        payloads.extend(items);
                    }
                    Err(reason) => report.not_copied.push(NotCopied { entry, reason }),
                }
            }
            if !copies.is_empty() {
                let target_after = self.target_newest().await?;
                self.write_mark(&Mark {
                    after: after.clone(),
                    in_flight: true,
                    target_after,
                    last_copy: last_copy.clone(),
                })
                .await?;
                let appended = self.append(&copies, &payloads).await?;
                last_copy = appended.last().cloned().or(last_copy);
                report.copied += copies.len() as u64;
            }
            after = Some(last.clone());
            report.last = Some(last.clone());
            position = StreamPosition::After(last);
            if let Some(progress) = &self.progress {
                progress(&report);
            }
        }
        if report.last.is_some() {
            self.write_mark(&Mark {
                after,
                in_flight: false,
                target_after: None,
                last_copy,
            })
            .await?;
        }
        Ok(report)
    }

    /// The copy of one source message and the payload items it writes, or
    /// why it cannot be copied.
    fn copy_of(
        &self,
        entry: &EntryId,
        metadata: &Metadata,
        segments: &Segments,
    ) -> std::result::Result<(Metadata, Vec<PutItem>), String> {
        let target = &self.target.address;
        let renamed = target.stream_key() != self.source.stream();
        if renamed && metadata.subject.is_some() {
            if let Some(sealed) = metadata
                .segments
                .iter()
                .find(|s| s.class != SegmentClass::NORMAL)
            {
                return Err(format!(
                    "segment {:?} is personal data sealed for stream {:?}: it opens only \
                     there, so it is copied only into a stream of the same name (on another \
                     channel)",
                    sealed.name,
                    self.source.stream()
                ));
            }
        }
        let mut copy = metadata.clone();
        copy.message_id = MessageId::new();
        copy.origin = Origin::Copy {
            original: metadata.original_id(),
        };
        copy.uri = target.uri().to_owned();
        copy.environment = target.environment().map(str::to_owned);
        copy.headers.insert(
            HEADER_COPIED_FROM_STREAM.to_owned(),
            self.source.stream().to_owned(),
        );
        copy.headers
            .insert(HEADER_COPIED_FROM_ENTRY.to_owned(), entry.to_string());
        let mut classes: Vec<(SegmentClass, Fields)> = Vec::new();
        for segment in &mut copy.segments {
            if matches!(segment.location, SegmentLocation::Inline(_)) {
                continue;
            }
            segment.location = SegmentLocation::Standard;
            // A personal segment erased (or expired) at the source stays
            // missing in the copy, as it reads there.
            let Some(data) = segments.get(&segment.name) else {
                continue;
            };
            match classes.iter_mut().find(|(c, _)| *c == segment.class) {
                Some((_, fields)) => {
                    fields.insert(segment.name.clone(), data.data.clone());
                }
                None => {
                    let mut fields = Fields::new();
                    fields.insert(segment.name.clone(), data.data.clone());
                    classes.push((segment.class.clone(), fields));
                }
            }
        }
        let items = classes
            .into_iter()
            .map(|(class, fields)| PutItem {
                key: copy.standard_payload_key(&class),
                fields,
                ttl: None,
            })
            .collect();
        Ok((copy, items))
    }

    /// Why a mark is not this target's, if it is not: the newest copy it
    /// names is not in the target, or not a copy from this source.
    async fn foreign(&self, mark: &Mark) -> Result<Option<String>> {
        let Some(entry) = &mark.last_copy else {
            return Ok(None);
        };
        let stream = self.target.address.stream_key();
        let found = self
            .source
            .retry
            .run("checking the copy's mark", || {
                self.target.channel.get(stream, entry)
            })
            .await?;
        let ours = found.and_then(|e| e.body.ok()).is_some_and(|m| {
            m.headers.get(HEADER_COPIED_FROM_STREAM).map(String::as_str)
                == Some(self.source.stream())
        });
        Ok((!ours).then(|| {
            format!(
                "the mark of an earlier copy names entry {entry} of {stream:?}, which this \
                 target does not hold as a copy of {:?} (another server, or a stream removed \
                 since): copied from the start",
                self.source.stream()
            )
        }))
    }

    /// Writes a page's payloads (retried), then appends its copies (not
    /// retried: the next run looks for them); their entry ids.
    async fn append(&self, copies: &[Metadata], payloads: &[PutItem]) -> Result<Vec<EntryId>> {
        let store = &self.target.store;
        if !payloads.is_empty() {
            self.source
                .retry
                .run("writing the copies' payloads", || store.put_many(payloads))
                .await?;
        }
        self.target
            .channel
            .append_many(self.target.address.stream_key(), copies)
            .await
    }

    /// The target's newest entry, where one order runs through it (else
    /// none: a resumed run looks through the whole target).
    async fn target_newest(&self) -> Result<Option<EntryId>> {
        let stream = self.target.address.stream_key();
        let info = self
            .source
            .retry
            .run("reading the target stream's info", || {
                self.target.channel.info(stream)
            })
            .await?;
        Ok(match info.partitions {
            n if n > 1 => None,
            _ => info.last,
        })
    }

    /// The source entries whose copies the target holds after `after`.
    async fn copied_after(&self, after: Option<&EntryId>) -> Result<HashSet<String>> {
        let stream = self.target.address.stream_key();
        let mut position = match after {
            Some(entry) => StreamPosition::After(entry.clone()),
            None => StreamPosition::Start,
        };
        let mut found = HashSet::new();
        loop {
            let page = self
                .source
                .retry
                .run("looking for the copies of a stopped run", || {
                    self.target
                        .channel
                        .read_range(stream, &position, None, self.page_size)
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                return Ok(found);
            };
            for metadata in page.into_iter().filter_map(|e| e.body.ok()) {
                let from = |name: &str| metadata.headers.get(name);
                if from(HEADER_COPIED_FROM_STREAM).map(String::as_str) == Some(self.source.stream())
                {
                    if let Some(entry) = from(HEADER_COPIED_FROM_ENTRY) {
                        found.insert(entry.clone());
                    }
                }
            }
            position = StreamPosition::After(last);
        }
    }

    async fn read_mark(&self) -> Result<Mark> {
        let key = self.mark_key();
        let fields = self
            .source
            .retry
            .run("reading the copy's mark", || self.target.store.get(&key))
            .await?;
        Ok(fields.map(Mark::from).unwrap_or_default())
    }

    /// Writes the whole mark (every field, empty ones too: a store's write
    /// keeps the fields it is not given).
    async fn write_mark(&self, mark: &Mark) -> Result<()> {
        let text = |entry: &Option<EntryId>| {
            Bytes::from(entry.as_ref().map(ToString::to_string).unwrap_or_default())
        };
        let mut fields = Fields::new();
        fields.insert(FIELD_AFTER.to_owned(), text(&mark.after));
        fields.insert(
            FIELD_IN_FLIGHT.to_owned(),
            Bytes::from_static(if mark.in_flight { b"1" } else { b"" }),
        );
        fields.insert(FIELD_TARGET_AFTER.to_owned(), text(&mark.target_after));
        fields.insert(FIELD_LAST_COPY.to_owned(), text(&mark.last_copy));
        let item = [PutItem {
            key: self.mark_key(),
            fields,
            ttl: None,
        }];
        self.source
            .retry
            .run("writing the copy's mark", || {
                self.target.store.put_many(&item)
            })
            .await
    }
}

/// How far a copy went.
#[derive(Default)]
struct Mark {
    after: Option<EntryId>,
    in_flight: bool,
    target_after: Option<EntryId>,
    last_copy: Option<EntryId>,
}

impl From<Fields> for Mark {
    fn from(fields: Fields) -> Self {
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(|b| std::str::from_utf8(b).ok())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        Self {
            after: text(FIELD_AFTER).map(EntryId::new),
            in_flight: text(FIELD_IN_FLIGHT).is_some(),
            target_after: text(FIELD_TARGET_AFTER).map(EntryId::new),
            last_copy: text(FIELD_LAST_COPY).map(EntryId::new),
        }
    }
}
