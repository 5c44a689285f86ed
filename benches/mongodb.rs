//! MongoDB: the store against the raw `mongodb` driver doing the same work,
//! in the same run; and end to end, the Redis channel with this store
//! against the Redis channel with the Redis store.
//!
//! Run with `scripts/bench` (or `cargo bench --features redis,mongodb
//! --bench mongodb`). The server is `MONGODB_EVENT_SOURCE_URI` or
//! 127.0.0.1:27017 (`scripts/start-mongodb`: SecantusDB), Redis
//! `REDIS_EVENT_SOURCE_ENDPOINT` or 127.0.0.1:6379.
//!
//! * `put-many/*`: 256 payloads of ~200 bytes in 3 fields; the store's
//!   `put_many` (one `update` command of pipeline upserts) against the
//!   driver sending one `update` command of plain `$set` upserts, and of the
//!   store's pipeline upserts written by hand.
//! * `insert-many/*`: 256 new keys each time (fresh names, made outside
//!   the timing); the store's `insert_many` (the producer's write: one
//!   unordered `insert` of whole documents) against the driver's unordered
//!   `insert` of the same documents.
//! * `get-many/*`: the same 256 keys; the store's `get_many` (one `find`
//!   with `$in`, expired documents filtered) against the driver's `find`
//!   with `$in`.
//! * `end-to-end/*`: 2,000 events produced and consumed (group, batch 256,
//!   concurrency 256) on the Redis channel, payloads in MongoDB or in Redis.

mod stores;
mod workload;

use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use event_backbone::mongodb::driver::bson::spec::BinarySubtype;
use event_backbone::mongodb::driver::bson::{doc, Binary, Bson, Document};
use event_backbone::mongodb::{Mongo, MongoConfig, MongoStore, URI_VAR};
use event_backbone::{KeyValueStore, PutItem};
use futures_util::TryStreamExt;
use stores::{items, sampled, timed, Write, BATCH};
use workload::unique;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn mongo() -> Mongo {
    let config = match std::env::var_os(URI_VAR) {
        Some(_) => MongoConfig::from_env().unwrap(),
        None => MongoConfig::from_url("mongodb://127.0.0.1:27017/?directConnection=true").unwrap(),
    };
    Mongo::connect(config.database("event_backbone_bench").unwrap())
        .await
        .expect("a MongoDB server (scripts/start-mongodb)")
}

/// The same upserts, by hand: one `update` command, `$set` of each field
/// (`pipeline`: the store's form, an aggregation-pipeline update that
/// resets an expired document first).
async fn raw_put_many(mongo: &Mongo, collection: &str, items: &[PutItem], pipeline: bool) {
    let now = event_backbone::mongodb::driver::bson::DateTime::now();
    let updates: Vec<Document> = items
        .iter()
        .map(|item| {
            let mut set = Document::new();
            for (name, bytes) in &item.fields {
                let value = Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: bytes.to_vec(),
                };
                if pipeline {
                    set.insert(format!("f.{name}"), doc! { "$literal": value });
                } else {
                    set.insert(format!("f.{name}"), value);
                }
            }
            if !pipeline {
                return doc! { "q": { "_id": &item.key }, "u": { "$set": set }, "upsert": true };
            }
            let expired = doc! { "$and": [
                { "$ne": [ { "$type": "$expires_at" }, "missing" ] },
                { "$ne": [ "$expires_at", Bson::Null ] },
                { "$lte": [ "$expires_at", now ] },
            ]};
            let u = vec![
                doc! { "$replaceWith": { "$cond": [ expired, { "_id": "$_id" }, "$$ROOT" ] } },
                doc! { "$set": set },
            ];
            doc! { "q": { "_id": &item.key }, "u": u, "upsert": true }
        })
        .collect();
    let reply = mongo
        .database()
        .run_command(doc! { "update": collection, "updates": updates, "ordered": true })
        .await
        .unwrap();
    assert!(reply.get("writeErrors").is_none(), "{reply}");
}

/// The batch under fresh key names.
fn fresh(batch: &[PutItem]) -> Vec<PutItem> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    batch
        .iter()
        .map(|item| PutItem {
            key: format!("{}:{run}", item.key),
            ..item.clone()
        })
        .collect()
}

/// New documents by hand: one unordered `insert`.
async fn raw_insert_many(mongo: &Mongo, collection: &str, items: &[PutItem]) {
    let documents: Vec<Document> = items
        .iter()
        .map(|item| {
            let mut f = Document::new();
            for (name, bytes) in &item.fields {
                f.insert(
                    name.clone(),
                    Binary {
                        subtype: BinarySubtype::Generic,
                        bytes: bytes.to_vec(),
                    },
                );
            }
            doc! { "_id": &item.key, "f": f }
        })
        .collect();
    let reply = mongo
        .database()
        .run_command(doc! { "insert": collection, "documents": documents, "ordered": false })
        .await
        .unwrap();
    assert!(reply.get("writeErrors").is_none(), "{reply}");
}

/// Runs `write` on `iters` fresh batches, timing the writes only, and
/// deletes each batch from `collection` after (an in-memory server would
/// fill up).
fn timed_fresh<F>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    batch: &[PutItem],
    mongo: &Mongo,
    collection: &str,
    write: impl Fn(Vec<PutItem>) -> F,
) -> std::time::Duration
where
    F: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..iters {
            let items = fresh(batch);
            let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
            let start = std::time::Instant::now();
            write(items).await;
            total += start.elapsed();
            mongo
                .database()
                .collection::<Document>(collection)
                .delete_many(doc! { "_id": { "$in": keys } })
                .await
                .unwrap();
        }
        total
    })
}

/// The same read, by hand: one `find` with `$in`, documents collected.
async fn raw_get_many(mongo: &Mongo, collection: &str, keys: &[&str]) -> usize {
    let docs: Vec<Document> = mongo
        .database()
        .collection::<Document>(collection)
        .find(doc! { "_id": { "$in": keys } })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let fields: usize = docs
        .iter()
        .filter_map(|d| d.get_document("f").ok())
        .map(|f| f.values().filter(|v| matches!(v, Bson::Binary(_))).count())
        .sum();
    fields
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let mongo = rt.block_on(mongo());
    let collection = unique("store").replace('.', "_");
    let store = Arc::new(MongoStore::with_collection(&mongo, &collection).unwrap());
    let raw_collection = unique("raw").replace('.', "_");
    let batch = Arc::new(items());
    rt.block_on(store.put_many(&batch)).unwrap();
    rt.block_on(raw_put_many(&mongo, &raw_collection, &batch, false));
    // The same TTL index as the store's, so that both maintain one.
    rt.block_on(async {
        mongo
            .database()
            .run_command(doc! {
                "createIndexes": &raw_collection,
                "indexes": [{ "key": { "expires_at": 1 }, "name": "expires_at_ttl", "expireAfterSeconds": 0 }],
            })
            .await
            .unwrap();
    });

    let mut group = sampled(c, "put-many", 20, BATCH);
    stores::store_write(&mut group, &rt, &store, &batch, Write::Put);
    for (name, pipeline) in [("raw-mongodb", false), ("raw-mongodb-pipeline", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(&rt, iters, || {
                    let (mongo, c, batch) = (mongo.clone(), raw_collection.clone(), batch.clone());
                    Box::pin(async move { raw_put_many(&mongo, &c, &batch, pipeline).await })
                })
            })
        });
    }
    group.finish();

    let mut group = sampled(c, "insert-many", 20, BATCH);
    group.bench_function("event-backbone", |b| {
        b.iter_custom(|iters| {
            timed_fresh(&rt, iters, &batch, &mongo, &collection, |items| {
                let store = store.clone();
                async move { store.insert_many(&items).await.unwrap() }
            })
        })
    });
    group.bench_function("raw-mongodb", |b| {
        b.iter_custom(|iters| {
            timed_fresh(&rt, iters, &batch, &mongo, &raw_collection, |items| {
                let (mongo, c) = (mongo.clone(), raw_collection.clone());
                async move { raw_insert_many(&mongo, &c, &items).await }
            })
        })
    });
    group.finish();

    let keys: Arc<Vec<String>> = Arc::new(batch.iter().map(|i| i.key.clone()).collect());
    let mut group = sampled(c, "get-many", 20, BATCH);
    stores::store_get_many(&mut group, &rt, &store, &keys);
    group.bench_function("raw-mongodb", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || {
                let (mongo, c, keys) = (mongo.clone(), raw_collection.clone(), keys.clone());
                Box::pin(async move {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    assert_eq!(raw_get_many(&mongo, &c, &keys).await, 3 * BATCH);
                })
            })
        })
    });
    group.finish();

    stores::end_to_end_on_redis(c, &rt, "mongodb", store.clone() as Arc<dyn KeyValueStore>);
    rt.block_on(async {
        for c in [&collection, &raw_collection] {
            let _ = mongo.database().collection::<Document>(c).drop().await;
        }
    });
}

criterion_group!(mongodb_benches, benches);

fn main() {
    mongodb_benches();
    Criterion::default().configure_from_args().final_summary();
}
