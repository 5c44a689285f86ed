//! The Redis workload both benchmark programs run: the payloads, the sends
//! through event-backbone, and the same commands written by hand with
//! redis-rs (the raw baseline).

#![allow(dead_code)] // each benchmark program uses a part

#[cfg(feature = "opentelemetry")]
pub mod traced;

use event_backbone::redis::{Redis, RedisBuilderExt};
use event_backbone::{Consumer, ConsumerContext, HandlerError, Producer};
use redis::AsyncCommands;

pub const EVENTS: usize = 10_000;
pub const PIPELINE: usize = 256;

pub struct Payload {
    pub customer: String,
    pub product: String,
    pub quantity: u64,
}

pub fn payload(i: usize) -> Payload {
    Payload {
        customer: format!("{i:08}-customer-{}", "c".repeat(70)),
        product: format!("{i:08}-product-{}", "p".repeat(70)),
        quantity: i as u64,
    }
}

pub fn url() -> String {
    match std::env::var("REDIS_EVENT_SOURCE_ENDPOINT") {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    }
}

pub fn unique(prefix: &str) -> String {
    format!("bench.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

pub async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis server (scripts/start-redis)")
}

/// Deletes a bench stream and its payload keys.
pub async fn cleanup(raw: &mut redis::aio::MultiplexedConnection, stream: &str) {
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
/// Deletes a bench stream and its payload keys with one server-side script,
/// so that the client does next to no work (for instruction counts).
pub async fn cleanup_on_server(raw: &mut redis::aio::MultiplexedConnection, stream: &str) {
    let _: i64 = redis::cmd("EVAL")
        .arg(
            "local n = 0 \
             for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end \
             return n",
        )
        .arg(0)
        .arg(format!("{stream}*"))
        .query_async(raw)
        .await
        .unwrap();
}

pub async fn produce_with_backbone(producer: &Producer, window: Option<usize>) {
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

/// The 10,000 events with the customer as a `personal` segment, at most
/// 512 sends in flight; with `subjects`, each names one of that many data
/// subjects (the producer needs `.personal_data(...)`).
pub async fn produce_personal(producer: &Producer, subjects: Option<usize>) {
    let send = |i: usize| {
        let p = payload(i);
        async move {
            let message = producer
                .message("order_placed")
                .personal("customer", &p.customer)?
                .segment("product", &p.product)?
                .segment("quantity", &p.quantity)?;
            match subjects {
                Some(n) => message.subject(i % n).send().await,
                None => message.send().await,
            }
        }
    };
    let sends = futures_util::StreamExt::buffer_unordered(
        futures_util::stream::iter((0..EVENTS).map(send)),
        512,
    );
    futures_util::pin_mut!(sends);
    while let Some(r) = futures_util::StreamExt::next(&mut sends).await {
        r.unwrap();
    }
}

/// The same commands, written by hand: HSET of the three fields, XADD of the
/// message id, operation and a metadata blob of the producer's size, in
/// pipelines of 256, `in_flight` pipelines at a time.
pub async fn produce_raw(
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
pub async fn metadata_blob(redis: &Redis, raw: &mut redis::aio::MultiplexedConnection) -> Vec<u8> {
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

/// Consumes the 10,000 events of [`produce_with_backbone`], reading the
/// quantity.
pub async fn consume_with_backbone(redis: &Redis, stream: &str) {
    consume_counted(redis, stream, None).await
}

/// Consumes the 10,000 events of [`produce_personal`] with `personal`,
/// reading the customer (opened when it was sealed).
pub async fn consume_personal(
    redis: &Redis,
    stream: &str,
    personal: &event_backbone::privacy::PersonalData,
) {
    consume_counted(redis, stream, Some(personal)).await
}

/// Consumes `EVENTS` events from the beginning of `stream` (batches and
/// concurrency of 256), reading one segment of each: the customer with
/// `personal`, else the quantity.
async fn consume_counted(
    redis: &Redis,
    stream: &str,
    personal: Option<&event_backbone::privacy::PersonalData>,
) {
    let builder = Consumer::builder().redis(redis);
    let builder = match personal {
        Some(personal) => builder.personal_data(personal.clone()),
        None => builder,
    };
    let read_customer = personal.is_some();
    let stats = builder
        .uri(stream)
        .group("bench")
        .group_start(event_backbone::GroupStart::Beginning)
        .batch_size(256)
        .concurrency(256)
        .stop_after(EVENTS as u64)
        .subscribe_fn(move |ctx: ConsumerContext| async move {
            if read_customer {
                let customer: String = ctx.segment("customer")?;
                std::hint::black_box(customer);
            } else {
                let quantity: u64 = ctx.segment("quantity")?;
                std::hint::black_box(quantity);
            }
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
pub async fn consume_raw(raw: &mut redis::aio::MultiplexedConnection, stream: &str) {
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

/// The raw end-to-end baseline once, on a fresh stream: the 10,000 events
/// written by hand (2 pipelines in flight), then read, fetched and
/// acknowledged by hand in a group. Returns the time it took (the cleanup
/// after it is not counted).
pub async fn raw_end_to_end(
    raw: &mut redis::aio::MultiplexedConnection,
    blob: &[u8],
    prefix: &str,
) -> std::time::Duration {
    let stream = unique(prefix);
    let mut consumer_conn = raw_connection().await;
    let start = std::time::Instant::now();
    produce_raw(raw, &stream, blob, 2).await;
    consume_raw(&mut consumer_conn, &stream).await;
    let took = start.elapsed();
    cleanup(raw, &stream).await;
    took
}

/// A runtime like the benchmarks': multi-threaded, 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The event-backbone handle and a raw connection to the same server.
pub async fn connect() -> (Redis, redis::aio::MultiplexedConnection) {
    let redis = Redis::connect(event_backbone::redis::RedisConfig::from_url(&url()).unwrap())
        .await
        .expect("a Redis server (scripts/start-redis)");
    (redis, raw_connection().await)
}

/// A producer on a fresh stream.
pub fn producer(redis: &Redis, stream: &str) -> Producer {
    Producer::builder()
        .redis(redis)
        .uri(stream)
        .build()
        .unwrap()
}
