//! The producer: validation, claim-check order, class routing, batching,
//! retries, fan-out, specialisation and interceptors.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::{
    BoxError, Consumer, ConsumerContext, ConsumerInterceptor, Error, HandlerError, KeyValueStore,
    Metadata, Producer, ProducerInterceptor, Receiver, Replay, RetryPolicy, SegmentClass,
    SegmentLocation, Segments, StreamChannel, StreamPosition,
};
use futures_util::StreamExt;
use support::{FlakyStore, WatchedChannel};

fn memory() -> (Arc<MemoryChannel>, Arc<MemoryStore>) {
    (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()))
}

#[test]
fn builder_names_what_is_missing() {
    let err = Producer::builder().uri("orders").build().unwrap_err();
    assert!(err.to_string().contains(".channel("), "{err}");
    let err = Producer::builder()
        .channel(Arc::new(MemoryChannel::new()))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains(".uri("), "{err}");
}

#[test]
fn bad_names_are_refused_at_build_naming_the_value() {
    let channel = Arc::new(MemoryChannel::new());
    for (uri, env) in [
        ("", None),
        ("   ", None),
        ("a:b", None),
        ("with space", None),
        ("bell\u{7}", None),
        ("ok", Some("pr od")),
        ("ok", Some("a:b")),
        ("ok", Some("")),
    ] {
        let mut b = Producer::builder().channel(channel.clone()).uri(uri);
        if let Some(env) = env {
            b = b.environment(env);
        }
        let err = b.build().unwrap_err();
        let bad = env.unwrap_or(uri);
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    for group in ["", "a:b", "a b", "tab\t"] {
        let err = Consumer::builder()
            .channel(channel.clone())
            .uri("ok")
            .group(group)
            .subscribe_fn(|_ctx: ConsumerContext| async { Ok::<(), HandlerError>(()) })
            .unwrap_err();
        assert!(err.to_string().contains("invalid group"), "{err}");
    }
}

#[tokio::test]
async fn bad_operation_is_refused_at_send() {
    let (channel, _) = memory();
    let producer = Producer::builder()
        .channel(channel.clone())
        .uri("ops")
        .build()
        .unwrap();
    let err = producer.message("order placed").send().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid operation \"order placed\""),
        "{err}"
    );
    assert_eq!(
        channel.info("ops").await.unwrap().length,
        0,
        "nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_is_stored_before_the_entry_is_appended() {
    let store: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new());
    let channel = Arc::new(WatchedChannel::new(Some(store.clone()), Duration::ZERO));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store)
        .uri("order")
        .build()
        .unwrap();
    let mut sends = Vec::new();
    for i in 0..50u32 {
        let p = producer.clone();
        sends.push(tokio::spawn(async move {
            p.message("n")
                .segment("i", &i)?
                .personal("who", "ann")?
                .send()
                .await
        }));
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert!(channel.appends.load(Ordering::SeqCst) > 0);
    // 50 messages, each with a normal and a personal segment.
    assert_eq!(
        channel.checked.load(Ordering::SeqCst),
        100,
        "stored segments looked up at append"
    );
    assert_eq!(
        channel.unstored.load(Ordering::SeqCst),
        0,
        "an entry was appended before its payload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_coalesce_into_batches() {
    let channel = Arc::new(WatchedChannel::new(None, Duration::from_millis(20)));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(Arc::new(MemoryStore::new()))
        .uri("batched")
        .build()
        .unwrap();
    let mut sends = Vec::new();
    for i in 0..200u32 {
        let p = producer.clone();
        sends.push(tokio::spawn(async move {
            p.message("n").segment("i", &i)?.send().await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for s in sends {
        ids.insert(s.await.unwrap().unwrap().entry_id().clone());
    }
    assert_eq!(ids.len(), 200, "every send has its own entry");
    let calls = channel.appends.load(Ordering::SeqCst);
    assert!(
        calls <= 20,
        "200 concurrent sends took {calls} append calls"
    );
    assert_eq!(channel.inner.info("batched").await.unwrap().length, 200);
}

#[tokio::test]
async fn personal_segments_get_their_own_store_and_key() {
    let (channel, normal) = memory();
    let personal = Arc::new(MemoryStore::new());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(normal.clone())
        .class_store(SegmentClass::personal(), personal.clone())
        .uri("users")
        .environment("prod")
        .build()
        .unwrap();
    let receipt = producer
        .message("registered")
        .version(2)
        .segment("plan", "gold")
        .unwrap()
        .personal("email", "ann@example.com")
        .unwrap()
        .send()
        .await
        .unwrap();
    let id = receipt.message_id;
    let normal_key = format!("prod:users:registered:v2:normal:{id}");
    let personal_key = format!("prod:users:registered:v2:personal:{id}");
    let n = normal.get(&normal_key).await.unwrap().expect("normal key");
    assert_eq!(n.keys().collect::<Vec<_>>(), ["plan"]);
    assert!(normal.get(&personal_key).await.unwrap().is_none());
    let p = personal
        .get(&personal_key)
        .await
        .unwrap()
        .expect("personal key");
    assert_eq!(p.keys().collect::<Vec<_>>(), ["email"]);

    // The stream carries the index, not the data.
    let entry = channel
        .get("prod:users", receipt.entry_id())
        .await
        .unwrap()
        .unwrap();
    let meta = entry.body.unwrap();
    for s in &meta.segments {
        assert_eq!(s.location, SegmentLocation::Standard, "{s:?}");
    }
    assert_eq!(
        meta.standard_payload_key(&SegmentClass::personal()),
        personal_key
    );

    let consumer = || {
        Replay::builder()
            .channel(channel.clone())
            .store(normal.clone())
            .class_store(SegmentClass::personal(), personal.clone())
            .uri("users")
            .environment("prod")
    };
    let before: Vec<_> = consumer().messages().unwrap().collect().await;
    let m = before[0].as_ref().unwrap();
    assert_eq!(m.segment::<String>("email").unwrap(), "ann@example.com");

    // Erasure: the personal key goes, the message stays readable without it.
    assert!(personal.delete(&personal_key).await.unwrap());
    let after: Vec<_> = consumer().messages().unwrap().collect().await;
    let m = after[0].as_ref().unwrap();
    assert_eq!(m.segment::<String>("plan").unwrap(), "gold");
    assert_eq!(m.optional_segment::<String>("email").unwrap(), None);
    assert_eq!(m.erased_segments(), ["email"]);
    let err = m.segment::<String>("email").unwrap_err().to_string();
    assert!(
        err.contains("\"email\"") && err.contains("registered"),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_store_segments_travel_inline() {
    let (channel, _) = memory();
    let producer = Producer::builder()
        .channel(channel.clone())
        .uri("inline")
        .build()
        .unwrap();
    let receipt = producer
        .message("small")
        .segment("n", &5u8)
        .unwrap()
        .send()
        .await
        .unwrap();
    let meta = channel
        .get("inline", receipt.entry_id())
        .await
        .unwrap()
        .unwrap()
        .body
        .unwrap();
    assert!(matches!(
        meta.segments[0].location,
        SegmentLocation::Inline(_)
    ));
    let message = Receiver::builder()
        .channel(channel.clone())
        .uri("inline")
        .build()
        .unwrap()
        .get(receipt.entry_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.segment::<u8>("n").unwrap(), 5);

    // Personal data never goes inline: it could not be erased there.
    let refused = producer
        .message("signed-up")
        .segment("plan", &"pro")
        .unwrap()
        .personal("email", &"ann@example.com")
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::PersonalDataInline { segment, .. } if segment == "email"),
        "{refused}"
    );
    assert!(refused.to_string().contains(".store("), "{refused}");
    let entries = channel
        .read_range("inline", &StreamPosition::Start, None, 10)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "the refused message was appended");
}

#[tokio::test]
async fn transient_store_failures_are_retried() {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(FlakyStore::default());
    store.fail_puts.store(2, Ordering::SeqCst);
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("retry")
        .backend_retry(RetryPolicy::exponential(3).initial_delay(Duration::from_millis(1)))
        .build()
        .unwrap();
    producer
        .message("m")
        .segment("x", &1u8)
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(store.puts.load(Ordering::SeqCst), 3);
    assert_eq!(channel.info("retry").await.unwrap().length, 1);
}

#[tokio::test]
async fn a_permanent_failure_fails_the_send_and_appends_nothing() {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(FlakyStore {
        permanent: true,
        ..FlakyStore::default()
    });
    store.fail_puts.store(1, Ordering::SeqCst);
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("broken")
        .build()
        .unwrap();
    let err = producer
        .message("m")
        .segment("x", &1u8)
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("\"broken\"") && text.contains("disk full"),
        "{text}"
    );
    assert_eq!(
        store.puts.load(Ordering::SeqCst),
        1,
        "a permanent error is not retried"
    );
    assert_eq!(
        channel.info("broken").await.unwrap().length,
        0,
        "no entry without its payload"
    );
}

#[tokio::test]
async fn merged_producers_send_to_every_stream_with_one_id() {
    let (channel, store) = memory();
    let build = |uri: &str| {
        Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(uri)
            .build()
            .unwrap()
    };
    let both = Producer::merge([build("audit"), build("orders")]).unwrap();
    let receipt = both
        .message("placed")
        .segment("n", &1u8)
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(receipt.entries.len(), 2);
    for (entry, stream) in receipt.entries.iter().zip(["audit", "orders"]) {
        assert_eq!(&*entry.stream, stream);
        let meta = channel
            .get(stream, &entry.entry_id)
            .await
            .unwrap()
            .unwrap()
            .body
            .unwrap();
        assert_eq!(meta.message_id, receipt.message_id);
        assert_eq!(meta.uri, stream);
    }
    assert!(Producer::merge(Vec::<Producer>::new()).is_err());
}

#[tokio::test]
async fn specialize_reroutes_a_copy() {
    let (channel, store) = memory();
    let base = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("orders")
        .environment("prod")
        .build()
        .unwrap();
    let staged = base
        .specialize()
        .uri_prefix("eu.")
        .uri_suffix(".v2")
        .environment("staging")
        .build()
        .unwrap();
    assert_eq!(staged.streams(), ["staging:eu.orders.v2"]);
    let bare = base
        .specialize()
        .uri("returns")
        .without_environment()
        .build()
        .unwrap();
    assert_eq!(bare.streams(), ["returns"]);
    staged.message("x").send().await.unwrap();
    assert_eq!(
        channel.info("staging:eu.orders.v2").await.unwrap().length,
        1
    );
    assert_eq!(channel.info("prod:orders").await.unwrap().length, 0);
    assert!(base.specialize().uri_suffix(" bad").build().is_err());
}

#[tokio::test]
async fn environment_from_a_variable() {
    let (channel, _) = memory();
    // SAFETY-free: set_var is safe in edition 2021; this test owns the name.
    std::env::set_var("EVENT_BACKBONE_TEST_ENV_7F3A", "qa");
    let p = Producer::builder()
        .channel(channel.clone())
        .uri("orders")
        .environment_from_var("EVENT_BACKBONE_TEST_ENV_7F3A")
        .build()
        .unwrap();
    assert_eq!(p.streams(), ["qa:orders"]);
    let unset = Producer::builder()
        .channel(channel)
        .uri("orders")
        .environment_from_var("EVENT_BACKBONE_TEST_ENV_UNSET_7F3A")
        .build()
        .unwrap();
    assert_eq!(unset.streams(), ["orders"]);
}

/// A toy cipher (XOR with a key stream): what matters here is that the
/// bytes at rest differ and come back.
#[derive(Debug)]
struct Cipher(u8);

impl Cipher {
    fn apply(&self, data: &[u8]) -> Vec<u8> {
        data.iter()
            .enumerate()
            .map(|(i, b)| b ^ self.0.wrapping_add(i as u8))
            .collect()
    }
}

#[async_trait]
impl ProducerInterceptor for Cipher {
    fn name(&self) -> &str {
        "cipher"
    }
    async fn on_send(
        &self,
        metadata: &mut Metadata,
        segments: &mut Segments,
    ) -> Result<(), BoxError> {
        let card = segments.get_mut("card").ok_or("no card segment")?;
        card.data = self.apply(&card.data).into();
        metadata.headers.insert("encrypted".into(), "card".into());
        Ok(())
    }
}

#[async_trait]
impl ConsumerInterceptor for Cipher {
    fn name(&self) -> &str {
        "cipher"
    }
    async fn on_receive(
        &self,
        metadata: &Metadata,
        segments: &mut Segments,
    ) -> Result<(), BoxError> {
        if metadata.headers.get("encrypted").map(String::as_str) == Some("card") {
            let card = segments.get_mut("card").ok_or("no card segment")?;
            card.data = self.apply(&card.data).into();
        }
        Ok(())
    }
}

#[tokio::test]
async fn interceptors_encrypt_on_the_way_out_and_decrypt_on_the_way_in() {
    let (channel, store) = memory();
    let cipher = Arc::new(Cipher(0x5a));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("payments")
        .interceptor(cipher.clone())
        .build()
        .unwrap();
    let card = "4111 1111 1111 1111".to_owned();
    let receipt = producer
        .message("paid")
        .segment("card", &card)
        .unwrap()
        .segment("amount", &42u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let key = format!("payments:paid:v0:normal:{}", receipt.message_id);
    let at_rest = store.get(&key).await.unwrap().unwrap();
    let plain = producer.codec().encode("card", &card).unwrap();
    assert_ne!(
        at_rest["card"].as_ref(),
        &plain[..],
        "the card is stored encrypted"
    );

    let decrypted = Receiver::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("payments")
        .interceptor(cipher)
        .build()
        .unwrap()
        .get(receipt.entry_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decrypted.segment::<String>("card").unwrap(), card);
    assert_eq!(decrypted.segment::<u32>("amount").unwrap(), 42);

    let raw = Receiver::builder()
        .channel(channel)
        .store(store)
        .uri("payments")
        .build()
        .unwrap()
        .get(receipt.entry_id())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(raw.raw_segment("card").unwrap().as_ref(), &plain[..]);
}

#[tokio::test]
async fn a_failing_interceptor_is_named() {
    let (channel, _) = memory();
    let producer = Producer::builder()
        .channel(channel)
        .uri("x")
        .interceptor(Arc::new(Cipher(1)))
        .build()
        .unwrap();
    let err = producer
        .message("no_card")
        .send()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("interceptor \"cipher\"") && err.contains("no card segment"),
        "{err}"
    );
}

#[tokio::test]
async fn caused_by_carries_correlation_causation_and_trace() {
    let (channel, store) = memory();
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("chain")
        .build()
        .unwrap();
    let first = producer
        .message("placed")
        .traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    let receiver = Receiver::builder()
        .channel(channel.clone())
        .store(store)
        .uri("chain")
        .build()
        .unwrap();
    let placed = receiver.get(first.entry_id()).await.unwrap().unwrap();
    let second = producer
        .caused_by(&placed)
        .message("packed")
        .send()
        .await
        .unwrap();
    let packed = receiver.find(second.message_id).await.unwrap().unwrap();
    let m = packed.metadata();
    assert_eq!(
        m.causation_id.as_deref(),
        Some(first.message_id.to_string().as_str())
    );
    assert_eq!(
        m.correlation_id.as_deref(),
        Some(first.message_id.to_string().as_str())
    );
    assert_eq!(m.traceparent, placed.metadata().traceparent);
    let third = producer
        .caused_by(&packed)
        .message("shipped")
        .correlation_id("explicit")
        .send()
        .await
        .unwrap();
    let shipped = receiver.get(third.entry_id()).await.unwrap().unwrap();
    assert_eq!(
        shipped.metadata().correlation_id.as_deref(),
        Some("explicit")
    );
    assert_eq!(
        shipped.metadata().causation_id.as_deref(),
        Some(second.message_id.to_string().as_str())
    );
}

/// An append that leaves some entries of a batch out (a partition's leader
/// moved) is finished by appending those alone: every sender is answered
/// with its own entry, and no entry is appended twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_appended_batch_appends_the_rest_once() {
    let store = Arc::new(MemoryStore::new());
    let channel = Arc::new(WatchedChannel::new(None, Duration::from_millis(20)));
    channel.split_appends.store(2, Ordering::SeqCst);
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store)
        .uri("partly")
        .backend_retry(RetryPolicy::exponential(4).initial_delay(Duration::from_millis(5)))
        .build()
        .unwrap();
    let sends = (0..12u32).map(|i| {
        let producer = producer.clone();
        async move { producer.message("n").segment("i", &i)?.send().await }
    });
    let receipts: Vec<_> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every send succeeds");
    assert_eq!(
        channel.split_appends.load(Ordering::SeqCst),
        0,
        "the split happened"
    );
    let entries = channel
        .inner
        .read_range("partly", &StreamPosition::Start, None, 100)
        .await
        .unwrap();
    let mut ids: Vec<_> = entries
        .iter()
        .map(|e| e.body.as_ref().unwrap().message_id)
        .collect();
    assert_eq!(ids.len(), 12, "each message appended once");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "no message appended twice");
    for receipt in &receipts {
        let entry = channel
            .inner
            .get("partly", receipt.entry_id())
            .await
            .unwrap()
            .expect("the receipt names an entry");
        assert_eq!(entry.body.unwrap().message_id, receipt.message_id);
    }
}

/// An interceptor that claims a data subject for every message.
#[derive(Debug)]
struct ClaimsSubject;

#[async_trait]
impl ProducerInterceptor for ClaimsSubject {
    fn name(&self) -> &str {
        "claims-subject"
    }
    async fn on_send(&self, metadata: &mut Metadata, _: &mut Segments) -> Result<(), BoxError> {
        metadata.subject = Some(event_backbone_core::privacy::SubjectHash::from_bytes(
            [1; 16],
        ));
        Ok(())
    }
}

/// The subject is the producer's to set, from the message's own: an
/// interceptor cannot make a message claim another (or any) subject.
#[tokio::test]
async fn an_interceptor_does_not_set_the_subject() {
    use event_backbone_core::privacy::{MasterKey, PersonalData, SubjectKey};
    let (channel, store) = memory();
    let personal =
        PersonalData::on_store(store.clone(), MasterKey::generate(), SubjectKey::generate());
    for with_vault in [false, true] {
        let builder = Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri("accounts")
            .interceptor(Arc::new(ClaimsSubject));
        let producer = if with_vault {
            builder.personal_data(personal.clone())
        } else {
            builder
        }
        .build()
        .unwrap();
        producer.message("opened").send().await.unwrap();
        if with_vault {
            producer
                .message("opened")
                .subject("ann")
                .send()
                .await
                .unwrap();
        }
    }
    let entries = channel
        .read_range("accounts", &StreamPosition::Start, None, 10)
        .await
        .unwrap();
    let subjects: Vec<_> = entries
        .iter()
        .map(|e| e.body.as_ref().unwrap().subject)
        .collect();
    assert_eq!(
        subjects,
        [None, None, Some(personal.subject_hash("ann"))],
        "an interceptor's subject was kept"
    );
}

/// A store whose merging write is refused: only the write of new keys
/// works.
#[derive(Debug)]
struct InsertOnly(MemoryStore);

#[async_trait]
impl KeyValueStore for InsertOnly {
    fn backend(&self) -> &'static str {
        "insert-only"
    }
    fn capabilities(&self) -> event_backbone_core::StoreCapabilities {
        self.0.capabilities()
    }
    async fn put_many(
        &self,
        _: &[event_backbone_core::PutItem],
    ) -> event_backbone_core::Result<()> {
        Err(Error::permanent(
            "insert-only",
            "merging",
            "the producer merged",
        ))
    }
    async fn insert_many(
        &self,
        items: &[event_backbone_core::PutItem],
    ) -> event_backbone_core::Result<()> {
        self.0.insert_many(items).await
    }
    async fn get_many(
        &self,
        keys: &[&str],
    ) -> event_backbone_core::Result<Vec<Option<event_backbone_core::Fields>>> {
        self.0.get_many(keys).await
    }
    async fn delete_many(&self, keys: &[&str]) -> event_backbone_core::Result<u64> {
        self.0.delete_many(keys).await
    }
}

#[tokio::test]
async fn payloads_are_written_as_new_keys() {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(InsertOnly(MemoryStore::new()));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("inserts")
        .build()
        .unwrap();
    let receipt = producer
        .message("placed")
        .segment("amount", &7u32)
        .unwrap()
        .send()
        .await
        .expect("the producer writes payloads with insert_many, never a merge");
    let message = Receiver::builder()
        .channel(channel)
        .store(store)
        .uri("inserts")
        .build()
        .unwrap()
        .get(receipt.entry_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.segment::<u32>("amount").unwrap(), 7);
}
