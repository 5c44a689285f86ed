//! The workload of the SQL benchmarks (PostgreSQL, SQLite): events of ~200
//! bytes in 3 parameters, sent concurrently through one producer and
//! consumed in a group, on any channel and store.

#![allow(dead_code)] // each benchmark program uses a part

use std::sync::Arc;

use event_backbone::{Consumer, ConsumerContext, KeyValueStore, Producer, StreamChannel};

/// At most this many sends in flight: two full batches of the producer.
pub const WINDOW: usize = 512;

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

pub fn unique(prefix: &str) -> String {
    format!("bench.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn producer(
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    stream: &str,
) -> Producer {
    Producer::builder()
        .channel(channel)
        .store(store)
        .uri(stream)
        .build()
        .unwrap()
}

/// Sends `events` events, at most [`WINDOW`] in flight.
pub async fn produce(producer: &Producer, events: usize) {
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
    let sends = futures_util::StreamExt::buffer_unordered(
        futures_util::stream::iter((0..events).map(send)),
        WINDOW,
    );
    futures_util::pin_mut!(sends);
    while let Some(r) = futures_util::StreamExt::next(&mut sends).await {
        r.unwrap();
    }
}

/// Consumes `events` events from the beginning of `stream` in a group
/// (batches and concurrency of 256), reading the quantity.
pub async fn consume(
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    stream: &str,
    events: usize,
) {
    let stats = Consumer::builder()
        .channel(channel)
        .store(store)
        .uri(stream)
        .group("bench")
        .group_start(event_backbone::GroupStart::Beginning)
        .batch_size(256)
        .concurrency(256)
        .stop_after(events as u64)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let _: u64 = ctx.segment("quantity")?;
            Ok(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, events as u64);
}
