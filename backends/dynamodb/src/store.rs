//! [`DynamoStore`]: payloads as items of one DynamoDB table.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use bytes::Bytes;
use event_backbone_core::store::check_value_sizes;
use event_backbone_core::{
    Error as CoreError, Fields, KeyValueStore, PutItem, Result, StoreCapabilities,
};
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::batch::{Batch, Write, KEYS_PER_BATCH};
use crate::connection::Dynamo;
use crate::error::{backend, code, protocol};
use crate::item::{
    expiry, field_attribute, field_name, is_live, now_ms, payload_key, seconds, string, Item,
    EXPIRES_AT, KEY, PIECE_VALUE, SORT,
};
use crate::piece::{assemble, piece_items, plan, Manifest, PIECE_BYTES};
use crate::BACKEND;

/// The largest value the store takes: larger than any item (400 KB), as
/// large values are split over piece items. It bounds one field.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;
/// The longest payload key: DynamoDB's limit for a partition key.
pub const MAX_KEY_BYTES: usize = 2048;
/// Pieces per `BatchGetItem`: under the 16 MB answer.
const PIECES_PER_BATCH: usize = (16 * 1024 * 1024) / PIECE_BYTES - 1;
/// How often a put meets a key that turns from expired to live (or back)
/// under it before it gives up with a transient error.
const PUT_ATTEMPTS: usize = 4;

/// A [`KeyValueStore`] on a DynamoDB table: one item per payload key, the
/// fields as binary attributes, large values in piece items beside it (see
/// [`crate::item`] for the layout).
///
/// * `put_many`: one `UpdateItem` per key (`SET` of the fields it names,
///   so that the others stay), `concurrency` at once; a key past its TTL
///   is replaced (`PutItem`) instead, so that expired fields do not come
///   back. Pieces are written first (`BatchWriteItem`), replaced pieces
///   removed after.
/// * `insert_many` (the producer's new payload keys): `BatchWriteItem` of
///   whole items, 25 per request, `concurrency` requests at once,
///   `UnprocessedItems` sent again with backoff; large values' pieces
///   first. A key that was there is replaced, not merged.
/// * `get_many`: `BatchGetItem` of 100 keys per request, concurrently,
///   `UnprocessedKeys` sent again with backoff; then the pieces of large
///   values. Answers in input order; expired items left out.
/// * `get_fields`: `GetItem` with a `ProjectionExpression`.
/// * `delete_many`: `BatchGetItem` (to count what existed and find the
///   pieces), then `BatchWriteItem` deletes of 25 per request.
///
/// ```no_run
/// use std::sync::Arc;
/// use event_backbone_core::memory::MemoryChannel;
/// use event_backbone_core::Producer;
/// use event_backbone_dynamodb::{Dynamo, DynamoConfig, DynamoStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let dynamo = Dynamo::connect(DynamoConfig::from_env()?).await?;
/// let store = DynamoStore::new(&dynamo);
/// store.ensure_table().await?; // development: creates it if missing
/// let producer = Producer::builder()
///     .channel(Arc::new(MemoryChannel::new()))
///     .store(Arc::new(store))
///     .uri("orders")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoStore {
    dynamo: Dynamo,
    table: String,
}

impl DynamoStore {
    /// The store on the configured table.
    pub fn new(dynamo: &Dynamo) -> Self {
        Self {
            dynamo: dynamo.clone(),
            table: dynamo.config().table_name().to_owned(),
        }
    }

    /// The store on another table of the same account.
    pub fn with_table(dynamo: &Dynamo, table: &str) -> crate::Result<Self> {
        let config = dynamo.config().clone().table(table)?;
        Ok(Self {
            dynamo: dynamo.clone(),
            table: config.table_name().to_owned(),
        })
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamo.client()
    }

    pub(crate) fn batch(&self) -> Batch<'_> {
        let c = self.dynamo.config();
        Batch {
            client: self.dynamo.client(),
            table: &self.table,
            concurrency: c.concurrency,
            deadline: c.batch_deadline,
            consistent: c.consistent_reads,
        }
    }

    /// Writes one put: its pieces, then the payload item; returns the
    /// manifests the item held for the fields it replaced (their pieces
    /// are to be removed).
    async fn put_one(&self, item: &PutItem) -> Result<Vec<Manifest>> {
        let key = &item.key;
        let mut spill_all = false;
        for _ in 0..PUT_ATTEMPTS {
            let now = now_ms();
            let expires_at = item.ttl.map(|ttl| expiry(now, ttl));
            let plan = plan(key, &item.fields, spill_all);
            let pieces: Vec<Write> = plan
                .spilled
                .iter()
                .flat_map(|(_, value, m)| piece_items(key, m, value, expires_at))
                .map(Write::Put)
                .collect();
            let ours: Vec<Manifest> = plan.spilled.iter().map(|(.., m)| m.clone()).collect();
            if !pieces.is_empty() {
                self.batch().write(pieces).await?;
            }
            let mut values: Vec<(String, AttributeValue)> = plan
                .inline
                .iter()
                .map(|(n, v)| (field_attribute(n), AttributeValue::B(Blob::new(v.to_vec()))))
                .collect();
            values.extend(
                plan.spilled
                    .iter()
                    .map(|(n, _, m)| (field_attribute(n), m.attribute())),
            );
            let outcome = match self.update(key, &values, expires_at, now).await {
                Ok(Written::Done(old)) => Ok(Some(old)),
                // The key is past its TTL: a new key replaces it.
                Ok(Written::Expired) => self.replace(key, &values, expires_at, now).await,
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(Some(replaced)) => return Ok(replaced),
                // It turned live again under the put: once more.
                Ok(None) => self.remove_pieces(key, &ours).await,
                Err(Failure::TooLarge) if !spill_all => {
                    self.remove_pieces(key, &ours).await;
                    spill_all = true;
                }
                Err(Failure::TooLarge) => {
                    self.remove_pieces(key, &ours).await;
                    return Err(CoreError::permanent(
                        BACKEND,
                        self.action("writing", key),
                        format!(
                            "the key's fields do not fit one item ({} KB) even with every value \
                             of this put in pieces: too many fields, or long field names",
                            crate::piece::ITEM_LIMIT / 1024
                        ),
                    ));
                }
                // The write may have been done (a timeout): its pieces stay.
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        Err(CoreError::transient(
            BACKEND,
            self.action("writing", key),
            format!("the key turned between expired and live {PUT_ATTEMPTS} times under the put"),
        ))
    }

    /// The merging puts of `items` (checked): the puts of one key in their
    /// order, keys `concurrency` at once.
    pub(crate) async fn put_checked(&self, items: &[PutItem]) -> Result<()> {
        let mut by_key: BTreeMap<&str, Vec<&PutItem>> = BTreeMap::new();
        for item in items {
            by_key.entry(&item.key).or_default().push(item);
        }
        let concurrency = self.dynamo.config().concurrency;
        let puts: Vec<_> = by_key
            .into_iter()
            .map(|(key, puts)| self.put_key(key, puts))
            .collect();
        stream::iter(puts)
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await
    }

    /// The puts of one key, in order; then the pieces of the values they
    /// replaced are removed.
    async fn put_key(&self, key: &str, puts: Vec<&PutItem>) -> Result<()> {
        let mut replaced = Vec::new();
        for put in puts {
            replaced.extend(self.put_one(put).await?);
        }
        self.remove_pieces(key, &replaced).await;
        Ok(())
    }

    /// `UpdateItem`: sets the fields of a live (or new) key.
    async fn update(
        &self,
        key: &str,
        values: &[(String, AttributeValue)],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Written, Failure> {
        let mut names = HashMap::from([("#e".to_owned(), EXPIRES_AT.to_owned())]);
        let mut bound = HashMap::from([(":now".to_owned(), seconds(now / 1000))]);
        let mut sets = Vec::new();
        for (i, (attribute, value)) in values.iter().enumerate() {
            names.insert(format!("#f{i}"), attribute.clone());
            bound.insert(format!(":v{i}"), value.clone());
            sets.push(format!("#f{i} = :v{i}"));
        }
        if let Some(at) = expires_at {
            bound.insert(":e".to_owned(), seconds(at));
            sets.push("#e = :e".to_owned());
        }
        let mut request = self
            .client()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(payload_key(key)))
            .condition_expression("attribute_not_exists(#e) OR #e > :now")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(bound))
            .return_values(ReturnValue::UpdatedOld);
        if !sets.is_empty() {
            request = request.update_expression(format!("SET {}", sets.join(", ")));
        }
        match request.send().await {
            Ok(answer) => Ok(Written::Done(manifests(answer.attributes.as_ref()))),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(Written::Expired),
            Err(e) if too_large(&e) => Err(Failure::TooLarge),
            Err(e) => Err(Failure::Other(backend(self.action("writing", key), e))),
        }
    }

    /// `PutItem` in place of an expired key; `None` if it is not expired
    /// any more (put again through `update`).
    async fn replace(
        &self,
        key: &str,
        values: &[(String, AttributeValue)],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Option<Vec<Manifest>>, Failure> {
        let mut item = payload_key(key);
        item.extend(values.iter().cloned());
        if let Some(at) = expires_at {
            item.insert(EXPIRES_AT.to_owned(), seconds(at));
        }
        let answer = self
            .client()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#e <= :now")
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":now", seconds(now / 1000))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match answer {
            Ok(answer) => Ok(Some(manifests(answer.attributes.as_ref()))),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) if too_large(&e) => Err(Failure::TooLarge),
            Err(e) => Err(Failure::Other(backend(self.action("writing", key), e))),
        }
    }

    /// Removes the pieces of replaced values; a failure leaves them in the
    /// table (they expire with their key, if it has a TTL) and is logged.
    async fn remove_pieces(&self, key: &str, manifests: &[Manifest]) {
        let writes: Vec<Write> = manifests
            .iter()
            .flat_map(|m| m.piece_keys(key))
            .map(Write::Delete)
            .collect();
        if writes.is_empty() {
            return;
        }
        if let Err(e) = self.batch().write(writes).await {
            tracing::warn!(table = self.table, key, error = %e,
                "removing the pieces of replaced values failed; they stay in the table");
        }
    }

    /// The payload items of `keys` (no duplicates) that exist, expired
    /// ones included.
    async fn stored_items(&self, keys: &[&str]) -> Result<Vec<Item>> {
        self.batch()
            .get(
                keys.iter().map(|k| payload_key(k)).collect(),
                KEYS_PER_BATCH,
            )
            .await
    }

    /// The live payload items of `keys` (no duplicates), by key.
    async fn payload_items(&self, keys: &[&str]) -> Result<HashMap<String, Item>> {
        let found = self.stored_items(keys).await?;
        let now = now_ms();
        Ok(found
            .into_iter()
            .filter(|item| is_live(item, now))
            .filter_map(|item| Some((string(&item, KEY)?.to_owned(), item)))
            .collect())
    }

    /// The fields of payload items, the pieces of large values read and
    /// put together.
    async fn decode(&self, items: Vec<(String, Item)>) -> Result<HashMap<String, Fields>> {
        let mut decoded: HashMap<String, (Fields, Vec<(String, Manifest)>)> = HashMap::new();
        for (key, item) in items {
            let mut fields = Fields::new();
            let mut large = Vec::new();
            for (attribute, value) in item {
                let Some(name) = field_name(&attribute) else {
                    continue;
                };
                match value {
                    AttributeValue::B(b) => {
                        fields.insert(name.to_owned(), Bytes::from(b.into_inner()));
                    }
                    AttributeValue::M(m) => match Manifest::from_map(&m) {
                        Some(manifest) => large.push((name.to_owned(), manifest)),
                        None => return Err(unexpected(&self.table, &key, &attribute)),
                    },
                    _ => return Err(unexpected(&self.table, &key, &attribute)),
                }
            }
            decoded.insert(key, (fields, large));
        }
        let wanted: Vec<Item> = decoded
            .iter()
            .flat_map(|(key, (_, large))| large.iter().flat_map(move |(_, m)| m.piece_keys(key)))
            .collect();
        let mut pieces: HashMap<String, HashMap<String, Bytes>> = HashMap::new();
        if !wanted.is_empty() {
            for piece in self.batch().get(wanted, PIECES_PER_BATCH).await? {
                let (Some(key), Some(sort)) = (string(&piece, KEY), string(&piece, SORT)) else {
                    continue;
                };
                let Some(AttributeValue::B(b)) = piece.get(PIECE_VALUE) else {
                    return Err(unexpected(&self.table, key, PIECE_VALUE));
                };
                pieces
                    .entry(key.to_owned())
                    .or_default()
                    .insert(sort.to_owned(), Bytes::from(b.clone().into_inner()));
            }
        }
        let none = HashMap::new();
        decoded
            .into_iter()
            .map(|(key, (mut fields, large))| {
                let of_key = pieces.get(&key).unwrap_or(&none);
                for (name, manifest) in large {
                    let value = assemble(&key, &name, &manifest, of_key)?;
                    fields.insert(name, value);
                }
                Ok((key, fields))
            })
            .collect()
    }

    /// Creates the table if it does not exist, for development: the key
    /// schema of [`crate::item`], on-demand billing, TTL on
    /// [`EXPIRES_AT`]. Waits until it is active. An existing table with
    /// another key schema is a permanent error that says what is expected.
    /// Production tables are better made by infrastructure as code (the
    /// README has the definition).
    pub async fn ensure_table(&self) -> Result<()> {
        crate::table::ensure(self.client(), &self.table).await
    }

    fn action(&self, what: &str, key: &str) -> String {
        format!("{what} key {key:?} in table {:?}", self.table)
    }
}

/// What an `UpdateItem` did.
enum Written {
    /// Written; the manifests of the values it replaced.
    Done(Vec<Manifest>),
    /// The key is past its TTL: nothing written.
    Expired,
}

enum Failure {
    /// The item would be over 400 KB.
    TooLarge,
    Other(CoreError),
}

fn too_large<E: ProvideErrorMetadata, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    code(e) == Some("ValidationException")
        && match e {
            aws_sdk_dynamodb::error::SdkError::ServiceError(s) => s
                .err()
                .message()
                .is_some_and(|m| m.contains("maximum allowed size")),
            _ => false,
        }
}

/// The manifests among an item's field attributes.
fn manifests(attributes: Option<&Item>) -> Vec<Manifest> {
    attributes
        .into_iter()
        .flatten()
        .filter(|(name, _)| field_name(name).is_some())
        .filter_map(|(_, value)| match value {
            AttributeValue::M(m) => Manifest::from_map(m),
            _ => None,
        })
        .collect()
}

fn unexpected(table: &str, key: &str, attribute: &str) -> CoreError {
    protocol(
        format!("reading key {key:?} in table {table:?}"),
        format!(
            "attribute {attribute:?} is neither binary (B) nor a piece manifest (M): \
             the item was not written by this store"
        ),
    )
}

/// Refuses keys DynamoDB cannot hold, naming them.
fn check_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for key in keys {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(CoreError::permanent(
                BACKEND,
                format!("using key {key:.64?}"),
                format!(
                    "a key of {} bytes: DynamoDB takes partition keys of 1 to {MAX_KEY_BYTES} bytes",
                    key.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The keys without repeats, in first-seen order.
fn unique<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    keys.iter().copied().filter(|k| seen.insert(*k)).collect()
}

impl fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .field("dynamo", &self.dynamo)
            .finish()
    }
}

#[async_trait]
impl KeyValueStore for DynamoStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(Some(MAX_VALUE_BYTES))
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)?;
        check_keys(items.iter().map(|i| i.key.as_str()))?;
        self.put_checked(items).await
    }

    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)?;
        check_keys(items.iter().map(|i| i.key.as_str()))?;
        self.insert(items).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        check_keys(keys.iter().copied())?;
        let items = self.payload_items(&unique(keys)).await?;
        let mut fields = self.decode(items.into_iter().collect()).await?;
        let mut answers = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            // A key asked for twice is answered twice.
            let repeated = keys[i + 1..].contains(key);
            answers.push(if repeated {
                fields.get(*key).cloned()
            } else {
                fields.remove(*key)
            });
        }
        Ok(answers)
    }

    async fn get_fields(&self, key: &str, names: &[&str]) -> Result<Option<Fields>> {
        check_keys([key])?;
        let mut attributes = HashMap::from([
            ("#k".to_owned(), KEY.to_owned()),
            ("#e".to_owned(), EXPIRES_AT.to_owned()),
        ]);
        let mut projection = vec!["#k".to_owned(), "#e".to_owned()];
        for (i, name) in unique(names).iter().enumerate() {
            attributes.insert(format!("#f{i}"), field_attribute(name));
            projection.push(format!("#f{i}"));
        }
        let answer = self
            .client()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(payload_key(key)))
            .projection_expression(projection.join(", "))
            .set_expression_attribute_names(Some(attributes))
            .consistent_read(self.dynamo.config().consistent_reads)
            .send()
            .await
            .map_err(|e| backend(self.action("reading", key), e))?;
        let Some(item) = answer.item.filter(|item| is_live(item, now_ms())) else {
            return Ok(None);
        };
        Ok(self.decode(vec![(key.to_owned(), item)]).await?.remove(key))
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        check_keys(keys.iter().copied())?;
        let found = self.stored_items(&unique(keys)).await?;
        let now = now_ms();
        let mut existed = 0;
        let mut writes = Vec::new();
        for item in &found {
            let Some(key) = string(item, KEY) else {
                continue;
            };
            if is_live(item, now) {
                existed += 1;
            }
            writes.push(Write::Delete(payload_key(key)));
            for m in manifests(Some(item)) {
                writes.extend(m.piece_keys(key).into_iter().map(Write::Delete));
            }
        }
        if !writes.is_empty() {
            self.batch().write(writes).await?;
        }
        Ok(existed)
    }
}
