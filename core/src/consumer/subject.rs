//! Reading a stream by data subject: the whole stream, comparing the
//! subject hash in each entry's metadata; then the export (GDPR article
//! 15) or the erasure (article 17) of what was found.

use std::collections::BTreeSet;

use super::source::Source;
use crate::channel::{EntryId, StreamPosition};
use crate::envelope::{Metadata, SegmentClass, Segments};
use crate::privacy::{
    AsSubject, Erasure, ExportedMessage, PersonalData, SubjectExport, SubjectHash, SUBJECT_HEADER,
};
use crate::{Error, Result};

/// The entries of `subject` in the source's stream, in stream order.
pub(crate) async fn subject_entries(
    source: &Source,
    subject: &SubjectHash,
    page: usize,
) -> Result<Vec<(EntryId, Metadata)>> {
    let wanted = subject.to_string();
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
                Ok(metadata) if metadata.headers.get(SUBJECT_HEADER) == Some(&wanted) => {
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

pub(crate) async fn export(
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
        });
    };
    let hash = personal.subject_hash(&id);
    let entries = subject_entries(source, &hash, page).await?;
    let mut messages = Vec::with_capacity(entries.len());
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<_> = entries.by_ref().take(page.max(1)).collect();
        for loaded in source.load(chunk).await? {
            let message = loaded.map_err(Error::from)?;
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
    })
}

pub(crate) async fn erase(
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
    for (_, metadata) in &entries {
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
            deleted += source
                .retry
                .run("deleting a data subject's payload keys", || {
                    store.delete_many(&chunk)
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
