//! The records of a [`StoreKeyVault`](super::StoreKeyVault) on its store:
//! their keys, reading them (with the tombstones), opening the wrapped data
//! keys, and making a subject's first key. Shared with the vault's
//! background reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::data_key::{DataKey, KeyId};
use super::master_key::{MasterKey, MasterKeyId, Unwrapped};
use super::subject::SubjectHash;
use super::unwrap_cache::UnwrapCache;
use super::vault_index::bucket_of;
use super::vault_record::Record;
use crate::clock::now_ms;
use crate::store::{Fields, KeyValueStore, PutItem};
use crate::{Error, Result};

/// The field of a tombstone: when the subject was erased (decimal ms since
/// the Unix epoch).
pub(super) const ERASED_AT: &str = "erased-at";

/// Where a vault's records are, and the master keys that open them.
pub(super) struct Records {
    pub(super) store: Arc<dyn KeyValueStore>,
    pub(super) master: MasterKey,
    /// Master keys that wrapped keys still held, opened but never used to
    /// wrap.
    pub(super) previous: Vec<MasterKey>,
    pub(super) prefix: String,
    /// Keys unwrapped before, by the wrapped bytes they came from.
    pub(super) unwrapped: UnwrapCache,
}

impl Records {
    /// The same settings, with caches of their own (for a vault whose
    /// builder changes them while a read shares these).
    pub(super) fn copy(&self, capacity: usize) -> Self {
        Self {
            store: self.store.clone(),
            master: self.master.clone(),
            previous: self.previous.clone(),
            prefix: self.prefix.clone(),
            unwrapped: UnwrapCache::new(capacity),
        }
    }

    /// The key of a subject's record.
    pub(super) fn record_key(&self, subject: &SubjectHash) -> String {
        format!("{}:{subject}", self.prefix)
    }

    /// The key of a subject's tombstone.
    pub(super) fn tombstone_key(&self, subject: &SubjectHash) -> String {
        format!("{}.erased:{subject}", self.prefix)
    }

    /// The key of the index record that lists the subjects of one bucket
    /// (what master-key rotation walks).
    pub(super) fn index_key(&self, bucket: &str) -> String {
        format!("{}.index:{bucket}", self.prefix)
    }

    /// Opens a wrapped key with the master key it names; a key of the
    /// first format (which names none) with the first master key it opens
    /// with, the current one first.
    pub(super) fn unwrap_any(
        &self,
        subject: &SubjectHash,
        id: KeyId,
        wrapped: &[u8],
    ) -> Result<Unwrapped> {
        match MasterKey::wrapped_by(wrapped)? {
            Some(named) if named == self.master.id() => {
                self.master.unwrap_full(subject, id, wrapped)
            }
            Some(named) => self
                .previous
                .iter()
                .find(|m| m.id() == named)
                .ok_or_else(|| unknown_master(named, &self.master))?
                .unwrap_full(subject, id, wrapped),
            None => {
                let first = self.master.unwrap_full(subject, id, wrapped);
                if first.is_ok() {
                    return first;
                }
                self.previous
                    .iter()
                    .find_map(|m| m.unwrap_full(subject, id, wrapped).ok())
                    .map_or(first, Ok)
            }
        }
    }

    /// The records of `subjects`, with their tombstones when asked: one
    /// `get_many`. A record read while its subject is being erased holds
    /// the tombstone's time too (field `erased-at`).
    pub(super) async fn read_records(
        &self,
        subjects: &[SubjectHash],
        tombstones: bool,
    ) -> Result<Vec<Record>> {
        self.read_each_record(subjects, tombstones)
            .await?
            .into_iter()
            .collect()
    }

    /// [`read_records`](Self::read_records), with a record that does not
    /// open failing its own subject only.
    async fn read_each_record(
        &self,
        subjects: &[SubjectHash],
        tombstones: bool,
    ) -> Result<Vec<Result<Record>>> {
        let per_subject = if tombstones { 2 } else { 1 };
        let mut keys: Vec<String> = Vec::with_capacity(subjects.len() * per_subject);
        for subject in subjects {
            keys.push(self.record_key(subject));
            if tombstones {
                keys.push(self.tombstone_key(subject));
            }
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut found = self.store.get_many(&keys).await?.into_iter();
        Ok(subjects
            .iter()
            .map(|subject| {
                let record = found.next().expect("one answer per key");
                let tombstone = if tombstones {
                    found.next().expect("one answer per key")
                } else {
                    None
                };
                let mut read = match record {
                    Some(fields) => self.open_record(subject, &fields)?,
                    None => Record {
                        keys: Vec::new(),
                        erased_at_ms: None,
                    },
                };
                if let Some(fields) = tombstone {
                    let at = self.erased_at(subject, &fields)?;
                    read.erased_at_ms = Some(read.erased_at_ms.map_or(at, |seen| seen.max(at)));
                }
                Ok(read)
            })
            .collect())
    }

    fn erased_at(&self, subject: &SubjectHash, fields: &Fields) -> Result<u64> {
        fields
            .get(ERASED_AT)
            .and_then(|at| std::str::from_utf8(at).ok()?.parse().ok())
            .ok_or_else(|| Error::KeyVault {
                reason: format!(
                    "tombstone of {subject} has no field {ERASED_AT:?} holding a time in ms: \
                     the key is used by something else; give the vault its own prefix"
                ),
            })
    }

    fn open_record(&self, subject: &SubjectHash, fields: &Fields) -> Result<Record> {
        let mut record = Record {
            keys: Vec::with_capacity(fields.len()),
            erased_at_ms: None,
        };
        for (id, wrapped) in fields {
            if id == ERASED_AT {
                record.erased_at_ms = Some(self.erased_at(subject, fields)?);
                continue;
            }
            let id: KeyId = id.parse().map_err(|_| Error::KeyVault {
                reason: format!(
                    "record {:?} has a field {id:?} that is not a data key id (16 hex digits): \
                     the key is used by something else; give the vault its own prefix",
                    self.record_key(subject)
                ),
            })?;
            record.keys.push(self.unwrap_key(subject, id, wrapped)?);
        }
        Ok(record)
    }

    fn unwrap_key(
        &self,
        subject: &SubjectHash,
        id: KeyId,
        wrapped: &Bytes,
    ) -> Result<(DataKey, u64)> {
        self.unwrapped.get_or_unwrap(subject, id, wrapped, || {
            self.unwrap_any(subject, id, wrapped)
        })
    }

    /// The keys to seal with of `subjects` (read together): each one's
    /// newest key made after its latest erasure, or a new key when it has
    /// none. The new keys are listed in the index first (an entry without
    /// its record is harmless; a record the index misses would be skipped
    /// by a master-key rotation), then stored; a subject whose new key
    /// could not be stored fails alone.
    pub(super) async fn make_sealing_keys(
        &self,
        subjects: &[SubjectHash],
    ) -> Result<Vec<Result<DataKey>>> {
        let records = self.read_each_record(subjects, true).await?;
        let mut keys: Vec<Result<DataKey>> = Vec::with_capacity(subjects.len());
        let mut made: Vec<usize> = Vec::new();
        let mut puts = Vec::new();
        let mut listed: BTreeMap<String, Fields> = BTreeMap::new();
        for (subject, record) in subjects.iter().zip(records) {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    keys.push(Err(e));
                    continue;
                }
            };
            if let Some(key) = record.sealing_key() {
                keys.push(Ok(key.clone()));
                continue;
            }
            // After an erasure, made later than its tombstone whatever this
            // machine's clock says.
            let at = now_ms().max(record.erased_at_ms.map_or(0, |at| at + 1));
            let key = DataKey::generate();
            let mut fields = Fields::new();
            fields.insert(
                key.id().to_string(),
                self.master.wrap_made_at(subject, &key, at).into(),
            );
            puts.push(PutItem {
                key: self.record_key(subject),
                fields,
                ttl: None,
            });
            let subject_hex = subject.to_string();
            listed
                .entry(self.index_key(bucket_of(&subject_hex)))
                .or_default()
                .insert(subject_hex, Bytes::from_static(b"1"));
            made.push(keys.len());
            keys.push(Ok(key));
        }
        if !puts.is_empty() {
            // One item per index bucket: a store may refuse a key twice in
            // one write.
            let index: Vec<PutItem> = listed
                .into_iter()
                .map(|(key, fields)| PutItem {
                    key,
                    fields,
                    ttl: None,
                })
                .collect();
            let stored = match self.store.put_many(&index).await {
                Ok(()) => self.store.put_many(&puts).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                for i in made {
                    keys[i] = Err(e.copied());
                }
            }
        }
        Ok(keys)
    }
}

fn unknown_master(id: MasterKeyId, current: &MasterKey) -> Error {
    Error::KeyVault {
        reason: format!(
            "a data key is wrapped by master key {id}, which this vault does not have (its \
             master key is {}): give it with `.previous_master_key(...)` until the keys are \
             rewrapped",
            current.id()
        ),
    }
}
