//! `eb` against the Redis the test command starts: what it shows after the
//! library produced and a group partly consumed, and how it fails.

use std::time::Duration;

mod support;

use assert_cmd::Command;
use event_backbone::{open_channel, open_store, Producer};
use predicates::prelude::*;
use support::{eb_on, new_uri, read_and_ack, send_orders};

/// The Redis of `REDIS_EVENT_SOURCE_ENDPOINT`, else the local one.
fn redis_url() -> String {
    match std::env::var("REDIS_EVENT_SOURCE_ENDPOINT") {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    }
}

/// `eb --channel <redis>`.
fn eb() -> Command {
    eb_on(&redis_url())
}

/// Five `order_placed` messages, a sixth of another operation; group
/// `billing` has read three and acknowledged one. Returns the stream's uri
/// and the entry ids of the five.
async fn five_orders_partly_consumed() -> (String, Vec<String>) {
    let uri = new_uri("cli");
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let (producer, ids) = send_orders(&channel, store, &uri, 5).await;
    producer.message("order_cancelled").send().await.unwrap();
    read_and_ack(&channel, &uri, 3, 1).await;
    (uri, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_shows_length_ends_pending_and_lag() {
    let (uri, ids) = five_orders_partly_consumed().await;
    let output = eb()
        .args(["info", "--uri", &uri, "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["length"], 6, "{info}");
    assert_eq!(info["first"], ids[0].as_str(), "{info}");
    assert_ne!(
        info["last"],
        ids[4].as_str(),
        "the sixth is the last: {info}"
    );
    assert_eq!(info["dead_letters"], 0, "{info}");
    let billing = &info["groups"][0];
    assert_eq!(billing["name"], "billing", "{info}");
    assert_eq!(billing["pending"], 2, "3 read, 1 acknowledged: {info}");
    assert_eq!(billing["lag"], 3, "6 appended, 3 read: {info}");
    assert_eq!(billing["consumers"], 1, "{info}");
    eb().args(["info", "--uri", &uri])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "first entry   {}",
            ids[0]
        )))
        .stdout(predicate::str::contains(
            "| billing | 2       | 3   | 1         |",
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_every_entry_and_payloads_when_asked() {
    let (uri, ids) = five_orders_partly_consumed().await;
    let all = eb().args(["tail", "--uri", &uri]).output().unwrap();
    assert!(all.status.success(), "{all:?}");
    let text = String::from_utf8(all.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    for (i, id) in ids.iter().enumerate() {
        assert!(lines[i].contains(id), "line {i} lacks {id}: {text}");
        assert!(lines[i].contains("order_placed v0  [qty, sku]"), "{text}");
        assert!(
            lines[i].contains(&format!("correlation order-{i}")),
            "{text}"
        );
    }
    assert!(lines[5].contains("order_cancelled"), "{text}");

    let some = eb()
        .args(["tail", "--uri", &uri, "--payload", "--from", &ids[1]])
        .args(["--operation", "order_placed", "--limit", "2"])
        .output()
        .unwrap();
    assert!(some.status.success(), "{some:?}");
    let text = String::from_utf8(some.stdout).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains(&ids[1]), "{text}");
    let expected = "correlation order-1\n    qty: 1\n    sku: \"A1\"\n";
    assert!(text.contains(expected), "{text}");
    assert!(text.contains(&ids[2]) && !text.contains(&ids[3]), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_one_message_and_streams_lists_the_stream() {
    let (uri, ids) = five_orders_partly_consumed().await;
    eb().args(["get", &ids[3], "--uri", &uri])
        .assert()
        .success()
        .stdout(predicate::str::contains("operation     order_placed v0"))
        .stdout(predicate::str::contains("correlation   order-3"))
        .stdout(predicate::str::contains("    sku: \"A3\""));
    let listed = eb().args(["streams", "--json"]).output().unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let streams: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let row = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == uri.as_str())
        .unwrap_or_else(|| panic!("{uri} not in {streams}"));
    assert_eq!(row["length"], 6);
    assert_eq!(row["groups"], serde_json::json!(["billing"]));
}

#[test]
fn failures_are_one_line_and_exit_1_usage_errors_exit_2() {
    let one_line = |stderr: &[u8]| {
        let text = String::from_utf8_lossy(stderr).into_owned();
        assert_eq!(text.trim_end().lines().count(), 1, "{text}");
        assert!(text.starts_with("eb: "), "{text}");
        text
    };
    let unreachable = eb_on("redis://:s3cret@127.0.0.1:1")
        .args(["info", "--uri", "x"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    let text = one_line(&unreachable.stderr);
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("s3cret"),
        "{text}"
    );

    let not_a_url = eb_on("localhost")
        .args(["info", "--uri", "x"])
        .output()
        .unwrap();
    assert_eq!(not_a_url.status.code(), Some(1));
    assert!(one_line(&not_a_url.stderr).contains("not a URL"));

    let no_stream = eb().arg("info").output().unwrap();
    assert_eq!(no_stream.status.code(), Some(1));
    assert!(one_line(&no_stream.stderr).contains("--uri"));

    let no_entry = eb()
        .args(["get", "1-1", "--uri", "test.cli.never"])
        .output()
        .unwrap();
    assert_eq!(no_entry.status.code(), Some(1));
    assert!(one_line(&no_entry.stderr).contains("has no entry 1-1"));

    let bad_from = eb()
        .args(["tail", "--uri", "x", "--from", "t=soon"])
        .output()
        .unwrap();
    assert_eq!(bad_from.status.code(), Some(1));
    assert!(one_line(&bad_from.stderr).contains("expected start, now"));

    eb().arg("frobnicate").assert().code(2);
    let completions = eb().args(["completions", "bash"]).output().unwrap();
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("_eb()"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_shows_entries_as_they_come() {
    use std::io::{BufRead, BufReader};
    let (uri, ids) = five_orders_partly_consumed().await;
    let mut follower = std::process::Command::new(assert_cmd::cargo::cargo_bin("eb"))
        .env_remove("EB_CHANNEL")
        .args(["--channel", &redis_url(), "tail", "--uri", &uri, "--follow"])
        .args(["--from", &ids[4]])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || {
        seen.recv_timeout(Duration::from_secs(30))
            .expect("a line within 30 s")
    };
    assert!(next().contains(&ids[4]));
    assert!(next().contains("order_cancelled"));
    // Sent after eb reached the end of the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let channel = open_channel(&redis_url()).await.unwrap();
    let later = Producer::builder()
        .channel(channel)
        .store(open_store(&redis_url()).await.unwrap())
        .uri(&uri)
        .build()
        .unwrap()
        .message("order_shipped")
        .send()
        .await
        .unwrap();
    let line = next();
    follower.kill().unwrap();
    let _ = follower.wait();
    assert!(
        line.contains(&later.entry_id().to_string()) && line.contains("order_shipped"),
        "{line}"
    );
}
