//! Metrics: with a recorder installed, a consumer's counters match its
//! `ConsumerStats` exactly after a run with failures, redeliveries and dead
//! letters, and claimed entries; the producer counts what it sent; the lag and pending gauges,
//! sampled while the consumer runs, fall to 0 once it has caught up; and no
//! label holds a segment's value. On the memory backend and on Redis
//! (`scripts/start-redis`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
use event_backbone::telemetry::names;
use event_backbone::{
    ConsumerContext, ConsumerStats, HandlerError, KeyValueStore, Producer, RetryPolicy,
    StreamChannel,
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

const EMAIL: &str = "bob.secret-0815@example.com";

/// A recorder that keeps everything: counter totals, every gauge value set
/// and every histogram sample, by key (name and labels).
#[derive(Default)]
struct Keep {
    counters: Mutex<HashMap<Key, Arc<Total>>>,
    gauges: Mutex<HashMap<Key, Arc<Values>>>,
    histograms: Mutex<HashMap<Key, Arc<Values>>>,
}

#[derive(Default)]
struct Total(AtomicU64);

#[derive(Default)]
struct Values(Mutex<Vec<f64>>);

impl metrics::CounterFn for Total {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for Values {
    fn increment(&self, _: f64) {
        unreachable!("the library sets its gauges")
    }
    fn decrement(&self, _: f64) {
        unreachable!("the library sets its gauges")
    }
    fn set(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

impl metrics::HistogramFn for Values {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

impl Recorder for &'static Keep {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(key.clone()).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(gauges.entry(key.clone()).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(key.clone()).or_default().clone())
    }
}

fn kept() -> &'static Keep {
    static KEPT: OnceLock<&'static Keep> = OnceLock::new();
    KEPT.get_or_init(|| {
        let keep: &'static Keep = Box::leak(Box::default());
        metrics::set_global_recorder(keep).expect("the only recorder of this test binary");
        keep
    })
}

/// Whether `key` is `name` for `stream`, with the label `extra` (or with
/// no `error.type` when `extra` is `None`).
fn matches(key: &Key, name: &str, stream: &str, extra: Option<(&str, &str)>) -> bool {
    let label = |k: &str| key.labels().find(|l| l.key() == k).map(|l| l.value());
    key.name() == name
        && label(names::DESTINATION) == Some(stream)
        && match extra {
            Some((k, v)) => label(k) == Some(v),
            None => label(names::ERROR_TYPE).is_none(),
        }
}

fn counter(name: &str, stream: &str) -> u64 {
    let counters = kept().counters.lock().unwrap();
    let found: Vec<u64> = counters
        .iter()
        .filter(|(k, _)| matches(k, name, stream, None))
        .map(|(_, v)| v.0.load(Ordering::Relaxed))
        .collect();
    assert!(found.len() <= 1, "{name} registered twice for {stream}");
    found
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {name} for {stream}"))
}

fn values(
    map: &Mutex<HashMap<Key, Arc<Values>>>,
    name: &str,
    stream: &str,
    extra: Option<(&str, &str)>,
) -> Vec<f64> {
    let map = map.lock().unwrap();
    map.iter()
        .filter(|(k, _)| matches(k, name, stream, extra))
        .flat_map(|(_, v)| v.0.lock().unwrap().clone())
        .collect()
}

fn unique(what: &str) -> String {
    let run = event_backbone::MessageId::new().to_string();
    format!("metrics.{what}.{}", &run[run.len() - 12..])
}

/// Seven messages: three handled at once, two failing once, one always
/// failing (dead-lettered after two deliveries), one no handler knows
/// (dead-lettered at once).
async fn run_with_failures(
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    what: &str,
) {
    let uri = unique(what);
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    for operation in ["ok", "flaky", "ok", "poison", "flaky", "ok", "unknown"] {
        producer
            .message(operation)
            .personal("email", EMAIL)
            .unwrap()
            .send()
            .await
            .unwrap();
    }
    let stats = event_backbone::Consumer::builder()
        .channel(channel)
        .store(store)
        .uri(&uri)
        .group("billing")
        .block(Duration::from_millis(50))
        .retry(RetryPolicy::none())
        .redelivery_backoff(RetryPolicy::exponential(5).initial_delay(Duration::from_millis(10)))
        .max_deliveries(2)
        .stop_after(7)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let email: String = ctx.segment("email")?;
            assert_eq!(email, EMAIL);
            match ctx.operation() {
                "ok" => Ok(()),
                "flaky" if ctx.delivery_count() > 1 => Ok(()),
                "flaky" | "poison" => Err(HandlerError::from("not now")),
                _ => Ok(()),
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    // The fn handler knows every operation: "unknown" is handled too. What
    // the run must have exercised:
    assert_eq!(
        (
            stats.received,
            stats.handled,
            stats.failed,
            stats.redelivered,
            stats.dead_lettered
        ),
        (7, 6, 4, 3, 1),
        "{stats:?}"
    );
    let stream = uri.as_str();
    let from_metrics = ConsumerStatsLike {
        received: counter(names::CONSUMED_MESSAGES, stream),
        handled: counter(names::HANDLED_MESSAGES, stream),
        failed: counter(names::FAILED_MESSAGES, stream),
        dead_lettered: counter(names::DEAD_LETTERED_MESSAGES, stream),
        claimed: counter(names::CLAIMED_MESSAGES, stream),
        redelivered: counter(names::REDELIVERED_MESSAGES, stream),
    };
    assert_eq!(from_metrics, ConsumerStatsLike::from(stats));

    let k = kept();
    let runs = values(&k.histograms, names::PROCESS_DURATION, stream, None);
    let failures = values(
        &k.histograms,
        names::PROCESS_DURATION,
        stream,
        Some((names::ERROR_TYPE, "handler")),
    );
    assert_eq!(
        (runs.len(), failures.len()),
        (6, 4),
        "one sample per handler run"
    );
    assert!(runs.iter().chain(&failures).all(|s| *s >= 0.0 && *s < 60.0));
    let ages = values(&k.histograms, names::END_TO_END_DURATION, stream, None);
    assert_eq!(ages.len(), 6, "one age per handled message");

    assert_eq!(counter(names::SENT_MESSAGES, stream), 7);
    let sends = values(
        &k.histograms,
        names::OPERATION_DURATION,
        stream,
        Some((names::OPERATION_NAME, "send")),
    );
    assert_eq!(sends.len(), 7);
    let batches = values(&k.histograms, names::BATCH_MESSAGES, stream, None);
    assert_eq!(batches.iter().sum::<f64>(), 7.0, "{batches:?}");

    // No label holds the personal value.
    let labels: Vec<String> = {
        let c = k.counters.lock().unwrap();
        let g = k.gauges.lock().unwrap();
        let h = k.histograms.lock().unwrap();
        c.keys()
            .chain(g.keys())
            .chain(h.keys())
            .flat_map(|key| {
                key.labels()
                    .map(|l| l.value().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert!(
        labels.iter().any(|l| l == stream),
        "the check sees the labels"
    );
    assert!(!labels.iter().any(|l| l.contains(EMAIL)), "{labels:?}");
}

/// `ConsumerStats` is non-exhaustive: its fields, to compare.
#[derive(Debug, PartialEq, Eq)]
struct ConsumerStatsLike {
    received: u64,
    handled: u64,
    failed: u64,
    dead_lettered: u64,
    claimed: u64,
    redelivered: u64,
}

impl From<ConsumerStats> for ConsumerStatsLike {
    fn from(s: ConsumerStats) -> Self {
        Self {
            received: s.received,
            handled: s.handled,
            failed: s.failed,
            dead_lettered: s.dead_lettered,
            claimed: s.claimed,
            redelivered: s.redelivered,
        }
    }
}

/// Five messages handled one at a time, slowly, sampled every few
/// milliseconds: the lag is seen above 0, and the last samples are 0.
async fn lag_falls_to_zero(channel: Arc<dyn StreamChannel>, store: Arc<dyn KeyValueStore>) {
    kept();
    let uri = unique(channel.backend());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    for i in 0..5u64 {
        producer
            .message("tick")
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
    }
    let stats = event_backbone::Consumer::builder()
        .channel(channel)
        .store(store)
        .uri(&uri)
        .group("slow")
        .batch_size(1)
        .concurrency(1)
        .block(Duration::from_millis(20))
        .sample_lag_every(Duration::from_millis(5))
        .stop_after(5)
        .subscribe_fn(|_ctx: ConsumerContext| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, 5);
    let k = kept();
    let lag = values(&k.gauges, names::CONSUMER_LAG, &uri, None);
    let pending = values(&k.gauges, names::CONSUMER_PENDING, &uri, None);
    assert!(
        lag.iter().any(|l| *l >= 1.0),
        "a sample saw the entries not yet read: {lag:?}"
    );
    assert_eq!(lag.last(), Some(&0.0), "caught up: {lag:?}");
    assert!(pending.iter().any(|p| *p >= 1.0), "{pending:?}");
    assert_eq!(pending.last(), Some(&0.0), "all acknowledged: {pending:?}");
}

/// A member reads three entries and never acknowledges them; another
/// claims them once idle: the claimed counter matches its stats.
async fn claims_are_counted(channel: Arc<dyn StreamChannel>, store: Arc<dyn KeyValueStore>) {
    kept();
    let uri = unique(&format!("claims-{}", channel.backend()));
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(&uri)
        .build()
        .unwrap();
    for i in 0..3u64 {
        producer
            .message("tick")
            .segment("i", &i)
            .unwrap()
            .send()
            .await
            .unwrap();
    }
    let member = |name: &str| {
        event_backbone::Consumer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(&uri)
            .group("claims")
            .consumer_name(name)
            .block(Duration::from_millis(20))
    };
    let crashed = member("crashed")
        .ack_mode(event_backbone::AckMode::Manual)
        .no_claim()
        .stop_after(3)
        .subscribe_fn(|_ctx: ConsumerContext| async move { Ok(()) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(crashed.received, 3);
    let survivor = member("survivor")
        .claim(event_backbone::ClaimPolicy {
            interval: Duration::from_millis(10),
            min_idle: Duration::from_millis(30),
        })
        .stop_after(3)
        .subscribe_fn(|_ctx: ConsumerContext| async move { Ok(()) })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((survivor.claimed, survivor.handled), (3, 3), "{survivor:?}");
    // Both members report under the same stream and group.
    assert_eq!(counter(names::CLAIMED_MESSAGES, &uri), 3);
    assert_eq!(counter(names::CONSUMED_MESSAGES, &uri), 6);
    assert_eq!(counter(names::HANDLED_MESSAGES, &uri), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_counted_on_memory() {
    claims_are_counted(Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_counted_on_redis() {
    let redis = redis().await;
    claims_are_counted(
        Arc::new(RedisStreamChannel::new(&redis)),
        Arc::new(RedisHashStore::new(&redis)),
    )
    .await;
}

async fn redis() -> Redis {
    let endpoint = std::env::var("REDIS_EVENT_SOURCE_ENDPOINT")
        .unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
    Redis::connect(RedisConfig::from_endpoint(&endpoint, None).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-redis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_the_stats_on_memory() {
    kept();
    run_with_failures(
        Arc::new(MemoryChannel::new()),
        Arc::new(MemoryStore::new()),
        "memory",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_the_stats_on_redis() {
    kept();
    let redis = redis().await;
    run_with_failures(
        Arc::new(RedisStreamChannel::new(&redis)),
        Arc::new(RedisHashStore::new(&redis)),
        "redis",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_falls_to_zero_on_memory() {
    lag_falls_to_zero(Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_falls_to_zero_on_redis() {
    let redis = redis().await;
    lag_falls_to_zero(
        Arc::new(RedisStreamChannel::new(&redis)),
        Arc::new(RedisHashStore::new(&redis)),
    )
    .await;
}
