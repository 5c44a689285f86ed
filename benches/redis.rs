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

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::redis::{Redis, RedisBuilderExt};
use event_backbone::{Consumer, ConsumerContext, HandlerError, Producer};
use redis::AsyncCommands;

const EVENTS: usize = 10_000;
const PIPELINE: usize = 256;

struct Payload {
    customer: String,
    product: String,
    quantity: u64,
}

fn payload(i: usize) -> Payload {
    Payload {
        customer: format!("{i:08}-customer-{}", "c".repeat(70)),
        product: format!("{i:08}-product-{}", "p".repeat(70)),
        quantity: i as u64,
    }
}

fn url() -> String {
    match std::env::var("REDIS_EVENT_SOURCE_ENDPOINT") {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    }
}

fn unique(prefix: &str) -> String {
    format!("bench.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis server (scripts/start-redis)")
}

/// Deletes a bench stream and its payload keys.
async fn cleanup(raw: &mut redis::aio::MultiplexedConnection, stream: &str) {
    let mut keys: Vec<String> = Vec::new();
    let mut iter: redis::AsyncIter<String> = raw.scan_match(format!("{stream}*")).await.unwrap();
    while let Some(key) = futures_util::StreamExt::next(&mut iter).await {
        keys.push(key.unwrap());
    }
    drop(iter);
    for chunk in keys.chunks(1000) {
        let _: () = raw.del(chunk).await.unwrap();
    }
}

/// Sends the 10,000 events through `producer`: all at once (`window` =
/// `None`), or with at most `window` sends in flight, as a service that
/// bounds its concurrency would.
async fn produce_with_backbone(producer: &Producer, window: Option<usize>) {
    let send = |i: usize| {
        let p = payload(i);
        async move {
            producer
                .message("order_placed")
                .segment("customer", &p.customer)?
                .segment("product", &p.product)?
                .segment("quantity", &p.quantity)?
                .send()
                .await
        }
    };
    match window {
        None => {
            for r in futures_util::future::join_all((0..EVENTS).map(send)).await {
                r.unwrap();
            }
        }
        Some(window) => {
            let sends = futures_util::StreamExt::buffer_unordered(
                futures_util::stream::iter((0..EVENTS).map(send)),
                window,
            );
            futures_util::pin_mut!(sends);
            while let Some(r) = futures_util::StreamExt::next(&mut sends).await {
                r.unwrap();
            }
        }
    }
}

/// The same commands, written by hand: HSET of the three fields, XADD of the
/// message id, operation and a metadata blob of the producer's size, in
/// pipelines of 256, `in_flight` pipelines at a time.
async fn produce_raw(
    raw: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    blob: &[u8],
    in_flight: usize,
) {
    let pipelines = (0..EVENTS).step_by(PIPELINE).map(|start| {
        let mut conn = raw.clone();
        async move {
            let mut pipe = redis::pipe();
            let ids: Vec<String> = (start..(start + PIPELINE).min(EVENTS))
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            for (offset, id) in ids.iter().enumerate() {
                let p = payload(start + offset);
                pipe.cmd("HSET")
                    .arg(format!("{stream}:order_placed:v0:normal:{id}"))
                    .arg("customer")
                    .arg(postcard::to_stdvec(&p.customer).unwrap())
                    .arg("product")
                    .arg(postcard::to_stdvec(&p.product).unwrap())
                    .arg("quantity")
                    .arg(postcard::to_stdvec(&p.quantity).unwrap())
                    .ignore();
            }
            for id in &ids {
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg("*")
                    .arg("message_id")
                    .arg(id)
                    .arg("operation")
                    .arg("order_placed")
                    .arg("metadata")
                    .arg(blob);
            }
            let _: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
        }
    });
    futures_util::StreamExt::collect::<Vec<()>>(futures_util::StreamExt::buffer_unordered(
        futures_util::stream::iter(pipelines),
        in_flight,
    ))
    .await;
}

/// The size of the metadata the producer writes for one such event.
async fn metadata_blob(redis: &Redis, raw: &mut redis::aio::MultiplexedConnection) -> Vec<u8> {
    let stream = unique("size");
    let producer = Producer::builder()
        .redis(redis)
        .uri(&stream)
        .build()
        .unwrap();
    let p = payload(0);
    producer
        .message("order_placed")
        .segment("customer", &p.customer)
        .unwrap()
        .segment("product", &p.product)
        .unwrap()
        .segment("quantity", &p.quantity)
        .unwrap()
        .send()
        .await
        .unwrap();
    let reply: redis::streams::StreamRangeReply = raw.xrange_all(&stream).await.unwrap();
    let blob: Vec<u8> = reply.ids[0].get("metadata").unwrap();
    cleanup(raw, &stream).await;
    vec![0xEB; blob.len()]
}

async fn consume_with_backbone(redis: &Redis, stream: &str) {
    let stats = Consumer::builder()
        .redis(redis)
        .uri(stream)
        .group("bench")
        .group_start(event_backbone::GroupStart::Beginning)
        .batch_size(256)
        .concurrency(256)
        .stop_after(EVENTS as u64)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let q: u64 = ctx.segment("quantity")?;
            std::hint::black_box(q);
            Ok::<(), HandlerError>(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, EVENTS as u64);
}

/// Raw consumption: XREADGROUP 256, HGETALL of each payload in one
/// pipeline, XACK of the batch.
async fn consume_raw(raw: &mut redis::aio::MultiplexedConnection, stream: &str) {
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("raw")
        .arg("0")
        .query_async(raw)
        .await;
    let mut done = 0;
    while done < EVENTS {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("raw")
            .arg("c")
            .arg("COUNT")
            .arg(PIPELINE)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(raw)
            .await
            .unwrap();
        let entries = &reply.keys[0].ids;
        let mut pipe = redis::pipe();
        for e in entries {
            let id: String = e.get("message_id").unwrap();
            pipe.cmd("HGETALL")
                .arg(format!("{stream}:order_placed:v0:normal:{id}"));
        }
        let hashes: Vec<std::collections::HashMap<String, Vec<u8>>> =
            pipe.query_async(raw).await.unwrap();
        for h in &hashes {
            let q: u64 = postcard::from_bytes(&h["quantity"]).unwrap();
            std::hint::black_box(q);
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: i64 = raw.xack(stream, "raw", &ids).await.unwrap();
        done += entries.len();
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (redis, mut raw) = rt.block_on(async {
        let redis = Redis::connect(event_backbone::redis::RedisConfig::from_url(&url()).unwrap())
            .await
            .expect("a Redis server (scripts/start-redis)");
        (redis, raw_connection().await)
    });
    let blob = rt.block_on(metadata_blob(&redis, &mut raw));

    let mut group = c.benchmark_group("produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, window) in [("event-backbone", None), ("event-backbone-window-512", Some(512))] {
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let stream = unique("produce");
                        let producer = Producer::builder()
                            .redis(&redis)
                            .uri(&stream)
                            .build()
                            .unwrap();
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
                    let producer = Producer::builder()
                        .redis(&redis)
                        .uri(&stream)
                        .build()
                        .unwrap();
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
                    let stream = unique("raw-e2e");
                    let mut consumer_conn = raw_connection().await;
                    let start = Instant::now();
                    produce_raw(&mut raw, &stream, &blob, 2).await;
                    consume_raw(&mut consumer_conn, &stream).await;
                    total += start.elapsed();
                    cleanup(&mut raw, &stream).await;
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
