//! Kafka: the producer and the consumer against a raw rdkafka baseline
//! writing and reading the same records, in the same run.
//!
//! Run with `scripts/bench` (or `cargo bench --features kafka --bench kafka`).
//! The brokers are `KAFKA_EVENT_SOURCE_BROKERS` or 127.0.0.1:9092. Payloads
//! go to the in-memory store, so the rows compare the Kafka part.
//!
//! * `produce/event-backbone`: 10,000 events of ~200 bytes in 3 parameters
//!   through one `Producer` (at most 512 sends in flight).
//! * `produce/raw-rdkafka`: 10,000 records with the same value size and
//!   headers, sent through a `FutureProducer`, at most 512 in flight.
//! * `end-to-end/*`: produce 10,000, then read them in a group (the raw
//!   baseline: a `StreamConsumer`, one commit at the end; event-backbone: a
//!   consumer that fetches payloads, handles and acknowledges each).
//!
//! Each iteration writes to a topic of its own and deletes it afterwards,
//! untimed, so that no iteration reads a store the others filled. Start
//! tansu with `scripts/start-kafka`: without the header index the script
//! adds, tansu's fetches scan every header in its store for each record,
//! and the end-to-end rows would measure that scan rather than the clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use event_backbone::kafka::{topic_of, Kafka, KafkaConfig, KafkaStreamChannel, BROKERS_VAR};
use event_backbone::memory::MemoryStore;
use event_backbone::{Consumer, ConsumerContext, HandlerError, Producer, StreamChannel};
use futures_util::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const EVENTS: usize = 10_000;
const E2E_EVENTS: usize = 10_000;
const WINDOW: usize = 512;

fn brokers() -> String {
    std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn unique(prefix: &str) -> String {
    format!("bench.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

fn payload(i: usize) -> (String, String, u64) {
    (
        format!("{i:08}-customer-{}", "c".repeat(70)),
        format!("{i:08}-product-{}", "p".repeat(70)),
        i as u64,
    )
}

async fn produce_with_backbone(producer: &Producer, events: usize) {
    let sends = futures_util::stream::iter(0..events)
        .map(|i| {
            let (customer, product, quantity) = payload(i);
            async move {
                producer
                    .message("order_placed")
                    .segment("customer", &customer)?
                    .segment("product", &product)?
                    .segment("quantity", &quantity)?
                    .send()
                    .await
            }
        })
        .buffer_unordered(WINDOW);
    futures_util::pin_mut!(sends);
    while let Some(r) = sends.next().await {
        r.unwrap();
    }
}

/// The same records by hand: a value of the metadata's size and the same
/// plain-text headers.
async fn produce_raw(producer: &FutureProducer, topic: &str, value_len: usize, events: usize) {
    let value = vec![0xEB_u8; value_len];
    let sends = futures_util::stream::iter(0..events)
        .map(|_| {
            let id = uuid::Uuid::now_v7().to_string();
            let value = &value;
            async move {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "message_id",
                        value: Some(&id),
                    })
                    .insert(Header {
                        key: "operation",
                        value: Some("order_placed"),
                    });
                producer
                    .send(
                        FutureRecord::<(), _>::to(topic)
                            .payload(value)
                            .headers(headers),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
            }
        })
        .buffer_unordered(WINDOW);
    futures_util::pin_mut!(sends);
    while let Some(r) = sends.next().await {
        r.unwrap();
    }
}

async fn consume_with_backbone(
    channel: &Arc<KafkaStreamChannel>,
    uri: &str,
    store: &Arc<MemoryStore>,
) {
    let stats = Consumer::builder()
        .channel(channel.clone() as Arc<dyn StreamChannel>)
        .store(store.clone())
        .uri(uri)
        .group("bench")
        .batch_size(256)
        .concurrency(256)
        .stop_after(E2E_EVENTS as u64)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let q: u64 = ctx.segment("quantity")?;
            std::hint::black_box(q);
            Ok::<(), HandlerError>(())
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.handled, E2E_EVENTS as u64);
}

async fn consume_raw(topic: &str) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("raw-group"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut last = None;
    for _ in 0..E2E_EVENTS {
        let m = consumer.recv().await.unwrap();
        std::hint::black_box(rdkafka::Message::payload(&m).map(<[u8]>::len));
        last = Some((
            rdkafka::Message::partition(&m),
            rdkafka::Message::offset(&m),
        ));
    }
    if let Some((p, o)) = last {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(o + 1))
            .unwrap();
        consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .unwrap();
    }
}

/// The clients of one iteration. Each iteration has its own: a topic is
/// deleted after it, and librdkafka 2.12 can crash on a metadata update for
/// a deleted topic it still has in its cache.
struct Clients {
    channel: Arc<KafkaStreamChannel>,
    raw: FutureProducer,
}

impl Clients {
    async fn new() -> Self {
        let kafka = Kafka::connect(KafkaConfig::from_brokers(&brokers()).unwrap())
            .await
            .expect("a Kafka broker (scripts/start-kafka)");
        let channel = Arc::new(KafkaStreamChannel::new(&kafka));
        let raw = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        Self { channel, raw }
    }

    /// A new stream whose topic exists (made the way the channel makes it),
    /// and that topic.
    async fn stream(&self, prefix: &str) -> (String, String) {
        let uri = unique(prefix);
        self.channel
            .ensure_group(&uri, "setup", event_backbone::GroupStart::Beginning)
            .await
            .unwrap();
        let topic = topic_of(&uri).unwrap();
        (uri, topic)
    }

    fn producer(&self, uri: &str, store: &Arc<MemoryStore>) -> Producer {
        Producer::builder()
            .channel(self.channel.clone() as Arc<dyn StreamChannel>)
            .store(store.clone())
            .uri(uri)
            .build()
            .unwrap()
    }

    /// Closes the clients, then deletes the topic with a client of its own,
    /// so that the broker's storage does not grow from one iteration to the
    /// next.
    async fn finish(self, topic: &str) {
        drop(self);
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
        let deleted = admin
            .delete_topics(&[topic], &AdminOptions::new())
            .await
            .expect("deleting a bench topic");
        for d in deleted {
            d.unwrap_or_else(|(t, e)| panic!("deleting topic {t}: {e}"));
        }
    }
}

/// Runs `iters` iterations of `timed` (given fresh clients, the stream and
/// its topic) and adds up their times.
fn measure<F>(rt: &tokio::runtime::Runtime, iters: u64, prefix: &str, timed: F) -> Duration
where
    F: for<'a> AsyncFn(&'a Clients, &'a str, &'a str),
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let clients = Clients::new().await;
            let (uri, topic) = clients.stream(prefix).await;
            let start = Instant::now();
            timed(&clients, &uri, &topic).await;
            total += start.elapsed();
            clients.finish(&topic).await;
        }
        total
    })
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The size of the metadata the producer writes for one event.
    let value_len = rt.block_on(async {
        let clients = Clients::new().await;
        let (uri, topic) = clients.stream("size").await;
        let producer = clients.producer(&uri, &Arc::new(MemoryStore::new()));
        let (customer, product, quantity) = payload(0);
        producer
            .message("order_placed")
            .segment("customer", &customer)
            .unwrap()
            .segment("product", &product)
            .unwrap()
            .segment("quantity", &quantity)
            .unwrap()
            .send()
            .await
            .unwrap();
        let entries = clients
            .channel
            .read_range(&uri, &event_backbone::StreamPosition::Start, None, 1)
            .await
            .unwrap();
        let len =
            event_backbone::envelope::encode_metadata(entries[0].body.as_ref().unwrap()).len();
        drop(producer);
        clients.finish(&topic).await;
        len
    });

    let mut group = c.benchmark_group("kafka-produce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "produce", async |clients, uri, _| {
                let producer = clients.producer(uri, &Arc::new(MemoryStore::new()));
                produce_with_backbone(&producer, EVENTS).await;
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-rdkafka", EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "raw-produce", async |clients, _, topic| {
                produce_raw(&clients.raw, topic, value_len, EVENTS).await;
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("kafka-end-to-end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(E2E_EVENTS as u64));
    group.bench_function(BenchmarkId::new("event-backbone", E2E_EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "e2e", async |clients, uri, _| {
                let store = Arc::new(MemoryStore::new());
                let producer = clients.producer(uri, &store);
                produce_with_backbone(&producer, E2E_EVENTS).await;
                consume_with_backbone(&clients.channel, uri, &store).await;
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw-rdkafka", E2E_EVENTS), |b| {
        b.iter_custom(|iters| {
            measure(&rt, iters, "raw-e2e", async |clients, _, topic| {
                produce_raw(&clients.raw, topic, value_len, E2E_EVENTS).await;
                consume_raw(topic).await;
            })
        })
    });
    group.finish();
}

criterion_group!(kafka_benches, benches);

fn main() {
    kafka_benches();
    Criterion::default().configure_from_args().final_summary();
}
