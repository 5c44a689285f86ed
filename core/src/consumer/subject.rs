//! Reading a stream by data subject: the whole stream, comparing the
//! subject hash in each entry's metadata; then the export (GDPR article
//! 15) or the erasure (article 17) of what was found.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::source::Source;
use crate::channel::{EntryId, StreamPosition};
use crate::endpoint::{sealed::Sealed, EndpointBuilder, Paging, Reading};
use crate::envelope::{Metadata, SegmentClass, Segments};
use crate::interceptor::ConsumerInterceptor;
use crate::privacy::opening::is_sealed_for;
use crate::privacy::{
    AsSubject, Erasure, ExportedMessage, PersonalData, SubjectExport, SubjectHash,
    UnreadableMessage,
};
use crate::{Error, Result};

/// Requests of data subjects on a stream: the export of everything it
/// holds about one (GDPR article 15, right of access) and its erasure
/// (article 17). Built by [`SubjectRequests::builder`]; needs the
/// personal-data settings ([`EndpointBuilder::personal_data`]).
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::privacy::{MasterKey, PersonalData, SubjectKey};
/// use event_backbone_core::{Producer, SubjectRequests};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let personal = PersonalData::on_store(store.clone(), MasterKey::generate(), SubjectKey::generate());
/// let producer = Producer::builder().channel(channel.clone()).store(store.clone())
///     .personal_data(personal.clone()).uri("users").build()?;
/// producer.message("registered").subject("ann").personal("email", "ann@example.com")?.send().await?;
/// let requests = || SubjectRequests::builder().channel(channel.clone()).store(store.clone())
///     .personal_data(personal.clone()).uri("users");
/// assert_eq!(requests().export("ann").await?.messages().len(), 1);
/// assert!(requests().erase("ann").await?.key_erased);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SubjectRequests;

impl SubjectRequests {
    /// Starts a builder (256 entries per read).
    pub fn builder() -> SubjectRequestsBuilder {
        SubjectRequestsBuilder::with_role(Subjects {
            interceptors: Vec::new(),
            page_size: 256,
        })
    }
}

/// Builds requests of data subjects: the setters every builder shares
/// ([`EndpointBuilder`]), those of every reader, and the page size.
pub type SubjectRequestsBuilder = EndpointBuilder<Subjects>;

/// The options of requests of data subjects; see [`SubjectRequestsBuilder`].
pub struct Subjects {
    interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    page_size: usize,
}

impl Sealed for Subjects {}

impl Reading for Subjects {
    fn interceptors_mut(&mut self) -> &mut Vec<Arc<dyn ConsumerInterceptor>> {
        &mut self.interceptors
    }
}

impl Paging for Subjects {
    fn page_size_mut(&mut self) -> &mut usize {
        &mut self.page_size
    }
}

impl std::fmt::Debug for Subjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subjects")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder<Subjects> {
    /// Everything the stream holds about one data subject (GDPR article
    /// 15): each of its messages with the segments of classes other than
    /// `normal`, opened, in stream order. Reads the whole stream, comparing
    /// subject hashes in the metadata, and fetches only the personal
    /// payloads of the subject's messages. A message whose personal data
    /// cannot be read is reported by itself
    /// ([`SubjectExport::unreadable`]); the export fails as a whole only
    /// when the stream, a store or the vault cannot be reached.
    pub async fn export(mut self, subject: impl AsSubject) -> Result<SubjectExport> {
        let (source, personal) = self.resolve("export a subject")?;
        export(&source, &personal, subject, self.role.page_size).await
    }

    /// Erases a data subject (GDPR article 17) and deletes what it can find
    /// of its data in this stream: first the subject's data keys
    /// ([`PersonalData::erase_subject`], which alone makes every sealed copy
    /// unreadable), then, to free their space, the payload keys of its
    /// messages' segments of classes other than `normal`. Idempotent.
    pub async fn erase(mut self, subject: impl AsSubject) -> Result<Erasure> {
        let (source, personal) = self.resolve("erase a subject")?;
        erase(&source, &personal, subject, self.role.page_size).await
    }

    fn resolve(&mut self, what: &str) -> Result<(Source, PersonalData)> {
        let source = Source::resolve(self, "subject requests")?;
        let personal = source.personal.clone().ok_or_else(|| {
            Error::config(
                "subject requests",
                format!("to {what}, give the personal-data settings: `.personal_data(...)`"),
            )
        })?;
        Ok((source, personal))
    }
}

/// The entries of `subject` in the source's stream, in stream order.
pub(crate) async fn subject_entries(
    source: &Source,
    subject: &SubjectHash,
    page: usize,
) -> Result<Vec<(EntryId, Metadata)>> {
    let mut found = Vec::new();
    let mut position = StreamPosition::Start;
    loop {
        let entries = source
            .retry
            .run("reading the stream for a data subject", || {
                source
                    .channel
                    .read_range(source.stream(), &position, None, page.max(1))
            })
            .await?;
        let Some(last) = entries.last().map(|e| e.id.clone()) else {
            return Ok(found);
        };
        for entry in entries {
            match entry.body {
                Ok(metadata) if metadata.subject.as_ref() == Some(subject) => {
                    found.push((entry.id, metadata));
                }
                Ok(_) => {}
                Err(malformed) => tracing::warn!(
                    stream = source.stream(),
                    entry = %entry.id,
                    reason = %malformed.reason,
                    "an unreadable entry is skipped in a search by data subject"
                ),
            }
        }
        position = StreamPosition::After(last);
    }
}

async fn export(
    source: &Source,
    personal: &PersonalData,
    subject: impl AsSubject,
    page: usize,
) -> Result<SubjectExport> {
    let stream = source.stream().to_owned();
    let Some(id) = subject.subject_id() else {
        return Ok(SubjectExport {
            subject: None,
            streams: vec![stream],
            messages: Vec::new(),
            unreadable: Vec::new(),
        });
    };
    let hash = personal.subject_hash(&id);
    let entries = subject_entries(source, &hash, page).await?;
    let mut messages = Vec::with_capacity(entries.len());
    let mut entries = entries.into_iter().peekable();
    let mut unreadable = Vec::new();
    while entries.peek().is_some() {
        // The personal segments alone: a normal payload that expired, or
        // that does not load, does not keep the person's data from them.
        let chunk: Vec<_> = entries
            .by_ref()
            .take(page.max(1))
            .map(|(id, mut metadata)| {
                metadata
                    .segments
                    .retain(|s| s.class != SegmentClass::NORMAL);
                (id, metadata)
            })
            .collect();
        for loaded in source.load(chunk).await? {
            let message = match loaded {
                Ok(message) => message,
                Err(failure) => {
                    unreadable.push(UnreadableMessage {
                        stream: stream.clone(),
                        entry_id: failure.entry_id,
                        message_id: failure.metadata.message_id,
                        operation: failure.metadata.operation,
                        produced_at_ms: failure.metadata.produced_at_ms,
                        reason: failure.error.to_string(),
                    });
                    continue;
                }
            };
            let erased = message
                .erased_segments()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let metadata = message.metadata();
            let segments: Segments = message
                .segments()
                .iter()
                .filter(|(_, s)| s.class != SegmentClass::NORMAL)
                .map(|(name, s)| (name.to_owned(), s.clone()))
                .collect();
            messages.push(ExportedMessage {
                stream: stream.clone(),
                entry_id: message.entry_id().clone(),
                message_id: metadata.message_id,
                operation: metadata.operation.clone(),
                version: metadata.version,
                produced_at_ms: metadata.produced_at_ms,
                content_type: metadata.content_type.clone(),
                segments,
                erased,
            });
        }
    }
    Ok(SubjectExport {
        subject: Some(hash),
        streams: vec![stream],
        messages,
        unreadable,
    })
}

async fn erase(
    source: &Source,
    personal: &PersonalData,
    subject: impl AsSubject,
    page: usize,
) -> Result<Erasure> {
    let Some(id) = subject.subject_id() else {
        return Ok(Erasure::default());
    };
    let hash = personal.subject_hash(&id);
    // The key first: from here on nothing sealed for the subject opens,
    // whatever the rest of the erasure finds or fails to find.
    tracing::info!(subject = %hash, stream = source.stream(), "erasing a data subject");
    let key_erased = personal.vault().erase(&hash).await?;
    let entries = subject_entries(source, &hash, page).await?;
    let mut keys: Vec<BTreeSet<String>> = vec![BTreeSet::new(); source.stores.len()];
    for (entry, metadata) in &entries {
        // Only this stream's payload keys: an entry that names others
        // (a vault record, another stream's payload) deletes nothing.
        if let Err(refused) = super::trust::check(source.stream(), metadata) {
            tracing::warn!(
                stream = source.stream(), entry = %entry, error = %refused,
                "an entry of the subject names keys its stream does not hold; none is deleted"
            );
            continue;
        }
        for segment in metadata
            .segments
            .iter()
            .filter(|s| s.class != SegmentClass::NORMAL)
        {
            let Some((store, key)) = metadata.segment_key(segment) else {
                continue;
            };
            if let Some(idx) = source.stores.resolve(&store) {
                keys[idx].insert(key);
            }
        }
    }
    let mut deleted = 0;
    for (idx, keys) in keys.iter().enumerate() {
        for chunk in keys.iter().collect::<Vec<_>>().chunks(page.max(1)) {
            let chunk: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
            let store = source.stores.store(idx);
            // Only payloads sealed for this subject: an entry that carries
            // the subject's hash but names another person's payload (of
            // the same stream) deletes nothing.
            let found = source
                .retry
                .run("reading a data subject's payload keys", || {
                    store.get_many(&chunk)
                })
                .await?;
            let theirs: Vec<&str> = chunk
                .iter()
                .zip(found)
                .filter_map(|(key, fields)| {
                    let fields = fields?;
                    if fields.values().all(|v| is_sealed_for(v, &hash)) {
                        Some(*key)
                    } else {
                        tracing::warn!(
                            stream = source.stream(),
                            key,
                            "a payload key named by the subject's entries holds data not sealed \
                             for the subject; it is not deleted"
                        );
                        None
                    }
                })
                .collect();
            if theirs.is_empty() {
                continue;
            }
            deleted += source
                .retry
                .run("deleting a data subject's payload keys", || {
                    store.delete_many(&theirs)
                })
                .await?;
        }
    }
    Ok(Erasure {
        key_erased,
        messages: entries.len() as u64,
        payload_keys_deleted: deleted,
    })
}
