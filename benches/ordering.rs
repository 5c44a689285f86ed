//! Order per key with concurrency: a consumer with `Ordering::PerKey` and
//! concurrency 64 against the same consumer with concurrency 1 (the only
//! way to keep order before), in the same run, on the in-memory backend so
//! that the rows compare the consumer, not a server.
//!
//! Run with `cargo bench --bench ordering`.
//!
//! Each iteration appends 500 messages over 100 partition keys (5 per key)
//! and consumes them with handlers that take 5 ms each:
//!
//! * `ordering/concurrency-1`: one message at a time (stream order).
//! * `ordering/per-key-64`: `.ordering(Ordering::PerKey).concurrency(64)`.
//! * `ordering/unordered-64`: `.concurrency(64)`, no order: the ceiling.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::{Consumer, ConsumerContext, HandlerError, Ordering, Producer};

const KEYS: usize = 100;
const MESSAGES: usize = 500;
const HANDLER: Duration = Duration::from_millis(5);

/// A stream holding the messages.
async fn stream() -> (Arc<MemoryChannel>, Arc<MemoryStore>) {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(MemoryStore::new());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("ordering")
        .build()
        .expect("a producer");
    for i in 0..MESSAGES {
        producer
            .message("step")
            .partition_key(format!("key-{}", i % KEYS))
            .segment("i", &(i as u32))
            .expect("a segment")
            .send()
            .await
            .expect("sent");
    }
    (channel, store)
}

/// Consumes every message; returns when all are handled.
async fn consume(
    (channel, store): (Arc<MemoryChannel>, Arc<MemoryStore>),
    concurrency: usize,
    ordering: Ordering,
) {
    let stats = Consumer::builder()
        .channel(channel)
        .store(store)
        .uri("ordering")
        .concurrency(concurrency)
        .batch_size(64)
        .ordering(ordering)
        .stop_after(MESSAGES as u64)
        .subscribe_fn(|_ctx: ConsumerContext| async {
            tokio::time::sleep(HANDLER).await;
            Ok::<(), HandlerError>(())
        })
        .expect("a consumer")
        .completion()
        .await
        .expect("consumed");
    assert_eq!(stats.handled, MESSAGES as u64);
}

/// The time of `iters` consumptions (the appends before each untimed).
fn timed(
    runtime: &tokio::runtime::Runtime,
    iters: u64,
    concurrency: usize,
    ordering: Ordering,
) -> Duration {
    runtime.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let appended = stream().await;
            let start = std::time::Instant::now();
            consume(appended, concurrency, ordering).await;
            total += start.elapsed();
        }
        total
    })
}

fn ordering(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("ordering");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("concurrency-1", |b| {
        b.iter_custom(|iters| timed(&runtime, iters, 1, Ordering::None))
    });
    group.bench_function("per-key-64", |b| {
        b.iter_custom(|iters| timed(&runtime, iters, 64, Ordering::PerKey))
    });
    group.bench_function("unordered-64", |b| {
        b.iter_custom(|iters| timed(&runtime, iters, 64, Ordering::None))
    });
    group.finish();
}

criterion_group!(benches, ordering);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
