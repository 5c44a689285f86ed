//! The reader's side: one vault lookup for the subjects of a batch, then
//! each message's sealed segments opened, or left out as erased.

use super::data_key::DataKey;
use super::seal::{key_id_for, open, SealedFor};
use super::subject::{SubjectHash, SUBJECT_HEADER};
use super::PersonalData;
use crate::envelope::{Metadata, SegmentClass, Segments};
use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// The subjects of a batch: each distinct hash once, and which one each
/// message has.
pub(crate) struct BatchSubjects {
    pub(crate) distinct: Vec<SubjectHash>,
    /// Per message: no sealed segments, the index of its subject, or why
    /// its subject header cannot be read.
    per_message: Vec<Option<Result<usize, Error>>>,
}

impl BatchSubjects {
    pub(crate) fn of<'a>(metadata: impl Iterator<Item = &'a Metadata>) -> Self {
        let mut distinct: Vec<SubjectHash> = Vec::new();
        let per_message = metadata
            .map(|m| {
                let header = m.headers.get(SUBJECT_HEADER)?;
                if !m.segments.iter().any(|s| s.class != SegmentClass::NORMAL) {
                    return None;
                }
                Some(header.parse::<SubjectHash>().map(|hash| {
                    match distinct.iter().position(|d| *d == hash) {
                        Some(i) => i,
                        None => {
                            distinct.push(hash);
                            distinct.len() - 1
                        }
                    }
                }))
            })
            .collect();
        Self {
            distinct,
            per_message,
        }
    }

    /// The keys of every subject of the batch: one vault lookup (none
    /// without a vault, or without subjects).
    pub(crate) async fn keys(
        &self,
        personal: Option<&PersonalData>,
        retry: &RetryPolicy,
    ) -> Result<Vec<Vec<DataKey>>> {
        match personal {
            Some(personal) if !self.distinct.is_empty() => {
                retry
                    .run("reading data keys from the key vault", || {
                        personal.vault().opening_keys(&self.distinct)
                    })
                    .await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Opens the sealed segments of message `index` in place. Returns the
    /// names of the segments it could not open for want of a vault; erased
    /// ones are left out of `segments`.
    pub(crate) fn open(
        &mut self,
        index: usize,
        metadata: &Metadata,
        segments: &mut Segments,
        keys: Option<&[Vec<DataKey>]>,
    ) -> Result<Vec<String>> {
        let subject = match self.per_message[index].take() {
            None => return Ok(Vec::new()),
            Some(Err(e)) => return Err(e),
            Some(Ok(subject)) => subject,
        };
        let hash = self.distinct[subject];
        let message_id = metadata.original_id();
        let sealed: Vec<String> = segments
            .iter()
            .filter(|(_, s)| s.class != SegmentClass::NORMAL)
            .map(|(name, _)| name.to_owned())
            .collect();
        let Some(keys) = keys else {
            for name in &sealed {
                segments.remove(name);
            }
            return Ok(sealed);
        };
        let subject_keys = &keys[subject];
        for name in sealed {
            let segment = segments.get_mut(&name).expect("a segment just listed");
            let unsealable = |reason: String| Error::Unsealable {
                segment: name.clone(),
                message_id: metadata.message_id.to_string(),
                reason,
            };
            let id = key_id_for(&segment.data, &hash).map_err(unsealable)?;
            let Some(key) = subject_keys.iter().find(|k| k.id() == id) else {
                // The subject's key is gone: erased.
                segments.remove(&name);
                continue;
            };
            let to = SealedFor {
                subject: &hash,
                message: &message_id,
                segment: &name,
            };
            segment.data = open(key, to, &segment.data).map_err(unsealable)?;
        }
        Ok(Vec::new())
    }
}
