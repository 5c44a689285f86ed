//! The consumer runtime: bad input goes to the dead-letter stream and the
//! consumer keeps going; ack modes, fallbacks, stop conditions, crash
//! recovery under a stable name, panics, several handlers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_backbone_core::consumer::{HEADER_DEAD_LETTER_REASON, MALFORMED_OPERATION, RAW_SEGMENT};
use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::{
    AckMode, Consumer, ConsumerBuilder, ConsumerContext, EndpointBuilder, EntryId, Fallback,
    Handler, HandlerError, Handlers, KeyValueStore, Message, Outcome, Producer, Receiver, Replay,
    RetryPolicy, StreamChannel, StreamPosition,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

struct Setup {
    channel: Arc<MemoryChannel>,
    store: Arc<MemoryStore>,
    producer: Producer,
}

fn setup(uri: &str) -> Setup {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(MemoryStore::new());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .build()
        .unwrap();
    Setup {
        channel,
        store,
        producer,
    }
}

impl Setup {
    fn consumer(&self) -> ConsumerBuilder {
        self.on(Consumer::builder())
            .block(Duration::from_millis(50))
    }

    /// A builder of any role on this stream.
    fn on<R>(&self, builder: EndpointBuilder<R>) -> EndpointBuilder<R> {
        builder
            .channel(self.channel.clone())
            .store(self.store.clone())
            .uri(self.producer.streams()[0])
    }

    async fn dead_letters(&self) -> Vec<Message> {
        let stream = format!("{}:dead-letter", self.producer.streams()[0]);
        let entries = self
            .channel
            .read_range(&stream, &StreamPosition::Start, None, 100)
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|e| Message::new(e.id, e.body.unwrap(), Default::default()))
            .collect()
    }

    /// The reason header of the one dead letter there must be.
    async fn dead_letter_reason(&self) -> String {
        let dead = self.dead_letters().await;
        assert_eq!(dead.len(), 1, "one dead letter");
        dead[0].metadata().headers[HEADER_DEAD_LETTER_REASON].clone()
    }

    async fn send_numbered(&self, operation: &str, n: u32) {
        for i in 0..n {
            self.producer
                .message(operation)
                .segment("i", &i)
                .unwrap()
                .send()
                .await
                .unwrap();
        }
    }

    async fn pending(&self, group: &str) -> u64 {
        let info = self.channel.info(self.producer.streams()[0]).await.unwrap();
        info.group(group).map_or(0, |g| g.pending)
    }
}

type Seen = Arc<Mutex<Vec<u32>>>;

/// A handler that records segment `i` of every message.
fn recorder() -> (Seen, impl Handler) {
    let seen = Seen::default();
    let s = seen.clone();
    let handler = event_backbone_core::handler_fn(move |ctx: ConsumerContext| {
        let s = s.clone();
        Box::pin(async move {
            s.lock().unwrap().push(ctx.segment::<u32>("i")?);
            Ok(())
        }) as futures_util::future::BoxFuture<'static, Result<(), HandlerError>>
    });
    (seen, handler)
}

#[tokio::test]
async fn malformed_entries_are_dead_lettered_with_their_bytes_and_the_consumer_goes_on() {
    let s = setup("garbage");
    s.producer
        .message("ok")
        .segment("i", &1u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let bad = s
        .channel
        .append_raw("garbage", &b"\x00not metadata\xff"[..]);
    s.producer
        .message("ok")
        .segment("i", &2u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let (seen, handler) = recorder();
    let stats = s
        .consumer()
        .stop_after(3)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [1, 2],
        "the good messages around it were handled"
    );
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(
        s.pending("default").await,
        0,
        "the bad entry was acknowledged after dead-lettering"
    );
    let dead = s.dead_letters().await;
    assert_eq!(dead.len(), 1);
    let m = dead[0].metadata();
    assert_eq!(m.operation, MALFORMED_OPERATION);
    let reason = &m.headers[HEADER_DEAD_LETTER_REASON];
    assert!(
        reason.contains("malformed metadata") && reason.contains("magic"),
        "{reason}"
    );
    assert_eq!(m.headers["dead-letter.entry-id"], bad.to_string());
    let raw = match &m.segment(RAW_SEGMENT).unwrap().location {
        event_backbone_core::SegmentLocation::Inline(b) => b.clone(),
        other => panic!("raw bytes not inline: {other:?}"),
    };
    assert_eq!(&raw[..], b"\x00not metadata\xff", "nothing is lost");
}

#[tokio::test]
async fn a_missing_payload_key_is_dead_lettered_naming_the_key() {
    let s = setup("lost");
    let receipt = s
        .producer
        .message("ok")
        .segment("i", &1u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    s.producer
        .message("ok")
        .segment("i", &2u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let key = format!("lost:ok:v0:normal:{}", receipt.message_id);
    assert!(s.store.delete(&key).await.unwrap());
    let (seen, handler) = recorder();
    let stats = s
        .consumer()
        .stop_after(2)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [2]);
    assert_eq!(stats.dead_lettered, 1);
    let reason = s.dead_letter_reason().await;
    assert!(
        reason.contains(&key) && reason.contains("missing"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_missing_field_is_dead_lettered_naming_key_and_field() {
    let s = setup("half");
    let receipt = s
        .producer
        .message("ok")
        .segment("i", &1u32)
        .unwrap()
        .segment("note", &"kept")
        .unwrap()
        .send()
        .await
        .unwrap();
    s.producer
        .message("ok")
        .segment("i", &2u32)
        .unwrap()
        .segment("note", &"kept")
        .unwrap()
        .send()
        .await
        .unwrap();
    // The first payload loses its "note" field.
    let key = format!("half:ok:v0:normal:{}", receipt.message_id);
    let mut fields = s.store.get(&key).await.unwrap().unwrap();
    fields.remove("note");
    // `put` adds fields, like HSET: replace the whole payload.
    assert!(s.store.delete(&key).await.unwrap());
    s.store.put(&key, &fields, None).await.unwrap();

    let (seen, handler) = recorder();
    let stats = s
        .consumer()
        .stop_after(2)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [2],
        "the whole message waits, not half"
    );
    assert_eq!(stats.dead_lettered, 1);
    let reason = s.dead_letter_reason().await;
    assert!(
        reason.contains(&key) && reason.contains("\"note\""),
        "{reason}"
    );
}

#[tokio::test]
async fn a_consumer_without_the_payload_store_dead_letters_naming_the_store() {
    let s = setup("storeless");
    s.producer
        .message("ok")
        .segment("i", &1u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    let stats = Consumer::builder()
        .channel(s.channel.clone())
        .uri("storeless")
        .block(Duration::from_millis(50))
        .stop_after(1)
        .subscribe(recorder().1)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((stats.handled, stats.dead_lettered), (0, 1));
    let reason = s.dead_letter_reason().await;
    assert!(
        reason.contains("\"normal\"") && reason.contains("\"i\""),
        "{reason}"
    );
}

#[tokio::test]
async fn ack_always_acknowledges_failures_without_dead_letter() {
    let s = setup("always");
    s.producer.message("m").send().await.unwrap();
    let stats = s
        .consumer()
        .ack_mode(AckMode::Always)
        .retry(RetryPolicy::none())
        .stop_after(1)
        .subscribe_fn(|_ctx: ConsumerContext| async { Err::<(), _>(HandlerError::from("nope")) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((stats.failed, stats.dead_lettered), (1, 0));
    assert_eq!(s.pending("default").await, 0);
}

#[tokio::test]
async fn handler_errors_are_retried_within_a_delivery() {
    let s = setup("local-retry");
    s.producer.message("m").send().await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let stats = s
        .consumer()
        .retry(RetryPolicy::exponential(3).initial_delay(Duration::from_millis(1)))
        .stop_after(1)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                assert_eq!(ctx.delivery_count(), 1);
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(HandlerError::from("not yet"));
                }
                Ok(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!((stats.handled, stats.failed), (1, 0));
    assert_eq!(s.pending("default").await, 0);
}

#[tokio::test]
async fn a_panicking_handler_is_a_failure_not_a_crash() {
    let s = setup("panic");
    s.producer.message("boom").send().await.unwrap();
    s.producer.message("fine").send().await.unwrap();
    let stats = s
        .consumer()
        .retry(RetryPolicy::none())
        .max_deliveries(1)
        .stop_after(2)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            if ctx.operation() == "boom" {
                panic!("handler bug");
            }
            Ok::<(), HandlerError>(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(
        (stats.handled, stats.failed, stats.dead_lettered),
        (1, 1, 1)
    );
    let reason = s.dead_letter_reason().await;
    assert!(reason.contains("handler panicked: handler bug"), "{reason}");
}

struct Only(&'static str, Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Handler for Only {
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        if ctx.operation() != self.0 {
            return Ok(Outcome::Unknown);
        }
        self.1
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.0, ctx.operation()));
        Ok(Outcome::Handled)
    }
}

#[tokio::test]
async fn several_handlers_each_see_what_they_know() {
    let s = setup("several");
    for op in ["a", "b", "c"] {
        s.producer.message(op).send().await.unwrap();
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let all = {
        let log = log.clone();
        event_backbone_core::handler_fn(move |ctx: ConsumerContext| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("all:{}", ctx.operation()));
                Ok::<(), HandlerError>(())
            }
        })
    };
    let handlers = Handlers::new()
        .with(Only("a", log.clone()))
        .with(Only("b", log.clone()))
        .with(all);
    s.consumer()
        .concurrency(1)
        .stop_after(3)
        .subscribe(handlers)
        .unwrap()
        .completion()
        .await
        .unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log, ["a:a", "all:a", "b:b", "all:b", "all:c"]);
}

#[tokio::test]
async fn fallbacks_ack_or_hand_over() {
    let s = setup("fallback");
    s.producer.message("known").send().await.unwrap();
    s.producer.message("stranger").send().await.unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let stats = s
        .consumer()
        .group("ack")
        .fallback(Fallback::Ack)
        .stop_after(2)
        .subscribe(Only("known", log.clone()))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((stats.handled, stats.dead_lettered), (2, 0));
    assert_eq!(s.pending("ack").await, 0);

    let stats = s
        .consumer()
        .group("handover")
        .fallback(Fallback::Handler(Arc::new(Only("stranger", log.clone()))))
        .stop_after(2)
        .subscribe(Only("known", log.clone()))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((stats.handled, stats.dead_lettered), (2, 0));
    assert!(log
        .lock()
        .unwrap()
        .contains(&"stranger:stranger".to_owned()));
}

#[tokio::test]
async fn stop_after_reads_no_more_than_asked() {
    let s = setup("stop-after");
    s.send_numbered("m", 10).await;
    let (seen, handler) = recorder();
    let stats = s
        .consumer()
        .batch_size(4)
        .stop_after(6)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.received, 6);
    assert_eq!(seen.lock().unwrap().len(), 6);
    let info = s.channel.info("stop-after").await.unwrap();
    let g = info.group("default").unwrap();
    assert_eq!(
        (g.pending, g.lag),
        (0, Some(4)),
        "the other 4 stay unread for the next consumer"
    );
}

#[tokio::test]
async fn a_cancellation_token_or_ctx_cancel_stops_the_consumer() {
    let s = setup("cancel");
    let token = CancellationToken::new();
    let lifetime = s
        .consumer()
        .cancellation(token.clone())
        .subscribe_fn(|_ctx: ConsumerContext| async { Ok::<(), HandlerError>(()) })
        .unwrap();
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), lifetime.completion())
        .await
        .expect("stopped")
        .unwrap();

    s.send_numbered("m", 5).await;
    let stats = s
        .consumer()
        .group("self-stop")
        .concurrency(1)
        .batch_size(1)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            if ctx.segment::<u32>("i")? == 2 {
                ctx.cancel();
            }
            Ok::<(), HandlerError>(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    // What was already fetched when the handler cancelled (at most one
    // batch ahead) is finished; nothing more is read.
    assert!(
        (3..=4).contains(&stats.handled),
        "handled {}",
        stats.handled
    );
    assert_eq!(stats.received, stats.handled);
    let info = s.channel.info("cancel").await.unwrap();
    let g = info.group("self-stop").unwrap();
    assert_eq!((g.pending, g.lag), (0, Some(5 - stats.handled)));
}

#[tokio::test]
async fn a_restart_under_the_same_name_takes_back_its_pending_entries() {
    let s = setup("restart");
    s.send_numbered("m", 3).await;
    // A consumer that "crashes": it reads but never acknowledges.
    s.consumer()
        .consumer_name("svc-1")
        .ack_mode(AckMode::Manual)
        .stop_after(3)
        .subscribe_fn(|_ctx: ConsumerContext| async { Ok::<(), HandlerError>(()) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(s.pending("default").await, 3);
    let counts = Arc::new(Mutex::new(Vec::new()));
    let c = counts.clone();
    s.consumer()
        .consumer_name("svc-1")
        .no_claim()
        .stop_after(3)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.lock()
                    .unwrap()
                    .push((ctx.segment::<u32>("i")?, ctx.delivery_count()));
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    let mut counts = counts.lock().unwrap().clone();
    counts.sort();
    assert_eq!(counts, [(0, 2), (1, 2), (2, 2)]);
    assert_eq!(s.pending("default").await, 0);
}

#[tokio::test]
async fn concurrency_one_keeps_stream_order() {
    let s = setup("ordered");
    s.send_numbered("m", 100).await;
    let (seen, handler) = recorder();
    s.consumer()
        .concurrency(1)
        .batch_size(7)
        .stop_after(100)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn decoding_the_wrong_type_names_segment_type_and_operation() {
    let s = setup("types");
    s.producer
        .message("priced")
        .segment("price", "twelve")
        .unwrap()
        .send()
        .await
        .unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    s.consumer()
        .ack_mode(AckMode::Always)
        .retry(RetryPolicy::none())
        .stop_after(1)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let e = e.clone();
            async move {
                if let Err(err) = ctx.segment::<u64>("price") {
                    e.lock().unwrap().push(err.to_string());
                }
                if let Err(err) = ctx.segment::<u64>("cost") {
                    e.lock().unwrap().push(err.to_string());
                }
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors[0].contains("\"price\"")
            && errors[0].contains("u64")
            && errors[0].contains("\"priced\""),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("\"cost\" is missing") && errors[1].contains("[\"price\"]"),
        "{}",
        errors[1]
    );
}

#[tokio::test]
async fn receiver_and_replay_handle_missing_and_ranges() {
    let s = setup("reads");
    let mut ids: Vec<EntryId> = Vec::new();
    for i in 0..5u32 {
        ids.push(
            s.producer
                .message("m")
                .segment("i", &i)
                .unwrap()
                .send()
                .await
                .unwrap()
                .entry_id()
                .clone(),
        );
    }
    let receiver = s.on(Receiver::builder()).build().unwrap();
    assert!(receiver.get(&EntryId::new("999")).await.unwrap().is_none());
    assert!(receiver.get(&EntryId::new("not-a-number")).await.is_err());
    let range: Vec<u32> = s
        .on(Replay::builder())
        .from(StreamPosition::After(ids[0].clone()))
        .to(ids[3].clone())
        .messages()
        .unwrap()
        .map(|m| m.unwrap().segment::<u32>("i").unwrap())
        .collect()
        .await;
    assert_eq!(range, [1, 2, 3]);
}

#[tokio::test]
async fn shutdown_of_an_idle_consumer_returns_promptly() {
    let s = setup("idle");
    let lifetime = s
        .consumer()
        .subscribe_fn(|_ctx: ConsumerContext| async { Ok::<(), HandlerError>(()) })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!lifetime.is_finished());
    let stats = tokio::time::timeout(Duration::from_secs(5), lifetime.shutdown())
        .await
        .expect("prompt")
        .unwrap();
    assert_eq!(stats.received, 0);
}

/// A store that answers one row short: no row can be matched to its key.
#[derive(Debug, Default)]
struct ShortStore(MemoryStore);

#[async_trait]
impl KeyValueStore for ShortStore {
    fn backend(&self) -> &'static str {
        "short"
    }
    fn capabilities(&self) -> event_backbone_core::StoreCapabilities {
        self.0.capabilities()
    }
    async fn put_many(
        &self,
        items: &[event_backbone_core::PutItem],
    ) -> event_backbone_core::Result<()> {
        self.0.put_many(items).await
    }
    async fn get_many(
        &self,
        keys: &[&str],
    ) -> event_backbone_core::Result<Vec<Option<event_backbone_core::Fields>>> {
        let mut rows = self.0.get_many(keys).await?;
        rows.pop();
        Ok(rows)
    }
    async fn delete_many(&self, keys: &[&str]) -> event_backbone_core::Result<u64> {
        self.0.delete_many(keys).await
    }
}

/// A store that returns fewer rows than keys breaks its contract: the
/// consumer does not panic, and dead-letters the messages with an error
/// that names the store and what it returned.
#[tokio::test]
async fn a_store_that_returns_fewer_rows_than_keys_is_named_not_a_panic() {
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(ShortStore::default());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("short")
        .build()
        .unwrap();
    for i in 0..3u32 {
        producer
            .message("ok")
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
    }
    let (seen, handler) = recorder();
    let stats = Consumer::builder()
        .channel(channel.clone())
        .store(store)
        .uri("short")
        .block(Duration::from_millis(50))
        .stop_after(3)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(stats.dead_lettered, 3, "{stats:?}");
    let dead = channel
        .read_range("short:dead-letter", &StreamPosition::Start, None, 10)
        .await
        .unwrap();
    let reason = &dead[0].body.as_ref().unwrap().headers[HEADER_DEAD_LETTER_REASON];
    assert!(
        reason.contains("\"default\"") && reason.contains("returned 0 rows for 1 keys"),
        "{reason}"
    );
}

/// An interceptor that fails with a transient error (a key service down)
/// has its message tried again after a backoff, not dead-lettered.
#[tokio::test]
async fn a_transient_interceptor_failure_is_tried_again() {
    #[derive(Debug, Default)]
    struct Unavailable(AtomicU32);

    #[async_trait]
    impl event_backbone_core::ConsumerInterceptor for Unavailable {
        fn name(&self) -> &str {
            "key-service"
        }
        async fn on_receive(
            &self,
            _metadata: &event_backbone_core::Metadata,
            _segments: &mut event_backbone_core::Segments,
        ) -> Result<(), event_backbone_core::BoxError> {
            if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(event_backbone_core::Transient::new("the key service is down").into());
            }
            Ok(())
        }
    }

    let s = setup("transient-interceptor");
    s.send_numbered("ok", 1).await;
    let interceptor = Arc::new(Unavailable::default());
    let (seen, handler) = recorder();
    let stats = s
        .consumer()
        .interceptor(interceptor.clone())
        .backend_retry(RetryPolicy::exponential(3).initial_delay(Duration::from_millis(10)))
        .stop_after(1)
        .subscribe(handler)
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [0]);
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    assert_eq!(
        interceptor.0.load(Ordering::SeqCst),
        3,
        "two failures, then it works"
    );
}
