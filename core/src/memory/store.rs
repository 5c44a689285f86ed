use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;

use crate::capabilities::StoreCapabilities;
use crate::store::{check_value_sizes, Fields, KeyValueStore, PutItem};
use crate::Result;

use super::BACKEND;

/// An in-process key-value store with Redis-hash semantics: a put adds or
/// replaces fields under a key; a TTL expires the whole key.
///
/// Clones share the same data.
///
/// ```
/// use event_backbone_core::memory::MemoryStore;
/// use event_backbone_core::{Fields, KeyValueStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let store = MemoryStore::new();
/// let mut fields = Fields::new();
/// fields.insert("email".into(), "ann@example.com".into());
/// store.put("k", &fields, None).await?;
/// assert_eq!(store.get("k").await?, Some(fields));
/// assert_eq!(store.get("missing").await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    data: Arc<Mutex<HashMap<String, Value>>>,
    max_value_bytes: Option<usize>,
}

#[derive(Debug)]
struct Value {
    fields: Fields,
    expires_at: Option<Instant>,
}

impl Value {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that refuses values larger than `bytes`, as a server with
    /// that limit would: to try a producer against a store's limit without
    /// the server.
    ///
    /// ```
    /// use event_backbone_core::memory::MemoryStore;
    /// use event_backbone_core::{Error, Fields, KeyValueStore};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = MemoryStore::new().with_max_value_bytes(400 * 1024);
    /// let mut fields = Fields::new();
    /// fields.insert("scan".into(), vec![0u8; 500 * 1024].into());
    /// let refused = store.put("k", &fields, None).await.unwrap_err();
    /// assert!(matches!(refused, Error::ValueTooLarge { limit: 409600, .. }));
    /// # }
    /// ```
    pub fn with_max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = Some(bytes);
        self
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock().values().filter(|v| v.live(now)).count()
    }

    /// Whether there is no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Value>> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl KeyValueStore for MemoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(self.max_value_bytes)
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        check_value_sizes(BACKEND, self.max_value_bytes, items)?;
        let now = Instant::now();
        let mut data = self.lock();
        for item in items {
            let value = data.entry(item.key.clone()).or_insert_with(|| Value {
                fields: Fields::new(),
                expires_at: None,
            });
            if !value.live(now) {
                value.fields.clear();
                value.expires_at = None;
            }
            value.fields.extend(
                item.fields
                    .iter()
                    .map(|(name, bytes)| (name.clone(), bytes.clone())),
            );
            if let Some(ttl) = item.ttl {
                value.expires_at = Some(now + ttl);
            }
        }
        Ok(())
    }

    /// A plain insert: each key's value replaced whole.
    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        check_value_sizes(BACKEND, self.max_value_bytes, items)?;
        let now = Instant::now();
        let mut data = self.lock();
        for item in items {
            data.insert(
                item.key.clone(),
                Value {
                    fields: item.fields.clone(),
                    expires_at: item.ttl.map(|ttl| now + ttl),
                },
            );
        }
        Ok(())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        let now = Instant::now();
        let mut data = self.lock();
        Ok(keys
            .iter()
            .map(|key| match data.get(*key) {
                Some(v) if v.live(now) => Some(v.fields.clone()),
                Some(_) => {
                    data.remove(*key);
                    None
                }
                None => None,
            })
            .collect())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let now = Instant::now();
        let mut data = self.lock();
        Ok(keys
            .iter()
            .filter(|key| data.remove(**key).is_some_and(|v| v.live(now)))
            .count() as u64)
    }
}
