//! `eb copy` against the Redis and Kafka the test command starts: from
//! Redis to Kafka and back, every message and payload kept, each a copy of
//! its original; a copy killed half-way finished by a second run, none
//! lost and none doubled.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use assert_cmd::cargo::CommandCargoExt;
use event_backbone::kafka::BROKERS_VAR;
use event_backbone::{
    open_channel, open_store, Codec, KeyValueStore, Message, MessageId, Producer, Replay,
    StreamChannel,
};
use futures_util::TryStreamExt;
use predicates::prelude::*;
use support::{eb_on, new_uri, redis_url, send_orders};

fn kafka_url() -> String {
    let brokers = std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    format!("kafka://{brokers}")
}

/// Every message of a stream, read back with its payload.
async fn read_all(
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    uri: &str,
) -> Vec<Message> {
    Replay::builder()
        .channel(channel)
        .store(store)
        .uri(uri)
        .messages()
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// original message id -> (sku, qty) of each message, failing on a double.
fn ledger(messages: &[Message]) -> BTreeMap<MessageId, (String, u32)> {
    let mut ledger = BTreeMap::new();
    for m in messages {
        let sku: String = m.segments().decode("sku", &Codec::Json).unwrap().unwrap();
        let qty: u32 = m.segments().decode("qty", &Codec::Json).unwrap().unwrap();
        let doubled = ledger.insert(m.metadata().original_id(), (sku, qty));
        assert!(
            doubled.is_none(),
            "{} copied twice",
            m.metadata().original_id()
        );
    }
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_redis_to_kafka_and_back_keeps_every_message_and_payload() {
    let uri = new_uri("cli-copy");
    let back = format!("{uri}.back");
    let redis = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    send_orders(&redis, store.clone(), &uri, 12).await;
    let sent = ledger(&read_all(redis.clone(), store.clone(), &uri).await);
    assert_eq!(sent.len(), 12);

    // To Kafka, the same stream name; the payloads to the Redis store.
    eb_on(&redis_url())
        .args(["copy", "--uri", &uri, "--to-channel", &kafka_url()])
        .args(["--to-uri", &uri, "--to-store", &redis_url()])
        .assert()
        .success()
        .stdout(predicate::str::contains("copied 12 of 12 entries"));
    // And back from Kafka to Redis, as another stream.
    eb_on(&kafka_url())
        .args(["--store", &redis_url(), "copy", "--uri", &uri])
        .args(["--to-channel", &redis_url(), "--to-uri", &back])
        .assert()
        .success()
        .stdout(predicate::str::contains("copied 12 of 12 entries"));

    let copied = read_all(redis.clone(), store.clone(), &back).await;
    assert_eq!(ledger(&copied), sent, "every message, its payload, once");
    let kept: Vec<MessageId> = copied.iter().map(|m| m.metadata().original_id()).collect();
    assert_eq!(kept, sent.keys().copied().collect::<Vec<_>>(), "in order");
    assert!(copied
        .iter()
        .all(|m| m.metadata().headers["copied.from-stream"] == uri));

    // Run again: nothing new, nothing doubled.
    eb_on(&kafka_url())
        .args(["--store", &redis_url(), "copy", "--uri", &uri])
        .args(["--to-channel", &redis_url(), "--to-uri", &back])
        .assert()
        .success()
        .stdout(predicate::str::contains("continued after entry"))
        .stdout(predicate::str::contains("copied 0 of 0 entries"));
    assert_eq!(read_all(redis, store, &back).await.len(), 12);
}

/// A Kafka channel on the test broker (topics in `partitions`).
async fn kafka(partitions: u16) -> Arc<dyn StreamChannel> {
    use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
    let brokers = std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let config = KafkaConfig::from_brokers(&brokers)
        .unwrap()
        .partitions(partitions);
    let kafka = Kafka::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-kafka"));
    Arc::new(KafkaStreamChannel::new(&kafka))
}

/// `count` orders numbered from `first`, each with its own partition key.
async fn produce(
    channel: &Arc<dyn StreamChannel>,
    store: &Arc<dyn KeyValueStore>,
    uri: &str,
    first: u32,
    count: u32,
) {
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .codec(Codec::Json)
        .build()
        .unwrap();
    let sends = (first..first + count).map(|i| {
        producer
            .message("order_placed")
            .partition_key(format!("customer-{i}"))
            .segment("sku", &format!("A{i}"))
            .unwrap()
            .segment("qty", &i)
            .unwrap()
            .send()
    });
    futures_util::future::try_join_all(sends).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_to_kafka_killed_half_way_is_finished_by_a_second_run_none_lost_none_doubled() {
    const SENT: usize = 1_500;
    let uri = new_uri("cli-copy-kill");
    let to = format!("{uri}.copy");
    let redis = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let kafka = kafka(1).await;
    produce(&redis, &store, &uri, 0, SENT as u32).await;
    let sent = ledger(&read_all(redis.clone(), store.clone(), &uri).await);
    assert_eq!(sent.len(), SENT);

    // Killed (SIGKILL) once some pages are in, long before all are
    // (wherever it is then: between pages, between a page's mark and its
    // append, or its append and the next mark).
    let copy = || {
        let mut eb = std::process::Command::cargo_bin("eb").unwrap();
        eb.env_remove("EB_CHANNEL")
            .env_remove("EB_STORE")
            .env_remove("EB_TO_CHANNEL")
            .env_remove("EB_TO_STORE")
            .args(["--channel", &redis_url(), "copy", "--uri", &uri])
            .args(["--to-channel", &kafka_url(), "--to-uri", &to])
            .args(["--page-size", "10"]);
        eb
    };
    let mut first = copy()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let copied_when_killed = loop {
        let length = kafka.info(&to).await.unwrap().length;
        if length >= 200 || Instant::now() > deadline {
            first.kill().unwrap();
            break length;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let status = first.wait().unwrap();
    assert!(!status.success(), "killed before it finished");
    assert!(
        (1..SENT as u64).contains(&copied_when_killed),
        "killed half-way: {copied_when_killed} of {SENT} copied"
    );

    let second = copy().output().unwrap();
    assert!(second.status.success(), "{second:?}");
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(
        said.contains("continued after entry") || said.contains("found already copied"),
        "{said}"
    );
    let copied = read_all(kafka, store, &to).await;
    assert_eq!(copied.len(), SENT, "none lost, none doubled: {said}");
    assert_eq!(ledger(&copied), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_a_topic_in_partitions_finds_what_came_to_each() {
    let uri = new_uri("cli-copy-parts");
    let to = format!("{uri}.copy");
    let redis = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let kafka = kafka(3).await;
    produce(&kafka, &store, &uri, 0, 9).await;
    assert_eq!(kafka.info(&uri).await.unwrap().partitions, 3);
    let copy = || {
        let mut eb = eb_on(&kafka_url());
        eb.env_remove("EB_TO_CHANNEL")
            .env_remove("EB_TO_STORE")
            .args(["--store", &redis_url(), "copy", "--uri", &uri])
            .args(["--to-channel", &redis_url(), "--to-uri", &to]);
        eb
    };
    copy()
        .assert()
        .success()
        .stdout(predicate::str::contains("copied 9 of 9 entries"));
    // More, to every partition, after the first copy.
    produce(&kafka, &store, &uri, 9, 9).await;
    copy()
        .assert()
        .success()
        .stdout(predicate::str::contains("copied 9 of 18 entries"))
        .stdout(predicate::str::contains("9 found already copied"));
    let sent = ledger(&read_all(kafka, store.clone(), &uri).await);
    assert_eq!(sent.len(), 18);
    assert_eq!(ledger(&read_all(redis, store, &to).await), sent);
}

#[test]
fn a_copy_onto_itself_or_of_no_stream_is_a_usage_error() {
    eb_on(&redis_url())
        .args(["copy", "--uri", "orders", "--to-uri", "orders"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("onto itself"));
    eb_on(&redis_url())
        .args(["copy", "--uri", "orders", "--to-uri", "orders"])
        .args(["--to-channel", &redis_url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("onto itself"));
    eb_on(&redis_url())
        .args(["copy", "--uri", "test.cli.never", "--to-uri", "elsewhere"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not exist"));
    eb_on(&redis_url())
        .args(["copy", "--to-uri", "orders"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--uri"));
}
