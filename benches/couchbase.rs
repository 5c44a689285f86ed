//! Couchbase: the store against the raw `couchbase` SDK doing the same
//! work, in the same run; and end to end, the Redis channel with this store
//! against the Redis channel with the Redis store.
//!
//! Run with `scripts/bench` (or `cargo bench --features redis,couchbase
//! --bench couchbase`). The server is `COUCHBASE_EVENT_SOURCE_CONNSTR` (with
//! `_USER`, `_PASS`, `_BUCKET`) or the project's KV test server on
//! 127.0.0.1:11210 (`scripts/start-couchbase`): the server is ours, so
//! against it the figures compare the client side only.
//!
//! * `put-many/*`: 256 payloads of ~200 bytes in 3 fields. The store's
//!   `put_many` (per key a get, then an insert or a CAS replace, 64 keys at
//!   once) against the SDK sending the same documents as 256 upserts, and
//!   as the store's get-then-replace written by hand, 64 at once.
//! * `insert-many/*`: the same 256 payloads; the store's `insert_many`
//!   (the producer's write of new keys: an upsert of the whole document
//!   per key, 64 at once) against the SDK's 256 upserts as above.
//! * `get-many/*`: the same 256 keys; the store's `get_many` against 256
//!   SDK gets, 64 at once.
//! * `end-to-end/*`: 2,000 events produced and consumed on the Redis
//!   channel, payloads in Couchbase or in Redis.

mod stores;
mod workload;

use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use event_backbone::couchbase::document::{Payload, BINARY_FLAGS};
use event_backbone::couchbase::sdk::options::kv_options::ReplaceOptions;
use event_backbone::couchbase::{Couchbase, CouchbaseConfig, CouchbaseStore, CONNSTR_VAR};
use event_backbone::{KeyValueStore, PutItem};
use futures_util::{StreamExt, TryStreamExt};
use stores::{items, sampled, timed, Write, BATCH};

/// Operations in flight, the store's default concurrency.
const IN_FLIGHT: usize = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn couchbase() -> Couchbase {
    let config = match std::env::var_os(CONNSTR_VAR) {
        Some(_) => CouchbaseConfig::from_env().unwrap(),
        None => CouchbaseConfig::from_url("couchbase://127.0.0.1")
            .unwrap()
            .credentials("event-backbone", "event-backbone-test")
            .bucket("event-backbone"),
    };
    Couchbase::connect(config.collection("app", "payloads"))
        .await
        .expect("a Couchbase KV server (scripts/start-couchbase)")
}

fn document(item: &PutItem) -> Vec<u8> {
    Payload {
        expires_at_ms: None,
        fields: item.fields.clone(),
    }
    .encode()
}

/// The same documents, by hand: an upsert each (`cas`: a get, then a
/// replace with its CAS, as the store does), `IN_FLIGHT` at once.
async fn raw_put_many(couchbase: &Couchbase, items: &[PutItem], prefix: &str, cas: bool) {
    // Owned items and keys: the futures borrow nothing from the stream.
    let work: Vec<(String, Vec<u8>)> = items
        .iter()
        .map(|item| (format!("{prefix}{}", item.key), document(item)))
        .collect();
    let collection = couchbase.collection().clone();
    futures_util::stream::iter(work)
        .map(move |(key, bytes)| {
            let collection = collection.clone();
            async move {
                if cas {
                    let current = collection.get(&key, None).await?;
                    collection
                        .replace_raw(
                            &key,
                            &bytes,
                            BINARY_FLAGS,
                            ReplaceOptions::new().cas(current.cas()),
                        )
                        .await
                } else {
                    collection
                        .upsert_raw(&key, &bytes, BINARY_FLAGS, None)
                        .await
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
        .unwrap();
}

/// The same reads, by hand: a get each, `IN_FLIGHT` at once.
async fn raw_get_many(couchbase: &Couchbase, keys: &[String]) -> usize {
    let collection = couchbase.collection().clone();
    let docs: Vec<Vec<u8>> = futures_util::stream::iter(keys.to_vec())
        .map(move |key| {
            let collection = collection.clone();
            async move {
                collection
                    .get(&key, None)
                    .await
                    .map(|r| r.content_as_raw().0.to_vec())
            }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
        .unwrap();
    docs.iter()
        .map(|d| Payload::decode(d).unwrap().fields.len())
        .sum()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let couchbase = rt.block_on(couchbase());
    let store = Arc::new(CouchbaseStore::new(&couchbase));
    let batch = Arc::new(items());
    let raw_prefix = format!("raw-{}", workload::unique("bench"));
    rt.block_on(store.put_many(&batch)).unwrap();
    rt.block_on(raw_put_many(&couchbase, &batch, &raw_prefix, false));

    let mut group = sampled(c, "put-many", 20, BATCH);
    stores::store_write(&mut group, &rt, &store, &batch, Write::Put);
    for (name, cas) in [
        ("raw-couchbase-upsert", false),
        ("raw-couchbase-get-replace", true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(&rt, iters, || {
                    let (couchbase, batch, prefix) =
                        (couchbase.clone(), batch.clone(), raw_prefix.clone());
                    Box::pin(async move { raw_put_many(&couchbase, &batch, &prefix, cas).await })
                })
            })
        });
    }
    group.finish();

    let mut group = sampled(c, "insert-many", 20, BATCH);
    stores::store_write(&mut group, &rt, &store, &batch, Write::Insert);
    group.bench_function("raw-couchbase-upsert", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || {
                let (couchbase, batch, prefix) =
                    (couchbase.clone(), batch.clone(), raw_prefix.clone());
                Box::pin(async move { raw_put_many(&couchbase, &batch, &prefix, false).await })
            })
        })
    });
    group.finish();

    let keys: Arc<Vec<String>> = Arc::new(batch.iter().map(|i| i.key.clone()).collect());
    let raw_keys: Arc<Vec<String>> = Arc::new(
        batch
            .iter()
            .map(|i| format!("{raw_prefix}{}", i.key))
            .collect(),
    );
    let mut group = sampled(c, "get-many", 20, BATCH);
    stores::store_get_many(&mut group, &rt, &store, &keys);
    group.bench_function("raw-couchbase", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || {
                let (couchbase, keys) = (couchbase.clone(), raw_keys.clone());
                Box::pin(async move {
                    assert_eq!(raw_get_many(&couchbase, &keys).await, 3 * BATCH);
                })
            })
        })
    });
    group.finish();

    stores::end_to_end_on_redis(c, &rt, "couchbase", store.clone() as Arc<dyn KeyValueStore>);
}

criterion_group!(couchbase_benches, benches);

fn main() {
    couchbase_benches();
    Criterion::default().configure_from_args().final_summary();
}
