//! [`StoreKeyVault`]: data keys on any [`KeyValueStore`], wrapped by the
//! master key.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use async_trait::async_trait;

use super::data_key::{DataKey, KeyId};
use super::key_cache::KeyCache;
use super::master_key::MasterKey;
use super::subject::{BySubject, SubjectHash};
use super::vault::KeyVault;
use crate::store::{Fields, KeyValueStore};
use crate::Result;

/// The key prefix of a vault's records unless set otherwise.
pub const DEFAULT_VAULT_PREFIX: &str = "event-backbone.vault";

const DEFAULT_CAPACITY: usize = 10_000;
const DEFAULT_SEALING_TTL: Duration = Duration::from_secs(60);
const DEFAULT_READER_TTL: Duration = Duration::from_secs(1);

/// A [`KeyVault`] on a [`KeyValueStore`] (Redis, MongoDB, DynamoDB, the
/// in-memory store, ...).
///
/// One record per subject, under `{prefix}:{subject-hash}`; one field per
/// data key, named by the key id and holding the key wrapped by the
/// [`MasterKey`]. Producers that make a subject's first key at the same
/// moment each add a field, so neither key is lost. Erasing deletes the
/// record.
///
/// The sealing side caches keys (10,000 subjects for 60 s unless set
/// otherwise); the reading side reads the records of a whole batch with
/// one `get_many` and trusts them for 1 s
/// ([`StoreKeyVault::reader_cache_ttl`]), reading again at once a subject
/// whose segment names a key it has not seen. An erasure through this
/// vault counts at once for its own producers and readers.
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::MemoryStore;
/// use event_backbone_core::privacy::{KeyVault, MasterKey, StoreKeyVault, SubjectKey};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let vault = StoreKeyVault::new(Arc::new(MemoryStore::new()), MasterKey::generate());
/// let ann = SubjectKey::generate().hash("ann");
/// let key = vault.sealing_key(&ann).await?;
/// assert_eq!(vault.opening_keys(&[ann]).await?[0][0].id(), key.id());
/// assert!(vault.erase(&ann).await?);
/// assert!(vault.opening_keys(&[ann]).await?[0].is_empty());
/// # Ok(()) }
/// ```
pub struct StoreKeyVault {
    store: Arc<dyn KeyValueStore>,
    master: MasterKey,
    prefix: String,
    cache: KeyCache,
    /// Keys unwrapped before, by subject and id, with the wrapped bytes
    /// they came from: a record read again opens without the cipher. The
    /// record is still read every time, so an erasure counts at once.
    unwrapped: Mutex<BySubject<(SubjectHash, KeyId), (Bytes, DataKey)>>,
    /// The readers' answers, by subject, with when they were read.
    read: Mutex<BySubject<SubjectHash, (Instant, Vec<DataKey>)>>,
    reader_ttl: Duration,
    cache_capacity: usize,
    cache_ttl: Duration,
}

impl StoreKeyVault {
    /// A vault on `store`, its keys wrapped by `master`.
    pub fn new(store: Arc<dyn KeyValueStore>, master: MasterKey) -> Self {
        Self {
            store,
            master,
            prefix: DEFAULT_VAULT_PREFIX.to_owned(),
            cache: KeyCache::new(DEFAULT_CAPACITY, DEFAULT_SEALING_TTL),
            unwrapped: Mutex::new(BySubject::default()),
            read: Mutex::new(BySubject::default()),
            reader_ttl: DEFAULT_READER_TTL,
            cache_capacity: DEFAULT_CAPACITY,
            cache_ttl: DEFAULT_SEALING_TTL,
        }
    }

    /// Puts the records under another prefix (a name without `:`).
    pub fn key_prefix(mut self, prefix: &str) -> Result<Self> {
        self.prefix = crate::names::validate("vault key prefix", prefix)?;
        Ok(self)
    }

    /// How many subjects' keys are cached, on each side (0: none).
    pub fn cache_capacity(mut self, subjects: usize) -> Self {
        self.cache_capacity = subjects;
        self.cache = KeyCache::new(subjects, self.cache_ttl);
        self
    }

    /// How long a sealing key stays cached (60 s unless set). After an
    /// erasure, a producer in another process may seal with the erased key
    /// for up to this long: what it seals then is shredded with it. A
    /// producer sharing this vault forgets the key at once.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self.cache = KeyCache::new(self.cache_capacity, ttl);
        self
    }

    /// How long a reader trusts the keys it read (1 s unless set; zero:
    /// the vault is read for every batch). After an erasure, a reader in
    /// another process may open the subject's data for up to this long; a
    /// reader sharing this vault stops at once. A key newer than the cached
    /// answer is always read fresh, so nothing new is taken for erased.
    pub fn reader_cache_ttl(mut self, ttl: Duration) -> Self {
        self.reader_ttl = ttl;
        self
    }

    /// The key of a subject's record.
    pub fn record_key(&self, subject: &SubjectHash) -> String {
        format!("{}:{subject}", self.prefix)
    }

    fn open_record(&self, subject: &SubjectHash, fields: &Fields) -> Result<Vec<DataKey>> {
        fields
            .iter()
            .map(|(id, wrapped)| {
                let id: KeyId = id.parse().map_err(|_| crate::Error::KeyVault {
                    reason: format!(
                        "record {:?} has a field {id:?} that is not a data key id (16 hex \
                         digits): the key is used by something else; give the vault its own \
                         prefix",
                        self.record_key(subject)
                    ),
                })?;
                self.unwrap_key(subject, id, wrapped)
            })
            .collect()
    }

    fn unwrap_key(&self, subject: &SubjectHash, id: KeyId, wrapped: &Bytes) -> Result<DataKey> {
        let slot = (*subject, id);
        if let Some((seen, key)) = self.unwrapped.lock().expect("unwrap cache lock").get(&slot) {
            if seen == wrapped {
                return Ok(key.clone());
            }
        }
        let key = self.master.unwrap(subject, id, wrapped)?;
        let mut unwrapped = self.unwrapped.lock().expect("unwrap cache lock");
        if unwrapped.len() >= self.cache_capacity {
            // Bounded by starting over: simpler than an order, and a
            // record read again costs one unwrap.
            unwrapped.clear();
        }
        if self.cache_capacity > 0 {
            unwrapped.insert(slot, (wrapped.clone(), key.clone()));
        }
        Ok(key)
    }

    async fn make_sealing_key(&self, subject: &SubjectHash) -> Result<DataKey> {
        let record = self.record_key(subject);
        if let Some(fields) = self.store.get(&record).await? {
            if let Some(key) = self.open_record(subject, &fields)?.into_iter().next() {
                return Ok(key);
            }
        }
        let key = DataKey::generate();
        let mut fields = Fields::new();
        fields.insert(key.id().to_string(), self.master.wrap(subject, &key).into());
        self.store.put(&record, &fields, None).await?;
        Ok(key)
    }
}

#[async_trait]
impl KeyVault for StoreKeyVault {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }

    async fn sealing_key(&self, subject: &SubjectHash) -> Result<DataKey> {
        self.cache
            .get_or_make(subject, || self.make_sealing_key(subject))
            .await
    }

    fn cached_sealing_key(&self, subject: &SubjectHash) -> Option<DataKey> {
        self.cache.get(subject)
    }

    async fn opening_keys(&self, subjects: &[SubjectHash]) -> Result<Vec<Vec<DataKey>>> {
        let mut answers: Vec<Option<Vec<DataKey>>> = vec![None; subjects.len()];
        if !self.reader_ttl.is_zero() {
            let now = Instant::now();
            let read = self.read.lock().expect("reader cache lock");
            for (answer, subject) in answers.iter_mut().zip(subjects) {
                if let Some((at, keys)) = read.get(subject) {
                    if now.duration_since(*at) < self.reader_ttl {
                        *answer = Some(keys.clone());
                    }
                }
            }
        }
        let missing: Vec<SubjectHash> = subjects
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(s, _)| *s)
            .collect();
        let mut fresh = self.fresh_opening_keys(&missing).await?.into_iter();
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| fresh.next().expect("one answer per missing subject")))
            .collect())
    }

    async fn fresh_opening_keys(&self, subjects: &[SubjectHash]) -> Result<Vec<Vec<DataKey>>> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = subjects.iter().map(|s| self.record_key(s)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let records = self.store.get_many(&keys).await?;
        let answers: Vec<Vec<DataKey>> = subjects
            .iter()
            .zip(records)
            .map(|(subject, record)| match record {
                Some(fields) => self.open_record(subject, &fields),
                None => Ok(Vec::new()),
            })
            .collect::<Result<_>>()?;
        if !self.reader_ttl.is_zero() && self.cache_capacity > 0 {
            let now = Instant::now();
            let mut read = self.read.lock().expect("reader cache lock");
            if read.len() + subjects.len() > self.cache_capacity {
                read.clear();
            }
            for (subject, keys) in subjects.iter().zip(&answers) {
                read.insert(*subject, (now, keys.clone()));
            }
        }
        Ok(answers)
    }

    async fn erase(&self, subject: &SubjectHash) -> Result<bool> {
        // Forget first: a send racing the delete makes (or reads) a key
        // anew rather than sealing with the one being erased.
        self.cache.forget(subject);
        let existed = self.store.delete(&self.record_key(subject)).await?;
        self.cache.forget(subject);
        self.unwrapped
            .lock()
            .expect("unwrap cache lock")
            .retain(|(s, _), _| s != subject);
        self.read.lock().expect("reader cache lock").remove(subject);
        Ok(existed)
    }
}

impl fmt::Debug for StoreKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKeyVault")
            .field("store", &self.store.backend())
            .field("prefix", &self.prefix)
            .field("master", &self.master)
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_ttl", &self.cache_ttl)
            .field("reader_cache_ttl", &self.reader_ttl)
            .finish()
    }
}
