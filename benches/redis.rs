//! Redis: the producer and the consumer against a raw redis-rs baseline that
//! issues the same commands with the same pipelining, in the same run.
//!
//! Run with `scripts/bench` (or `cargo bench --features redis --bench redis`).
//! The server is `REDIS_EVENT_SOURCE_ENDPOINT` or 127.0.0.1:6379.
//!
//! * `produce/event-backbone`: 10,000 events of ~200 bytes in 3 parameters,
//!   sent concurrently through one `Producer` (batches of up to 256: every
//!   HSET then every XADD in one pipeline; two pipelines in flight).
//! * `produce/event-backbone-window-512`: the same, with at most 512 sends in
//!   flight (enough for two full batches).
//! * `produce/raw-redis-rs-N-in-flight`: the same 10,000 HSET + XADD (same
//!   fields, same sizes) in pipelines of 256, one at a time (N = 1) or two
//!   at a time (N = 2, as the producer does).
//! * `end-to-end/*`: produce 10,000, then consume them in a group (read,
//!   fetch payloads, handle, ack) until all are acknowledged.
//! * after criterion: p50/p99 latency from send to handler at a fixed rate.

mod workload;

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::redis::{Redis, RedisBuilderExt};
use event_backbone::{Consumer, ConsumerContext, HandlerError, Producer};
use workload::*;

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let (redis, mut raw) = rt.block_on(connect());
    let blob = rt.block_on(metadata_blob(&redis, &mut raw));

    let mut group = c.benchmark_group("produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, window) in [
        ("event-backbone", None),
        ("event-backbone-window-512", Some(512)),
    ] {
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let stream = unique("produce");
                        let producer = producer(&redis, &stream);
                        let start = Instant::now();
                        produce_with_backbone(&producer, window).await;
                        total += start.elapsed();
                        cleanup(&mut raw, &stream).await;
                    }
                    total
                })
            })
        });
    }
    for in_flight in [1, 2] {
        let name = format!("raw-redis-rs-{in_flight}-in-flight");
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let stream = unique("raw-produce");
                        let start = Instant::now();
                        produce_raw(&mut raw, &stream, &blob, in_flight).await;
                        total += start.elapsed();
                        cleanup(&mut raw, &stream).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("end-to-end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("e2e");
                    let producer = producer(&redis, &stream);
                    let start = Instant::now();
                    let consuming = consume_with_backbone(&redis, &stream);
                    let (_, ()) = tokio::join!(produce_with_backbone(&producer, None), consuming);
                    total += start.elapsed();
                    cleanup(&mut raw, &stream).await;
                }
                total
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-redis-rs", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += raw_end_to_end(&mut raw, &blob, "raw-e2e").await;
                }
                total
            })
        })
    });
    group.finish();

    rt.block_on(latency(&redis, &mut raw));
}

/// Latency from send to handler at a fixed rate, with the consumer running.
async fn latency(redis: &Redis, raw: &mut redis::aio::MultiplexedConnection) {
    const RATE: u64 = 2_000; // messages per second
    const COUNT: usize = 6_000;
    let stream = unique("latency");
    let producer = Producer::builder()
        .redis(redis)
        .uri(&stream)
        .build()
        .unwrap();
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(COUNT)));
    let s = samples.clone();
    let consumer = Consumer::builder()
        .redis(redis)
        .uri(&stream)
        .group("latency")
        .group_start(event_backbone::GroupStart::Beginning)
        .stop_after(COUNT as u64)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let s = s.clone();
            async move {
                let sent: u128 = ctx.segment("sent_us")?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_micros();
                s.lock().unwrap().push(now.saturating_sub(sent) as u64);
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..COUNT {
        tick.tick().await;
        let p = producer.clone();
        sends.spawn(async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros();
            p.message("tick")
                .segment("i", &i)?
                .segment("sent_us", &now)?
                .send()
                .await
        });
    }
    while let Some(r) = sends.join_next().await {
        r.unwrap().unwrap();
    }
    consumer.completion().await.unwrap();
    let mut v = samples.lock().unwrap().clone();
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0;
    println!(
        "latency/event-backbone at {RATE} msg/s over {COUNT} messages: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    cleanup(raw, &stream).await;
}

criterion_group!(redis_benches, benches);

fn main() {
    redis_benches();
    Criterion::default().configure_from_args().final_summary();
}
