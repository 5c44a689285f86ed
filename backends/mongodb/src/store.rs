//! [`MongoStore`]: payloads as documents of one collection.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use event_backbone_core::store::check_value_sizes;
use event_backbone_core::{
    Error as CoreError, Fields, KeyValueStore, PutItem, Result, StoreCapabilities,
};
use futures_util::TryStreamExt;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime, Document};
use mongodb::{Collection, Database};
use tokio::sync::OnceCell;

use crate::connection::Mongo;
use crate::document::{field_path, fields_of, whole, EXPIRES_AT, TTL_INDEX};
use crate::error::{backend, is_transient_code, protocol};
use crate::BACKEND;

/// The largest value a document takes: MongoDB's 16 MiB document limit,
/// less room for the key, the field names and the expiry date. It bounds
/// one field and also all the fields of one key together.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;

/// Keys per `find` of a `get_many`, and the bytes of writes per `update`
/// command (the server takes commands of 16 MiB and a little more).
const KEYS_PER_QUERY: usize = 1_000;
const BYTES_PER_COMMAND: usize = 8 * 1024 * 1024;

/// How often an upsert that met a concurrent upsert of the same new key
/// (duplicate key 11000) is sent again before the error is returned.
const UPSERT_ATTEMPTS: usize = 3;

/// A [`KeyValueStore`] on a MongoDB collection: one document per payload
/// key, fields as binary values (see [`crate::document`] for the layout).
///
/// * `put_many`: one `update` command of upserts for the whole batch (an
///   aggregation-pipeline update that first resets an expired document,
///   then sets the fields), split only past 8 MiB of writes;
/// * `insert_many` (the producer's new payload keys): one unordered
///   `insert` command of whole documents, split only past 8 MiB; a key
///   already there (the same batch sent again, or an expired document the
///   server has not removed yet) is written again with the upsert;
/// * `get_many`: one `find` with `$in` per 1,000 keys, expired documents
///   left out, answers in input order;
/// * `get_fields`: a projection of the named fields;
/// * `delete_many`: one `delete` command with `$in`;
/// * TTL: an `expires_at` date and a TTL index, created before the first
///   write (or by [`Self::ensure_indexes`]).
///
/// ```no_run
/// use std::sync::Arc;
/// use event_backbone_core::memory::MemoryChannel;
/// use event_backbone_core::Producer;
/// use event_backbone_mongodb::{Mongo, MongoConfig, MongoStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mongo = Mongo::connect(MongoConfig::from_env()?).await?;
/// let producer = Producer::builder()
///     .channel(Arc::new(MemoryChannel::new()))
///     .store(Arc::new(MongoStore::new(&mongo)))
///     .uri("orders")
///     .build()?;
/// # Ok(()) }
/// ```
pub struct MongoStore {
    database: Database,
    collection: Collection<Document>,
    name: String,
    indexed: OnceCell<()>,
}

impl MongoStore {
    /// A store on the configured collection.
    pub fn new(mongo: &Mongo) -> Self {
        Self::on(mongo, mongo.config().collection_name())
    }

    /// A store on another collection of the database (for instance one of
    /// its own for the personal class).
    pub fn with_collection(mongo: &Mongo, collection: &str) -> Result<Self> {
        let config = mongo.config().clone().collection(collection)?;
        Ok(Self::on(mongo, config.collection_name()))
    }

    fn on(mongo: &Mongo, collection: &str) -> Self {
        let database = mongo.database();
        Self {
            collection: database.collection(collection),
            database,
            name: collection.to_owned(),
            indexed: OnceCell::new(),
        }
    }

    /// The collection's name.
    pub fn collection_name(&self) -> &str {
        &self.name
    }

    /// Creates the TTL index on `expires_at` (`expireAfterSeconds: 0`) if it
    /// does not exist. The store calls it before its first write; call it
    /// at start-up to fail early.
    pub async fn ensure_indexes(&self) -> Result<()> {
        self.indexed
            .get_or_try_init(|| async {
                let command = doc! {
                    "createIndexes": &self.name,
                    "indexes": [{
                        "key": { EXPIRES_AT: 1 },
                        "name": TTL_INDEX,
                        "expireAfterSeconds": 0,
                    }],
                };
                self.database
                    .run_command(command)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        backend(
                            format!("creating the TTL index of collection {:?}", self.name),
                            e,
                        )
                    })
            })
            .await
            .map(|_| ())
    }

    /// The upsert statement of one write.
    fn upsert(&self, item: &PutItem, now: DateTime) -> Document {
        // An expired document (not yet deleted by the server) starts again
        // empty: its fields do not come back.
        let expired = doc! { "$and": [
            { "$ne": [ { "$type": format!("${EXPIRES_AT}") }, "missing" ] },
            { "$ne": [ format!("${EXPIRES_AT}"), Bson::Null ] },
            { "$lte": [ format!("${EXPIRES_AT}"), now ] },
        ]};
        let reset = doc! { "$replaceWith": {
            "$cond": [ expired, { "_id": "$_id" }, "$$ROOT" ]
        }};
        let mut set = Document::new();
        for (name, bytes) in &item.fields {
            let value = Binary {
                subtype: BinarySubtype::Generic,
                bytes: bytes.to_vec(),
            };
            set.insert(field_path(name), doc! { "$literal": value });
        }
        if let Some(ttl) = item.ttl {
            set.insert(EXPIRES_AT, expiry(now, ttl));
        }
        let mut pipeline = vec![Bson::Document(reset)];
        if !set.is_empty() {
            pipeline.push(Bson::Document(doc! { "$set": set }));
        }
        doc! { "q": { "_id": &item.key }, "u": pipeline, "upsert": true }
    }

    /// Sends upserts in one `update` command (ordered: a key written twice
    /// in a batch ends with the later write), again from a statement that
    /// met a concurrent upsert of the same new key.
    async fn update(&self, keys: &[&str], statements: Vec<Document>) -> Result<()> {
        let mut first = 0;
        for attempt in 1..=UPSERT_ATTEMPTS {
            let command = doc! {
                "update": &self.name,
                "updates": statements[first..].to_vec(),
                "ordered": true,
            };
            let action = || {
                format!(
                    "writing {} keys to collection {:?}",
                    keys.len() - first,
                    self.name
                )
            };
            let reply = self
                .database
                .run_command(command)
                .await
                .map_err(|e| backend(action(), e))?;
            let Some((index, code, message)) = first_write_error(&reply) else {
                return write_concern(&reply, action);
            };
            let at = first + index;
            let key = keys.get(at).copied().unwrap_or("?");
            if code == 11000 && attempt < UPSERT_ATTEMPTS {
                first = at;
                continue;
            }
            let action = format!("writing key {key:?} to collection {:?}", self.name);
            let what = format!("server error {code}: {message}");
            return Err(if is_transient_code(code) {
                CoreError::transient(BACKEND, action, what)
            } else {
                protocol(action, what)
            });
        }
        unreachable!("the last attempt returns")
    }

    /// One unordered `insert` of whole documents. A key already there
    /// (duplicate key 11000) goes through the upsert instead: the same
    /// message's bytes again leave the same values, and an expired document
    /// is reset rather than taken for the new one.
    async fn insert(&self, items: &[PutItem], now: DateTime) -> Result<()> {
        let documents: Vec<Document> = items
            .iter()
            .map(|item| {
                whole(
                    &item.key,
                    &item.fields,
                    item.ttl.map(|ttl| expiry(now, ttl)),
                )
            })
            .collect();
        let command = doc! {
            "insert": &self.name,
            "documents": documents,
            "ordered": false,
        };
        let action = || {
            format!(
                "inserting {} keys into collection {:?}",
                items.len(),
                self.name
            )
        };
        let reply = self
            .database
            .run_command(command)
            .await
            .map_err(|e| backend(action(), e))?;
        let mut again = Vec::new();
        for (index, code, message) in write_errors(&reply) {
            let key = items.get(index).map_or("?", |i| i.key.as_str());
            if code == 11000 {
                if let Some(item) = items.get(index) {
                    again.push(item.clone());
                }
                continue;
            }
            let action = format!("inserting key {key:?} into collection {:?}", self.name);
            let what = format!("server error {code}: {message}");
            return Err(if is_transient_code(code) {
                CoreError::transient(BACKEND, action, what)
            } else {
                protocol(action, what)
            });
        }
        write_concern(&reply, action)?;
        if again.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = again.iter().map(|i| i.key.as_str()).collect();
        let statements = again.iter().map(|item| self.upsert(item, now)).collect();
        self.update(&keys, statements).await
    }

    /// The filter of `keys`: `_id` only, so that every server reads it
    /// from the `_id` index (SecantusDB scans the collection for `_id`
    /// with an `$or` beside it); expired documents are left out on the
    /// client ([`is_live`]).
    fn by_ids(keys: &[&str]) -> Document {
        doc! { "_id": { "$in": keys } }
    }
}

/// Whether a document read back is live: no expiry, or one still ahead.
fn is_live(doc: &Document, now: DateTime) -> bool {
    match doc.get(EXPIRES_AT) {
        Some(Bson::DateTime(at)) => *at > now,
        _ => true,
    }
}

fn expiry(now: DateTime, ttl: Duration) -> DateTime {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(now.timestamp_millis().saturating_add(ms))
}

/// Every entry of `writeErrors`: (index, code, message).
fn write_errors(reply: &Document) -> Vec<(usize, i32, String)> {
    let Ok(errors) = reply.get_array("writeErrors") else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|error| match error {
            Bson::Document(e) => (
                e.get_i32("index").unwrap_or(0).max(0) as usize,
                e.get_i32("code").unwrap_or(-1),
                e.get_str("errmsg").unwrap_or_default().to_owned(),
            ),
            _ => (0, -1, "a write error of unknown shape".to_owned()),
        })
        .collect()
}

/// The first entry of `writeErrors`: (index, code, message).
fn first_write_error(reply: &Document) -> Option<(usize, i32, String)> {
    let errors = reply.get_array("writeErrors").ok()?;
    let Bson::Document(first) = errors.first()? else {
        return Some((0, -1, "a write error of unknown shape".to_owned()));
    };
    let index = first.get_i32("index").unwrap_or(0).max(0) as usize;
    let code = first.get_i32("code").unwrap_or(-1);
    let message = first.get_str("errmsg").unwrap_or_default().to_owned();
    Some((index, code, message))
}

/// A `writeConcernError` (the write may not be durable yet): transient.
fn write_concern(reply: &Document, action: impl Fn() -> String) -> Result<()> {
    match reply.get_document("writeConcernError") {
        Ok(e) => Err(CoreError::transient(
            BACKEND,
            action(),
            format!(
                "write concern error {}: {}",
                e.get_i32("code").unwrap_or(-1),
                e.get_str("errmsg").unwrap_or_default()
            ),
        )),
        Err(_) => Ok(()),
    }
}

/// Refuses a key whose fields add up to more than a document holds.
fn check_document_sizes(items: &[PutItem]) -> Result<()> {
    for item in items {
        // Names, the key and the expiry fit in the room left below 16 MiB.
        let size: usize = item.fields.values().map(|bytes| bytes.len()).sum();
        if size > MAX_VALUE_BYTES {
            let field = item
                .fields
                .iter()
                .max_by_key(|(_, b)| b.len())
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            return Err(CoreError::ValueTooLarge {
                backend: BACKEND,
                key: item.key.clone(),
                field,
                size,
                limit: MAX_VALUE_BYTES,
            });
        }
    }
    Ok(())
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.database.name())
            .field("collection", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyValueStore for MongoStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(Some(MAX_VALUE_BYTES))
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)?;
        check_document_sizes(items)?;
        if items.is_empty() {
            return Ok(());
        }
        self.ensure_indexes().await?;
        let now = DateTime::now();
        let mut keys: Vec<&str> = Vec::new();
        let mut statements = Vec::new();
        let mut bytes = 0;
        for item in items {
            let size: usize = item.fields.values().map(|b| b.len()).sum();
            if !statements.is_empty() && bytes + size > BYTES_PER_COMMAND {
                self.update(&keys, std::mem::take(&mut statements)).await?;
                keys.clear();
                bytes = 0;
            }
            keys.push(&item.key);
            statements.push(self.upsert(item, now));
            bytes += size;
        }
        self.update(&keys, statements).await
    }

    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)?;
        check_document_sizes(items)?;
        if items.is_empty() {
            return Ok(());
        }
        self.ensure_indexes().await?;
        let now = DateTime::now();
        let mut start = 0;
        let mut bytes = 0;
        for (i, item) in items.iter().enumerate() {
            let size: usize = item.fields.values().map(|b| b.len()).sum();
            if i > start && bytes + size > BYTES_PER_COMMAND {
                self.insert(&items[start..i], now).await?;
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        self.insert(&items[start..], now).await
    }

    async fn get_fields(&self, key: &str, names: &[&str]) -> Result<Option<Fields>> {
        let mut projection = doc! { "_id": 1, EXPIRES_AT: 1 };
        for name in names {
            projection.insert(field_path(name), 1);
        }
        let found = self
            .collection
            .find_one(Self::by_ids(&[key]))
            .projection(projection)
            .await
            .map_err(|e| {
                backend(
                    format!("reading key {key:?} of collection {:?}", self.name),
                    e,
                )
            })?;
        let now = DateTime::now();
        found
            .filter(|d| is_live(d, now))
            .map(|d| fields_of(&d, &self.name, key))
            .transpose()
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        let now = DateTime::now();
        let mut found: HashMap<String, Document> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let action = || format!("reading {} keys of collection {:?}", chunk.len(), self.name);
            let docs: Vec<Document> = self
                .collection
                .find(Self::by_ids(chunk))
                .await
                .map_err(|e| backend(action(), e))?
                .try_collect()
                .await
                .map_err(|e| backend(action(), e))?;
            for d in docs.into_iter().filter(|d| is_live(d, now)) {
                let id = d
                    .get_str("_id")
                    .map_err(|_| protocol(action(), "a document whose _id is not a string"))?
                    .to_owned();
                found.insert(id, d);
            }
        }
        keys.iter()
            .map(|key| {
                found
                    .get(*key)
                    .map(|d| fields_of(d, &self.name, key))
                    .transpose()
            })
            .collect()
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let action = || format!("deleting {} keys of collection {:?}", keys.len(), self.name);
        let mut deleted = 0;
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let reply = self
                .database
                .run_command(doc! {
                    "delete": &self.name,
                    "deletes": [{ "q": { "_id": { "$in": chunk } }, "limit": 0 }],
                })
                .await
                .map_err(|e| backend(action(), e))?;
            if let Some((_, code, message)) = first_write_error(&reply) {
                return Err(protocol(
                    action(),
                    format!("server error {code}: {message}"),
                ));
            }
            deleted += reply
                .get_i32("n")
                .map(i64::from)
                .or_else(|_| reply.get_i64("n"))
                .unwrap_or(0)
                .max(0) as u64;
        }
        Ok(deleted)
    }
}
