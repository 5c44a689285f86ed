//! `eb` against the Redis the test command starts: what it shows after the
//! library produced and a group partly consumed, and how it fails.

use std::time::Duration;

mod support;

use assert_cmd::Command;
use event_backbone::{open_channel, open_store, Producer};
use predicates::prelude::*;
use support::{eb_on, new_uri, read_and_ack, redis_url, send_orders};

/// `eb --channel <redis>`.
fn eb() -> Command {
    eb_on(&redis_url())
}

/// Five `order_placed` messages, a sixth of another operation; group
/// `billing` has read three and acknowledged one. Returns the stream's uri
/// and the entry ids of all six.
async fn five_orders_partly_consumed() -> (String, Vec<String>) {
    let uri = new_uri("cli");
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let (producer, mut ids) = send_orders(&channel, store, &uri, 5).await;
    let sixth = producer.message("order_cancelled").send().await.unwrap();
    ids.push(sixth.entry_id().to_string());
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
    assert_eq!(info["last"], ids[5].as_str(), "{info}");
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
    for (i, (line, id)) in lines.iter().zip(&ids).enumerate() {
        assert!(line.contains(id.as_str()), "line {i} lacks {id}: {text}");
    }
    for (i, line) in lines[..5].iter().enumerate() {
        assert!(line.contains("order_placed v0  [qty, sku]"), "{text}");
        assert!(line.contains(&format!("correlation order-{i}")), "{text}");
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
    let expected = "correlation order-1\n    qty (1 byte): 1\n    sku (4 bytes): \"A1\"\n";
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
        .stdout(predicate::str::contains("    sku (4 bytes): \"A3\""));
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
    assert_eq!(no_stream.status.code(), Some(2), "a usage error");
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
    assert_eq!(bad_from.status.code(), Some(2), "a usage error");
    assert!(one_line(&bad_from.stderr).contains("expected start, now"));

    // A DynamoDB store with no AWS credentials anywhere: one line that
    // says what to set, not the chain of every provider tried.
    let home = std::env::temp_dir().join(format!("eb-no-aws-{}", std::process::id()));
    let no_credentials = eb()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "--store",
            "dynamodb://events?endpoint=http://127.0.0.1:8000",
        ])
        .args(["tail", "--uri", "x", "--payload"])
        .output()
        .unwrap();
    assert_eq!(no_credentials.status.code(), Some(1));
    let text = one_line(&no_credentials.stderr);
    assert!(
        text.contains("no AWS credentials found") && text.contains("set AWS_ACCESS_KEY_ID"),
        "{text}"
    );

    eb().arg("frobnicate").assert().code(2);
    // The environment's URLs, passwords and all, stay out of the help.
    let help = Command::cargo_bin("eb")
        .unwrap()
        .env("EB_CHANNEL", "redis://:s3cret@127.0.0.1:1")
        .env("EB_STORE", "redis://:s3cret@127.0.0.1:1")
        .args(["info", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("EB_CHANNEL") && !help.contains("s3cret"),
        "{help}"
    );
    let completions = eb().args(["completions", "bash"]).output().unwrap();
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("_eb()"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_shows_entries_as_they_come() {
    use std::io::{BufRead, BufReader};
    let (uri, ids) = five_orders_partly_consumed().await;
    /// Kills `eb` when the test ends, passed or not.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut follower = Killed(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("eb"))
            .env_remove("EB_CHANNEL")
            .args(["--channel", &redis_url(), "tail", "--uri", &uri, "--follow"])
            .args(["--from", &ids[4]])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = follower.0.stdout.take().unwrap();
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
    drop(follower);
    assert!(
        line.contains(&later.entry_id().to_string()) && line.contains("order_shipped"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_puts_dead_letters_back_once_and_the_group_handles_them() {
    use event_backbone::{Consumer, ConsumerContext, HandlerError};
    use std::sync::{Arc, Mutex};
    let uri = new_uri("cli-redrive");
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let (_, ids) = send_orders(&channel, store.clone(), &uri, 4).await;
    // A bug: orders of an odd quantity fail, and are given up on at once.
    let consume = |fixed: bool| {
        let handled = Arc::new(Mutex::new(Vec::new()));
        let h = handled.clone();
        let lifetime = Consumer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(&uri)
            .group("billing")
            .max_deliveries(1)
            .block(Duration::from_millis(50))
            .stop_when_empty()
            .subscribe_fn(move |ctx: ConsumerContext| {
                let h = h.clone();
                async move {
                    let qty = ctx.segment::<u32>("qty")?;
                    if qty % 2 == 1 && !fixed {
                        return Err(HandlerError::from("odd quantities are not handled"));
                    }
                    h.lock().unwrap().push(qty);
                    Ok(())
                }
            })
            .unwrap();
        (lifetime, handled)
    };
    let sorted = |handled: Arc<Mutex<Vec<u32>>>| {
        let mut handled = handled.lock().unwrap().clone();
        handled.sort_unstable();
        handled
    };
    let (lifetime, handled) = consume(false);
    lifetime.completion().await.unwrap();
    assert_eq!(sorted(handled), [0, 2]);

    let list = || {
        let output = eb()
            .args(["dead-letters", "list", "--uri", &uri, "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let letters = list();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let mut originals: Vec<&str> = letters
        .iter()
        .map(|l| l["original_entry"].as_str().unwrap())
        .collect();
    originals.sort_unstable();
    assert_eq!(originals, [ids[1].as_str(), ids[3].as_str()], "{letters:?}");
    assert!(letters
        .iter()
        .all(|l| l["reason"].as_str().unwrap().contains("odd quantities")));

    eb().args([
        "dead-letters",
        "redrive",
        "--uri",
        &uri,
        "--all",
        "--dry-run",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(
        "would redrive 2 of 2 dead letters",
    ));
    assert_eq!(
        list().as_array().unwrap().len(),
        2,
        "a dry run changes nothing"
    );
    eb().args(["dead-letters", "redrive", "--uri", &uri])
        .assert()
        .code(2);
    let unknown = eb()
        .args(["dead-letters", "redrive", "--uri", &uri, "--id", "1-1"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no entry 1-1"));

    eb().args(["dead-letters", "redrive", "--uri", &uri, "--all"])
        .assert()
        .success()
        .stdout(predicate::str::contains("redrove 2 of 2 dead letters"));
    // Again: nothing left to redrive.
    eb().args(["dead-letters", "redrive", "--uri", &uri, "--all"])
        .assert()
        .success()
        .stdout(predicate::str::contains("redrove 0 of 2 dead letters"));
    assert!(list().as_array().unwrap().is_empty());
    eb().args(["dead-letters", "list", "--uri", &uri])
        .assert()
        .success()
        .stdout("no dead letters left (2 redriven: --all lists them)\n");

    let (lifetime, handled) = consume(true);
    lifetime.completion().await.unwrap();
    assert_eq!(sorted(handled), [1, 3], "each once, after the fix");
    let all = eb()
        .args(["dead-letters", "list", "--uri", &uri, "--all"])
        .output()
        .unwrap();
    let text = String::from_utf8(all.stdout).unwrap();
    assert_eq!(text.matches("redriven to").count(), 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_each_unreadable_entry_once_and_goes_on() {
    use event_backbone::{EntryId, SegmentClass};
    let (uri, ids) = five_orders_partly_consumed().await;
    // An entry that is not one of ours, and a message whose payload is gone.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let garbage: String = redis::cmd("XADD")
        .arg(&uri)
        .arg("*")
        .arg("metadata")
        .arg(&b"\xff\x00 not metadata"[..])
        .query_async(&mut raw)
        .await
        .unwrap();
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let gone = channel
        .get(&uri, &EntryId::new(ids[2].as_str()))
        .await
        .unwrap()
        .unwrap()
        .body
        .unwrap();
    assert!(store
        .delete(&gone.standard_payload_key(&SegmentClass::normal()))
        .await
        .unwrap());
    let later = send_orders(&channel, store, &uri, 1).await.1.remove(0);

    let output = eb()
        .args(["tail", "--uri", &uri, "--payload"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for id in ids.iter().chain([&garbage, &later]) {
        assert_eq!(text.matches(id.as_str()).count(), 1, "{id}: {text}");
    }
    assert_eq!(text.matches("unreadable").count(), 1, "{text}");
    assert_eq!(text.matches("payload not read").count(), 1, "{text}");
    assert!(text.contains("    sku (4 bytes): \"A1\""), "{text}");
    let after_garbage = text.split(&garbage).nth(1).unwrap();
    assert!(after_garbage.contains(&later), "the tail goes on: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_stream_is_named_once_and_not_followed() {
    let uri = new_uri("cli-partitioned");
    let partitioned = format!("{}?partitions=4", redis_url());
    let channel = open_channel(&partitioned).await.unwrap();
    let store = open_store(&partitioned).await.unwrap();
    send_orders(&channel, store, &uri, 8).await;
    // A stream in another number of partitions, which this URL cannot read.
    let other = format!("{uri}-in-two");
    let two = format!("{}?partitions=2", redis_url());
    let (channel_two, store_two) = (
        open_channel(&two).await.unwrap(),
        open_store(&two).await.unwrap(),
    );
    send_orders(&channel_two, store_two, &other, 2).await;

    let listed = eb_on(&partitioned)
        .args(["streams", "--json"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let streams: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ours: Vec<&serde_json::Value> = streams
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stream"].as_str().unwrap().starts_with(&uri))
        .collect();
    // The stream in two partitions is not this URL's to read: not listed.
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(
        (&ours[0]["stream"], &ours[0]["length"]),
        (&serde_json::json!(uri), &serde_json::json!(8))
    );

    // Without the partitions, each is a stream of its own.
    let raw = eb().args(["streams", "--json"]).output().unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let keys = raw
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["stream"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{uri}:p"))
        })
        .count();
    assert!(keys > 1, "{raw}");

    let info = eb_on(&partitioned)
        .args(["info", "--uri", &uri, "--json"])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["length"], 8, "{info}");
    assert_eq!(
        info["first"],
        serde_json::Value::Null,
        "no one first entry: {info}"
    );

    let follow = eb_on(&partitioned)
        .args(["tail", "--uri", &uri, "--follow"])
        .output()
        .unwrap();
    assert_eq!(follow.status.code(), Some(1), "{follow:?}");
    assert!(String::from_utf8_lossy(&follow.stderr).contains("is in 4 partitions"));
    let all = eb_on(&partitioned)
        .args(["tail", "--uri", &uri])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&all.stdout).lines().count(), 8);
}
