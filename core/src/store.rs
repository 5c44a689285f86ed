//! The payload side of the claim check: the [`KeyValueStore`] trait that
//! every store backend (in-memory, Redis Hash, MongoDB, ...) implements.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::StoreCapabilities;
use crate::Result;

/// The fields under one key: field name -> bytes.
pub type Fields = BTreeMap<String, Bytes>;

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutItem {
    /// The key.
    pub key: String,
    /// The fields to write under it (added to, or replacing, existing ones).
    pub fields: Fields,
    /// Expire the key after this long.
    pub ttl: Option<Duration>,
}

/// A key-value store holding payloads: several named fields under one key.
///
/// A missing key is a value (`None`), not an error. Implementations must be
/// safe to share (`Arc<dyn KeyValueStore>`). Prove one with the conformance
/// kit (`event_backbone_core::testkit`, feature `testkit`).
#[async_trait]
pub trait KeyValueStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for errors and logs (`memory`, `redis`, ...).
    fn backend(&self) -> &'static str;

    /// What this store promises.
    fn capabilities(&self) -> StoreCapabilities;

    /// Writes fields under a key (fields already there and not named stay),
    /// with an optional time to live.
    async fn put(&self, key: &str, fields: &Fields, ttl: Option<Duration>) -> Result<()> {
        self.put_many(&[PutItem {
            key: key.to_owned(),
            fields: fields.clone(),
            ttl,
        }])
        .await
    }

    /// Writes several keys, in as few round trips as the backend allows.
    async fn put_many(&self, items: &[PutItem]) -> Result<()>;

    /// All fields of a key; `None` if the key does not exist.
    async fn get(&self, key: &str) -> Result<Option<Fields>> {
        Ok(self.get_many(&[key]).await?.pop().flatten())
    }

    /// Only the named fields of a key (absent fields are left out); `None` if
    /// the key does not exist.
    async fn get_fields(&self, key: &str, names: &[&str]) -> Result<Option<Fields>> {
        Ok(self.get(key).await?.map(|mut all| {
            all.retain(|k, _| names.contains(&k.as_str()));
            all
        }))
    }

    /// All fields of several keys, in the same order.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>>;

    /// Deletes a key; returns whether it existed. Deleting a missing key is
    /// fine.
    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.delete_many(&[key]).await? == 1)
    }

    /// Deletes several keys; returns how many existed.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64>;

    /// The store as `Any`, so that a channel sharing its connection can
    /// recognise it and write payloads and entries in one round trip (see
    /// [`crate::StreamChannel::store_and_append`]). The default is `None`.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}
