//! [`CouchbaseStore`]: payloads as binary documents, one per key.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use couchbase::collection::Collection;
use couchbase::error::ErrorKind;
use couchbase::options::kv_options::{InsertOptions, ReplaceOptions, UpsertOptions};
use event_backbone_core::store::merge_repeated_keys;
use event_backbone_core::{
    Error as CoreError, Fields, KeyValueStore, PutItem, Result, StoreCapabilities,
};
use futures_util::{StreamExt, TryStreamExt};

use crate::connection::Couchbase;
use crate::document::{Payload, BINARY_FLAGS};
use crate::error::backend;
use crate::BACKEND;

/// The largest value, and the most a key's values may add up to: a
/// document holds 20 MiB, less room for the field names and the header.
pub const MAX_VALUE_BYTES: usize = 20 * 1024 * 1024 - 64 * 1024;
/// The longest key Couchbase takes, in bytes.
pub const MAX_KEY_BYTES: usize = 250;
/// Reads and writes of one key a put tries before it gives up, when other
/// writers keep changing the key between them.
const WRITE_ATTEMPTS: u32 = 16;

/// A [`KeyValueStore`] on a Couchbase collection.
///
/// * Layout: one binary document per payload key ([`crate::document`]):
///   every field, and the key's expiry to the millisecond.
/// * `put_many`: per key, a read and then an insert, or a replace with the
///   CAS it read (fields a put does not name stay), retried when another
///   writer got in between; keys run concurrently (the configured
///   concurrency), the puts of one key in their order.
/// * `insert_many` (the producer's new payload keys): one `upsert` of the
///   whole document per key, no read, concurrently (a key named twice is
///   written once, its puts merged in order). A key that was there is
///   replaced, not merged; a retry writes the same fields again (its
///   expiry counted from the retry).
/// * `get_many`: one get per key, concurrently, answers in input order;
///   `get_fields` selects the fields on the client (a binary document has
///   no paths for the server to select).
/// * TTL: exact on read (the expiry in the document); the document's own
///   expiry, a second later, lets the server remove it.
/// * `delete_many`: one remove per key, concurrently.
#[derive(Clone)]
pub struct CouchbaseStore {
    couchbase: Couchbase,
}

impl CouchbaseStore {
    /// The store on the connection's collection.
    pub fn new(couchbase: &Couchbase) -> Self {
        Self {
            couchbase: couchbase.clone(),
        }
    }

    fn collection(&self) -> &Collection {
        self.couchbase.collection()
    }

    fn keyspace(&self) -> String {
        self.couchbase.config().keyspace()
    }

    fn concurrency(&self) -> usize {
        self.couchbase.config().concurrency
    }

    /// The live payload at `key` and its CAS.
    async fn read(&self, key: &str) -> Result<Option<(Payload, u64)>> {
        match self.collection().get(key, None).await {
            Ok(found) => {
                let (bytes, _flags) = found.content_as_raw();
                let payload = Payload::decode(bytes).map_err(|reason| {
                    CoreError::permanent(
                        BACKEND,
                        format!("reading key {key:?} in {}", self.keyspace()),
                        format!("the document is not an event-backbone payload: {reason}"),
                    )
                })?;
                Ok(Some((payload, found.cas())))
            }
            Err(e) if matches!(e.kind(), ErrorKind::DocumentNotFound) => Ok(None),
            Err(e) => Err(backend(
                format!("reading key {key:?} in {}", self.keyspace()),
                e,
            )),
        }
    }

    async fn get_one(&self, key: &str) -> Result<Option<Fields>> {
        check_key(key)?;
        let now = now_ms();
        Ok(self
            .read(key)
            .await?
            .filter(|(p, _)| !p.expired(now))
            .map(|(p, _)| p.fields))
    }

    /// One put: merged into the live payload, or a new one.
    async fn put_one(&self, item: &PutItem) -> Result<()> {
        let key = item.key.as_str();
        let action = || format!("writing key {key:?} in {}", self.keyspace());
        for _ in 0..WRITE_ATTEMPTS {
            let now = now_ms();
            let current = self.read(key).await?;
            let (base, cas) = match current {
                Some((p, cas)) if !p.expired(now) => (p, Some(cas)),
                // Expired by its own clock, not yet removed: a new key.
                Some((_, cas)) => (Payload::default(), Some(cas)),
                None => (Payload::default(), None),
            };
            let mut payload = base;
            payload.fields.extend(item.fields.clone());
            if let Some(ttl) = item.ttl {
                payload.expires_at_ms = Some(now.saturating_add(millis(ttl)));
            }
            check_size(key, &payload.fields)?;
            let bytes = payload.encode();
            let expiry = server_expiry(payload.expires_at_ms, now);
            let written = match cas {
                None => {
                    let mut options = InsertOptions::new();
                    if let Some(e) = expiry {
                        options = options.expiry(e);
                    }
                    self.collection()
                        .insert_raw(key, &bytes, BINARY_FLAGS, options)
                        .await
                }
                Some(cas) => {
                    let mut options = ReplaceOptions::new().cas(cas);
                    if let Some(e) = expiry {
                        options = options.expiry(e);
                    }
                    self.collection()
                        .replace_raw(key, &bytes, BINARY_FLAGS, options)
                        .await
                }
            };
            match written {
                Ok(_) => return Ok(()),
                // Another writer got in between: read again.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::DocumentExists
                            | ErrorKind::CasMismatch
                            | ErrorKind::DocumentNotFound
                    ) => {}
                Err(e) if matches!(e.kind(), ErrorKind::ValueTooLarge) => {
                    return Err(too_large(key, &payload.fields))
                }
                Err(e) => return Err(backend(action(), e)),
            }
        }
        Err(CoreError::transient(
            BACKEND,
            action(),
            format!(
                "other writers changed the key between each of {WRITE_ATTEMPTS} reads and writes"
            ),
        ))
    }

    /// One new key, whole: an `upsert`, no read (a retry writes the same
    /// fields again).
    async fn insert_one(&self, item: &PutItem) -> Result<()> {
        let key = item.key.as_str();
        let now = now_ms();
        let payload = Payload {
            fields: item.fields.clone(),
            expires_at_ms: item.ttl.map(|ttl| now.saturating_add(millis(ttl))),
        };
        let mut options = UpsertOptions::new();
        if let Some(e) = server_expiry(payload.expires_at_ms, now) {
            options = options.expiry(e);
        }
        match self
            .collection()
            .upsert_raw(key, &payload.encode(), BINARY_FLAGS, options)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::ValueTooLarge) => {
                Err(too_large(key, &payload.fields))
            }
            Err(e) => Err(backend(
                format!("writing key {key:?} in {}", self.keyspace()),
                e,
            )),
        }
    }

    async fn delete_one(&self, key: &str) -> Result<u64> {
        check_key(key)?;
        match self.collection().remove(key, None).await {
            Ok(_) => Ok(1),
            Err(e) if matches!(e.kind(), ErrorKind::DocumentNotFound) => Ok(0),
            Err(e) => Err(backend(
                format!("deleting key {key:?} in {}", self.keyspace()),
                e,
            )),
        }
    }
}

#[async_trait]
impl KeyValueStore for CouchbaseStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(Some(MAX_VALUE_BYTES))
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        // Everything is checked before anything is written.
        for item in items {
            check_key(&item.key)?;
            check_size(&item.key, &item.fields)?;
        }
        // The puts of one key in their order, keys concurrently.
        let mut order: Vec<&str> = Vec::new();
        let mut by_key: HashMap<&str, Vec<&PutItem>> = HashMap::new();
        for item in items {
            by_key
                .entry(item.key.as_str())
                .or_insert_with(|| {
                    order.push(item.key.as_str());
                    Vec::new()
                })
                .push(item);
        }
        futures_util::stream::iter(
            order
                .into_iter()
                .map(|k| by_key.remove(k).unwrap_or_default()),
        )
        .map(Ok)
        .try_for_each_concurrent(self.concurrency(), |puts| async move {
            for item in puts {
                self.put_one(item).await?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        let items = merge_repeated_keys(items);
        for item in items.iter() {
            check_key(&item.key)?;
            check_size(&item.key, &item.fields)?;
        }
        futures_util::stream::iter(items.iter())
            .map(Ok)
            .try_for_each_concurrent(self.concurrency(), |item| self.insert_one(item))
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        // Owned keys: the futures borrow only the store.
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        futures_util::stream::iter(keys)
            .map(|k| async move { self.get_one(&k).await })
            .buffered(self.concurrency())
            .try_collect()
            .await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        // Each key once: a key named twice existed once.
        let mut unique: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        unique.sort_unstable();
        unique.dedup();
        let counts: Vec<u64> = futures_util::stream::iter(unique)
            .map(|k| async move { self.delete_one(&k).await })
            .buffer_unordered(self.concurrency())
            .try_collect()
            .await?;
        Ok(counts.into_iter().sum())
    }
}

impl fmt::Debug for CouchbaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CouchbaseStore")
            .field("keyspace", &self.keyspace())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The document's own expiry: whole seconds, rounded up, and one more, so
/// that the server never removes a key before its TTL (reads filter to the
/// millisecond).
fn server_expiry(expires_at_ms: Option<u64>, now_ms: u64) -> Option<Duration> {
    expires_at_ms.map(|t| {
        let remaining = t.saturating_sub(now_ms);
        Duration::from_secs(remaining.div_ceil(1000) + 1)
    })
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(CoreError::permanent(
            BACKEND,
            format!("using key {key:?}"),
            format!(
                "a Couchbase key holds 1 to {MAX_KEY_BYTES} bytes; this one has {}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses a key whose fields add up to more than a document holds.
fn check_size(key: &str, fields: &Fields) -> Result<()> {
    let size: usize = fields.values().map(|v| v.len()).sum();
    if size > MAX_VALUE_BYTES {
        return Err(too_large(key, fields));
    }
    Ok(())
}

fn too_large(key: &str, fields: &Fields) -> CoreError {
    let field = fields
        .iter()
        .max_by_key(|(_, v)| v.len())
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    CoreError::ValueTooLarge {
        backend: BACKEND,
        key: key.to_owned(),
        field,
        size: fields.values().map(|v| v.len()).sum(),
        limit: MAX_VALUE_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_expiry_is_never_before_the_ttl() {
        assert_eq!(server_expiry(None, 5), None);
        assert_eq!(
            server_expiry(Some(1_400), 1_000),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            server_expiry(Some(2_000), 1_000),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            server_expiry(Some(2_001), 1_000),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            server_expiry(Some(500), 1_000),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn keys_and_sizes_are_checked_with_what_is_wrong() {
        let e = check_key(&"k".repeat(251)).unwrap_err().to_string();
        assert!(e.contains("1 to 250 bytes; this one has 251"), "{e}");
        assert!(check_key("").is_err());
        let big = Fields::from([(
            "scan".to_owned(),
            bytes::Bytes::from(vec![0u8; MAX_VALUE_BYTES + 1]),
        )]);
        let e = check_size("k", &big).unwrap_err().to_string();
        assert!(
            e.contains("scan") && e.contains(&MAX_VALUE_BYTES.to_string()),
            "{e}"
        );
    }
}
