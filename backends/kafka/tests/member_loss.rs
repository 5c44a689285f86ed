//! Member loss: a group member's process killed with SIGKILL while it works.
//! Its partitions go to the other members, which resume from the last
//! committed offsets: every message is handled (some twice: at-least-once),
//! none lost.
//!
//! This test runs without the test harness so that it can start itself as
//! the member that gets killed: with `EB_KAFKA_VICTIM=<uri>` and
//! `EB_KAFKA_LEDGER=<file>` set, the program is that member, appending each
//! message it handles to the ledger before acknowledging it.
//!
//! Brokers differ in when they take a dead member's partitions away.
//! Apache Kafka does it when the member's session times out: the survivor
//! alone must take over, within the session timeout. tansu (what CI runs)
//! does it only when another member joins: a replacement member joins
//! after the kill. `KAFKA_EVENT_SOURCE_BROKER=apache|tansu` picks the
//! variant; the default is `apache` when `KAFKA_EVENT_SOURCE_BROKERS` names
//! a cluster, `tansu` for the local broker `scripts/start-kafka` starts.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::{Consumer, ConsumerContext, HandlerError, Producer, StreamChannel};
use event_backbone_kafka::entry::PARTITION_KEY;
use event_backbone_kafka::{KafkaConfig, KafkaStreamChannel};
use support::{config, eventually, unique};

const MESSAGES: u32 = 600;
const GROUP: &str = "workers";
const VICTIM_VAR: &str = "EB_KAFKA_VICTIM";
const LEDGER_VAR: &str = "EB_KAFKA_LEDGER";
/// `apache` or `tansu`: how the broker reassigns a dead member's partitions.
const BROKER_KIND_VAR: &str = "KAFKA_EVENT_SOURCE_BROKER";

/// How the broker under test takes a dead member's partitions away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takeover {
    /// When the dead member's session times out (Apache Kafka).
    SessionTimeout,
    /// Only when another member joins (tansu).
    NextJoin,
}

fn takeover() -> Takeover {
    let kind = std::env::var(BROKER_KIND_VAR).unwrap_or_else(|_| {
        if std::env::var_os(event_backbone_kafka::BROKERS_VAR).is_some() {
            "apache".to_owned()
        } else {
            "tansu".to_owned()
        }
    });
    match kind.as_str() {
        "apache" => Takeover::SessionTimeout,
        "tansu" => Takeover::NextJoin,
        other => panic!("{BROKER_KIND_VAR}={other:?}: expected apache or tansu"),
    }
}

/// Two partitions, and a short session so that a dead member is noticed
/// after 6 s rather than librdkafka's 45 s.
fn member_config() -> KafkaConfig {
    config()
        .partitions(2)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .commit_interval(Duration::from_millis(200))
}

/// (entry id, message id) of what a member handled.
type Handled = BTreeSet<(String, String)>;

fn member(
    channel: Arc<KafkaStreamChannel>,
    uri: &str,
    name: &str,
) -> event_backbone_core::ConsumerBuilder {
    Consumer::builder()
        .channel(channel as Arc<dyn StreamChannel>)
        .uri(uri)
        .group(GROUP)
        .consumer_name(name)
        .batch_size(20)
        .concurrency(2)
        .block(Duration::from_millis(100))
}

/// The member that is killed: handles slowly, writing each message to the
/// ledger (flushed) before it is acknowledged.
async fn victim(uri: String, ledger: String) {
    let channel = support::channel(member_config()).await;
    let file = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger)
            .expect("the ledger file"),
    ));
    let consumer = member(channel, &uri, "victim")
        .subscribe_fn(move |ctx: ConsumerContext| {
            let file = file.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(25)).await;
                let line = format!("{} {}\n", ctx.entry_id(), ctx.message_id());
                let mut file = file.lock().unwrap();
                file.write_all(line.as_bytes())?;
                file.flush()?;
                Ok::<(), HandlerError>(())
            }
        })
        .expect("the victim subscribes");
    // Runs until killed.
    consumer.completion().await.expect("the victim's consumer");
}

/// A handler that takes its time and records what it handled.
fn recording(
    handled: &Arc<Mutex<Handled>>,
) -> impl Fn(ConsumerContext) -> futures_util::future::BoxFuture<'static, Result<(), HandlerError>>
       + Send
       + Sync
       + 'static {
    let handled = handled.clone();
    move |ctx: ConsumerContext| {
        let handled = handled.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(25)).await;
            handled
                .lock()
                .unwrap()
                .insert((ctx.entry_id().to_string(), ctx.message_id().to_string()));
            Ok(())
        })
    }
}

fn read_ledger(path: &std::path::Path) -> Handled {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(entry, message)| (entry.to_owned(), message.to_owned()))
        .collect()
}

/// The victim's process, killed if the test fails before it does.
struct Victim(std::process::Child);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn partition(entry: &str) -> &str {
    entry.split(':').next().unwrap_or_default()
}

async fn a_killed_member_loses_nothing() {
    let channel = support::channel(member_config()).await;
    let uri = unique("member-loss");
    // No store: the one segment travels inline, so that the other process
    // needs nothing but Kafka.
    let producer = Producer::builder()
        .channel(channel.clone())
        .uri(&uri)
        .build()
        .unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..MESSAGES {
        let receipt = producer
            .message("work")
            .header(PARTITION_KEY, format!("key-{}", i % 8))
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
        sent.insert(receipt.message_id.to_string());
    }

    // The survivor joins first and has both partitions until the victim
    // joins.
    let survived: Arc<Mutex<Handled>> = Arc::default();
    let survivor = member(channel.clone(), &uri, "survivor")
        .subscribe_fn(recording(&survived))
        .unwrap();
    eventually("the survivor to start handling", || {
        let n = survived.lock().unwrap().len();
        async move { n > 0 }
    })
    .await;

    let ledger = std::env::temp_dir().join(format!("{uri}.ledger"));
    let mut victim = Victim(
        Command::new(std::env::current_exe().unwrap())
            .env(VICTIM_VAR, &uri)
            .env(LEDGER_VAR, &ledger)
            .stdout(Stdio::null())
            .spawn()
            .expect("the victim process starts"),
    );
    eventually("the victim to handle 40 messages", || {
        let n = read_ledger(&ledger).len();
        async move { n >= 40 }
    })
    .await;
    victim.0.kill().unwrap(); // SIGKILL
    victim.0.wait().unwrap();
    let by_victim = read_ledger(&ledger);
    let victim_partitions: BTreeSet<&str> = by_victim.iter().map(|(e, _)| partition(e)).collect();
    let survivor_before: Handled = survived.lock().unwrap().clone();
    assert!(
        by_victim.len() < MESSAGES as usize,
        "the victim finished before it was killed"
    );

    // Apache Kafka: the victim's session times out (6 s) and the survivor
    // alone takes its partitions. tansu: the crashed process comes back as
    // a new member (with a new member id, as a restarted process does),
    // and its joining makes the group reassign the victim's partitions.
    let takeover = takeover();
    let replacement = match takeover {
        Takeover::SessionTimeout => None,
        Takeover::NextJoin => Some(
            member(channel.clone(), &uri, "replacement")
                .subscribe_fn(recording(&survived))
                .unwrap(),
        ),
    };
    let killed_at = std::time::Instant::now();

    eventually("every message handled by one member or another", || {
        let all: BTreeSet<String> = by_victim
            .iter()
            .chain(survived.lock().unwrap().iter())
            .map(|(_, m)| m.clone())
            .collect();
        let done = sent.is_subset(&all);
        async move { done }
    })
    .await;
    let took = killed_at.elapsed();
    let stats = survivor.shutdown().await.unwrap();
    let replaced = match replacement {
        Some(r) => r.shutdown().await.unwrap(),
        None => Default::default(),
    };
    if takeover == Takeover::SessionTimeout {
        // The session (6 s), a rebalance and the rest of the work.
        assert!(
            took < Duration::from_secs(30),
            "the survivor took {took:?} to take over alone"
        );
    }
    let after_kill: Handled = survived
        .lock()
        .unwrap()
        .difference(&survivor_before)
        .cloned()
        .collect();
    // The victim's partitions went to the others after the kill.
    for p in &victim_partitions {
        assert!(
            after_kill.iter().any(|(e, _)| partition(e) == *p),
            "partition {p} of the victim was never taken over: {stats:?} {replaced:?}"
        );
    }
    // Only what was sent was handled.
    for (entry, message) in survived.lock().unwrap().iter().chain(by_victim.iter()) {
        assert!(sent.contains(message), "{entry} {message} was never sent");
    }
    let _ = std::fs::remove_file(&ledger);
    println!(
        "member loss ({takeover:?}): {} sent; {} handled by the victim before the kill, {} by the survivor, {} by the replacement, {} after the kill",
        sent.len(),
        by_victim.len(),
        stats.handled,
        replaced.handled,
        after_kill.len()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let (Ok(uri), Ok(ledger)) = (std::env::var(VICTIM_VAR), std::env::var(LEDGER_VAR)) {
        rt.block_on(victim(uri, ledger));
        return;
    }
    rt.block_on(a_killed_member_loses_nothing());
    println!("test a_killed_member_loses_nothing ... ok");
}
