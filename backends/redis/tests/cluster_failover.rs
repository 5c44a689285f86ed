//! The backend on a Redis Cluster beyond the conformance suites: a
//! producer's batch spread over the masters, and a master SIGKILLed in
//! the middle of a run (its replica takes over; a ledger shows none lost).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::{
    Consumer, ConsumerContext, HandlerError, Producer, RetryPolicy, StreamChannel,
};
use event_backbone_redis::{Redis, RedisBuilderExt, RedisConfig, RedisStreamChannel};
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

    /// The master that serves a key's slot.
    fn master_of(&self, key: &str) -> String {
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
                return fields[1].split('@').next().unwrap().to_owned();
            }
        }
        panic!("no master serves slot {slot}")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_run_loses_nothing() {
    const MESSAGES: u32 = 1500;
    let cluster = OwnCluster::start();
    let config = RedisConfig::from_endpoint(&cluster.endpoints, None)
        .unwrap()
        .response_timeout(Duration::from_secs(1));
    let redis = Redis::connect(config).await.unwrap();
    let uri = support::unique("failover");
    let retry = RetryPolicy::exponential(40)
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500));

    let handled = Arc::new(Mutex::new(BTreeSet::new()));
    let h = handled.clone();
    let consumer = Consumer::builder()
        .redis(&redis)
        .uri(&uri)
        .group("g")
        .consumer_name("steady")
        .block(Duration::from_millis(100))
        .no_claim()
        .backend_retry(retry.clone())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let h = h.clone();
            async move {
                h.lock().unwrap().insert(ctx.segment::<u32>("i")?);
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap();

    let producer = Producer::builder()
        .redis(&redis)
        .uri(&uri)
        .backend_retry(retry)
        .build()
        .unwrap();
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            producer.message("placed").segment("i", &i)?.send().await?;
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
    let victim = cluster.master_of(&uri);
    cluster.kill(&victim);
    sender
        .await
        .unwrap()
        .expect("the producer rode out the failover");
    let promoted = cluster.master_of(&uri);
    assert_ne!(promoted, victim, "no replica took over the stream's slot");

    let channel = RedisStreamChannel::new(&redis);
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
}
