//! The send future: lazy (nothing is queued before it is polled), small
//! (callers move and allocate one per message), and correct when the
//! producer's queue is full.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::{Producer, StreamChannel, StreamPosition};
use support::WatchedChannel;

#[tokio::test]
async fn a_send_future_dropped_unpolled_sends_nothing() {
    let channel = Arc::new(MemoryChannel::new());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(Arc::new(MemoryStore::new()))
        .uri("lazy")
        .build()
        .unwrap();
    let unpolled = producer
        .message("never_sent")
        .segment("n", &1u32)
        .unwrap()
        .send();
    drop(unpolled);
    producer.message("sent").send().await.unwrap();
    // The batching task has nothing more to write: the one send is in.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let entries = channel
        .read_range("lazy", &StreamPosition::Start, None, 10)
        .await
        .unwrap();
    let operations: Vec<&str> = entries
        .iter()
        .map(|e| e.body.as_ref().unwrap().operation.as_str())
        .collect();
    assert_eq!(operations, ["sent"], "a dropped, unpolled send was sent");
}

#[tokio::test]
async fn the_send_future_is_small() {
    let producer = Producer::builder()
        .channel(Arc::new(MemoryChannel::new()))
        .store(Arc::new(MemoryStore::new()))
        .uri("small")
        .build()
        .unwrap();
    let send = producer.message("op").segment("n", &1u32).unwrap().send();
    // It was about 2 KB as nested `async fn`s (every step's locals, and a
    // copy of the message per level); a task or a `FuturesUnordered` slot
    // of more than about 1 KB misses the allocator's per-thread cache.
    let size = std::mem::size_of_val(&send);
    assert!(size <= 512, "a send's future is {size} bytes");
    send.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_beyond_a_full_queue_wait_for_a_slot_in_order() {
    // One message per batch and a slow channel: the queue (4 slots) is
    // full most of the time, and the sends polled after it filled wait for
    // a slot, in the order they asked for one.
    let channel = Arc::new(WatchedChannel::new(None, Duration::from_millis(2)));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(Arc::new(MemoryStore::new()))
        .uri("full")
        .max_batch(1)
        .build()
        .unwrap();
    let sends = (0..100u32).map(|i| {
        let producer = &producer;
        async move { producer.message(&format!("n{i}")).send().await }
    });
    for r in futures_util::future::join_all(sends).await {
        r.unwrap();
    }
    let entries = channel
        .inner
        .read_range("full", &StreamPosition::Start, None, 200)
        .await
        .unwrap();
    let operations: Vec<String> = entries
        .iter()
        .map(|e| e.body.as_ref().unwrap().operation.clone())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    assert_eq!(
        operations, expected,
        "sends landed out of order, or not all"
    );
    assert_eq!(channel.appends.load(Ordering::SeqCst), 100);
}
