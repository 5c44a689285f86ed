//! `eb outbox relay` against the PostgreSQL and Redis the test command
//! starts: messages sent in PostgreSQL transactions for a Redis stream
//! (two committed, one rolled back) are relayed by `--once`, as they were
//! sent; a second run finds nothing; a relay left running stops on SIGTERM
//! with what it relayed.

use std::sync::Arc;
use std::time::Duration;

mod support;

use event_backbone::postgres::{Postgres, PostgresConfig};
use event_backbone::{open_channel, open_store, MessageId, Producer, StreamChannel};
use predicates::prelude::*;
use support::{eb_on, new_uri, redis_url};

fn postgres_url() -> String {
    std::env::var("POSTGRES_EVENT_SOURCE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn schema() -> String {
    format!("eb_cli_outbox_{}", std::process::id())
}

/// Sends `n` messages for `uri` on Redis, each in a PostgreSQL transaction
/// of its own; the second is rolled back. The ids committed.
async fn send_in_transactions(uri: &str, n: u32) -> Vec<MessageId> {
    let pg = Postgres::connect(
        PostgresConfig::from_url(&postgres_url())
            .unwrap()
            .schema(&schema())
            .unwrap(),
    )
    .await
    .unwrap();
    let producer = Producer::builder()
        .channel(open_channel(&redis_url()).await.unwrap())
        .store(open_store(&redis_url()).await.unwrap())
        .uri(uri)
        .build()
        .unwrap();
    let mut committed = Vec::new();
    for i in 0..n {
        let mut tx = pg.pool().begin().await.unwrap();
        let id = producer
            .message("order_placed")
            .segment("i", &i)
            .unwrap()
            .send_in(&mut pg.within(&mut tx))
            .await
            .unwrap()
            .message_id;
        if i == 1 {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
            committed.push(id);
        }
    }
    committed
}

async fn in_redis(uri: &str) -> Vec<MessageId> {
    let channel: Arc<dyn StreamChannel> = open_channel(&redis_url()).await.unwrap();
    channel
        .read_range(uri, &event_backbone::StreamPosition::Start, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body.unwrap().message_id)
        .collect()
}

fn outbox_url() -> String {
    format!("{}?schema={}", postgres_url(), schema())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_once_moves_what_was_committed_then_finds_nothing() {
    let uri = new_uri("outbox");
    let committed = send_in_transactions(&uri, 3).await;
    eb_on(&redis_url())
        .args([
            "--uri",
            &uri,
            "outbox",
            "relay",
            "--once",
            "--outbox",
            &outbox_url(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "relayed 2 messages to {uri} (redis), 0 dead-lettered in the outbox\n\
             deleted 2 relayed entries from the outbox"
        )));
    assert_eq!(in_redis(&uri).await, committed);
    eb_on(&redis_url())
        .args([
            "--uri",
            &uri,
            "outbox",
            "relay",
            "--once",
            "--outbox",
            &outbox_url(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("relayed 0 messages"));
    assert_eq!(in_redis(&uri).await, committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_relay_stops_on_sigterm_with_what_it_relayed() {
    let uri = new_uri("outbox-run");
    let committed = send_in_transactions(&uri, 4).await;
    let relay = std::process::Command::new(assert_cmd::cargo::cargo_bin("eb"))
        .env_remove("EB_CHANNEL")
        .env_remove("EB_STORE")
        .args(["--channel", &redis_url(), "--uri", &uri, "outbox", "relay"])
        .args(["--outbox", &outbox_url()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while in_redis(&uri).await.len() < committed.len() {
        assert!(std::time::Instant::now() < deadline, "not relayed in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = relay.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = relay.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("relayed 3 messages"), "{stdout}");
    assert_eq!(in_redis(&uri).await, committed);
}

#[test]
fn the_outbox_is_required() {
    eb_on(&redis_url())
        .env_remove("EB_OUTBOX")
        .args(["--uri", "x", "outbox", "relay", "--once"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--outbox"));
}
