//! What the backend writes to Kafka, checked with a plain rdkafka client;
//! and what the consumer does with records written by hand.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_backbone_core::consumer::HEADER_DEAD_LETTER_REASON;
use event_backbone_core::envelope::decode_metadata;
use event_backbone_core::memory::MemoryStore;
use event_backbone_core::{
    Consumer, ConsumerContext, EntryId, Error, HandlerError, KeyValueStore, Producer, SegmentClass,
    StreamChannel,
};
use event_backbone_kafka::entry::{
    HEADER_CORRELATION_ID, HEADER_MESSAGE_ID, HEADER_OPERATION, HEADER_TRACEPARENT, PARTITION_KEY,
};
use event_backbone_kafka::{group_id, topic_of, Kafka, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::{config, unique};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A plain client of the test brokers (`group.id` only for librdkafka's
/// sake: it never joins).
fn raw_client(group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", config().brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a raw rdkafka client")
}

/// The records of a partition from `from` on, read with a plain client
/// until `n` came.
fn raw_records(topic: &str, partition: i32, from: i64, n: usize) -> Vec<OwnedMessage> {
    let client = raw_client("layout-reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .unwrap();
    client.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(m) = client.poll(Duration::from_millis(100)) {
            out.push(m.expect("a record").detach());
        }
    }
    assert_eq!(out.len(), n, "read {} of {n} records of {topic}", out.len());
    out
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn records_hold_the_metadata_and_the_store_holds_the_payload() {
    let channel = support::channel(config().partitions(3)).await;
    let store = Arc::new(MemoryStore::new());
    let uri = unique("layout");
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .environment("test")
        .build()
        .unwrap();
    let payload = "a payload that must not be in the topic";
    let receipt = producer
        .message("order_placed")
        .version(2)
        .header(PARTITION_KEY, "customer-7")
        .traceparent(TRACEPARENT)
        .correlation_id("order-99")
        .segment("product", payload)
        .unwrap()
        .personal("email", "ann@example.com")
        .unwrap()
        .send()
        .await
        .unwrap();

    let topic = topic_of(&format!("test:{uri}")).unwrap();
    assert_eq!(topic, format!("test.{uri}"));
    let metadata = raw_client("layout-meta")
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3, "partitions(3)");

    let (partition, offset) = receipt
        .entry_id()
        .as_str()
        .split_once(':')
        .map(|(p, o)| (p.parse::<i32>().unwrap(), o.parse::<i64>().unwrap()))
        .expect("an entry id partition:offset");
    let record = &raw_records(&topic, partition, offset, 1)[0];
    assert_eq!(record.offset(), offset);
    assert_eq!(record.key(), Some(&b"customer-7"[..]), "the partition key");
    assert_eq!(
        header(record, HEADER_MESSAGE_ID),
        Some(receipt.message_id.to_string())
    );
    assert_eq!(
        header(record, HEADER_OPERATION).as_deref(),
        Some("order_placed")
    );
    assert_eq!(
        header(record, HEADER_TRACEPARENT).as_deref(),
        Some(TRACEPARENT)
    );
    assert_eq!(
        header(record, HEADER_CORRELATION_ID).as_deref(),
        Some("order-99")
    );
    let value = record.payload().expect("a record value");
    let decoded = decode_metadata(value).expect("the value is the encoded metadata");
    assert_eq!(decoded.message_id, receipt.message_id);
    assert_eq!(
        (decoded.operation.as_str(), decoded.version),
        ("order_placed", 2)
    );
    for bytes in
        std::iter::once(value).chain(record.headers().unwrap().iter().filter_map(|h| h.value))
    {
        assert!(
            !contains(bytes, payload.as_bytes()),
            "payload bytes in the record"
        );
        assert!(
            !contains(bytes, b"ann@example.com"),
            "personal data in the record"
        );
    }

    let normal = store
        .get(&decoded.standard_payload_key(&SegmentClass::NORMAL))
        .await
        .unwrap()
        .expect("the normal payload key");
    assert_eq!(normal.keys().collect::<Vec<_>>(), ["product"]);
    let personal = store
        .get(&decoded.standard_payload_key(&SegmentClass::personal()))
        .await
        .unwrap()
        .expect("the personal payload key");
    assert_eq!(personal.keys().collect::<Vec<_>>(), ["email"]);
}

#[tokio::test]
async fn a_group_commits_under_the_kafka_group_of_its_stream() {
    let channel = support::channel(config()).await;
    let uri = unique("group-id");
    let producer = Producer::builder()
        .channel(channel.clone())
        .uri(&uri)
        .build()
        .unwrap();
    for i in 0..3u32 {
        producer
            .message("m")
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
    }
    let stats = Consumer::builder()
        .channel(channel.clone())
        .uri(&uri)
        .group("billing")
        .block(Duration::from_millis(100))
        .stop_after(3)
        .subscribe_fn(|_ctx: ConsumerContext| async { Ok::<(), HandlerError>(()) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, 3);

    // The member left (committing); a plain client of the Kafka group
    // `{topic}/billing` sees the offset after the last entry.
    let topic = topic_of(&uri).unwrap();
    assert_eq!(group_id(&topic, "billing"), format!("{topic}/billing"));
    assert_eq!(
        committed(&format!("{topic}/billing"), &topic),
        Offset::Offset(3)
    );
    assert_eq!(
        committed(&format!("{topic}/someone-else"), &topic),
        Offset::Invalid,
        "another group of the same topic has no offset"
    );
}

/// The offset a Kafka group committed on partition 0 of a topic, read with
/// a plain client.
fn committed(group: &str, topic: &str) -> Offset {
    let mut query = TopicPartitionList::new();
    query.add_partition(topic, 0);
    raw_client(group)
        .committed_offsets(query, Duration::from_secs(10))
        .unwrap()
        .find_partition(topic, 0)
        .map(|e| e.offset())
        .expect("partition 0 in the answer")
}

#[tokio::test]
async fn garbage_records_go_to_the_dead_letter_topic_and_the_consumer_goes_on() {
    let channel = support::channel(config()).await;
    let uri = unique("bad-input");
    let producer = Producer::builder()
        .channel(channel.clone())
        .uri(&uri)
        .build()
        .unwrap();
    producer
        .message("ok")
        .segment("i", &1u32)
        .unwrap()
        .send()
        .await
        .unwrap();
    // Written by hand: garbage for a value, and no value at all.
    let topic = topic_of(&uri).unwrap();
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", config().brokers())
        .create()
        .unwrap();
    for record in [
        FutureRecord::<(), [u8]>::to(&topic).payload(&b"\x01garbage"[..]),
        FutureRecord::<(), [u8]>::to(&topic),
    ] {
        raw.send(record, Duration::from_secs(10)).await.unwrap();
    }
    producer
        .message("ok")
        .segment("i", &2u32)
        .unwrap()
        .send()
        .await
        .unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let stats = Consumer::builder()
        .channel(channel.clone())
        .uri(&uri)
        .concurrency(1)
        .block(Duration::from_millis(100))
        .stop_after(4)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(ctx.segment::<u32>("i")?);
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
    assert_eq!(stats.dead_lettered, 2);

    let dead_topic = format!("{topic}.dead-letter");
    assert_eq!(topic_of(&format!("{uri}:dead-letter")).unwrap(), dead_topic);
    let reasons: Vec<String> = raw_records(&dead_topic, 0, 0, 2)
        .iter()
        .map(|r| {
            let m = decode_metadata(r.payload().unwrap()).unwrap();
            m.headers[HEADER_DEAD_LETTER_REASON].clone()
        })
        .collect();
    assert!(reasons[0].contains("malformed metadata"), "{reasons:?}");
    assert!(reasons[1].contains("no value"), "{reasons:?}");
    let info = channel.info(&uri).await.unwrap();
    assert_eq!(info.group("default").unwrap().pending, 0, "all settled");
}

#[tokio::test]
async fn bad_entry_ids_and_unreachable_brokers_are_clear_errors() {
    let channel = support::channel(config()).await;
    let err = channel
        .get(&unique("errors"), &EntryId::new("1700000000000-0"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidEntryId { .. }), "{err}");
    assert!(err.to_string().contains("partition:offset"), "{err}");

    let nobody = KafkaConfig::from_brokers("127.0.0.1:1")
        .unwrap()
        .request_timeout(Duration::from_secs(1));
    let err = Kafka::connect(nobody).await.unwrap_err();
    assert!(
        matches!(err, event_backbone_kafka::Error::Connect { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(Error::from(err).is_transient());
}

/// The counts topic holds a keyed record per redelivery and a tombstone
/// once the group has committed past the entry; a record in it that
/// cannot be read is skipped, and never stops a consumer; another group's
/// records are not this one's, even when its name starts with this one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_counts_are_keyed_deleted_once_committed_and_bad_ones_skipped() {
    let channel = support::channel(config()).await;
    let uri = unique("counts");
    let topic = topic_of(&uri).unwrap();
    let counts_topic = event_backbone_kafka::delivery_counts_topic(&topic);
    let producer = Producer::builder()
        .channel(channel.clone())
        .uri(&uri)
        .build()
        .unwrap();
    producer.message("flaky").send().await.unwrap();
    let consume = |name: &str| {
        Consumer::builder()
            .channel(channel.clone())
            .uri(&uri)
            .consumer_name(name)
            .block(Duration::from_millis(100))
            .retry(event_backbone_core::RetryPolicy::none())
            .redelivery_backoff(
                event_backbone_core::RetryPolicy::none().initial_delay(Duration::from_millis(50)),
            )
            .stop_when_empty()
            .subscribe_fn(|ctx: ConsumerContext| async move {
                if ctx.delivery_count() < 2 {
                    return Err(HandlerError::from("the first delivery fails"));
                }
                Ok(())
            })
            .unwrap()
    };
    let stats = consume("first").completion().await.unwrap();
    assert_eq!((stats.handled, stats.redelivered), (1, 1), "{stats:?}");
    let records = raw_records(&counts_topic, 0, 0, 2);
    let key = |m: &OwnedMessage| m.key().map(|k| String::from_utf8(k.to_vec()).unwrap());
    assert_eq!(key(&records[0]).as_deref(), Some("default/0/0"));
    assert_eq!(records[0].payload(), Some(&b"0 0 2"[..]));
    assert_eq!(
        key(&records[1]).as_deref(),
        Some("default/0/0"),
        "the tombstone"
    );
    assert_eq!(records[1].payload(), None, "committed past: deleted");

    // A record that is not a count, then a new message: the next member
    // reads the counts topic at its assignment, skips it, and goes on.
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", config().brokers())
        .create()
        .unwrap();
    raw.send(
        FutureRecord::to(&counts_topic)
            .partition(0)
            .key("default/0/1")
            .payload("not a count"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // And the count of a group whose name starts with this one's: not
    // this group's.
    raw.send(
        FutureRecord::to(&counts_topic)
            .partition(0)
            .key("default/eu/0/1")
            .payload("0 1 5"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    producer.message("flaky").send().await.unwrap();
    let stats = consume("second").completion().await.unwrap();
    assert_eq!((stats.handled, stats.redelivered), (1, 1), "{stats:?}");
}
