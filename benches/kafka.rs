//! Kafka: the producer and the consumer against a raw rdkafka baseline
//! writing and reading the same records, in the same run.
//!
//! Run with `scripts/bench` (or `cargo bench --features kafka --bench kafka`).
//! The brokers are `KAFKA_EVENT_SOURCE_BROKERS` or 127.0.0.1:9092. Payloads
//! go to the in-memory store, so the rows compare the Kafka part.
//!
//! * `produce/event-backbone`: 10,000 events of ~200 bytes in 3 parameters
//!   through one `Producer` (at most 512 sends in flight).
//! * `produce/raw-rdkafka`: 10,000 records with the same headers, sent
//!   through a `FutureProducer`, at most 512 in flight; each value is the
//!   event's three parameters, made and encoded the same way, after bytes
//!   of the metadata's size (what a user of rdkafka alone would send).
//! * `end-to-end/*`: produce 10,000, then read them in a group (the raw
//!   baseline: a `StreamConsumer`, one commit at the end; event-backbone: a
//!   consumer that fetches payloads, handles and acknowledges each).
//!
//! Each iteration writes to a topic of its own and deletes it afterwards,
//! untimed, so that no iteration reads a store the others filled. Start
//! tansu with `scripts/start-kafka`: without the header index the script
//! adds, tansu's fetches scan every header in its store for each record,
//! and the end-to-end rows would measure that scan rather than the clients.

mod kafka_workload;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::memory::MemoryStore;
use kafka_workload::*;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let value_len = rt.block_on(metadata_len());

    let mut group = c.benchmark_group("kafka-produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "produce", async |clients, uri, _| {
                let producer = clients.producer(uri, &Arc::new(MemoryStore::new()));
                produce_with_backbone(&producer, EVENTS).await;
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-rdkafka", EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "raw-produce", async |clients, _, topic| {
                produce_raw(&clients.raw, topic, value_len, EVENTS).await;
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("kafka-end-to-end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(E2E_EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", E2E_EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "e2e", async |clients, uri, _| {
                let store = Arc::new(MemoryStore::new());
                let producer = clients.producer(uri, &store);
                produce_with_backbone(&producer, E2E_EVENTS).await;
                consume_with_backbone(&clients.channel, uri, &store).await;
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-rdkafka", E2E_EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "raw-e2e", async |clients, _, topic| {
                produce_raw(&clients.raw, topic, value_len, E2E_EVENTS).await;
                consume_raw(topic).await;
            })
        })
    });
    group.finish();
}

criterion_group!(kafka_benches, benches);

fn main() {
    kafka_benches();
    Criterion::default().configure_from_args().final_summary();
}
