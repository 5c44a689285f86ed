//! Redis Cluster: the producer and the consumer on a three-master cluster
//! against raw redis-rs cluster commands doing the same work, in the same
//! run; one stream against four partitions; and where the work goes (each
//! master's `INFO commandstats`).
//!
//! Run with `scripts/bench` (or `cargo bench --features redis --bench
//! redis_cluster`). The cluster is `REDIS_CLUSTER_ENDPOINTS` (seed nodes,
//! comma-separated) or the one `scripts/start-redis-cluster` started.
//!
//! * `produce/event-backbone-partitions-N`: 10,000 events of ~200 bytes in
//!   3 parameters through one `Producer` (batches of up to 256): each
//!   batch's payloads, one pipeline per slot all at once, acknowledged;
//!   then its entries, one pipeline per partition.
//! * `produce/raw-payloads-then-entries`: the same HSETs and XADDs by hand,
//!   pipelines of 256 events, two in flight: each HSET a command of its own
//!   (the cluster connection pipelines them per node), all awaited, then
//!   the XADDs in one pipeline. The same mechanism as the producer's.
//! * `produce/raw-hash-tag`: the other mechanism the design weighed: the
//!   payload keys share the stream's hash tag, so HSETs and XADDs go in one
//!   pipeline to one node, in order (and a stream's payloads all live on
//!   its master).
//! * `end-to-end/*`: produce 10,000, then consume them in a group (read,
//!   fetch payloads, handle, ack) until all are acknowledged.
//! * after criterion: the commands each master ran for 10,000 events
//!   produced and consumed, with one stream, three partitions and four.

mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
use event_backbone::{Consumer, ConsumerContext, HandlerError, Producer};
use redis::cluster_async::ClusterConnection;
use workload::{payload, produce_with_backbone, runtime, unique, EVENTS, PIPELINE};

fn endpoints() -> String {
    std::env::var("REDIS_CLUSTER_ENDPOINTS")
        .or_else(|_| {
            std::fs::read_to_string(
                std::env::temp_dir().join("event-backbone-redis-cluster/endpoints"),
            )
        })
        .expect("a Redis Cluster (scripts/start-redis-cluster)")
        .trim()
        .to_owned()
}

async fn connect() -> (Redis, ClusterConnection) {
    let redis = Redis::connect(RedisConfig::from_endpoint(&endpoints(), None).unwrap())
        .await
        .expect("a Redis Cluster (scripts/start-redis-cluster)");
    (redis, raw_cluster().await)
}

async fn raw_cluster() -> ClusterConnection {
    let nodes: Vec<String> = endpoints()
        .split(',')
        .map(|n| format!("redis://{n}"))
        .collect();
    redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

fn channel(redis: &Redis, partitions: u16) -> Arc<RedisStreamChannel> {
    Arc::new(
        RedisStreamChannel::new(redis)
            .partitions(partitions)
            .unwrap(),
    )
}

fn producer(redis: &Redis, stream: &str, partitions: u16) -> Producer {
    Producer::builder()
        .channel(channel(redis, partitions))
        .store(Arc::new(RedisHashStore::new(redis)))
        .uri(stream)
        .build()
        .unwrap()
}

async fn consume(redis: &Redis, stream: &str, partitions: u16) {
    let stats = Consumer::builder()
        .channel(channel(redis, partitions))
        .store(Arc::new(RedisHashStore::new(redis)))
        .uri(stream)
        .group("bench")
        .group_start(event_backbone::GroupStart::Beginning)
        .batch_size(256)
        .concurrency(256)
        .stop_after(EVENTS as u64)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let quantity: u64 = ctx.segment("quantity")?;
            std::hint::black_box(quantity);
            Ok::<(), HandlerError>(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, EVENTS as u64);
}

/// The payload key of event `id`: with `tag`, inside the stream's hash tag.
fn payload_key(stream: &str, id: &str, tag: bool) -> String {
    if tag {
        format!("{{{stream}}}:order_placed:v0:normal:{id}")
    } else {
        format!("{stream}:order_placed:v0:normal:{id}")
    }
}

fn hset(key: String, i: usize) -> redis::Cmd {
    let p = payload(i);
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key)
        .arg("customer")
        .arg(postcard::to_stdvec(&p.customer).unwrap())
        .arg("product")
        .arg(postcard::to_stdvec(&p.product).unwrap())
        .arg("quantity")
        .arg(postcard::to_stdvec(&p.quantity).unwrap());
    cmd
}

fn xadd(stream: &str, id: &str, blob: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream)
        .arg("*")
        .arg("message_id")
        .arg(id)
        .arg("operation")
        .arg("order_placed")
        .arg("metadata")
        .arg(blob);
    cmd
}

/// The raw producer: pipelines of 256 events, two in flight. With `tag`,
/// the stream and its payload keys share a hash tag and each pipeline is
/// HSETs then XADDs; without, the HSETs are awaited before the XADDs.
async fn produce_raw(raw: &ClusterConnection, stream: &str, blob: &[u8], tag: bool) {
    let stream_key = if tag {
        format!("{{{stream}}}")
    } else {
        stream.to_owned()
    };
    let stream_key = &stream_key;
    let pipelines = (0..EVENTS).step_by(PIPELINE).map(|start| {
        let conn = raw.clone();
        async move {
            let ids: Vec<String> = (start..(start + PIPELINE).min(EVENTS))
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            if tag {
                let mut pipe = redis::pipe();
                for (offset, id) in ids.iter().enumerate() {
                    pipe.add_command(hset(payload_key(stream, id, true), start + offset))
                        .ignore();
                }
                for id in &ids {
                    pipe.add_command(xadd(stream_key, id, blob));
                }
                let _: Vec<String> = pipe.query_async(&mut conn.clone()).await.unwrap();
            } else {
                let writes = ids.iter().enumerate().map(|(offset, id)| {
                    let mut conn = conn.clone();
                    let cmd = hset(payload_key(stream, id, false), start + offset);
                    async move { cmd.query_async::<()>(&mut conn).await }
                });
                futures_util::future::try_join_all(writes).await.unwrap();
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.add_command(xadd(stream_key, id, blob));
                }
                let _: Vec<String> = pipe.query_async(&mut conn.clone()).await.unwrap();
            }
        }
    });
    futures_util::StreamExt::collect::<Vec<()>>(futures_util::StreamExt::buffer_unordered(
        futures_util::stream::iter(pipelines),
        2,
    ))
    .await;
}

/// The raw consumer: XREADGROUP 256, HGETALL of each payload (each a
/// command of its own, all at once), XACK of the batch.
async fn consume_raw(raw: &ClusterConnection, stream: &str) {
    let mut conn = raw.clone();
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("raw")
        .arg("0")
        .query_async(&mut conn)
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
            .query_async(&mut conn)
            .await
            .unwrap();
        let entries = &reply.keys[0].ids;
        let reads = entries.iter().map(|e| {
            let mut conn = conn.clone();
            let id: String = e.get("message_id").unwrap();
            async move {
                redis::cmd("HGETALL")
                    .arg(payload_key(stream, &id, false))
                    .query_async::<std::collections::HashMap<String, Vec<u8>>>(&mut conn)
                    .await
            }
        });
        for h in futures_util::future::try_join_all(reads).await.unwrap() {
            let q: u64 = postcard::from_bytes(&h["quantity"]).unwrap();
            std::hint::black_box(q);
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: i64 = redis::cmd("XACK")
            .arg(stream)
            .arg("raw")
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .unwrap();
        done += entries.len();
    }
}

/// Deletes everything the benchmark wrote (on every master).
async fn flush(raw: &ClusterConnection) {
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut raw.clone())
        .await
        .unwrap();
}

/// The size of the metadata the producer writes for one such event.
async fn metadata_blob(redis: &Redis, raw: &ClusterConnection) -> Vec<u8> {
    let stream = unique("size");
    let p = payload(0);
    producer(redis, &stream, 1)
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
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut raw.clone())
        .await
        .unwrap();
    let blob: Vec<u8> = reply.ids[0].get("metadata").unwrap();
    vec![0xEB; blob.len()]
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let (redis, raw) = rt.block_on(connect());
    let blob = rt.block_on(metadata_blob(&redis, &raw));

    let mut group = c.benchmark_group("produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for partitions in [1u16, 4] {
        let name = format!("event-backbone-partitions-{partitions}");
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let producer = producer(&redis, &unique("produce"), partitions);
                        let start = Instant::now();
                        produce_with_backbone(&producer, None).await;
                        total += start.elapsed();
                        flush(&raw).await;
                    }
                    total
                })
            })
        });
    }
    for (name, tag) in [("raw-payloads-then-entries", false), ("raw-hash-tag", true)] {
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        produce_raw(&raw, &unique("raw-produce"), &blob, tag).await;
                        total += start.elapsed();
                        flush(&raw).await;
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
    for partitions in [1u16, 4] {
        let name = format!("event-backbone-partitions-{partitions}");
        group.bench_function(BenchmarkId::new(name, EVENTS), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let stream = unique("e2e");
                        let producer = producer(&redis, &stream, partitions);
                        let start = Instant::now();
                        tokio::join!(
                            produce_with_backbone(&producer, None),
                            consume(&redis, &stream, partitions)
                        );
                        total += start.elapsed();
                        flush(&raw).await;
                    }
                    total
                })
            })
        });
    }
    group.bench_function(BenchmarkId::new("raw-redis-rs", EVENTS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = unique("raw-e2e");
                    let start = Instant::now();
                    produce_raw(&raw, &stream, &blob, false).await;
                    consume_raw(&raw, &stream).await;
                    total += start.elapsed();
                    flush(&raw).await;
                }
                total
            })
        })
    });
    group.finish();

    rt.block_on(where_the_work_goes(&redis, &raw));
}

/// The masters' addresses, from `CLUSTER SHARDS`-like `CLUSTER SLOTS`.
async fn masters(raw: &ClusterConnection) -> Vec<String> {
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut raw.clone())
        .await
        .unwrap();
    let mut out: Vec<String> = slots
        .into_iter()
        .map(|range| {
            let range: Vec<redis::Value> = redis::from_redis_value(range).unwrap();
            let node: Vec<redis::Value> = redis::from_redis_value(range[2].clone()).unwrap();
            let host: String = redis::from_redis_value(node[0].clone()).unwrap();
            let port: i64 = redis::from_redis_value(node[1].clone()).unwrap();
            format!("{host}:{port}")
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Calls per command on one master (`INFO commandstats`).
async fn commandstats(master: &str) -> BTreeMap<String, u64> {
    let mut conn = redis::Client::open(format!("redis://{master}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

async fn reset_stats(masters: &[String]) {
    for master in masters {
        let mut conn = redis::Client::open(format!("redis://{master}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// Produces and consumes 10,000 events with one stream, three partitions
/// and four, and prints the commands each master ran.
async fn where_the_work_goes(redis: &Redis, raw: &ClusterConnection) {
    let masters = masters(raw).await;
    for partitions in [1u16, 3, 4] {
        flush(raw).await;
        reset_stats(&masters).await;
        let stream = unique("where");
        let producer = producer(redis, &stream, partitions);
        tokio::join!(
            produce_with_backbone(&producer, None),
            consume(redis, &stream, partitions)
        );
        println!("commandstats/partitions-{partitions} (10,000 events produced and consumed):");
        for master in &masters {
            let stats = commandstats(master).await;
            let shown: Vec<String> = ["xadd", "xreadgroup", "xack", "hset", "hgetall"]
                .iter()
                .map(|c| format!("{c}={}", stats.get(*c).copied().unwrap_or(0)))
                .collect();
            println!("  master {master}: {}", shown.join(" "));
        }
    }
    flush(raw).await;
}

criterion_group!(cluster_benches, benches);

fn main() {
    cluster_benches();
    Criterion::default().configure_from_args().final_summary();
}
