//! The backend on a Redis Cluster beyond the conformance suites: a
//! producer's batch spread over the masters, a master SIGKILLed in the
//! middle of a run (its replica takes over; a ledger shows none lost, none
//! handled twice at once), on one stream key and on four partitions with
//! `wait_for_replicas`, and what waiting for replicas does.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::{
    Consumer, ConsumerContext, HandlerError, Producer, RetryPolicy, StreamChannel,
};
use event_backbone_redis::{
    Redis, RedisBuilderExt, RedisConfig, RedisHashStore, RedisStreamChannel,
};
use redis::cluster_routing::Slot;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/start-redis-cluster")
}

/// A cluster of this test's own (three masters, three replicas), started
/// by `scripts/start-redis-cluster` in a directory of its own, so that
/// killing one of its nodes leaves the shared test cluster whole. Stopped
/// when dropped.
struct OwnCluster {
    dir: PathBuf,
    endpoints: String,
}

impl OwnCluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(support::unique("own-cluster"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(script())
            .env("TMPDIR", &dir)
            .env_remove("REDIS_CLUSTER_ENDPOINTS")
            .output()
            .expect("scripts/start-redis-cluster runs");
        assert!(
            out.status.success(),
            "scripts/start-redis-cluster failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let endpoints = stdout.lines().last().unwrap().trim().to_owned();
        Self { dir, endpoints }
    }

    /// `CLUSTER NODES` as one node sees it.
    fn nodes(&self) -> String {
        for node in self.endpoints.split(',') {
            let out = redis_cli(node, &["cluster", "nodes"]);
            if !out.is_empty() {
                return out;
            }
        }
        panic!("no node of {} answers", self.endpoints)
    }

    /// The master that serves a key's slot (none while a failover is
    /// under way).
    fn master_of(&self, key: &str) -> Option<String> {
        let slot = slot_number(key);
        for line in self.nodes().lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                match (lo.parse::<u16>(), hi.parse::<u16>()) {
                    (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                return Some(fields[1].split('@').next().unwrap().to_owned());
            }
        }
        None
    }

    /// Starts a killed node again: it rejoins, as a replica.
    fn restart(&self, node: &str) {
        let port = node.rsplit_once(':').unwrap().1;
        let out = Command::new(script())
            .args(["restart-node", port])
            .env("TMPDIR", &self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restarting {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs the server on `node`.
    fn kill(&self, node: &str) {
        let info = redis_cli(node, &["info", "server"]);
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .expect("the node names its process")
            .trim()
            .to_owned();
        let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(status.success(), "kill -9 {pid} failed");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .env("TMPDIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_cli(node: &str, args: &[&str]) -> String {
    let (host, port) = node.rsplit_once(':').unwrap();
    Command::new("redis-cli")
        .args(["-h", host, "-p", port])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn slot_number(key: &str) -> u16 {
    // Slot has no accessor: its Debug form is `Slot(n)`.
    let shown = format!("{:?}", Slot::for_key(key));
    shown
        .trim_start_matches("Slot(")
        .trim_end_matches(')')
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_batch_spreads_its_payloads_over_the_masters_and_appends_after_them() {
    let redis = Redis::connect(support::cluster_config()).await.unwrap();
    assert!(redis.is_cluster());
    let uri = support::unique("cluster-layout");
    // The channel and the store share the connection: the producer's
    // combined write, which on one server is one pipeline.
    let producer = Producer::builder().redis(&redis).uri(&uri).build().unwrap();
    let sends = (0..300u32).map(|i| {
        let producer = producer.clone();
        async move { producer.message("work").segment("i", &i)?.send().await }
    });
    let receipts = futures_util::future::try_join_all(sends).await.unwrap();

    // Every entry's payload is there, read back with plain commands; the
    // payload keys fall on more than one master.
    let mut raw = support::raw_cluster().await;
    let channel = RedisStreamChannel::new(&redis);
    let entries = channel
        .read_range(
            &uri,
            &event_backbone_core::StreamPosition::Start,
            None,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), receipts.len());
    let mut slots = BTreeSet::new();
    for entry in &entries {
        let metadata = entry.body.as_ref().unwrap();
        let key = metadata.standard_payload_key(&metadata.segments[0].class);
        let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(fields.contains_key("i"), "no payload under {key}");
        slots.insert(slot_number(&key) / (16384 / 3 + 1));
    }
    assert!(
        slots.len() > 1,
        "every payload key fell in one third of the slots"
    );
}

/// Sends `MESSAGES` messages (each a number, with a partition key) while a
/// consumer handles them; SIGKILLs the master of the stream's first key
/// once 300 are handled; checks that the producer rides out the failover,
/// that every number is handled (none lost), that no entry is handled by
/// two calls at once, and that nothing is left pending. With `restart`,
/// the killed node is started again once its replica took over (it
/// rejoins as a replica: what `wait_for_replicas` needs).
async fn failover_run(partitions: u16, replicas: Option<u32>, restart: bool) {
    const MESSAGES: u32 = 1500;
    let cluster = OwnCluster::start();
    let mut config = RedisConfig::from_endpoint(&cluster.endpoints, None)
        .unwrap()
        .response_timeout(Duration::from_secs(1));
    if let Some(n) = replicas {
        config = config.wait_for_replicas(n, Duration::from_secs(1));
    }
    let redis = Redis::connect(config).await.unwrap();
    let channel = Arc::new(
        RedisStreamChannel::new(&redis)
            .partitions(partitions)
            .unwrap(),
    );
    let store = Arc::new(RedisHashStore::new(&redis));
    let uri = support::unique("failover");
    let retry = RetryPolicy::exponential(60)
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500));

    let handled = Arc::new(Mutex::new(BTreeSet::new()));
    let in_flight = Arc::new(Mutex::new(BTreeSet::new()));
    let overlaps = Arc::new(Mutex::new(Vec::new()));
    let (h, f, o) = (handled.clone(), in_flight.clone(), overlaps.clone());
    let consumer = Consumer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .group("g")
        .consumer_name("steady")
        .block(Duration::from_millis(100))
        .no_claim()
        .backend_retry(retry.clone())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let (h, f, o) = (h.clone(), f.clone(), o.clone());
            async move {
                let i = ctx.segment::<u32>("i")?;
                // One entry, one handler at a time. (A batch sent again
                // after a failure that hid its success is there twice, as
                // two entries: at least once.)
                let entry = ctx.entry_id().to_string();
                if !f.lock().unwrap().insert(entry.clone()) {
                    o.lock().unwrap().push(entry.clone());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                f.lock().unwrap().remove(&entry);
                h.lock().unwrap().insert(i);
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap();

    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store)
        .uri(&uri)
        .backend_retry(retry)
        .build()
        .unwrap();
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            producer
                .message("placed")
                .partition_key(format!("key-{}", i % 16))
                .segment("i", &i)?
                .send()
                .await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok::<_, event_backbone_core::Error>(())
    });

    support::eventually("300 messages handled before the kill", || async {
        handled.lock().unwrap().len() >= 300
    })
    .await;
    assert!(
        !sender.is_finished(),
        "the producer finished before the kill"
    );
    let first_key = channel.stream_keys(&uri).unwrap()[0].clone();
    let victim = cluster.master_of(&first_key).expect("a master");
    cluster.kill(&victim);
    support::eventually(
        "a replica to take over the killed master's slots",
        || async {
            cluster
                .master_of(&first_key)
                .is_some_and(|master| master != victim)
        },
    )
    .await;
    if restart {
        cluster.restart(&victim);
    }
    sender
        .await
        .unwrap()
        .expect("the producer rode out the failover");

    // The wait is the check: every message handled (none lost across the
    // failover) and nothing left pending.
    support::eventually("all handled (none lost) and none pending", || async {
        let all = handled.lock().unwrap().len() == MESSAGES as usize;
        let pending = match channel.info(&uri).await {
            Ok(info) => info.group("g").map(|g| g.pending),
            Err(_) => None,
        };
        all && pending == Some(0)
    })
    .await;
    consumer.shutdown().await.unwrap();
    assert!(
        overlaps.lock().unwrap().is_empty(),
        "handled by two calls at once: {:?}",
        overlaps.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_run_loses_nothing() {
    failover_run(1, None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_four_partitions_waiting_for_replicas_loses_nothing() {
    failover_run(4, Some(1), true).await;
}

#[tokio::test]
async fn a_send_waits_for_the_replicas_it_asks_for() {
    // Every master of the test cluster has one replica: one is had...
    let uri = support::unique("replicas");
    let config = support::cluster_config().wait_for_replicas(1, Duration::from_secs(2));
    let redis = Redis::connect(config).await.unwrap();
    let producer = Producer::builder().redis(&redis).uri(&uri).build().unwrap();
    producer
        .message("kept")
        .segment("i", &1u32)
        .unwrap()
        .send()
        .await
        .expect("one replica of each master has it");

    // ...two are not: the send fails, transient, and says why.
    let config = support::cluster_config().wait_for_replicas(2, Duration::from_millis(200));
    let redis = Redis::connect(config).await.unwrap();
    let producer = Producer::builder()
        .redis(&redis)
        .uri(&uri)
        .backend_retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = producer
        .message("short")
        .segment("i", &2u32)
        .unwrap()
        .send()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_transient(), "{text}");
    assert!(
        text.contains("only 1 replicas had it") && text.contains("2 replicas"),
        "{text}"
    );
    // The payloads are waited for before the entries are appended: the
    // failed send appended nothing.
    let entries = RedisStreamChannel::new(&redis)
        .read_range(&uri, &event_backbone_core::StreamPosition::Start, None, 10)
        .await
        .unwrap();
    assert_eq!(
        entries.len(),
        1,
        "an entry was appended before its payloads were"
    );
}

#[tokio::test]
async fn on_one_server_a_send_waits_for_replicas_too() {
    // The single test server has no replica: a send that asks for one
    // fails, transient, after the combined pipeline's WAIT.
    let config = support::config().wait_for_replicas(1, Duration::from_millis(100));
    let redis = Redis::connect(config).await.unwrap();
    for partitions in [1, 4] {
        let channel = Arc::new(
            RedisStreamChannel::new(&redis)
                .partitions(partitions)
                .unwrap(),
        );
        let producer = Producer::builder()
            .channel(channel)
            .store(Arc::new(RedisHashStore::new(&redis)))
            .uri(support::unique("one-server-replicas"))
            .backend_retry(RetryPolicy::none())
            .build()
            .unwrap();
        let err = producer.message("alone").send().await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("only 0 replicas had it"), "{err}");
    }
}
