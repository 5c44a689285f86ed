//! A redrive whose append fails: nothing is marked done, and the next one
//! puts the dead letter back, once; also over a mark another dead letter
//! left under the same entry id.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::testkit::FaultyChannel;
use event_backbone::{
    Consumer, ConsumerContext, Fields, HandlerError, KeyValueStore, MessageId, Producer, PutItem,
    Redrive, StreamChannel,
};

#[tokio::test]
async fn a_failed_append_leaves_the_dead_letter_to_the_next_redrive() {
    let memory: Arc<dyn StreamChannel> = Arc::new(MemoryChannel::new());
    let faulty = FaultyChannel::wrap(memory);
    let store = Arc::new(MemoryStore::new());
    Producer::builder()
        .channel(faulty.clone())
        .store(store.clone())
        .uri("orders")
        .build()
        .unwrap()
        .message("placed")
        .send()
        .await
        .unwrap();
    Consumer::builder()
        .channel(faulty.clone())
        .store(store.clone())
        .uri("orders")
        .max_deliveries(1)
        .block(Duration::from_millis(10))
        .stop_when_empty()
        .subscribe_fn(|_ctx: ConsumerContext| async { Err::<(), _>(HandlerError::from("a bug")) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    let redrive = Redrive::builder()
        .channel(faulty.clone())
        .store(store.clone())
        .uri("orders")
        .backend_retry(event_backbone::RetryPolicy::none())
        .build()
        .unwrap();
    let letter = redrive.list().await.unwrap().remove(0);
    // Another dead letter's mark under the same entry id, finished.
    let mut stale = Fields::new();
    stale.insert("letter".into(), Bytes::from(MessageId::new().to_string()));
    stale.insert(
        "message-id".into(),
        Bytes::from(MessageId::new().to_string()),
    );
    stale.insert("entry-id".into(), Bytes::from("42-0"));
    store
        .put_many(&[PutItem {
            key: format!("orders:dead-letter:redriven:{}", letter.entry),
            fields: stale,
            ttl: None,
        }])
        .await
        .unwrap();

    faulty.appends().start();
    assert!(redrive.redrive(&letter).await.is_err(), "the append fails");
    faulty.appends().stop();
    assert_eq!(faulty.info("orders").await.unwrap().length, 1);
    let relisted = redrive.list().await.unwrap();
    assert!(
        relisted[0].redriven_to.is_none(),
        "not redriven, whatever the stale mark said: {:?}",
        relisted[0].redriven_to
    );
    let copy = redrive.redrive(&letter).await.unwrap();
    assert_ne!(copy.as_str(), "42-0");
    assert_eq!(faulty.info("orders").await.unwrap().length, 2, "one copy");
    assert_eq!(redrive.redrive(&letter).await.unwrap(), copy);
    assert_eq!(faulty.info("orders").await.unwrap().length, 2, "still one");
}
