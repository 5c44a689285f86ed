//! Any stream goes with any store: events on Kafka, payloads in Redis.
//!
//! The producer appends each event's metadata to a Kafka topic and writes
//! its parameters to a Redis hash (personal data to a hash of its own); a
//! consumer group reads the topic, fetches the payloads from Redis and
//! prints them. Then the example shows where each part landed.
//!
//! Run with a Kafka broker and Redis (`scripts/start-kafka`,
//! `scripts/start-redis`):
//!
//! ```sh
//! cargo run --features kafka,redis --example kafka_with_redis
//! ```
//!
//! The brokers are `KAFKA_EVENT_SOURCE_BROKERS` (default 127.0.0.1:9092),
//! Redis is `REDIS_EVENT_SOURCE_ENDPOINT` (default 127.0.0.1:6379).

use std::sync::Arc;
use std::time::Duration;

use event_backbone::kafka::{topic_of, Kafka, KafkaConfig, KafkaStreamChannel, BROKERS_VAR};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, ENDPOINT_VAR};
use event_backbone::{
    Consumer, ConsumerContext, KeyValueStore, Producer, SegmentClass, StreamChannel, StreamPosition,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The servers named by the environment, else the local ones the
    // project's scripts start.
    let kafka_config = match std::env::var_os(BROKERS_VAR) {
        Some(_) => KafkaConfig::from_env()?,
        None => KafkaConfig::from_brokers("127.0.0.1:9092")?,
    };
    let redis_config = match std::env::var_os(ENDPOINT_VAR) {
        Some(_) => RedisConfig::from_env()?,
        None => RedisConfig::from_url("redis://127.0.0.1:6379")?,
    };
    let kafka: Arc<dyn StreamChannel> = Arc::new(KafkaStreamChannel::new(
        &Kafka::connect(kafka_config).await?,
    ));
    let redis = Redis::connect(redis_config).await?;
    let store: Arc<dyn KeyValueStore> = Arc::new(RedisHashStore::new(&redis));

    // A uri of its own per run, so that the example can be run again.
    let uri = format!("example.orders.{}", std::process::id());
    let producer = Producer::builder()
        .channel(kafka.clone())
        .store(store.clone())
        .uri(&uri)
        .build()?;
    for (product, email) in [("lamp", "ann@example.com"), ("desk", "bob@example.com")] {
        let receipt = producer
            .message("order_placed")
            .header("partition-key", email)
            .segment("product", product)?
            .personal("email", email)?
            .send()
            .await?;
        println!(
            "produced order_placed {product:<5} -> topic {} entry {}",
            topic_of(&uri)?,
            receipt.entry_id()
        );
    }

    let stats = Consumer::builder()
        .channel(kafka.clone())
        .store(store.clone())
        .uri(&uri)
        .group("report")
        .block(Duration::from_millis(200))
        .stop_after(2)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            let product: String = ctx.segment("product")?;
            let email: String = ctx.segment("email")?;
            println!("handled  {} {product:<5} for {email}", ctx.operation());
            Ok::<(), event_backbone::HandlerError>(())
        })?
        .completion()
        .await?;
    println!("report: {} handled", stats.handled);

    // Where it all is: the Kafka record holds the metadata only, the
    // parameters are fields of Redis hashes under the standard keys.
    let entries = kafka
        .read_range(&uri, &StreamPosition::Start, None, 10)
        .await?;
    for entry in entries {
        let metadata = entry.body?;
        for class in [SegmentClass::normal(), SegmentClass::personal()] {
            let key = metadata.standard_payload_key(&class);
            let fields = store.get(&key).await?.unwrap_or_default();
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            println!("entry {} -> Redis {key} {names:?}", entry.id);
        }
    }
    Ok(())
}
