//! The reader's side: one vault lookup for the subjects of a batch, then
//! each message's sealed segments opened, or left out as erased.

use super::seal::{key_id_for, open, SealedFor};
use super::subject::SubjectHash;
use super::subject_keys::SubjectKeys;
use super::PersonalData;
use crate::envelope::{Metadata, SegmentClass, Segments};
use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// Whether `bytes` are a segment sealed for `subject` (an erasure deletes
/// only payloads whose every field is).
pub(crate) fn is_sealed_for(bytes: &[u8], subject: &SubjectHash) -> bool {
    key_id_for(bytes, subject).is_ok()
}

/// Whether a message produced at `produced_at_ms`, whose key `keys` lack,
/// was erased: its subject has a tombstone, and the message was produced
/// before it (give or take the clocks of two machines). A message produced
/// well after it was sealed with a key made after the erasure (no producer
/// seals with an erased one once the erasure returned): that key was lost.
pub(crate) fn erased_for(keys: &SubjectKeys, produced_at_ms: u64) -> bool {
    keys.erased_at_ms()
        .is_some_and(|at| produced_at_ms <= at.saturating_add(CLOCK_SKEW_MS))
}

/// How far the clocks of a producer and of the process that erased a
/// subject may be apart: a message produced later than this after the
/// subject's tombstone is not taken for erased.
const CLOCK_SKEW_MS: u64 = 60_000;

/// The subjects of a batch: each distinct hash once, and which one each
/// message has.
pub(crate) struct BatchSubjects {
    pub(crate) distinct: Vec<SubjectHash>,
    /// Per message: no sealed segments, or the index of its subject.
    per_message: Vec<Option<usize>>,
}

impl BatchSubjects {
    pub(crate) fn of<'a>(metadata: impl Iterator<Item = &'a Metadata>) -> Self {
        let mut distinct: Vec<SubjectHash> = Vec::new();
        let per_message = metadata
            .map(|m| {
                let hash = m.subject?;
                if !m.segments.iter().any(|s| s.class != SegmentClass::NORMAL) {
                    return None;
                }
                Some(match distinct.iter().position(|d| *d == hash) {
                    Some(i) => i,
                    None => {
                        distinct.push(hash);
                        distinct.len() - 1
                    }
                })
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
    ) -> Result<Vec<SubjectKeys>> {
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

    /// Reads again, bypassing any cache, the keys of the subjects whose
    /// sealed segments name a key `keys` does not have (made after the
    /// vault's cached answer), so that a new key is never taken for an
    /// erased one.
    pub(crate) async fn refresh_unknown_keys(
        &self,
        personal: &PersonalData,
        retry: &RetryPolicy,
        assembled: &[Result<Segments>],
        keys: &mut [SubjectKeys],
    ) -> Result<()> {
        let mut stale: Vec<usize> = Vec::new();
        for (message, segments) in self.per_message.iter().zip(assembled) {
            let (Some(subject), Ok(segments)) = (message, segments) else {
                continue;
            };
            let hash = &self.distinct[*subject];
            let unknown = segments
                .iter()
                .filter(|(_, s)| s.class != SegmentClass::NORMAL)
                .filter_map(|(_, s)| key_id_for(&s.data, hash).ok())
                .any(|id| keys[*subject].key(id).is_none());
            if unknown && !stale.contains(subject) {
                stale.push(*subject);
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let hashes: Vec<SubjectHash> = stale.iter().map(|i| self.distinct[*i]).collect();
        let fresh = retry
            .run("reading data keys from the key vault", || {
                personal.vault().fresh_opening_keys(&hashes)
            })
            .await?;
        for (subject, fresh) in stale.into_iter().zip(fresh) {
            keys[subject] = fresh;
        }
        Ok(())
    }

    /// Opens the sealed segments of message `index` in place. Returns the
    /// names of the segments it could not open for want of a vault; erased
    /// ones (their key gone, their subject with a tombstone) are left out
    /// of `segments`. A key gone without a tombstone is
    /// [`Error::DataKeyMissing`].
    pub(crate) fn open(
        &mut self,
        index: usize,
        metadata: &Metadata,
        segments: &mut Segments,
        keys: Option<(&[SubjectKeys], &'static str)>,
    ) -> Result<Vec<String>> {
        let Some(subject) = self.per_message[index].take() else {
            return Ok(Vec::new());
        };
        let hash = self.distinct[subject];
        let message_id = metadata.original_id();
        let Some(keys) = keys else {
            let sealed: Vec<String> = segments
                .iter()
                .filter(|(_, s)| s.class != SegmentClass::NORMAL)
                .map(|(name, _)| name.to_owned())
                .collect();
            for name in &sealed {
                segments.remove(name);
            }
            return Ok(sealed);
        };
        let (keys, vault) = keys;
        let subject_keys = &keys[subject];
        let stream = super::seal::StreamKey::of(metadata);
        let mut erased: Vec<String> = Vec::new();
        for (name, segment) in segments.iter_mut() {
            if segment.class == SegmentClass::NORMAL {
                continue;
            }
            let unsealable = |reason: String| Error::Unsealable {
                segment: name.to_owned(),
                message_id: metadata.message_id.to_string(),
                reason,
            };
            let id = key_id_for(&segment.data, &hash).map_err(unsealable)?;
            let Some(key) = subject_keys.key(id) else {
                if !erased_for(subject_keys, metadata.produced_at_ms) {
                    return Err(Error::DataKeyMissing {
                        segment: name.to_owned(),
                        message_id: metadata.message_id.to_string(),
                        subject: hash.to_string(),
                        key_id: id.to_string(),
                        vault,
                    });
                }
                // The subject's key is gone and it has a tombstone: erased.
                erased.push(name.to_owned());
                continue;
            };
            let to = SealedFor {
                subject: &hash,
                message: &message_id,
                stream,
                segment: name,
            };
            segment.data = open(key, to, &segment.data).map_err(unsealable)?;
        }
        for name in &erased {
            segments.remove(name);
        }
        Ok(Vec::new())
    }
}
