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
use support::{eb_on, new_uri, send_orders};

fn redis_url() -> String {
    match std::env::var("REDIS_EVENT_SOURCE_ENDPOINT") {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_half_way_is_finished_by_a_second_run_none_lost_none_doubled() {
    const SENT: usize = 2_000;
    let uri = new_uri("cli-copy-kill");
    let to = format!("{uri}.copy");
    let redis = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let producer = Producer::builder()
        .channel(redis.clone())
        .store(store.clone())
        .uri(&uri)
        .codec(Codec::Json)
        .build()
        .unwrap();
    let sends = (0..SENT as u32).map(|i| {
        producer
            .message("order_placed")
            .segment("sku", &format!("A{i}"))
            .unwrap()
            .segment("qty", &i)
            .unwrap()
            .send()
    });
    futures_util::future::try_join_all(sends).await.unwrap();
    let sent = ledger(&read_all(redis.clone(), store.clone(), &uri).await);
    assert_eq!(sent.len(), SENT);

    // Killed once some pages are in, long before all are (wherever it is
    // then: between pages, or between a page's mark and its append, or its
    // append and the next mark).
    let copy = || {
        let mut eb = std::process::Command::cargo_bin("eb").unwrap();
        eb.env_remove("EB_CHANNEL")
            .env_remove("EB_STORE")
            .args(["--channel", &redis_url(), "copy", "--uri", &uri])
            .args(["--to-uri", &to, "--page-size", "10"]);
        eb
    };
    let mut first = copy()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let copied_when_killed = loop {
        let length = redis.info(&to).await.unwrap().length;
        if length >= 300 || Instant::now() > deadline {
            first.kill().unwrap();
            break length;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
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
    let copied = read_all(redis.clone(), store, &to).await;
    assert_eq!(copied.len(), SENT, "none lost, none doubled: {said}");
    assert_eq!(ledger(&copied), sent);
}

#[test]
fn a_copy_onto_itself_or_of_no_stream_is_a_usage_error() {
    eb_on(&redis_url())
        .args(["copy", "--uri", "orders", "--to-uri", "orders"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("onto itself"));
    eb_on(&redis_url())
        .args(["copy", "--to-uri", "orders"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--uri"));
}
