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
//! backend}`) records the last source entry the copy went past (with its
//! message id), its newest copy (a mark whose target does not hold that
//! copy is not followed) and, before each page is appended, an entry of the
//! target after which that page's copies are: a copy that stops (a crash,
//! an outage) is continued by the next run, which skips the copies it
//! finds there instead of appending them twice. A first run, a restart, a
//! source in several partitions (one position cannot say how far each
//! partition went), a run after such a run that stopped, and a run whose
//! mark names a source entry the source no longer holds as it was, read the
//! source from the start position instead, skipping what the whole target
//! holds: each copy names its source entry and original message id. One
//! copy of a stream into a target at a time.

mod mark;
mod report;
mod resume;

use std::sync::Arc;
use std::time::Duration;

pub use report::{
    CopyReport, CopyTarget, NotCopied, HEADER_COPIED_FROM_ENTRY, HEADER_COPIED_FROM_STREAM,
};

use super::source::Source;
use crate::channel::{EntryId, StreamPosition};
use crate::endpoint::{sealed::Sealed, EndpointBuilder, Paging};
use crate::envelope::{MessageId, Metadata, Origin, SegmentClass, SegmentLocation, Segments};
use crate::store::{Fields, PutItem};
use crate::{Error, Result};
use mark::Mark;
use resume::{Copied, Target};

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
    options: Copying,
}

type Progress = Arc<dyn Fn(&CopyReport) + Send + Sync>;

/// Builds a [`StreamCopy`]: the setters every builder shares
/// ([`EndpointBuilder`], the source's; its personal-data settings are not
/// used: personal data is copied sealed), the page size, and its own.
pub type StreamCopyBuilder = EndpointBuilder<Copying>;

/// The options of a copy; see [`StreamCopyBuilder`].
pub struct Copying {
    target: Option<CopyTarget>,
    from: StreamPosition,
    page_size: usize,
    progress: Option<Progress>,
    restart: bool,
    payload_ttl: Option<Duration>,
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
            .field("restart", &self.restart)
            .field("payload_ttl", &self.payload_ttl)
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
    /// after another continues where that one stopped, unless it
    /// [restarts](Self::restart). A time is refused for a source in
    /// several partitions (it would hold for the first one only).
    pub fn from(mut self, position: StreamPosition) -> Self {
        self.role.from = position;
        self
    }

    /// Reads the source again from the start position, whatever an earlier
    /// run did, skipping the entries whose copies the target holds (found
    /// by looking through the whole target): to try again what an earlier
    /// run could not copy.
    pub fn restart(mut self) -> Self {
        self.role.restart = true;
        self
    }

    /// How long the copies' payloads live in the target's store (default:
    /// for ever; a producer's `payload_ttl` is not recorded in its
    /// messages, so a copy cannot take it over).
    pub fn payload_ttl(mut self, ttl: Duration) -> Self {
        self.role.payload_ttl = Some(ttl);
        self
    }

    /// Called after each page with what the copy did so far (for a
    /// progress bar).
    pub fn on_progress(mut self, progress: impl Fn(&CopyReport) + Send + Sync + 'static) -> Self {
        self.role.progress = Some(Arc::new(progress));
        self
    }

    /// The copy, refusing a missing channel, uri or target, and a target
    /// that is the source itself (the same channel and stream).
    pub fn build(mut self) -> Result<StreamCopy> {
        let resolved = self.endpoint.resolve("stream copy")?;
        let target = self.role.target.take().ok_or_else(|| {
            Error::config("stream copy", "no target: call .to(CopyTarget::new(...))")
        })?;
        let same_channel = std::ptr::eq(
            Arc::as_ptr(&resolved.channel) as *const (),
            Arc::as_ptr(&target.channel) as *const (),
        );
        if same_channel && target.address.stream_key() == resolved.address.stream_key() {
            return Err(Error::config(
                "stream copy",
                format!(
                    "the target is the source, stream {:?} on the same channel: name another \
                     stream or channel",
                    resolved.address.stream_key()
                ),
            ));
        }
        self.role.page_size = self.role.page_size.max(1);
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
            options: self.role,
        })
    }
}

impl std::fmt::Debug for StreamCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCopy")
            .field("source", &self.source)
            .field("target", &self.target)
            .field("options", &self.options)
            .finish()
    }
}

/// Where a run reads from and what it skips.
struct Start {
    position: StreamPosition,
    /// Source entries whose copies the target holds.
    skip: Copied,
    /// The target's newest entry before a page an earlier run was
    /// appending, kept in the marks until a page finds none of its copies
    /// (its copies, from both runs, are found after it).
    carried: Option<Option<EntryId>>,
    /// Whether the run reads from the start position, skipping what the
    /// whole target holds.
    rescan: bool,
}

impl StreamCopy {
    /// Starts a builder (256 entries per page).
    pub fn builder() -> StreamCopyBuilder {
        StreamCopyBuilder::with_role(Copying {
            target: None,
            from: StreamPosition::Start,
            page_size: 256,
            progress: None,
            restart: false,
            payload_ttl: None,
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
    /// copied (unreadable, personal data sealed for another stream) is
    /// reported in [`CopyReport::not_copied`] and left behind (a
    /// [restart](StreamCopyBuilder::restart) tries it again). A source in
    /// several partitions is read from the start position each run, and
    /// what the target holds skipped.
    pub async fn run(&self) -> Result<CopyReport> {
        let mut report = CopyReport::default();
        let source_stream = self.source.stream();
        let info = self
            .source
            .retry
            .run("reading the source stream's info", || {
                self.source.channel.info(source_stream)
            })
            .await?;
        let several = info.partitions > 1;
        if several && matches!(self.options.from, StreamPosition::Time(_)) {
            return Err(Error::config(
                "stream copy",
                format!(
                    "stream {source_stream:?} is in {} partitions: a time start is refused (on \
                     Kafka, whose partitions are read one after another, it would hold for the \
                     first only); start from the start or an entry",
                    info.partitions
                ),
            ));
        }
        let mut mark = self.read_mark().await?;
        if let Some(why) = self.foreign(&mark).await? {
            report.ignored_mark = Some(why);
            mark = Mark {
                rescan: true,
                ..Mark::default()
            };
        }
        let Start {
            mut position,
            mut skip,
            mut carried,
            rescan,
        } = self.start(&mark, several, &mut report).await?;
        report.rescanned = rescan;
        if !rescan {
            report.resumed_after = mark.after.clone();
        }
        // Up to what is there now (a copy into its own stream ends): where
        // one order runs through the stream, up to its newest entry; else
        // no more entries than it holds.
        let end = if several { None } else { info.last };
        let budget = if end.is_none() { info.length } else { u64::MAX };
        let same_key = self.target.address.stream_key() == source_stream;
        let mut after = (mark.after.clone(), mark.after_id);
        let mut last_copy = mark.last_copy.clone();
        while report.read < budget {
            let page = self
                .source
                .retry
                .run("reading the source stream", || {
                    self.source.channel.read_range(
                        source_stream,
                        &position,
                        end.as_ref(),
                        self.options.page_size,
                    )
                })
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            let last = (
                last.id.clone(),
                last.body.as_ref().ok().map(Metadata::original_id),
            );
            report.read += page.len() as u64;
            let mut readable = Vec::with_capacity(page.len());
            let mut skipped = 0;
            for entry in page {
                let metadata = match entry.body {
                    Ok(metadata) => metadata,
                    Err(unreadable) => {
                        report.not_copied.push(NotCopied {
                            entry: entry.id,
                            reason: unreadable.to_string(),
                        });
                        continue;
                    }
                };
                if same_key && self.copied_from_here(&metadata) {
                    return Err(Error::config(
                        "stream copy",
                        format!(
                            "stream {source_stream:?} holds copies of itself: the target is \
                             the source (the same server under another name?)"
                        ),
                    ));
                }
                if skip.get(entry.id.as_str()) == Some(&metadata.original_id()) {
                    skip.remove(entry.id.as_str());
                    skipped += 1;
                    continue;
                }
                readable.push((entry.id, metadata));
            }
            report.already_copied += skipped;
            let fetched = self.source.fetch(&readable).await?;
            let mut copies = Vec::with_capacity(readable.len());
            let mut payloads = Vec::new();
            for ((entry, metadata), segments) in readable.into_iter().zip(fetched) {
                let copied = segments
                    .map_err(|e| e.to_string())
                    .and_then(|s| self.copy_of(&entry, &metadata, &s));
                match copied {
                    Ok((copy, items, not_found)) => {
                        copies.push(copy);
                        payloads.extend(items);
                        report.segments_not_found += not_found;
                    }
                    Err(reason) => report.not_copied.push(NotCopied { entry, reason }),
                }
            }
            if !copies.is_empty() {
                let target_after = match &carried {
                    Some(before) => before.clone(),
                    None => self.target_newest().await?,
                };
                self.write_mark(&Mark {
                    after: after.0.clone(),
                    after_id: after.1,
                    in_flight: true,
                    rescan,
                    target_after,
                    last_copy: last_copy.clone(),
                })
                .await?;
                let appended = self.append(&copies, &payloads).await?;
                if let (Some(entry), Some(copy)) = (appended.last(), copies.last()) {
                    last_copy = Some((entry.clone(), copy.message_id));
                }
                report.copied += copies.len() as u64;
            }
            // Past the copies of the page a stopped run was appending.
            if skipped == 0 {
                carried = None;
            }
            report.last = Some(last.0.clone());
            position = StreamPosition::After(last.0.clone());
            after = (Some(last.0), last.1);
            if let Some(progress) = &self.options.progress {
                progress(&report);
            }
        }
        if report.last.is_some() || rescan != mark.rescan {
            self.write_mark(&Mark {
                after: after.0,
                after_id: after.1,
                in_flight: false,
                rescan: false,
                target_after: None,
                last_copy,
            })
            .await?;
        }
        Ok(report)
    }

    /// Where this run starts and what it skips: after the mark, skipping
    /// what a page in flight appended; or, looking through the whole
    /// target, from the start position (a first run, a restart, a source
    /// in several partitions, a rescan that stopped, a mark whose entry the
    /// source no longer holds as it was).
    async fn start(&self, mark: &Mark, several: bool, report: &mut CopyReport) -> Result<Start> {
        let target = self.target_copies();
        let mut rescan = self.options.restart || several || mark.rescan || mark.is_none();
        if let (false, Some(after)) = (rescan, &mark.after) {
            let source = self.source.stream();
            let held = self
                .source
                .retry
                .run("checking where the last copy stopped", || {
                    self.source.channel.get(source, after)
                })
                .await?;
            let same = held
                .and_then(|e| e.body.ok())
                .is_some_and(|m| mark.after_id.is_none_or(|id| m.original_id() == id));
            if !same {
                report.warnings.push(format!(
                    "entry {after}, where the last copy stopped, is no longer in {source:?} as \
                     it was (trimmed since, or the stream made anew): the copy reads it again \
                     from the start position, skipping what the target holds"
                ));
                rescan = true;
            }
        }
        if rescan {
            return Ok(Start {
                position: self.options.from.clone(),
                skip: target.copied_after(None).await?,
                carried: None,
                rescan,
            });
        }
        let position = match &mark.after {
            Some(after) => StreamPosition::After(after.clone()),
            None => self.options.from.clone(),
        };
        let (skip, carried) = match mark.in_flight {
            true => (
                target.copied_after(mark.target_after.as_ref()).await?,
                Some(mark.target_after.clone()),
            ),
            false => (Copied::new(), None),
        };
        Ok(Start {
            position,
            skip,
            carried,
            rescan,
        })
    }

    /// Where this copy looks for what the target holds.
    fn target_copies(&self) -> Target<'_> {
        Target {
            channel: &self.target.channel,
            stream: self.target.address.stream_key(),
            source: self.source.stream(),
            page_size: self.options.page_size,
            retry: &self.source.retry,
        }
    }

    /// Whether a source message is a copy out of the source stream itself.
    fn copied_from_here(&self, metadata: &Metadata) -> bool {
        metadata
            .headers
            .get(HEADER_COPIED_FROM_STREAM)
            .is_some_and(|from| from == self.source.stream())
    }

    /// The copy of one source message, the payload items it writes and
    /// how many of its stored segments were not found; or why it cannot be
    /// copied.
    fn copy_of(
        &self,
        entry: &EntryId,
        metadata: &Metadata,
        segments: &Segments,
    ) -> std::result::Result<(Metadata, Vec<PutItem>, u64), String> {
        let target = &self.target.address;
        // A seal names the stream its message was produced to.
        let renamed = target.stream_key() != metadata.stream_key();
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
                    metadata.stream_key()
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
        let mut not_found = 0;
        for segment in &mut copy.segments {
            if matches!(segment.location, SegmentLocation::Inline(_)) {
                continue;
            }
            segment.location = SegmentLocation::Standard;
            // A personal segment erased (or expired) at the source stays
            // missing in the copy, as it reads there.
            let Some(data) = segments.get(&segment.name) else {
                not_found += 1;
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
                ttl: self.options.payload_ttl,
            })
            .collect();
        Ok((copy, items, not_found))
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

    async fn read_mark(&self) -> Result<Mark> {
        let key = self.mark_key();
        let fields = self
            .source
            .retry
            .run("reading the copy's mark", || self.target.store.get(&key))
            .await?;
        Ok(fields.map(Mark::from).unwrap_or_default())
    }

    /// Writes the whole mark.
    async fn write_mark(&self, mark: &Mark) -> Result<()> {
        let item = [PutItem {
            key: self.mark_key(),
            fields: mark.fields(),
            ttl: None,
        }];
        self.source
            .retry
            .run("writing the copy's mark", || {
                self.target.store.put_many(&item)
            })
            .await
    }

    /// Why a mark is not this target's, if it is not: the target does not
    /// hold the newest copy it names (by entry and message id), as a copy
    /// of this source.
    async fn foreign(&self, mark: &Mark) -> Result<Option<String>> {
        let Some((entry, id)) = &mark.last_copy else {
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
            m.message_id == *id
                && m.headers.get(HEADER_COPIED_FROM_STREAM).map(String::as_str)
                    == Some(self.source.stream())
        });
        Ok((!ours).then(|| {
            format!(
                "the mark of an earlier copy names copy {id} at entry {entry} of {stream:?}, \
                 which this target does not hold (another server, or a stream removed since): \
                 the copy starts over, looking through the target for what it holds"
            )
        }))
    }
}
