//! Erasure (GDPR article 17): the subject's keys first, then what can be
//! found of its payloads.

use std::collections::BTreeSet;

use super::scan::subject_entries;
use super::subject::AsSubject;
use super::PersonalData;
use crate::consumer::source::Source;
use crate::envelope::SegmentClass;
use crate::Result;

/// What [`ConsumerBuilder::erase_subject`](crate::ConsumerBuilder::erase_subject)
/// did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Erasure {
    /// Whether the subject had a data key (false when erased before).
    pub key_erased: bool,
    /// The subject's messages found in the stream.
    pub messages: u64,
    /// Payload keys deleted (personal classes of those messages).
    pub payload_keys_deleted: u64,
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
