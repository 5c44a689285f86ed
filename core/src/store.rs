//! The payload side of the claim check: the [`KeyValueStore`] trait that
//! every store backend (in-memory, Redis Hash, MongoDB, ...) implements.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::StoreCapabilities;
use crate::{Error, Result};

/// The fields under one key: field name -> bytes.
pub type Fields = BTreeMap<String, Bytes>;

/// A field's text, when it is there, UTF-8 and not empty (marks written
/// whole store an empty field for no value).
pub(crate) fn text_field(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

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

/// Refuses a batch that holds a value larger than `limit` bytes, with
/// [`Error::ValueTooLarge`] naming the first such key and field: a store
/// calls it first thing in `put_many`, so that such a batch writes nothing.
/// `None` accepts every size.
///
/// ```
/// use event_backbone_core::store::check_value_sizes;
/// use event_backbone_core::{Fields, PutItem};
/// let mut fields = Fields::new();
/// fields.insert("blob".into(), vec![0u8; 11].into());
/// let items = [PutItem { key: "k".into(), fields, ttl: None }];
/// assert!(check_value_sizes("mine", Some(11), &items).is_ok());
/// let err = check_value_sizes("mine", Some(10), &items).unwrap_err();
/// assert!(err.to_string().contains("\"k\"") && err.to_string().contains("10 bytes"));
/// ```
pub fn check_value_sizes(
    backend: &'static str,
    limit: Option<usize>,
    items: &[PutItem],
) -> Result<()> {
    let Some(limit) = limit else {
        return Ok(());
    };
    for item in items {
        if let Some((field, value)) = item.fields.iter().find(|(_, v)| v.len() > limit) {
            return Err(Error::ValueTooLarge {
                backend,
                key: item.key.clone(),
                field: field.clone(),
                size: value.len(),
                limit,
            });
        }
    }
    Ok(())
}

/// The items with each key once, for a batch write that refuses a key
/// twice (DynamoDB's `BatchWriteItem`) or writes whole values: a key's puts
/// merged in their order (later fields win; the last TTL given, as a put
/// without one keeps the key's), keys in first-seen order. Borrowed when no key repeats, the usual case.
///
/// ```
/// use event_backbone_core::store::merge_repeated_keys;
/// use event_backbone_core::{Fields, PutItem};
/// let put = |key: &str, field: &str, value: &'static str| PutItem {
///     key: key.into(),
///     fields: Fields::from([(field.to_owned(), value.into())]),
///     ttl: None,
/// };
/// let mut items = [put("a", "x", "1"), put("b", "x", "2"), put("a", "y", "3")];
/// items[0].ttl = Some(std::time::Duration::from_secs(60));
/// let once = merge_repeated_keys(&items);
/// assert_eq!(once.len(), 2);
/// assert_eq!(once[0].fields.len(), 2);
/// assert_eq!(once[0].ttl, Some(std::time::Duration::from_secs(60)));
/// assert!(matches!(merge_repeated_keys(&items[..2]), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn merge_repeated_keys(items: &[PutItem]) -> Cow<'_, [PutItem]> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    if items.iter().all(|item| at.insert(&item.key, 0).is_none()) {
        return Cow::Borrowed(items);
    }
    at.clear();
    let mut out: Vec<PutItem> = Vec::new();
    for item in items {
        match at.get(item.key.as_str()) {
            Some(&i) => {
                let kept = &mut out[i];
                kept.fields
                    .extend(item.fields.iter().map(|(n, v)| (n.clone(), v.clone())));
                // As a put does: a later put without a TTL keeps the key's.
                if item.ttl.is_some() {
                    kept.ttl = item.ttl;
                }
            }
            None => {
                at.insert(&item.key, out.len());
                out.push(item.clone());
            }
        }
    }
    Cow::Owned(out)
}

/// A key-value store holding payloads: several named fields under one key.
///
/// The contract, which the conformance kit (`event_backbone_core::testkit`,
/// feature `testkit`) checks:
///
/// * A missing key is a value (`None`), not an error; deleting one is fine.
/// * A put adds the fields it names to the key and replaces those it
///   repeats; the others stay.
/// * **Time to live.** A key put with a TTL reads as missing (`None` from
///   [`get`](Self::get), [`get_fields`](Self::get_fields) and
///   [`get_many`](Self::get_many)) as soon as the TTL has passed, give or
///   take the store's resolution (at most a second). A server that deletes
///   expired data lazily (MongoDB's TTL monitor, DynamoDB) keeps an expiry
///   time with the key and filters on read. A put to a key past its TTL
///   starts a new key: the expired fields do not come back.
/// * **Size.** A value above [`StoreCapabilities::max_value_bytes`] is
///   refused with [`Error::ValueTooLarge`] (a permanent error naming the
///   key, the field and the limit), never truncated, and nothing of its
///   batch is written ([`check_value_sizes`]).
/// * Transient failures (connection lost, timeout, throttling) are
///   [`Error::transient`], so that callers retry them; the rest permanent.
///
/// Implementations must be safe to share (`Arc<dyn KeyValueStore>`).
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

    /// Writes keys that are new, whole: what a producer does with a
    /// message's payload keys, which are named after its fresh message id,
    /// so that there is nothing to merge with. A store implements it with
    /// its fastest batch write (no read, no condition). Writing the same
    /// batch again (a retry after a failure that hid its success) must
    /// succeed and leave the same values; a key that holds other fields is
    /// left as the store's plain write leaves it (replaced or merged), so
    /// use [`Self::put_many`] to merge. The default is [`Self::put_many`].
    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        self.put_many(items).await
    }

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
