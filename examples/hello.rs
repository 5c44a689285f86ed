//! Hello, event-backbone: the untyped API with no server.
//!
//! A producer sends a few shipment events; a consumer in group `report`
//! prints each one with its payload, then stops when the stream is drained.
//!
//! Run with `cargo run --example hello` (in memory), or with
//! `cargo run --features sqlite --example hello` in the file `events.db`:
//! durable, so a second run's group goes on where the first one stopped.

use std::sync::Arc;
use std::time::Duration;

use event_backbone::{
    Consumer, ConsumerContext, KeyValueStore, Producer, SegmentClass, StreamChannel,
};

/// Where the example keeps its events: a SQLite file with the `sqlite`
/// feature, else memory.
const BACKEND: &str = if cfg!(feature = "sqlite") {
    "sqlite:events.db"
} else {
    "memory:"
};

#[tokio::main]
async fn main() -> event_backbone::Result<()> {
    let channel: Arc<dyn StreamChannel> = event_backbone::open_channel(BACKEND).await?;
    let store: Arc<dyn KeyValueStore> = event_backbone::open_store(BACKEND).await?;
    // Personal data under keys of their own (in memory, a store of its own).
    let personal: Arc<dyn KeyValueStore> = match BACKEND {
        "memory:" => Arc::new(event_backbone::memory::MemoryStore::new()),
        _ => store.clone(),
    };
    println!("backend: {BACKEND}");

    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .class_store(SegmentClass::personal(), personal.clone())
        .uri("hello.event-sourcing")
        .environment("dev")
        .build()?;

    let orders = [(1001u64, "ann@example.com"), (1002, "bob@example.com")];
    for (product_id, email) in orders {
        for (operation, stage) in [("order_placed", 0u8), ("packing", 1), ("on_delivery", 2)] {
            let receipt = producer
                .message(operation)
                .segment("product_id", &product_id)?
                .segment("stage", &stage)?
                .personal("email", email)?
                .send()
                .await?;
            println!(
                "produced {operation:<12} product {product_id} -> {} entry {}",
                receipt.entries[0].stream,
                receipt.entry_id()
            );
        }
    }

    let stats = Consumer::builder()
        .channel(channel.clone())
        .store(store)
        .class_store(SegmentClass::personal(), personal)
        .uri("hello.event-sourcing")
        .environment("dev")
        .group("report")
        .concurrency(1)
        .block(Duration::from_millis(100))
        .stop_when_empty()
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let product_id: u64 = ctx.segment("product_id")?;
            let stage: u8 = ctx.segment("stage")?;
            let email: String = ctx.segment("email")?;
            println!(
                "consumed {:<12} product {product_id} stage {stage} for {email} (message {})",
                ctx.operation(),
                ctx.message_id()
            );
            Ok(())
        })?
        .completion()
        .await?;
    println!(
        "done: {} received, {} handled, {} failed",
        stats.received, stats.handled, stats.failed
    );
    let held = channel.info("dev:hello.event-sourcing").await?.length;
    println!("the stream holds {held} messages");
    Ok(())
}
