//! The outbox, with a pretend database: a transaction that buffers what a
//! producer writes into it and, at commit, puts it in an outbox (an
//! in-memory channel and store). The relay then moves committed messages
//! on to the producer's channel and stores, as they are: every message at
//! least once, in order, payloads routed by class; what it cannot move
//! goes to the outbox's dead-letter stream; a relay that died between the
//! append and the acknowledgement appends that batch again, first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_backbone_core::envelope::Metadata;
use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::outbox::{
    outbox_key, outbox_stream, OutboxRelay, Transaction, RELAY_GROUP,
};
use event_backbone_core::testkit::FaultyChannel;
use event_backbone_core::{
    Codec, EntryId, KeyValueStore, Message, MessageId, Producer, PutItem, Replay, Result,
    SegmentClass, StreamChannel,
};
use futures_util::TryStreamExt;

/// A pretend database transaction: writes wait for `commit`.
struct Tx {
    outbox: Arc<MemoryChannel>,
    outbox_store: Arc<MemoryStore>,
    writes: Vec<(String, Vec<PutItem>, Vec<Metadata>)>,
}

#[async_trait]
impl Transaction for Tx {
    async fn store_and_append(
        &mut self,
        _channel: &dyn StreamChannel,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        // As a backend writes an outbox: beside the stream and the keys.
        let items = payloads
            .iter()
            .flat_map(|(_, i)| i.clone())
            .map(|item| PutItem {
                key: outbox_key(&item.key),
                ttl: None,
                ..item
            })
            .collect();
        self.writes
            .push((outbox_stream(stream), items, batch.to_vec()));
        Ok(batch.iter().map(|_| EntryId::new("0")).collect())
    }
}

impl Tx {
    async fn commit(self) {
        for (stream, items, batch) in self.writes {
            self.outbox_store.insert_many(&items).await.unwrap();
            self.outbox.append_many(&stream, &batch).await.unwrap();
        }
    }
}

struct Setup {
    outbox: Arc<MemoryChannel>,
    outbox_store: Arc<MemoryStore>,
    channel: Arc<FaultyChannel>,
    store: Arc<MemoryStore>,
    personal_store: Arc<MemoryStore>,
    producer: Producer,
}

impl Setup {
    fn new() -> Self {
        Self::with_store(MemoryStore::new())
    }

    fn with_store(store: MemoryStore) -> Self {
        let channel = FaultyChannel::wrap(Arc::new(MemoryChannel::new()));
        let store = Arc::new(store);
        let personal_store = Arc::new(MemoryStore::new());
        let producer = Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .class_store(SegmentClass::PERSONAL, personal_store.clone())
            .uri("orders")
            .payload_ttl(Duration::from_secs(3600))
            .build()
            .unwrap();
        Self {
            outbox: Arc::new(MemoryChannel::new()),
            outbox_store: Arc::new(MemoryStore::new()),
            channel,
            store,
            personal_store,
            producer,
        }
    }

    fn tx(&self) -> Tx {
        Tx {
            outbox: self.outbox.clone(),
            outbox_store: self.outbox_store.clone(),
            writes: Vec::new(),
        }
    }

    /// Message `n` (an `amount` and a personal `email`), in `tx`.
    async fn send(&self, tx: &mut Tx, n: u32) -> MessageId {
        self.producer
            .message("placed")
            .segment("amount", &n)
            .unwrap()
            .personal("email", &format!("{n}@example.com"))
            .unwrap()
            .send_in(tx)
            .await
            .unwrap()
            .message_id
    }

    /// Messages `range`, each in a transaction of its own, committed.
    async fn committed(&self, range: std::ops::Range<u32>) -> Vec<MessageId> {
        let mut ids = Vec::new();
        for n in range {
            let mut tx = self.tx();
            ids.push(self.send(&mut tx, n).await);
            tx.commit().await;
        }
        ids
    }

    fn relay(&self) -> OutboxRelay {
        OutboxRelay::builder()
            .channel(self.outbox.clone())
            .store(self.outbox_store.clone())
            .to(&self.producer)
            .batch_size(3)
            .build()
            .unwrap()
    }

    /// What reached the producer's stream, read with its stores.
    async fn relayed(&self) -> Vec<Message> {
        Replay::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .class_store(SegmentClass::PERSONAL, self.personal_store.clone())
            .uri("orders")
            .messages()
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }
}

fn amount(message: &Message) -> u32 {
    message
        .segments()
        .decode("amount", &Codec::Postcard)
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn committed_messages_are_relayed_as_they_are_and_rolled_back_ones_never() {
    let s = Setup::new();
    let mut ids = s.committed(0..2).await;
    let mut rolled_back = s.tx();
    let lost = s.send(&mut rolled_back, 99).await;
    drop(rolled_back);
    ids.extend(s.committed(2..5).await);
    assert_eq!(
        s.channel.info("orders").await.unwrap().length,
        0,
        "nothing sent before the relay"
    );

    let relay = s.relay();
    let mut relayed = 0;
    loop {
        let report = relay.relay_once().await.unwrap();
        assert!(report.dead_lettered.is_empty(), "{report:?}");
        if report.is_empty() {
            break;
        }
        relayed += report.relayed;
    }
    assert_eq!(relayed, 5);
    let messages = s.relayed().await;
    let got: Vec<MessageId> = messages.iter().map(|m| m.metadata().message_id).collect();
    assert_eq!(got, ids, "the same messages, the same ids, in order");
    assert!(!got.contains(&lost));
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(amount(message), n as u32);
        let email: Option<String> = message
            .segments()
            .decode("email", &Codec::Postcard)
            .unwrap();
        assert_eq!(email, Some(format!("{n}@example.com")));
    }
    // Routed by class, as a send routes them.
    assert_eq!((s.store.len(), s.personal_store.len()), (5, 5));
    // Done in the outbox: acknowledged, payload rows deleted.
    assert!(
        s.outbox_store.is_empty(),
        "the outbox keeps relayed payloads"
    );
    let group = s.outbox.info("orders:outbox").await.unwrap();
    assert_eq!(group.group(RELAY_GROUP).unwrap().pending, 0);
}

#[tokio::test]
async fn a_relay_that_died_before_acknowledging_relays_that_batch_again_first() {
    let s = Setup::new();
    let ids = s.committed(0..7).await;
    // The outbox's acknowledgements fail: the first batch is appended, then
    // the relay gives up, as one killed between the two would.
    let outbox = FaultyChannel::wrap(s.outbox.clone());
    let relay = OutboxRelay::builder()
        .channel(outbox.clone())
        .store(s.outbox_store.clone())
        .to(&s.producer)
        .batch_size(3)
        .build()
        .unwrap();
    outbox.acks().start();
    assert!(relay.relay_once().await.is_err());
    outbox.acks().stop();
    assert_eq!(s.relayed().await.len(), 3);

    // A new relay takes the unfinished batch first, then goes on.
    let relay = s.relay();
    while !relay.relay_once().await.unwrap().is_empty() {}
    let got: Vec<MessageId> = s
        .relayed()
        .await
        .iter()
        .map(|m| m.metadata().message_id)
        .collect();
    let mut expected = ids[..3].to_vec();
    expected.extend(&ids);
    assert_eq!(
        got, expected,
        "the first batch twice (at least once), then the rest, in order"
    );
}

#[tokio::test]
async fn a_failed_append_is_relayed_on_the_next_pass() {
    let s = Setup::new();
    let ids = s.committed(0..4).await;
    let relay = s.relay();
    s.channel.appends().start();
    let err = relay.relay_once().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    s.channel.appends().stop();
    while !relay.relay_once().await.unwrap().is_empty() {}
    let got: Vec<MessageId> = s
        .relayed()
        .await
        .iter()
        .map(|m| m.metadata().message_id)
        .collect();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn what_cannot_be_relayed_goes_to_the_outbox_dead_letters_and_the_rest_goes_on() {
    // The target refuses values over 64 bytes.
    let s = Setup::with_store(MemoryStore::new().with_max_value_bytes(64));
    let before = s.committed(0..2).await;
    // Refused for good by the target: too large.
    let mut tx = s.tx();
    let big = s
        .producer
        .message("placed")
        .segment("amount", &2u32)
        .unwrap()
        .segment("blob", &vec![7u8; 1000])
        .unwrap()
        .send_in(&mut tx)
        .await
        .unwrap()
        .message_id;
    tx.commit().await;
    // Its payload gone from the outbox.
    let mut tx = s.tx();
    let orphan = s.send(&mut tx, 3).await;
    tx.commit().await;
    let orphan_key = format!("orders:placed:v0:normal:{orphan}:outbox");
    assert!(s.outbox_store.delete(&orphan_key).await.unwrap());
    // Garbage in the outbox stream.
    s.outbox.append_raw("orders:outbox", &b"not metadata"[..]);
    let after = s.committed(4..6).await;

    let relay = s.relay();
    let mut dead = Vec::new();
    loop {
        let report = relay.relay_once().await.unwrap();
        if report.is_empty() {
            break;
        }
        dead.extend(report.dead_lettered);
    }
    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    let found = |what: &[&str]| reasons.iter().any(|r| what.iter().all(|w| r.contains(w)));
    assert!(found(&["refused", "64"]), "{reasons:?}");
    assert!(found(&["not in the outbox store"]), "{reasons:?}");
    assert!(found(&["unreadable"]), "{reasons:?}");
    let got: Vec<MessageId> = s
        .relayed()
        .await
        .iter()
        .map(|m| m.metadata().message_id)
        .collect();
    let expected: Vec<MessageId> = before.into_iter().chain(after).collect();
    assert_eq!(got, expected);
    let letters = s.outbox.info("orders:outbox:dead-letter").await.unwrap();
    assert_eq!(letters.length, 3);
    // The refused message's payload stays in the outbox, for a redrive.
    let big_key = format!("orders:placed:v0:normal:{big}:outbox");
    assert!(s.outbox_store.get(&big_key).await.unwrap().is_some());
    assert_eq!(
        s.outbox
            .info("orders:outbox")
            .await
            .unwrap()
            .group(RELAY_GROUP)
            .unwrap()
            .pending,
        0
    );
}

#[tokio::test]
async fn run_relays_what_comes_until_cancelled() {
    let s = Setup::new();
    let relay = Arc::new(
        OutboxRelay::builder()
            .channel(s.outbox.clone())
            .store(s.outbox_store.clone())
            .to(&s.producer)
            .block(Duration::from_millis(50))
            .build()
            .unwrap(),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = {
        let (relay, cancel) = (relay.clone(), cancel.clone());
        tokio::spawn(async move { relay.run(cancel).await })
    };
    let ids = s.committed(0..10).await;
    event_backbone_core::testkit::eventually("ten relayed", || async {
        s.relayed().await.len() == 10
    })
    .await;
    cancel.cancel();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.relayed, 10);
    let got: Vec<MessageId> = s
        .relayed()
        .await
        .iter()
        .map(|m| m.metadata().message_id)
        .collect();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn the_outbox_and_the_target_may_share_a_store() {
    let s = Setup::new();
    let ids = s.committed(0..3).await;
    // The producer's store is the outbox's own.
    let producer = Producer::builder()
        .channel(s.channel.clone())
        .store(s.outbox_store.clone())
        .uri("orders")
        .build()
        .unwrap();
    let relay = OutboxRelay::builder()
        .channel(s.outbox.clone())
        .store(s.outbox_store.clone())
        .to(&producer)
        .build()
        .unwrap();
    assert_eq!(relay.relay_once().await.unwrap().relayed, 3);
    let messages: Vec<Message> = Replay::builder()
        .channel(s.channel.clone())
        .store(s.outbox_store.clone())
        .uri("orders")
        .messages()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let got: Vec<MessageId> = messages.iter().map(|m| m.metadata().message_id).collect();
    assert_eq!(got, ids);
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(amount(message), n as u32, "the relayed payload is readable");
    }
}

#[tokio::test]
async fn a_relay_whose_producer_cannot_place_a_payload_stops_and_dead_letters_nothing() {
    let s = Setup::new();
    s.committed(0..3).await;
    // A producer of the same stream with no store at all.
    let storeless = Producer::builder()
        .channel(s.channel.clone())
        .uri("orders")
        .build()
        .unwrap();
    let relay = OutboxRelay::builder()
        .channel(s.outbox.clone())
        .store(s.outbox_store.clone())
        .to(&storeless)
        .build()
        .unwrap();
    let err = relay.relay_once().await.unwrap_err().to_string();
    assert!(err.contains("no store for segment class"), "{err}");
    let outbox = s.outbox.info("orders:outbox").await.unwrap();
    assert_eq!(
        outbox.group(RELAY_GROUP).unwrap().pending,
        3,
        "kept, pending"
    );
    assert_eq!(
        s.outbox
            .info("orders:outbox:dead-letter")
            .await
            .unwrap()
            .length,
        0
    );
    // Fixed: the same outbox goes through.
    assert_eq!(s.relay().relay_once().await.unwrap().relayed, 3);
}

/// A store that refuses, for good, writes of the keys it is told: a
/// refusal the relay cannot tell from a broken target by its kind.
#[derive(Debug, Default)]
struct Refusing {
    inner: MemoryStore,
    refused: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl KeyValueStore for Refusing {
    fn backend(&self) -> &'static str {
        "refusing"
    }
    fn capabilities(&self) -> event_backbone_core::StoreCapabilities {
        self.inner.capabilities()
    }
    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        let refused = self.refused.lock().unwrap().clone();
        if let Some(item) = items.iter().find(|i| refused.contains(&i.key)) {
            return Err(event_backbone_core::Error::permanent(
                "refusing",
                format!("writing {:?}", item.key),
                "refused",
            ));
        }
        self.inner.put_many(items).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<event_backbone_core::Fields>>> {
        self.inner.get_many(keys).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
}

#[tokio::test]
async fn a_refusal_is_the_message_s_when_the_target_takes_others_else_the_relay_stops() {
    let s = Setup::new();
    let ids = s.committed(0..4).await;
    let key = |id: &MessageId| format!("orders:placed:v0:normal:{id}");
    let store = Arc::new(Refusing::default());
    let producer = Producer::builder()
        .channel(s.channel.clone())
        .store(store.clone())
        .uri("orders")
        .build()
        .unwrap();
    let relay = || {
        OutboxRelay::builder()
            .channel(s.outbox.clone())
            .store(s.outbox_store.clone())
            .to(&producer)
            .build()
            .unwrap()
    };
    // Every message refused: the target, not the messages. Nothing moves,
    // nothing is dead-lettered.
    *store.refused.lock().unwrap() = ids.iter().map(key).collect();
    let err = relay().relay_once().await.unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
    let pending = |s: &Setup| {
        let outbox = s.outbox.clone();
        async move {
            outbox
                .info("orders:outbox")
                .await
                .unwrap()
                .group(RELAY_GROUP)
                .map_or(0, |g| g.pending)
        }
    };
    assert_eq!(pending(&s).await, 4);
    assert_eq!(s.channel.info("orders").await.unwrap().length, 0);

    // Only the first and the third refused: the target takes the others,
    // so those two are the messages' own refusals.
    *store.refused.lock().unwrap() = vec![key(&ids[0]), key(&ids[2])];
    let report = relay().relay_once().await.unwrap();
    assert_eq!(report.relayed, 2);
    let dead: Vec<&EntryId> = report.dead_lettered.iter().map(|(id, _)| id).collect();
    assert_eq!(dead.len(), 2, "{:?}", report.dead_lettered);
    let got: Vec<MessageId> = s
        .channel
        .read_range(
            "orders",
            &event_backbone_core::StreamPosition::Start,
            None,
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body.unwrap().message_id)
        .collect();
    assert_eq!(got, [ids[1], ids[3]]);
    assert_eq!(pending(&s).await, 0);
    assert_eq!(
        s.outbox
            .info("orders:outbox:dead-letter")
            .await
            .unwrap()
            .length,
        2
    );
}

#[tokio::test]
async fn a_lone_refusal_is_decided_by_the_next_message() {
    let s = Setup::new();
    let first = s.committed(0..1).await;
    let store = Arc::new(Refusing::default());
    *store.refused.lock().unwrap() = vec![format!("orders:placed:v0:normal:{}", first[0])];
    let producer = Producer::builder()
        .channel(s.channel.clone())
        .store(store.clone())
        .uri("orders")
        .build()
        .unwrap();
    let relay = OutboxRelay::builder()
        .channel(s.outbox.clone())
        .store(s.outbox_store.clone())
        .to(&producer)
        .build()
        .unwrap();
    // Alone, it cannot be told from a broken target: the relay stops.
    assert!(relay.relay_once().await.is_err());
    assert!(relay.relay_once().await.is_err(), "still undecided");
    // The next message goes through: the first was refused for its own sake.
    let second = s.committed(1..2).await;
    let report = relay.relay_once().await.unwrap();
    assert_eq!(report.relayed, 1);
    assert_eq!(report.dead_lettered.len(), 1, "{report:?}");
    let got: Vec<MessageId> = s
        .channel
        .read_range(
            "orders",
            &event_backbone_core::StreamPosition::Start,
            None,
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body.unwrap().message_id)
        .collect();
    assert_eq!(got, second);
    // The dead letter names the payload where it is: under its outbox key.
    let letters = s
        .outbox
        .read_range(
            "orders:outbox:dead-letter",
            &event_backbone_core::StreamPosition::Start,
            None,
            10,
        )
        .await
        .unwrap();
    let letter = letters[0].body.as_ref().unwrap();
    let keys: Vec<&str> = letter
        .segments
        .iter()
        .filter_map(|seg| match &seg.location {
            event_backbone_core::SegmentLocation::Stored { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(key.ends_with(":outbox"), "{key}");
        assert!(s.outbox_store.get(key).await.unwrap().is_some(), "{key}");
    }
}

#[test]
fn a_relay_needs_its_outbox_and_producer() {
    let err = OutboxRelay::builder()
        .channel(Arc::new(MemoryChannel::new()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("to(&producer)"), "{err}");
}
