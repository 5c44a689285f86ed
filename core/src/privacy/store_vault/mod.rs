//! [`StoreKeyVault`]: data keys on any [`KeyValueStore`], wrapped by the
//! master key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::data_key::DataKey;
use super::key_cache::KeyCache;
use super::master_key::MasterKey;
use super::reader_cache::ReaderCache;
use super::records::{Records, ERASED_AT};
use super::sealing_keys::SealingKeys;
use super::subject::SubjectHash;
use super::subject_keys::SubjectKeys;
use super::unwrap_cache::UnwrapCache;
use super::vault::KeyVault;
use super::vault_record::Record;
use crate::clock::now_ms;
use crate::store::{Fields, KeyValueStore, PutItem};
use crate::Result;

/// The key prefix of a vault's records unless set otherwise.
pub const DEFAULT_VAULT_PREFIX: &str = "event-backbone.vault";

const DEFAULT_CAPACITY: usize = 10_000;
const DEFAULT_SEALING_TTL: Duration = Duration::from_secs(1);
const DEFAULT_READER_TTL: Duration = Duration::from_secs(1);
/// On top of the longest cache time, before an erasure returns: timers
/// fire late, and a read that began just before the erasure needs its
/// answer to come back.
const ERASURE_MARGIN: Duration = Duration::from_millis(50);

/// A [`KeyVault`] on a [`KeyValueStore`] (Redis, MongoDB, DynamoDB, the
/// in-memory store, ...).
///
/// One record per subject, under `{prefix}:{subject-hash}`; one field per
/// data key, named by the key id and holding the key wrapped by the
/// [`MasterKey`] (with the master key's id and the time it was made).
/// Producers that make a subject's first key at the same moment each add a
/// field, so neither key is lost.
///
/// Erasing writes a **tombstone** under `{prefix}.erased:{subject-hash}`
/// (field `erased-at`: the time) and the same field into the record, then
/// deletes the record. Readers read the records alone, and the tombstones
/// of the subjects whose key they miss; producers read both when they
/// read a subject. A reader takes a
/// missing key for erased only when the subject has a tombstone; without
/// one the key was lost, and the message is not readable
/// ([`Error::DataKeyMissing`](crate::Error::DataKeyMissing)). A producer never seals with a key made
/// before the subject's latest tombstone.
///
/// The sealing side caches keys (10,000 subjects, each read again after
/// 1 s unless set otherwise); the reading side reads the records of a
/// whole batch with one `get_many` and trusts them for 1 s
/// ([`StoreKeyVault::reader_cache_ttl`]), reading again at once a subject
/// whose segment names a key it has not seen. [`KeyVault::erase`] returns
/// only when both times have passed since the keys were deleted, so that a
/// message sent after it returned, by any process with the same settings,
/// is sealed with a new key.
///
/// **What it needs from the store**: an erasure is as final as the
/// store's copies (a backup restored with the master key opens the keys it
/// held). Give the vault a store of its own with short-lived backups, and
/// rotate the master key; or implement [`KeyVault`] on a KMS.
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::MemoryStore;
/// use event_backbone_core::privacy::{KeyVault, MasterKey, StoreKeyVault, SubjectKey};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let vault = StoreKeyVault::new(Arc::new(MemoryStore::new()), MasterKey::generate());
/// let ann = SubjectKey::generate().hash("ann");
/// let key = vault.sealing_key(&ann).await?;
/// assert_eq!(vault.opening_keys(&[ann]).await?[0].keys()[0].id(), key.id());
/// assert!(vault.erase(&ann).await?);
/// let after = &vault.fresh_opening_keys(&[ann]).await?[0];
/// assert!(after.keys().is_empty() && after.is_erased());
/// # Ok(()) }
/// ```
pub struct StoreKeyVault {
    /// Where the records are, and the master keys: shared with the
    /// sealing side's background reads.
    records: Arc<Records>,
    /// The producers' cache of sealing keys, and its reads.
    sealing: Arc<SealingKeys>,
    /// The readers' answers (shared with their reads ahead).
    readers: Arc<ReaderCache>,
    cache_capacity: usize,
    cache_ttl: Duration,
}

impl StoreKeyVault {
    /// A vault on `store`, its keys wrapped by `master`.
    pub fn new(store: Arc<dyn KeyValueStore>, master: MasterKey) -> Self {
        let records = Arc::new(Records {
            store,
            master,
            previous: Vec::new(),
            prefix: DEFAULT_VAULT_PREFIX.to_owned(),
            unwrapped: UnwrapCache::new(DEFAULT_CAPACITY),
        });
        let sealing = Arc::new(SealingKeys::new(
            records.clone(),
            KeyCache::new(DEFAULT_CAPACITY, DEFAULT_SEALING_TTL),
        ));
        Self {
            records,
            sealing,
            readers: Arc::new(ReaderCache::new(DEFAULT_CAPACITY, DEFAULT_READER_TTL)),
            cache_capacity: DEFAULT_CAPACITY,
            cache_ttl: DEFAULT_SEALING_TTL,
        }
    }

    /// Changes the records' settings (the builder's), then starts the
    /// sealing side afresh on them.
    fn with_records(mut self, change: impl FnOnce(&mut Records)) -> Self {
        // The sealing side (and any read under way) shares the records:
        // change a copy, and start the sealing side afresh on it.
        let mut records = self.records.copy(self.cache_capacity);
        change(&mut records);
        self.records = Arc::new(records);
        self.restart_sealing()
    }

    fn restart_sealing(mut self) -> Self {
        self.sealing = Arc::new(SealingKeys::new(
            self.records.clone(),
            KeyCache::new(self.cache_capacity, self.cache_ttl),
        ));
        self
    }

    /// Puts the records under another prefix (a name without `:`).
    pub fn key_prefix(self, prefix: &str) -> Result<Self> {
        let prefix = crate::names::validate("vault key prefix", prefix)?;
        Ok(self.with_records(|records| records.prefix = prefix))
    }

    /// A master key that wrapped keys this vault still holds: they open
    /// with it until rewrapped. New keys are wrapped by the current one
    /// only.
    pub fn previous_master_key(self, master: MasterKey) -> Self {
        self.with_records(|records| {
            if master.id() != records.master.id()
                && !records.previous.iter().any(|m| m.id() == master.id())
            {
                records.previous.push(master);
            }
        })
    }

    /// How many subjects' keys are cached, on each side (0: none).
    pub fn cache_capacity(mut self, subjects: usize) -> Self {
        self.cache_capacity = subjects;
        self.readers = Arc::new(ReaderCache::new(subjects, self.readers.ttl()));
        self.with_records(|records| records.unwrapped = UnwrapCache::new(subjects))
    }

    /// How long a producer seals with a key before it reads the subject's
    /// record again (1 s unless set; zero: every send reads it). A key in
    /// use is read again in the background once half this time has passed,
    /// so that its sends do not wait. An erasure waits this long before it
    /// returns: give every process of a system the same setting.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self.restart_sealing()
    }

    /// How long a reader trusts the keys it read (1 s unless set; zero:
    /// the vault is read for every batch). Keys a batch finds past half
    /// this time are read again in the background. An erasure waits this long
    /// before it returns: give every process of a system the same setting.
    /// A key newer than the cached answer is always read fresh, so nothing
    /// new is taken for erased.
    pub fn reader_cache_ttl(mut self, ttl: Duration) -> Self {
        self.readers = Arc::new(ReaderCache::new(self.cache_capacity, ttl));
        self
    }

    /// How long [`KeyVault::erase`] waits after deleting the keys: the
    /// longer of the two cache times (none when nothing is cached), and a
    /// margin.
    pub fn erasure_wait(&self) -> Duration {
        let sealing = if self.cache_capacity == 0 {
            Duration::ZERO
        } else {
            self.cache_ttl
        };
        let longest = sealing.max(self.readers.ttl());
        if longest.is_zero() {
            Duration::ZERO
        } else {
            longest + ERASURE_MARGIN
        }
    }

    /// The key of a subject's record.
    pub fn record_key(&self, subject: &SubjectHash) -> String {
        self.records.record_key(subject)
    }

    /// The key of a subject's tombstone.
    pub fn tombstone_key(&self, subject: &SubjectHash) -> String {
        self.records.tombstone_key(subject)
    }

    /// Where the records are, and the master keys (for rotation).
    pub(super) fn records(&self) -> &Records {
        &self.records
    }

    /// Reads `subjects` again in the background, their cached answers
    /// past half their time, so that the batches after do not wait.
    fn read_ahead_for_readers(&self, subjects: Vec<SubjectHash>) {
        if tokio::runtime::Handle::try_current().is_err() {
            self.readers.read_ahead_failed(&subjects);
            return;
        }
        let (records, readers) = (self.records.clone(), self.readers.clone());
        tokio::spawn(async move {
            let start = readers.start();
            match records.read_records(&subjects, false).await {
                Ok(read) => {
                    let answers: Vec<SubjectKeys> =
                        read.into_iter().map(Record::into_subject_keys).collect();
                    readers.fill(start, &subjects, &answers);
                }
                Err(e) => {
                    tracing::debug!(
                        error = %e,
                        "reading keys ahead of their expiry failed; the next batch asks again"
                    );
                    readers.read_ahead_failed(&subjects);
                }
            }
        });
    }

    async fn read_for_readers(
        &self,
        subjects: &[SubjectHash],
        tombstones: bool,
    ) -> Result<Vec<SubjectKeys>> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        // Taken before the read: an erasure during it keeps its answer out
        // of the cache.
        let start = self.readers.start();
        let answers: Vec<SubjectKeys> = self
            .records
            .read_records(subjects, tombstones)
            .await?
            .into_iter()
            .map(Record::into_subject_keys)
            .collect();
        self.readers.fill(start, subjects, &answers);
        Ok(answers)
    }
}

#[async_trait]
impl KeyVault for StoreKeyVault {
    fn backend(&self) -> &'static str {
        self.records.store.backend()
    }

    async fn sealing_key(&self, subject: &SubjectHash) -> Result<DataKey> {
        self.sealing.key(subject).await
    }

    fn cached_sealing_key(&self, subject: &SubjectHash) -> Option<DataKey> {
        self.sealing.cached(subject)
    }

    async fn opening_keys(&self, subjects: &[SubjectHash]) -> Result<Vec<SubjectKeys>> {
        let found = self.readers.cached(subjects);
        if !found.due.is_empty() {
            self.read_ahead_for_readers(found.due);
        }
        let answers = found.answers;
        let missing: Vec<SubjectHash> = subjects
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(s, _)| *s)
            .collect();
        let mut fresh = self.read_for_readers(&missing, false).await?.into_iter();
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| fresh.next().expect("one answer per missing subject")))
            .collect())
    }

    async fn fresh_opening_keys(&self, subjects: &[SubjectHash]) -> Result<Vec<SubjectKeys>> {
        self.read_for_readers(subjects, true).await
    }

    async fn erase(&self, subject: &SubjectHash) -> Result<bool> {
        // Forget first: a send racing the erasure makes (or reads) a key
        // anew, and finds the tombstone.
        self.sealing.forget(subject);
        let record = self.record_key(subject);
        let existed = self
            .records
            .store
            .get(&record)
            .await?
            .is_some_and(|fields| fields.keys().any(|f| f != ERASED_AT));
        // The tombstone, and its time in the record, so that a producer
        // that reads the record before it is deleted (or after a delete
        // that failed) makes a new key.
        let mut tombstone = Fields::new();
        tombstone.insert(ERASED_AT.to_owned(), now_ms().to_string().into());
        self.records
            .store
            .put_many(&[
                PutItem {
                    key: self.tombstone_key(subject),
                    fields: tombstone.clone(),
                    ttl: None,
                },
                PutItem {
                    key: record.clone(),
                    fields: tombstone,
                    ttl: None,
                },
            ])
            .await?;
        self.records.store.delete(&record).await?;
        self.readers.erased(subject);
        self.sealing.forget(subject);
        self.records.unwrapped.erased(subject);
        // Producers and readers elsewhere read the record again within
        // their cache times: after this, none seals or opens with the
        // erased keys.
        tokio::time::sleep(self.erasure_wait()).await;
        Ok(existed)
    }
}

impl fmt::Debug for StoreKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKeyVault")
            .field("store", &self.records.store.backend())
            .field("prefix", &self.records.prefix)
            .field("master", &self.records.master)
            .field("master_key_id", &self.records.master.id())
            .field(
                "previous_masters",
                &self
                    .records
                    .previous
                    .iter()
                    .map(MasterKey::id)
                    .collect::<Vec<_>>(),
            )
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_ttl", &self.cache_ttl)
            .field("reader_cache_ttl", &self.readers.ttl())
            .finish()
    }
}

#[cfg(test)]
mod tests;
