//! Master-key rotation: every data key of a
//! [`StoreKeyVault`] rewrapped under its current master key, walking the
//! vault's index of subjects, with progress.

use super::data_key::KeyId;
use super::master_key::MasterKey;
use super::records::ERASED_AT;
use super::store_vault::StoreKeyVault;
use super::subject::SubjectHash;
use super::vault_index::{bucket_name, INDEX_BUCKETS};
use super::vault_record::Record;
use crate::store::{Fields, PutItem};
use crate::{Error, Result};

/// The progress of [`StoreKeyVault::rotate_master_key`], reported as it
/// goes and returned at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// Index buckets walked so far.
    pub buckets_done: u32,
    /// Index buckets in all.
    pub buckets: u32,
    /// Subjects whose records were read.
    pub subjects: u64,
    /// Data keys rewrapped under the current master key.
    pub rewrapped: u64,
    /// Data keys that were wrapped by it already.
    pub current: u64,
    /// Records that still held keys of an erased subject (an erasure that
    /// failed half-way, or raced the rewrap), whose erased keys were
    /// deleted.
    pub deleted_again: u64,
}

impl Rotation {
    /// Whether every bucket was walked: every key the vault holds is now
    /// wrapped by the current master key, and the previous ones can be
    /// retired.
    pub fn is_complete(&self) -> bool {
        self.buckets_done == self.buckets
    }
}

impl StoreKeyVault {
    /// Rewraps every data key of the vault under the current master key,
    /// reporting progress after each step (64 index buckets of 4,096);
    /// keys wrapped by a previous master key
    /// ([`StoreKeyVault::previous_master_key`]) open with it. Safe while
    /// producers and readers run, and resumable: running it again skips
    /// what is current. Once it returns complete, retire the previous
    /// master keys (and, for crypto-shredding to hold against old
    /// backups, destroy them once those backups have expired).
    ///
    /// An erasure racing the rewrap of the same subject is caught: a
    /// record brought back by the rewrap is deleted again.
    pub async fn rotate_master_key(&self, mut progress: impl FnMut(&Rotation)) -> Result<Rotation> {
        const STEP: u32 = 64;
        let mut done = Rotation {
            buckets: INDEX_BUCKETS,
            ..Rotation::default()
        };
        for first in (0..INDEX_BUCKETS).step_by(STEP as usize) {
            let keys: Vec<String> = (first..(first + STEP).min(INDEX_BUCKETS))
                .map(|n| self.records().index_key(&bucket_name(n)))
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut subjects: Vec<SubjectHash> = Vec::new();
            for fields in self
                .records()
                .store
                .get_many(&keys)
                .await?
                .into_iter()
                .flatten()
            {
                for hex in fields.keys() {
                    subjects.push(hex.parse().map_err(|_| Error::KeyVault {
                        reason: format!(
                            "the vault's index lists {hex:?}, which is not a subject hash: the \
                             key is used by something else; give the vault its own prefix"
                        ),
                    })?);
                }
            }
            for chunk in subjects.chunks(STEP as usize) {
                self.rewrap(chunk, &mut done).await?;
            }
            done.buckets_done = (first + STEP).min(INDEX_BUCKETS);
            progress(&done);
        }
        tracing::info!(
            master_key = %self.records().master.id(), rewrapped = done.rewrapped, current = done.current,
            "the vault's data keys are wrapped by the current master key"
        );
        Ok(done)
    }

    /// Rewraps the keys of some subjects that another master key wrapped,
    /// and deletes the keys of an erased subject that are still there.
    async fn rewrap(&self, subjects: &[SubjectHash], done: &mut Rotation) -> Result<()> {
        let records = self.records().read_records(subjects, true).await?;
        let keys: Vec<String> = subjects.iter().map(|s| self.record_key(s)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let raw = self.records().store.get_many(&keys).await?;
        let mut writes: Vec<(SubjectHash, PutItem)> = Vec::new();
        for ((subject, record), raw) in subjects.iter().zip(&records).zip(raw) {
            done.subjects += 1;
            let erased_at = record.erased_at_ms;
            let stale = |made: u64| erased_at.is_some_and(|at| made <= at);
            if record.keys.iter().any(|(_, made)| stale(*made)) {
                // Keys of an erased subject: an erasure that failed before
                // its delete, or a rewrap that brought them back. Only the
                // keys made after the tombstone stay.
                self.purge(subject, record, done).await?;
                continue;
            }
            let mut fields = Fields::new();
            for (id, wrapped) in raw.iter().flatten() {
                if id == ERASED_AT {
                    continue;
                }
                if MasterKey::wrapped_by(wrapped)? == Some(self.records().master.id()) {
                    done.current += 1;
                    continue;
                }
                let id: KeyId = id.parse()?;
                let opened = self.records().unwrap_any(subject, id, wrapped)?;
                fields.insert(
                    id.to_string(),
                    self.records()
                        .master
                        .wrap_made_at(subject, &opened.key, opened.made_at_ms)
                        .into(),
                );
            }
            if !fields.is_empty() {
                done.rewrapped += fields.len() as u64;
                writes.push((
                    *subject,
                    PutItem {
                        key: self.record_key(subject),
                        fields,
                        ttl: None,
                    },
                ));
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        let items: Vec<PutItem> = writes.iter().map(|(_, item)| item.clone()).collect();
        self.records().store.put_many(&items).await?;
        // An erasure between the read and the write deleted the record
        // first, and the write brought its keys back: delete them again.
        // (A rotation stopped before this finds them on its next run.)
        let rewritten: Vec<SubjectHash> = writes.iter().map(|(s, _)| *s).collect();
        let after = self.records().read_records(&rewritten, true).await?;
        for (subject, now) in rewritten.iter().zip(&after) {
            if let Some(at) = now.erased_at_ms {
                if now.keys.iter().any(|(_, made)| *made <= at) {
                    self.purge(subject, now, done).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes an erased subject's record, and puts back the keys made
    /// after its tombstone (the subject came back), rewrapped.
    async fn purge(
        &self,
        subject: &SubjectHash,
        record: &Record,
        done: &mut Rotation,
    ) -> Result<()> {
        let erased_at = record.erased_at_ms.unwrap_or(u64::MAX);
        self.records()
            .store
            .delete(&self.record_key(subject))
            .await?;
        let mut kept = Fields::new();
        for (key, made) in record.keys.iter().filter(|(_, made)| *made > erased_at) {
            kept.insert(
                key.id().to_string(),
                self.records()
                    .master
                    .wrap_made_at(subject, key, *made)
                    .into(),
            );
        }
        if !kept.is_empty() {
            self.records()
                .store
                .put(&self.record_key(subject), &kept, None)
                .await?;
        }
        done.deleted_again += 1;
        tracing::warn!(
            subject = %subject,
            "the keys of an erased subject were still in the vault; they are deleted"
        );
        Ok(())
    }
}
