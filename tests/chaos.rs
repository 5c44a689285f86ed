//! Chaos: consumer members in processes of their own, killed with SIGKILL
//! and started again while a producer sends, on Redis and on Kafka. A
//! ledger that every member appends to (each handler call's start and end,
//! with its process) proves afterwards that no message was lost and that
//! no message was handled by two members at once: a second handling may
//! only begin once the first has ended, or its process was killed.
//!
//! The program is also the member: with `EB_CHAOS_MEMBER` set it joins the
//! group and handles until it is killed.
//!
//! With `EB_CHAOS_LOGS=<dir>`, every member writes its log (debug level)
//! to a file of its own there.
//!
//! Needs a Redis server (`REDIS_EVENT_SOURCE_ENDPOINT`, else 127.0.0.1:6379)
//! and a Kafka-protocol broker (`KAFKA_EVENT_SOURCE_BROKERS`, else
//! 127.0.0.1:9092), as `scripts/test` starts them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
use event_backbone::redis::{Redis, RedisBuilderExt, RedisConfig, RedisStreamChannel};
use event_backbone::{
    ClaimPolicy, Consumer, ConsumerBuilder, ConsumerContext, GroupStart, HandlerError, Ordering,
    Producer, RetryPolicy, StreamChannel,
};
use libtest_mimic::{Arguments, Failed, Trial};

const MEMBER_VAR: &str = "EB_CHAOS_MEMBER";
const GROUP: &str = "chaos";
const MEMBERS: usize = 3;
const MESSAGES: usize = 800;
const KEYS: usize = 16;
/// The Redis members' claim idle time.
const CLAIM_IDLE: Duration = Duration::from_secs(3);
/// The Kafka members' session: how long a killed member holds its
/// partitions.
const SESSION: Duration = Duration::from_secs(6);
/// Longest a scenario may take, from the first send to the last check.
const BOUND: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Redis,
    Kafka,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Kafka => "kafka",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "redis" => Backend::Redis,
            "kafka" => Backend::Kafka,
            other => panic!("unknown backend {other:?}"),
        }
    }

    /// How often a member is killed and started again: a Kafka group
    /// needs a rebalance for each, a Redis one none.
    fn slow_call(self) -> Duration {
        match self {
            Backend::Redis => CLAIM_IDLE + Duration::from_secs(1),
            Backend::Kafka => Duration::from_secs(1),
        }
    }

    fn chaos_every(self) -> Duration {
        match self {
            Backend::Redis => Duration::from_millis(1_500),
            Backend::Kafka => Duration::from_secs(5),
        }
    }
}

fn redis_config() -> RedisConfig {
    match std::env::var_os(event_backbone::redis::ENDPOINT_VAR) {
        Some(_) => RedisConfig::from_env().expect("a valid REDIS_EVENT_SOURCE_ENDPOINT"),
        None => RedisConfig::from_url("redis://127.0.0.1:6379").expect("the local address"),
    }
}

/// Four partitions, a short session and frequent commits, so that a
/// killed member's partitions move on quickly.
fn kafka_config() -> KafkaConfig {
    let config = match std::env::var_os(event_backbone::kafka::BROKERS_VAR) {
        Some(_) => KafkaConfig::from_env().expect("a valid KAFKA_EVENT_SOURCE_BROKERS"),
        None => KafkaConfig::from_brokers("127.0.0.1:9092").expect("the local address"),
    };
    config
        .partitions(4)
        .set("session.timeout.ms", SESSION.as_millis().to_string())
        .set("heartbeat.interval.ms", "500")
        .commit_interval(Duration::from_millis(200))
}

/// A producer and a consumer builder on the backend. Payloads go to Redis
/// hashes on Redis and inline on Kafka.
async fn endpoints(
    backend: Backend,
    uri: &str,
) -> (Producer, ConsumerBuilder, Arc<dyn StreamChannel>) {
    match backend {
        Backend::Redis => {
            let redis = Redis::connect(redis_config()).await.expect("Redis answers");
            let producer = Producer::builder().redis(&redis).uri(uri).build().unwrap();
            let consumer = Consumer::builder()
                .redis(&redis)
                .uri(uri)
                .claim(ClaimPolicy {
                    interval: Duration::from_millis(500),
                    min_idle: CLAIM_IDLE,
                });
            (
                producer,
                consumer,
                Arc::new(RedisStreamChannel::new(&redis)),
            )
        }
        Backend::Kafka => {
            let kafka = Kafka::connect(kafka_config()).await.expect("Kafka answers");
            let channel: Arc<dyn StreamChannel> = Arc::new(KafkaStreamChannel::new(&kafka));
            let producer = Producer::builder()
                .channel(channel.clone())
                .uri(uri)
                .build()
                .unwrap();
            let consumer = Consumer::builder().channel(channel.clone()).uri(uri);
            (producer, consumer, channel)
        }
    }
}

/// Whether the group has nothing left: no entry pending (on Redis, the
/// server's count; a Kafka channel counts only its own members, and this
/// process has none) and none unread (the lag from the committed offsets).
async fn settled(channel: &dyn StreamChannel, stream: &str) -> bool {
    // Known to this channel (a Kafka channel reports the groups used
    // through it); an existing group is left as it is.
    if channel
        .ensure_group(stream, GROUP, GroupStart::Beginning)
        .await
        .is_err()
    {
        return false;
    }
    match channel.info(stream).await {
        Ok(info) => info
            .group(GROUP)
            .is_some_and(|g| g.pending == 0 && g.lag == Some(0)),
        Err(_) => false,
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A member: handles until killed, appending `start|end <message> <pid>
/// <ns>` lines to the ledger (one write each, flushed).
async fn member(backend: Backend, uri: String, name: String, ledger: String) {
    if let Ok(dir) = std::env::var("EB_CHAOS_LOGS") {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{dir}/{name}-{}.log", std::process::id()))
            .unwrap();
        tracing_subscriber::fmt()
            .with_writer(Mutex::new(log))
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .init();
    }
    let (_, consumer, _) = endpoints(backend, &uri).await;
    let file = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger)
            .expect("the ledger"),
    ));
    let pid = std::process::id();
    let note = move |file: &Mutex<std::fs::File>, what: &str, ctx: &ConsumerContext| {
        let line = format!("{what} {} {pid} {}\n", ctx.message_id(), now_ns());
        let mut file = file.lock().unwrap();
        file.write_all(line.as_bytes())?;
        file.flush()
    };
    let lifetime = consumer
        .group(GROUP)
        .consumer_name(name)
        .ordering(Ordering::PerKey)
        .concurrency(4)
        .batch_size(16)
        .block(Duration::from_millis(100))
        .backend_retry(RetryPolicy::exponential(4).initial_delay(Duration::from_millis(50)))
        .subscribe_fn(move |ctx: ConsumerContext| {
            let file = file.clone();
            async move {
                note(&file, "start", &ctx)?;
                // One call in 40 takes long: on Redis longer than the claim
                // idle time (no other member may take it meanwhile), on
                // Kafka within the rebalance drain.
                let work = if fastrand_ms(0, 40) == 0 {
                    backend.slow_call()
                } else {
                    Duration::from_millis(fastrand_ms(20, 120))
                };
                tokio::time::sleep(work).await;
                note(&file, "end", &ctx)?;
                Ok::<(), HandlerError>(())
            }
        })
        .expect("the member subscribes");
    let _ = lifetime.completion().await;
}

/// A pseudo-random number of milliseconds, without a generator crate.
fn fastrand_ms(low: u64, high: u64) -> u64 {
    let n = (now_ns() as u64).wrapping_mul(6_364_136_223_846_793_005) >> 33;
    low + n % (high - low)
}

/// A member's process, killed when dropped.
struct Member {
    name: String,
    child: Child,
}

impl Member {
    fn start(backend: Backend, uri: &str, name: &str, ledger: &str) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(
                MEMBER_VAR,
                format!("{};{uri};{name};{ledger}", backend.name()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("a member process starts");
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// SIGKILL; returns the pid and when it was dead (reaped).
    fn kill(mut self) -> (u32, u128) {
        let pid = self.child.id();
        let _ = self.child.kill();
        let _ = self.child.wait();
        (pid, now_ns())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One handler call, from the ledger: its process, start and end (`None`
/// when the process died during it).
#[derive(Debug)]
struct Call {
    pid: u32,
    start: u128,
    end: Option<u128>,
}

fn read_ledger(path: &str) -> BTreeMap<String, Vec<Call>> {
    let mut calls: BTreeMap<String, Vec<Call>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [what, message, pid, at] = parts[..] else {
            continue; // a line cut by a kill
        };
        let (Ok(pid), Ok(at)) = (pid.parse::<u32>(), at.parse::<u128>()) else {
            continue;
        };
        let of_message = calls.entry(message.to_owned()).or_default();
        match what {
            "start" => of_message.push(Call {
                pid,
                start: at,
                end: None,
            }),
            "end" => {
                if let Some(call) = of_message
                    .iter_mut()
                    .rev()
                    .find(|c| c.pid == pid && c.end.is_none())
                {
                    call.end = Some(at);
                }
            }
            _ => {}
        }
    }
    calls
}

fn handled(calls: &BTreeMap<String, Vec<Call>>) -> BTreeSet<String> {
    calls
        .iter()
        .filter(|(_, c)| c.iter().any(|c| c.end.is_some()))
        .map(|(m, _)| m.clone())
        .collect()
}

async fn scenario(backend: Backend) -> Result<(), Failed> {
    let began = Instant::now();
    let uri = event_backbone::testkit::unique_uri(&format!("chaos-{}", backend.name()));
    let ledger = std::env::temp_dir()
        .join(format!("{uri}.ledger"))
        .to_string_lossy()
        .into_owned();
    let (producer, _, channel) = endpoints(backend, &uri).await;
    let stream = producer.streams()[0].to_owned();
    let mut members: Vec<Member> = (0..MEMBERS)
        .map(|i| Member::start(backend, &uri, &format!("m{i}"), &ledger))
        .collect();
    let mut kills: BTreeMap<u32, u128> = BTreeMap::new();

    // Send while members are killed and started again.
    let sending = tokio::spawn(async move {
        let mut sent = BTreeSet::new();
        let mut entries = BTreeMap::new();
        for i in 0..MESSAGES {
            let receipt = producer
                .message("work")
                .partition_key(format!("key-{}", i % KEYS))
                .segment("i", &i)?
                .send()
                .await?;
            sent.insert(receipt.message_id.to_string());
            entries.insert(
                receipt.message_id.to_string(),
                receipt.entry_id().to_string(),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, event_backbone::Error>((sent, entries))
    });
    let mut victim = 0;
    let mut last_kill = Instant::now();
    while !sending.is_finished() {
        tokio::time::sleep(backend.chaos_every()).await;
        let member = members.remove(victim % members.len());
        let name = member.name.clone();
        let (pid, at) = member.kill();
        kills.insert(pid, at);
        last_kill = Instant::now();
        members.push(Member::start(backend, &uri, &name, &ledger));
        victim += 1;
    }
    let (sent, entries) = sending
        .await
        .map_err(|e| format!("the producer task: {e}"))?
        .map_err(|e| format!("a send failed: {e}"))?;

    // Kafka: a killed member's partitions move when its session expires
    // and the group rebalances. Apache Kafka rebalances at the expiry;
    // tansu (what CI runs) evicts an expired member only when another
    // member heartbeats or joins, and may hand a partition to a dead member
    // in between. Where nothing has moved for a while, one more member
    // joins, as a replacement would: a rebalance without the dead.
    let mut last_progress = (0, Instant::now());
    let mut late = 0;
    let lost = loop {
        let missing: Vec<String> = sent
            .difference(&handled(&read_ledger(&ledger)))
            .cloned()
            .collect();
        // Handled is not enough: acknowledged and committed too.
        if missing.is_empty() && settled(channel.as_ref(), &stream).await {
            break missing;
        }
        if began.elapsed() > BOUND {
            break missing;
        }
        if missing.len() != last_progress.0 {
            last_progress = (missing.len(), Instant::now());
        } else if backend == Backend::Kafka
            && last_progress.1.elapsed() > SESSION + Duration::from_secs(2)
            && last_kill.elapsed() > SESSION
        {
            members.push(Member::start(
                backend,
                &uri,
                &format!("late{late}"),
                &ledger,
            ));
            late += 1;
            last_progress.1 = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for member in members.drain(..) {
        let (pid, at) = member.kill();
        kills.insert(pid, at);
    }
    let calls = read_ledger(&ledger);
    let _ = std::fs::remove_file(&ledger);
    if lost.is_empty() && !settled(channel.as_ref(), &stream).await {
        return Err(format!(
            "every message was handled, but after {BOUND:?} the group still has entries \
             pending or uncommitted: {:?}",
            channel.info(&stream).await.map(|i| i.groups)
        )
        .into());
    }
    if !lost.is_empty() {
        return Err(format!(
            "{} of {} messages never handled within {BOUND:?} ({victim} kills, {late} late \
             members): first (entry, calls started) {:?}",
            lost.len(),
            sent.len(),
            lost.iter()
                .take(10)
                .map(|m| (
                    entries.get(m).cloned().unwrap_or_default(),
                    calls.get(m).map_or(0, Vec::len)
                ))
                .collect::<Vec<_>>()
        )
        .into());
    }
    // No two calls of one message at once: each call lasts from its start
    // to its end, or to its process's death.
    let mut at_once = Vec::new();
    let mut again = 0;
    for (message, calls) in &calls {
        let spans: Vec<(u128, u128, u32)> = calls
            .iter()
            .map(|c| {
                let end = c.end.or(kills.get(&c.pid).copied()).unwrap_or(u128::MAX);
                (c.start, end, c.pid)
            })
            .collect();
        again += spans.len().saturating_sub(1);
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                if a.0 < b.1 && b.0 < a.1 {
                    at_once.push(format!("{message} in processes {} and {}", a.2, b.2));
                }
            }
        }
    }
    if !at_once.is_empty() {
        return Err(format!(
            "{} messages handled twice at once: {:?}",
            at_once.len(),
            &at_once[..at_once.len().min(5)]
        )
        .into());
    }
    println!(
        "chaos on {}: {} sent, all handled, {victim} kills, {late} late members, {again} \
         handled again after a kill, {:?}",
        backend.name(),
        sent.len(),
        began.elapsed()
    );
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn main() -> std::process::ExitCode {
    if let Ok(spec) = std::env::var(MEMBER_VAR) {
        let parts: Vec<String> = spec.split(';').map(str::to_owned).collect();
        let [backend, uri, name, ledger] = &parts[..] else {
            panic!("{MEMBER_VAR}={spec:?}: expected backend;uri;name;ledger");
        };
        runtime().block_on(member(
            Backend::parse(backend),
            uri.clone(),
            name.clone(),
            ledger.clone(),
        ));
        return std::process::ExitCode::SUCCESS;
    }
    let args = Arguments::from_args();
    let trials = [Backend::Redis, Backend::Kafka]
        .into_iter()
        .map(|backend| {
            Trial::test(
                format!(
                    "chaos::{}::killed_members_lose_nothing_and_never_overlap",
                    backend.name()
                ),
                move || runtime().block_on(scenario(backend)),
            )
        })
        .collect();
    // One at a time: each loads the machine with processes of its own.
    libtest_mimic::run(
        &Arguments {
            test_threads: Some(1),
            ..args
        },
        trials,
    )
    .exit_code()
}
