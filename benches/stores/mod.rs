//! What the store benchmarks (MongoDB, DynamoDB, ...) share: the batch of
//! payloads, the timing loop, criterion's groups and the end-to-end run on
//! a channel with a store.

#![allow(dead_code)] // each benchmark program uses a part

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
use event_backbone::{
    Consumer, ConsumerContext, Fields, HandlerError, KeyValueStore, Producer, PutItem,
    StreamChannel,
};

use crate::workload::{payload, unique};

/// Payloads per batch.
pub const BATCH: usize = 256;
/// Events per end-to-end run.
pub const E2E_EVENTS: usize = 2_000;

/// The batch: 256 keys, three fields of ~80, ~80 and 8 bytes.
pub fn items() -> Vec<PutItem> {
    (0..BATCH)
        .map(|i| {
            let p = payload(i);
            let mut fields = Fields::new();
            fields.insert("customer".into(), p.customer.into_bytes().into());
            fields.insert("product".into(), p.product.into_bytes().into());
            fields.insert("quantity".into(), p.quantity.to_le_bytes().to_vec().into());
            PutItem {
                key: format!("bench:order_placed:v0:normal:{i:08}"),
                fields,
                ttl: None,
            }
        })
        .collect()
}

pub fn timed(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    mut run: impl FnMut() -> futures_util::future::BoxFuture<'static, ()>,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            run().await;
        }
        start.elapsed()
    })
}

/// Produces and consumes 2,000 events on the Redis channel, payloads in
/// `store`.
pub async fn end_to_end(channel: Arc<dyn StreamChannel>, store: Arc<dyn KeyValueStore>) {
    let uri = unique("store-e2e");
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    let consumer = Consumer::builder()
        .channel(channel)
        .store(store)
        .uri(&uri)
        .batch_size(256)
        .concurrency(256)
        .block(Duration::from_millis(50))
        .stop_after(E2E_EVENTS as u64)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let _: String = ctx.segment("customer")?;
            Ok::<(), HandlerError>(())
        })
        .unwrap();
    let sends = (0..E2E_EVENTS).map(|i| {
        let p = payload(i);
        let producer = &producer;
        async move {
            producer
                .message("order_placed")
                .segment("customer", &p.customer)?
                .segment("product", &p.product)?
                .segment("quantity", &p.quantity)?
                .send()
                .await
        }
    });
    for r in futures_util::future::join_all(sends).await {
        r.unwrap();
    }
    let stats = consumer.completion().await.unwrap();
    assert_eq!(stats.handled, E2E_EVENTS as u64);
}

/// A group of 10 samples over `seconds`, counting `elements` per iteration.
pub fn sampled<'c>(
    c: &'c mut Criterion,
    name: &str,
    seconds: u64,
    elements: usize,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(seconds));
    group.throughput(Throughput::Elements(elements as u64));
    group
}

/// The `end-to-end` group: 2,000 events on the Redis channel with their
/// payloads in `store` (`redis-channel-{name}-store`), and with them in the
/// Redis store (`redis-channel-redis-store`), in the same run.
pub fn end_to_end_on_redis(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: Arc<dyn KeyValueStore>,
) {
    let redis = rt.block_on(async {
        Redis::connect(RedisConfig::from_url(&crate::workload::url()).unwrap())
            .await
            .expect("a Redis server (scripts/start-redis)")
    });
    let channel: Arc<dyn StreamChannel> = Arc::new(RedisStreamChannel::new(&redis));
    let redis_store: Arc<dyn KeyValueStore> = Arc::new(RedisHashStore::new(&redis));
    let mut group = sampled(c, "end-to-end", 30, E2E_EVENTS);
    for (label, store) in [
        (format!("redis-channel-{name}-store"), store),
        ("redis-channel-redis-store".to_owned(), redis_store),
    ] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                timed(rt, iters, || {
                    let (channel, store) = (channel.clone(), store.clone());
                    Box::pin(end_to_end(channel, store))
                })
            })
        });
    }
    group.finish();
}

/// A criterion group of this module's kind.
pub type Group<'c> = criterion::BenchmarkGroup<'c, criterion::measurement::WallTime>;

/// Which write a store's row times.
#[derive(Clone, Copy)]
pub enum Write {
    /// `put_many`: the merging write.
    Put,
    /// `insert_many`: the producer's write of new keys (the same keys each
    /// time: for stores whose insert replaces).
    Insert,
}

/// The store's row of a `put-many` or `insert-many` group: that write of
/// `batch`.
pub fn store_write<S: KeyValueStore + ?Sized>(
    group: &mut Group<'_>,
    rt: &tokio::runtime::Runtime,
    store: &Arc<S>,
    batch: &Arc<Vec<PutItem>>,
    write: Write,
) {
    group.bench_function("event-backbone", |b| {
        b.iter_custom(|iters| {
            timed(rt, iters, || {
                let (store, batch) = (store.clone(), batch.clone());
                Box::pin(async move {
                    match write {
                        Write::Put => store.put_many(&batch).await.unwrap(),
                        Write::Insert => store.insert_many(&batch).await.unwrap(),
                    }
                })
            })
        })
    });
}

/// The store's row of a `get-many` group: `get_many` of `keys`, every one
/// found.
pub fn store_get_many<S: KeyValueStore + ?Sized>(
    group: &mut Group<'_>,
    rt: &tokio::runtime::Runtime,
    store: &Arc<S>,
    keys: &Arc<Vec<String>>,
) {
    group.bench_function("event-backbone", |b| {
        b.iter_custom(|iters| {
            timed(rt, iters, || {
                let (store, keys) = (store.clone(), keys.clone());
                Box::pin(async move {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let got = store.get_many(&keys).await.unwrap();
                    assert!(got.iter().all(Option::is_some));
                })
            })
        })
    });
}
