//! Dead letters put back on their stream: each once, handled by the group
//! that gave up on it, a redrive stopped half-way finished without a second
//! copy.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::{
    Consumer, ConsumerContext, DeadLetter, Error, Fields, HandlerError, KeyValueStore, MessageId,
    Origin, Producer, PutItem, Redrive, StreamChannel, HEADER_REDRIVEN_FROM,
    HEADER_REDRIVEN_REASON,
};

struct Setup {
    channel: Arc<MemoryChannel>,
    store: Arc<MemoryStore>,
    redrive: Redrive,
    /// The message ids sent as `bad`.
    bad: BTreeSet<MessageId>,
}

/// Five messages on `orders`, two of them `bad`: a consumer whose handler
/// fails them gives up on them at once (`max_deliveries(1)`).
async fn two_dead_letters() -> Setup {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(MemoryStore::new());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("orders")
        .build()
        .unwrap();
    let mut bad = BTreeSet::new();
    for i in 0..5u32 {
        let operation = if i % 2 == 1 { "bad" } else { "good" };
        let receipt = producer
            .message(operation)
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
        if operation == "bad" {
            bad.insert(receipt.message_id);
        }
    }
    Consumer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("orders")
        .group("billing")
        .max_deliveries(1)
        .block(Duration::from_millis(10))
        .stop_when_empty()
        .subscribe_fn(|ctx: ConsumerContext| async move {
            if ctx.operation() == "bad" {
                return Err(HandlerError::from("a bug"));
            }
            Ok(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    let redrive = Redrive::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("orders")
        .build()
        .unwrap();
    Setup {
        channel,
        store,
        redrive,
        bad,
    }
}

/// What group `billing` handles now, with the fix: (original id, segment
/// `i`, the redriven reason).
async fn handled_after_the_fix(s: &Setup) -> Vec<(MessageId, u32, Option<String>)> {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = handled.clone();
    Consumer::builder()
        .channel(s.channel.clone())
        .store(s.store.clone())
        .uri("orders")
        .group("billing")
        .block(Duration::from_millis(10))
        .stop_when_empty()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let h = h.clone();
            async move {
                let reason = ctx.metadata().headers.get(HEADER_REDRIVEN_REASON).cloned();
                h.lock().unwrap().push((
                    ctx.metadata().original_id(),
                    ctx.segment::<u32>("i")?,
                    reason,
                ));
                Ok(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    let handled = handled.lock().unwrap().clone();
    handled
}

#[tokio::test]
async fn redriven_dead_letters_are_handled_once_each() {
    let s = two_dead_letters().await;
    let letters = s.redrive.list().await.unwrap();
    assert_eq!(letters.len(), 2);
    for letter in &letters {
        assert_eq!(letter.operation(), Some("bad"));
        assert_eq!(letter.group.as_deref(), Some("billing"));
        assert_eq!(letter.deliveries, Some(1));
        assert!(letter.reason.contains("a bug"), "{}", letter.reason);
        assert!(letter.redriven_to.is_none());
    }
    let mut copies = Vec::new();
    for letter in &letters {
        copies.push(s.redrive.redrive(letter).await.unwrap());
    }
    // Redriving again appends nothing: the same copies.
    for (letter, copy) in letters.iter().zip(&copies) {
        assert_eq!(&s.redrive.redrive(letter).await.unwrap(), copy);
    }
    let relisted = s.redrive.list().await.unwrap();
    let marked: Vec<_> = relisted
        .iter()
        .filter_map(|l| l.redriven_to.clone())
        .collect();
    assert_eq!(marked, copies);
    assert_eq!(
        s.channel.info("orders").await.unwrap().length,
        7,
        "5 sent, 2 copies"
    );

    let copy = s.channel.get("orders", &copies[0]).await.unwrap().unwrap();
    let copy = copy.body.unwrap();
    assert!(matches!(copy.origin, Origin::Copy { .. }));
    assert_eq!(
        copy.headers.get(HEADER_REDRIVEN_FROM),
        Some(&letters[0].entry.to_string())
    );
    assert!(
        !copy.headers.keys().any(|h| h.starts_with("dead-letter.")),
        "{copy:?}"
    );

    let handled = handled_after_the_fix(&s).await;
    let ids: BTreeSet<MessageId> = handled.iter().map(|(id, ..)| *id).collect();
    assert_eq!(handled.len(), 2, "each redriven message once: {handled:?}");
    assert_eq!(ids, s.bad, "the bad ones, by their first message id");
    let mut values: Vec<u32> = handled.iter().map(|(_, i, _)| *i).collect();
    values.sort_unstable();
    assert_eq!(values, [1, 3], "their payloads, where they were");
    assert!(handled
        .iter()
        .all(|(.., reason)| reason.as_deref().is_some_and(|r| r.contains("a bug"))));
}

/// The mark a redrive writes first (`{dead-letter stream}:redriven:{entry}`,
/// fields `letter`, the dead letter's message id, and `message-id`, the
/// copy's), as a redrive that stopped after it left it.
async fn mark_only(s: &Setup, letter: &DeadLetter, message: MessageId) {
    let mut fields = Fields::new();
    let own = letter.metadata.as_ref().unwrap().message_id;
    fields.insert("letter".into(), Bytes::from(own.to_string()));
    fields.insert("message-id".into(), Bytes::from(message.to_string()));
    let entry = letter.entry.as_str();
    s.store
        .put_many(&[PutItem {
            key: format!("orders:dead-letter:redriven:{entry}"),
            fields,
            ttl: None,
        }])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_redrive_stopped_before_its_append_appends_once() {
    let s = two_dead_letters().await;
    let letter = s.redrive.list().await.unwrap().remove(0);
    let planned = MessageId::new();
    mark_only(&s, &letter, planned).await;
    let copy = s.redrive.redrive(&letter).await.unwrap();
    let appended = s.channel.get("orders", &copy).await.unwrap().unwrap();
    // Not found: a new id, marked before its append, so that a copy with
    // the old one can never come late.
    assert_ne!(appended.body.unwrap().message_id, planned);
    assert_eq!(s.channel.info("orders").await.unwrap().length, 6);
    assert_eq!(s.redrive.redrive(&letter).await.unwrap(), copy);
    assert_eq!(s.channel.info("orders").await.unwrap().length, 6);
}

#[tokio::test]
async fn a_redrive_stopped_after_its_append_finds_the_copy() {
    let s = two_dead_letters().await;
    let letter = s.redrive.list().await.unwrap().remove(0);
    // As if the first redrive appended its copy and stopped before its
    // last mark.
    let planned = MessageId::new();
    let mut copy = letter.metadata.clone().unwrap();
    copy.message_id = planned;
    let appended = s.channel.append("orders", &copy).await.unwrap();
    mark_only(&s, &letter, planned).await;

    assert_eq!(s.redrive.redrive(&letter).await.unwrap(), appended);
    assert_eq!(
        s.channel.info("orders").await.unwrap().length,
        6,
        "no second copy"
    );
    let relisted = s.redrive.list().await.unwrap();
    assert_eq!(relisted[0].redriven_to.as_ref(), Some(&appended));
}

#[tokio::test]
async fn an_unreadable_entry_or_another_streams_letter_is_refused() {
    let s = two_dead_letters().await;
    let mut letter = s.redrive.list().await.unwrap().remove(0);
    let mut foreign = letter.clone();
    foreign
        .metadata
        .as_mut()
        .unwrap()
        .headers
        .insert("dead-letter.stream".into(), "invoices".into());
    let refused = s.redrive.redrive(&foreign).await.unwrap_err();
    assert!(matches!(refused, Error::NotRedrivable { .. }), "{refused}");
    assert!(refused.to_string().contains("invoices"), "{refused}");

    letter.metadata.as_mut().unwrap().operation =
        event_backbone_core::consumer::MALFORMED_OPERATION.into();
    let refused = s.redrive.redrive(&letter).await.unwrap_err().to_string();
    assert!(refused.contains("raw bytes"), "{refused}");
    assert_eq!(s.channel.info("orders").await.unwrap().length, 5);
}

/// A mark left by another dead letter under the same entry id (a Kafka
/// topic deleted and made again starts its offsets afresh) is not this
/// one's: it is listed, and redriven, as never redriven.
#[tokio::test]
async fn a_mark_of_another_dead_letter_is_not_this_ones() {
    let s = two_dead_letters().await;
    let letter = s.redrive.list().await.unwrap().remove(0);
    let mut fields = Fields::new();
    fields.insert("letter".into(), Bytes::from(MessageId::new().to_string()));
    fields.insert(
        "message-id".into(),
        Bytes::from(MessageId::new().to_string()),
    );
    fields.insert("entry-id".into(), Bytes::from("42-0"));
    s.store
        .put_many(&[PutItem {
            key: format!("orders:dead-letter:redriven:{}", letter.entry),
            fields,
            ttl: None,
        }])
        .await
        .unwrap();
    assert!(s.redrive.list().await.unwrap()[0].redriven_to.is_none());
    let copy = s.redrive.redrive(&letter).await.unwrap();
    assert_ne!(copy.as_str(), "42-0");
    assert_eq!(s.channel.info("orders").await.unwrap().length, 6);
}
