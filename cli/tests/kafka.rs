//! `eb` against the Kafka broker the test command starts: the stream a
//! producer wrote, and a group another process consumes, seen from outside.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use assert_cmd::Command;
use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel, BROKERS_VAR};
use event_backbone::{memory::MemoryStore, StreamChannel};
use support::{eb_on, new_uri, read_and_ack, send_orders};

/// The brokers of `KAFKA_EVENT_SOURCE_BROKERS`, else the local one.
fn brokers() -> String {
    std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// `eb --channel kafka://<brokers>`.
fn eb() -> Command {
    eb_on(&format!("kafka://{}", brokers()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_tail_and_streams_see_what_another_process_did() {
    let config = KafkaConfig::from_brokers(&brokers())
        .unwrap()
        .commit_interval(Duration::from_millis(100));
    let kafka = Kafka::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-kafka"));
    let channel: Arc<dyn StreamChannel> = Arc::new(KafkaStreamChannel::new(&kafka));
    let uri = new_uri("cli-kafka");
    let (_, ids) = send_orders(&channel, Arc::new(MemoryStore::new()), &uri, 6).await;
    read_and_ack(&channel, &uri, 4, 2).await;

    // Seen from another process: what the group committed (2 of 6).
    let deadline = Instant::now() + Duration::from_secs(30);
    // The group is unknown from outside until its first commit.
    let info = loop {
        let output = eb()
            .args(["info", "--uri", &uri, "--group", "billing", "--json"])
            .output()
            .unwrap();
        let committed = output.status.success()
            && serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["groups"][0]
                ["lag"]
                == 4;
        if committed || Instant::now() > deadline {
            assert!(output.status.success(), "{output:?}");
            break serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info["length"], 6, "{info}");
    assert_eq!(info["first"], ids[0].as_str(), "{info}");
    assert_eq!(info["last"], ids[5].as_str(), "{info}");
    assert_eq!(info["groups"][0]["name"], "billing", "{info}");
    assert_eq!(info["groups"][0]["lag"], 4, "2 of 6 committed: {info}");

    let tail = eb().args(["tail", "--uri", &uri]).output().unwrap();
    assert!(tail.status.success(), "{tail:?}");
    let text = String::from_utf8(tail.stdout).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    for (line, id) in text.lines().zip(&ids) {
        assert!(
            line.contains(id) && line.contains("order_placed v0  [qty, sku]"),
            "{text}"
        );
    }

    let unknown = eb()
        .args(["info", "--uri", &uri, "--group", "nobody"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no group \"nobody\""));

    let listed = eb().args(["streams", "--json"]).output().unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let streams: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        streams
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stream"] == uri.as_str() && s["length"] == 6),
        "{uri} not listed with 6 entries"
    );
    channel
        .leave_group(&uri, "billing", "worker-1")
        .await
        .unwrap();
}
