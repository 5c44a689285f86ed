//! Shared by the `eb` tests: the command, and a stream a producer wrote
//! and a group partly consumed.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use event_backbone::{Codec, GroupStart, KeyValueStore, Producer, StreamChannel};

/// `eb --channel URL`, with no connection variables of its own.
pub fn eb_on(channel: &str) -> Command {
    let mut eb = Command::cargo_bin("eb").unwrap();
    eb.env_remove("EB_CHANNEL")
        .env_remove("EB_STORE")
        .env_remove("EB_TO_CHANNEL")
        .env_remove("EB_TO_STORE")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60))
        .args(["--channel", channel]);
    eb
}

/// The Redis of `REDIS_EVENT_SOURCE_ENDPOINT`, else the local one.
pub fn redis_url() -> String {
    match std::env::var("REDIS_EVENT_SOURCE_ENDPOINT") {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    }
}

/// A new stream's uri.
pub fn new_uri(prefix: &str) -> String {
    format!("test.{prefix}.{}", event_backbone::MessageId::new())
}

/// Creates group `billing`, then sends `n` `order_placed` messages (JSON
/// codec; `sku` = "A{i}", `qty` = i; correlation id `order-{i}`). Returns
/// their entry ids.
pub async fn send_orders(
    channel: &Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    uri: &str,
    n: u32,
) -> (Producer, Vec<String>) {
    channel
        .ensure_group(uri, "billing", GroupStart::Beginning)
        .await
        .unwrap();
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store)
        .uri(uri)
        .codec(Codec::Json)
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let receipt = producer
            .message("order_placed")
            .correlation_id(format!("order-{i}"))
            .segment("sku", &format!("A{i}"))
            .unwrap()
            .segment("qty", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
        ids.push(receipt.entry_id().to_string());
    }
    (producer, ids)
}

/// Group `billing`'s member `worker-1` reads `read` entries and
/// acknowledges the first `acked`.
pub async fn read_and_ack(channel: &Arc<dyn StreamChannel>, uri: &str, read: usize, acked: usize) {
    let mut delivered = Vec::new();
    while delivered.len() < read {
        let more = channel
            .read_group(
                uri,
                "billing",
                "worker-1",
                read - delivered.len(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(!more.is_empty(), "read {} of {read}", delivered.len());
        delivered.extend(more);
    }
    let ids: Vec<_> = delivered[..acked]
        .iter()
        .map(|d| d.entry.id.clone())
        .collect();
    channel.ack(uri, "billing", &ids).await.unwrap();
}
