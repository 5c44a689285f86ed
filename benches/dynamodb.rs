//! DynamoDB: the store against the raw `aws-sdk-dynamodb` doing the same
//! work, in the same run; and end to end, the Redis channel with this store
//! against the Redis channel with the Redis store.
//!
//! Run with `scripts/bench` (or `cargo bench --features redis,dynamodb
//! --bench dynamodb`). The endpoint is `DYNAMODB_EVENT_SOURCE_ENDPOINT` or
//! 127.0.0.1:8000 (`scripts/start-dynamodb`: DynamoDB Local), Redis
//! `REDIS_EVENT_SOURCE_ENDPOINT` or 127.0.0.1:6379.
//!
//! * `put-many/*`: 256 payloads of ~200 bytes in 3 fields; the store's
//!   `put_many` (one `UpdateItem` per key, 16 at once, which keeps the
//!   fields a put does not name) against the SDK's `BatchWriteItem` (25
//!   whole items per request, 16 requests at once: replaces items) and
//!   against the SDK's `UpdateItem` per key, 16 at once (the store's
//!   semantics, by hand), plain and with the store's condition and
//!   `ReturnValues`.
//! * `insert-many/*`: the same 256 payloads; the store's `insert_many`
//!   (the producer's write of new keys: whole items, `BatchWriteItem`, 25
//!   per request, 16 at once) against the SDK's `BatchWriteItem` as above.
//! * `get-many/*`: the same 256 keys; the store's `get_many` against the
//!   SDK's `BatchGetItem` (100 keys per request, consistent reads).
//! * `end-to-end/*`: 2,000 events produced and consumed (group, batch 256,
//!   concurrency 256) on the Redis channel, payloads in DynamoDB or in
//!   Redis.

mod stores;
mod workload;

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use event_backbone::dynamodb::item::{field_attribute, KEY, PAYLOAD, SORT};
use event_backbone::dynamodb::sdk::primitives::Blob;
use event_backbone::dynamodb::sdk::types::{
    AttributeValue, KeysAndAttributes, PutRequest, WriteRequest,
};
use event_backbone::dynamodb::{Dynamo, DynamoConfig, DynamoStore, ENDPOINT_VAR};
use event_backbone::{KeyValueStore, PutItem};
use futures_util::{stream, StreamExt};
use stores::{items, sampled, timed, Write, BATCH};
use workload::unique;

const CONCURRENCY: usize = 16;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn dynamo(table: &str) -> Dynamo {
    let endpoint =
        std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let mut config = DynamoConfig::new(table)
        .unwrap()
        .endpoint(&endpoint)
        .unwrap()
        .concurrency(CONCURRENCY);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        config = config.credentials("local", "local").region("us-east-1");
    }
    Dynamo::connect(config)
        .await
        .expect("a DynamoDB endpoint (scripts/start-dynamodb)")
}

fn key_of(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (KEY.to_owned(), AttributeValue::S(key.to_owned())),
        (SORT.to_owned(), AttributeValue::S(PAYLOAD.to_owned())),
    ])
}

/// The same items written whole by hand: `BatchWriteItem`, 25 per request.
async fn raw_batch_write(dynamo: &Dynamo, table: &str, items: &[PutItem]) {
    let requests: Vec<WriteRequest> = items
        .iter()
        .map(|item| {
            let mut attributes = key_of(&item.key);
            for (name, bytes) in &item.fields {
                attributes.insert(
                    field_attribute(name),
                    AttributeValue::B(Blob::new(bytes.to_vec())),
                );
            }
            let put = PutRequest::builder()
                .set_item(Some(attributes))
                .build()
                .unwrap();
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    let chunks: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    let sends = chunks.into_iter().map(|chunk| async move {
        let answer = dynamo
            .client()
            .batch_write_item()
            .request_items(table, chunk)
            .send()
            .await
            .unwrap();
        assert!(answer.unprocessed_items.is_none_or(|u| u.is_empty()));
    });
    stream::iter(sends)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// The same items merged by hand: `UpdateItem` per key, `SET` of each
/// field, 16 at once.
async fn raw_update(dynamo: &Dynamo, table: &str, items: &[PutItem], as_the_store: bool) {
    let sends: Vec<_> = items
        .iter()
        .map(|item| raw_update_one(dynamo, table, item, as_the_store))
        .collect();
    stream::iter(sends)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// `as_the_store`: with the store's condition (the key is new, has no TTL
/// or has not expired) and `ReturnValues=UPDATED_OLD` (to find the pieces
/// of replaced values).
async fn raw_update_one(dynamo: &Dynamo, table: &str, item: &PutItem, as_the_store: bool) {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut sets = Vec::new();
    for (i, (name, bytes)) in item.fields.iter().enumerate() {
        names.insert(format!("#f{i}"), field_attribute(name));
        values.insert(
            format!(":v{i}"),
            AttributeValue::B(Blob::new(bytes.to_vec())),
        );
        sets.push(format!("#f{i} = :v{i}"));
    }
    let mut request = dynamo
        .client()
        .update_item()
        .table_name(table)
        .set_key(Some(key_of(&item.key)))
        .update_expression(format!("SET {}", sets.join(", ")));
    if as_the_store {
        names.insert("#e".into(), "expires_at".into());
        values.insert(":now".into(), AttributeValue::N("1".into()));
        request = request
            .condition_expression("attribute_not_exists(#e) OR #e > :now")
            .return_values(event_backbone::dynamodb::sdk::types::ReturnValue::UpdatedOld);
    }
    request
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await
        .unwrap();
}

/// The same read by hand: `BatchGetItem`, 100 keys per request,
/// consistent; returns the binary attributes read.
async fn raw_batch_get(dynamo: &Dynamo, table: &str, keys: &[&str]) -> usize {
    let chunks: Vec<Vec<HashMap<String, AttributeValue>>> = keys
        .chunks(100)
        .map(|c| c.iter().map(|k| key_of(k)).collect())
        .collect();
    let reads = chunks.into_iter().map(|chunk| async move {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(chunk))
            .consistent_read(true)
            .build()
            .unwrap();
        let answer = dynamo
            .client()
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .unwrap();
        assert!(answer.unprocessed_keys.is_none_or(|u| u.is_empty()));
        answer
            .responses
            .unwrap_or_default()
            .remove(table)
            .unwrap_or_default()
            .iter()
            .map(|item| item.values().filter(|v| v.is_b()).count())
            .sum::<usize>()
    });
    stream::iter(reads)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<usize>>()
        .await
        .into_iter()
        .sum()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let table = unique("store").replace("test.", "eb-bench-");
    let raw_table = unique("raw").replace("test.", "eb-bench-");
    let dynamo = rt.block_on(dynamo(&table));
    let store = Arc::new(DynamoStore::new(&dynamo));
    let raw_store = DynamoStore::with_table(&dynamo, &raw_table).unwrap();
    rt.block_on(async {
        store.ensure_table().await.unwrap();
        raw_store.ensure_table().await.unwrap();
    });
    let batch = Arc::new(items());
    // DynamoDB Local is a JVM: warm its JIT up on every request shape
    // first, or whichever runs first pays for it.
    rt.block_on(async {
        let keys: Vec<&str> = batch.iter().map(|i| i.key.as_str()).collect();
        for _ in 0..20 {
            store.put_many(&batch).await.unwrap();
            store.insert_many(&batch).await.unwrap();
            raw_batch_write(&dynamo, &raw_table, &batch).await;
            raw_update(&dynamo, &raw_table, &batch, true).await;
            store.get_many(&keys).await.unwrap();
            raw_batch_get(&dynamo, &raw_table, &keys).await;
        }
    });

    let mut group = sampled(c, "put-many", 20, BATCH);
    stores::store_write(&mut group, &rt, &store, &batch, Write::Put);
    group.bench_function("raw-batch-write-item", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || {
                let (dynamo, t, batch) = (dynamo.clone(), raw_table.clone(), batch.clone());
                Box::pin(async move { raw_batch_write(&dynamo, &t, &batch).await })
            })
        })
    });
    for (name, as_the_store) in [
        ("raw-update-item", false),
        ("raw-update-item-as-the-store", true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(&rt, iters, || {
                    let (dynamo, t, batch) = (dynamo.clone(), raw_table.clone(), batch.clone());
                    Box::pin(async move { raw_update(&dynamo, &t, &batch, as_the_store).await })
                })
            })
        });
    }
    group.finish();

    let mut group = sampled(c, "insert-many", 20, BATCH);
    stores::store_write(&mut group, &rt, &store, &batch, Write::Insert);
    group.bench_function("raw-batch-write-item", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || {
                let (dynamo, t, batch) = (dynamo.clone(), raw_table.clone(), batch.clone());
                Box::pin(async move { raw_batch_write(&dynamo, &t, &batch).await })
            })
        })
    });
    group.finish();

    let keys: Arc<Vec<String>> = Arc::new(batch.iter().map(|i| i.key.clone()).collect());
    let mut group = sampled(c, "get-many", 20, BATCH);
    stores::store_get_many(&mut group, &rt, &store, &keys);
    group.bench_function("raw-batch-get-item", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || {
                let (dynamo, t, keys) = (dynamo.clone(), raw_table.clone(), keys.clone());
                Box::pin(async move {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    assert_eq!(raw_batch_get(&dynamo, &t, &keys).await, 3 * BATCH);
                })
            })
        })
    });
    group.finish();

    stores::end_to_end_on_redis(c, &rt, "dynamodb", store.clone() as Arc<dyn KeyValueStore>);
    rt.block_on(async {
        for t in [&table, &raw_table] {
            let _ = dynamo.client().delete_table().table_name(t).send().await;
        }
    });
}

criterion_group!(dynamodb_benches, benches);

fn main() {
    dynamodb_benches();
    Criterion::default().configure_from_args().final_summary();
}
