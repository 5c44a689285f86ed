//! Crash recovery: a consumer process killed with SIGKILL in the middle of a
//! batch; another member of the group claims what it left pending; every
//! message is handled (checked against a ledger of ids), none lost.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::{
    ClaimPolicy, Consumer, ConsumerContext, HandlerError, Producer, StreamChannel,
};
use event_backbone_redis::{RedisBuilderExt, RedisStreamChannel};

const MESSAGES: usize = 300;

fn ledger_ids(path: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_loses_nothing() {
    let redis = support::redis().await;
    let uri = support::unique("crash");
    let producer = Producer::builder().redis(&redis).uri(&uri).build().unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..MESSAGES as u32 {
        let receipt = producer
            .message("work")
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
        sent.insert(receipt.message_id.to_string());
    }

    let ledger = std::env::temp_dir().join(format!("{uri}.ledger"));
    let mut victim = tokio::process::Command::new(env!("CARGO_BIN_EXE_eb-redis-consume"))
        .args(["--uri", &uri, "--group", "workers", "--name", "victim"])
        .args(["--batch", "20", "--concurrency", "4", "--handle-ms", "15"])
        .arg("--ledger")
        .arg(&ledger)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the consumer binary starts");

    support::eventually("the victim to handle 40 messages", || async {
        ledger_ids(&ledger).len() >= 40
    })
    .await;
    let channel = RedisStreamChannel::new(&redis);
    let pending_at_kill = channel
        .info(&uri)
        .await
        .unwrap()
        .group("workers")
        .unwrap()
        .pending;
    victim.start_kill().unwrap(); // SIGKILL
    victim.wait().await.unwrap();
    let handled_by_victim = ledger_ids(&ledger);
    assert!(
        pending_at_kill > 0,
        "the victim was killed with nothing in flight"
    );
    assert!(
        handled_by_victim.len() < MESSAGES,
        "the victim finished before it was killed"
    );

    let rescued = Arc::new(Mutex::new(BTreeSet::new()));
    let r = rescued.clone();
    let rescuer = Consumer::builder()
        .redis(&redis)
        .uri(&uri)
        .group("workers")
        .consumer_name("rescuer")
        .claim(ClaimPolicy {
            interval: Duration::from_millis(200),
            min_idle: Duration::from_millis(1500),
        })
        .block(Duration::from_millis(100))
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move {
                r.lock().unwrap().insert(ctx.message_id().to_string());
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap();
    support::eventually("every message handled and acknowledged", || async {
        let all: BTreeSet<String> = handled_by_victim
            .union(&rescued.lock().unwrap())
            .cloned()
            .collect();
        let pending = channel
            .info(&uri)
            .await
            .unwrap()
            .group("workers")
            .unwrap()
            .pending;
        all == sent && pending == 0
    })
    .await;
    let stats = rescuer.shutdown().await.unwrap();
    assert!(
        stats.claimed > 0,
        "nothing was claimed from the victim: {stats:?}"
    );
    // The victim may have read one more batch (20) between the count and the kill.
    assert!(
        stats.claimed <= pending_at_kill + 20,
        "claimed {} of {pending_at_kill} pending",
        stats.claimed
    );
    let _ = std::fs::remove_file(&ledger);
}
