//! A process that sends and consumes on a SQLite file, killed with
//! SIGKILL, and the file opened again: every message whose send returned
//! is in the stream, the group resumes where it was (not from the start),
//! the entries the killed member held are delivered again to it, and
//! every message is handled.
//!
//! The program is also the killed process: with `EB_SQLITE_CHILD` set it
//! sends and consumes until it is killed, writing each send that returned
//! and each handling to a ledger file.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_backbone_core::{Consumer, ConsumerContext, Producer, Replay, StreamChannel};
use event_backbone_sqlite::{Sqlite, SqliteConfig, SqliteStore, SqliteStreamChannel};
use futures_util::TryStreamExt;

const CHILD_VAR: &str = "EB_SQLITE_CHILD";
const MESSAGES: u64 = 3000;
const GROUP: &str = "billing";
const MEMBER: &str = "billing-1";

fn parts(sqlite: &Sqlite) -> (Arc<SqliteStreamChannel>, Arc<SqliteStore>) {
    (
        Arc::new(SqliteStreamChannel::new(sqlite)),
        Arc::new(SqliteStore::new(sqlite)),
    )
}

/// Appends a line to the ledger, unbuffered: a line written is on disk
/// when the process is killed.
fn record(ledger: &Mutex<std::fs::File>, line: String) {
    let mut file = ledger.lock().unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The killed process: sends `MESSAGES` and handles them as member
/// `MEMBER`, slowly, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    let Ok(dir) = std::env::var(CHILD_VAR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let sqlite = Sqlite::open(SqliteConfig::file(dir.join("events.db")))
        .await
        .unwrap();
    let (channel, store) = parts(&sqlite);
    let ledger = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("ledger"))
            .unwrap(),
    ));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("orders")
        .build()
        .unwrap();
    let sending = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                producer
                    .message("placed")
                    .segment("n", &n)
                    .unwrap()
                    .send()
                    .await
                    .unwrap();
                record(&ledger, format!("sent {n}"));
            }
        })
    };
    let consumer = Consumer::builder()
        .channel(channel)
        .store(store)
        .uri("orders")
        .group(GROUP)
        .consumer_name(MEMBER)
        .batch_size(20)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let ledger = ledger.clone();
            async move {
                let n: u64 = ctx.segment("n")?;
                record(&ledger, format!("handled {n}"));
                // Message 300 is still in hand when the process is killed.
                let pause = if n == 300 { 60_000 } else { 2 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                Ok(())
            }
        })
        .unwrap();
    sending.await.unwrap();
    consumer.completion().await.unwrap();
}

fn ledger(dir: &std::path::Path, what: &str) -> Vec<u64> {
    std::fs::read_to_string(dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix(what)?.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_nothing_and_its_group_resumes() {
    let dir = support::dir();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, &dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let bound = Instant::now() + Duration::from_secs(60);
    // Killed while it sends and handles.
    while !ledger(&dir, "handled ").contains(&300) || ledger(&dir, "sent ").len() < 600 {
        assert!(Instant::now() < bound, "the child did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let sent: HashSet<u64> = ledger(&dir, "sent ").into_iter().collect();
    let handled_before: HashSet<u64> = ledger(&dir, "handled ").into_iter().collect();
    assert!(
        (sent.len() as u64) < MESSAGES,
        "killed after it sent everything"
    );

    // Opened again: every send that returned is in the stream.
    let sqlite = Sqlite::open(SqliteConfig::file(dir.join("events.db")))
        .await
        .unwrap();
    let (channel, store) = parts(&sqlite);
    let stored: Vec<u64> = Replay::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri("orders")
        .messages()
        .unwrap()
        .map_ok(|m| {
            m.segments()
                .decode::<u64>("n", &event_backbone_core::Codec::Postcard)
                .unwrap()
                .unwrap()
        })
        .try_collect()
        .await
        .unwrap();
    let in_stream: HashSet<u64> = stored.iter().copied().collect();
    let lost: Vec<&u64> = sent.iter().filter(|n| !in_stream.contains(n)).collect();
    assert!(lost.is_empty(), "sent but not in the file: {lost:?}");
    let info = channel.info("orders").await.unwrap();
    let group = info.group(GROUP).unwrap().clone();
    assert!(
        group.pending > 0,
        "the killed member held nothing: {group:?}"
    );

    // The same member resumes: what it held first, then the rest.
    let handled_after = Arc::new(Mutex::new(Vec::new()));
    let stats = {
        let handled_after = handled_after.clone();
        Consumer::builder()
            .channel(channel.clone())
            .store(store)
            .uri("orders")
            .group(GROUP)
            .consumer_name(MEMBER)
            // Large enough to take back, at start, everything the killed
            // member held (a consumer takes back one batch of its own;
            // the rest waits for the claim).
            .batch_size(5000)
            .stop_when_empty()
            .subscribe_fn(move |ctx: ConsumerContext| {
                let handled_after = handled_after.clone();
                async move {
                    let n: u64 = ctx.segment("n")?;
                    handled_after.lock().unwrap().push(n);
                    Ok(())
                }
            })
            .unwrap()
            .completion()
            .await
            .unwrap()
    };
    let after = handled_after.lock().unwrap().clone();
    let after_set: HashSet<u64> = after.iter().copied().collect();
    assert_eq!(
        after_set.len(),
        after.len(),
        "a message handled twice after the restart"
    );
    let missing: Vec<&u64> = in_stream
        .iter()
        .filter(|n| !handled_before.contains(n) && !after_set.contains(n))
        .collect();
    assert!(missing.is_empty(), "never handled: {missing:?}");
    assert!(
        (after.len() as u64) < in_stream.len() as u64,
        "the group started over ({} handled after the restart of {} in the stream)",
        after.len(),
        in_stream.len()
    );
    let redelivered = after.iter().filter(|n| handled_before.contains(n)).count();
    assert!(
        redelivered as u64 <= group.pending,
        "{redelivered} handled again, more than the {} pending at the kill",
        group.pending
    );
    let info = channel.info("orders").await.unwrap();
    assert_eq!(info.group(GROUP).unwrap().pending, 0);
    println!(
        "{} sent before the kill, {} handled before, {} after ({redelivered} again), {} stats",
        sent.len(),
        handled_before.len(),
        after.len(),
        stats.handled
    );
    sqlite.close().await;
    support::remove(&dir);
}
