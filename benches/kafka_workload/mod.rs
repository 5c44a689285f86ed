//! The Kafka workload the Kafka benches share: the clients of one
//! iteration, the producer and consumer runs of event-backbone and their
//! raw rdkafka baselines.

#![allow(dead_code)] // each benchmark program uses a part

use std::sync::Arc;
use std::time::{Duration, Instant};

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

pub const EVENTS: usize = 10_000;
pub const E2E_EVENTS: usize = 10_000;
pub const WINDOW: usize = 512;

pub fn brokers() -> String {
    std::env::var(BROKERS_VAR).unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

pub fn unique(prefix: &str) -> String {
    format!("bench.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

pub fn payload(i: usize) -> (String, String, u64) {
    (
        format!("{i:08}-customer-{}", "c".repeat(70)),
        format!("{i:08}-product-{}", "p".repeat(70)),
        i as u64,
    )
}

pub async fn produce_with_backbone(producer: &Producer, events: usize) {
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

/// The same events by hand, as a user of rdkafka alone would send them:
/// the same three parameters made and encoded (postcard) into the record's
/// value, after bytes of the metadata's size, with the same plain-text
/// headers.
pub async fn produce_raw(producer: &FutureProducer, topic: &str, value_len: usize, events: usize) {
    let sends = futures_util::stream::iter(0..events)
        .map(|i| {
            let id = uuid::Uuid::now_v7().to_string();
            async move {
                let (customer, product, quantity) = payload(i);
                let mut value = vec![0xEB_u8; value_len];
                value.extend(postcard::to_stdvec(&customer).unwrap());
                value.extend(postcard::to_stdvec(&product).unwrap());
                value.extend(postcard::to_stdvec(&quantity).unwrap());
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
                            .payload(&value)
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

pub async fn consume_with_backbone(
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

pub async fn consume_raw(topic: &str) {
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
pub struct Clients {
    pub channel: Arc<KafkaStreamChannel>,
    pub raw: FutureProducer,
}

impl Clients {
    pub async fn new() -> Self {
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
    pub async fn stream(&self, prefix: &str) -> (String, String) {
        let uri = unique(prefix);
        self.channel
            .ensure_group(&uri, "setup", event_backbone::GroupStart::Beginning)
            .await
            .unwrap();
        let topic = topic_of(&uri).unwrap();
        (uri, topic)
    }

    pub fn producer(&self, uri: &str, store: &Arc<MemoryStore>) -> Producer {
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
    pub async fn finish(self, topic: &str) {
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
pub fn measure<F>(rt: &tokio::runtime::Runtime, iters: u64, prefix: &str, timed: F) -> Duration
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

/// The size of the metadata the producer writes for one event: the raw
/// baseline's record value.
pub async fn metadata_len() -> usize {
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
    let len = event_backbone::envelope::encode_metadata(entries[0].body.as_ref().unwrap()).len();
    drop(producer);
    clients.finish(&topic).await;
    len
}
