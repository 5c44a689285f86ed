//! Channels and stores opened by URL from the facade, against the real
//! servers (`scripts/test` starts them): the scheme picks the backend.
#![cfg(any(
    feature = "redis",
    feature = "kafka",
    feature = "dynamodb",
    feature = "mongodb",
    feature = "couchbase"
))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone::{open_channel, open_store, Consumer, ConsumerContext, Producer};

/// A stream of its own per run.
fn uri(prefix: &str) -> String {
    format!("test.open-{prefix}.{}", event_backbone::MessageId::new())
}

/// Sends one message through the channel and store and reads it back.
async fn round_trip(
    channel: Arc<dyn event_backbone::StreamChannel>,
    store: Arc<dyn event_backbone::KeyValueStore>,
    uri: &str,
) -> String {
    Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .uri(uri)
        .build()
        .unwrap()
        .message("opened")
        .segment("by", "url")
        .unwrap()
        .send()
        .await
        .unwrap();
    let got = Arc::new(Mutex::new(String::new()));
    let g = got.clone();
    Consumer::builder()
        .channel(channel)
        .store(store)
        .uri(uri)
        .block(Duration::from_millis(100))
        .stop_after(1)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let g = g.clone();
            async move {
                *g.lock().unwrap() = ctx.segment::<String>("by")?;
                Ok(())
            }
        })
        .unwrap()
        .completion()
        .await
        .unwrap();
    let by = got.lock().unwrap().clone();
    by
}

#[cfg(feature = "redis")]
fn redis_url() -> String {
    match std::env::var(event_backbone::redis::ENDPOINT_VAR) {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_url_opens_a_channel_and_a_store() {
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    assert_eq!((channel.backend(), store.backend()), ("redis", "redis"));
    assert_eq!(round_trip(channel, store, &uri("redis")).await, "url");
}

/// The test Redis Cluster's seed nodes: `REDIS_CLUSTER_ENDPOINTS`, else
/// those `scripts/start-redis-cluster` wrote down.
#[cfg(feature = "redis")]
fn redis_cluster_url() -> String {
    let file = std::env::temp_dir().join("event-backbone-redis-cluster/endpoints");
    let seeds = std::env::var("REDIS_CLUSTER_ENDPOINTS")
        .or_else(|_| std::fs::read_to_string(&file))
        .expect("no Redis Cluster: run scripts/start-redis-cluster");
    format!("redis+cluster://{}", seeds.trim())
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_cluster_url_opens_a_channel_and_a_store() {
    let url = redis_cluster_url();
    let channel = open_channel(&url).await.unwrap();
    let store = open_store(&url).await.unwrap();
    assert_eq!((channel.backend(), store.backend()), ("redis", "redis"));
    assert_eq!(
        round_trip(channel, store, &uri("redis-cluster")).await,
        "url"
    );
}

#[cfg(feature = "kafka")]
#[tokio::test]
async fn a_kafka_url_opens_a_channel() {
    let brokers = std::env::var(event_backbone::kafka::BROKERS_VAR)
        .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let url = if brokers.contains("://") {
        brokers
    } else {
        format!("kafka://{brokers}")
    };
    let channel = open_channel(&url).await.unwrap();
    assert_eq!(channel.backend(), "kafka");
    let store = open_store("memory:").await.unwrap();
    assert_eq!(round_trip(channel, store, &uri("kafka")).await, "url");
}

#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_url_opens_a_store_on_an_existing_table() {
    use event_backbone::dynamodb::{Dynamo, DynamoConfig, DynamoStore, ENDPOINT_VAR};
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    // open_store takes credentials from the AWS chain; DynamoDB Local takes
    // any.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "local");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "local");
    }
    let table = format!("eb-test-open-{}", event_backbone::MessageId::new());
    let url = format!("dynamodb://{table}?region=us-east-1&endpoint={endpoint}");
    let dynamo = Dynamo::connect(DynamoConfig::from_url(&url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-dynamodb"));
    DynamoStore::new(&dynamo).ensure_table().await.unwrap();
    let store = open_store(&url).await.unwrap();
    assert_eq!(store.backend(), "dynamodb");
    let channel: Arc<dyn event_backbone::StreamChannel> =
        Arc::new(event_backbone::memory::MemoryChannel::new());
    assert_eq!(round_trip(channel, store, &uri("dynamodb")).await, "url");
    let refused = open_channel(&url).await.unwrap_err().to_string();
    let _ = dynamo
        .client()
        .delete_table()
        .table_name(&table)
        .send()
        .await;
    assert!(refused.contains("dynamodb"), "{refused}");
}

/// A store opened by URL under the memory channel: its backend and a round
/// trip; and `open_channel` refuses the same URL, naming the scheme.
#[cfg(any(feature = "mongodb", feature = "couchbase"))]
async fn a_store_only_url_round_trips(url: &str, backend: &str) {
    let store = open_store(url)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-{backend}"));
    assert_eq!(store.backend(), backend);
    let channel: Arc<dyn event_backbone::StreamChannel> =
        Arc::new(event_backbone::memory::MemoryChannel::new());
    assert_eq!(round_trip(channel, store, &uri(backend)).await, "url");
    let refused = open_channel(url).await.unwrap_err().to_string();
    assert!(
        refused.contains("names a store, not a channel"),
        "{refused}"
    );
}

#[cfg(feature = "mongodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongodb_url_opens_a_store() {
    let url = std::env::var(event_backbone::mongodb::URI_VAR)
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".to_owned());
    a_store_only_url_round_trips(&url, "mongodb").await;
}

#[cfg(feature = "couchbase")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_couchbase_url_opens_a_store_with_credentials_from_the_environment() {
    use event_backbone::couchbase::{BUCKET_VAR, CONNSTR_VAR, PASSWORD_VAR, USER_VAR};
    // The server of COUCHBASE_EVENT_SOURCE_*, else the project's test
    // server with the credentials scripts/start-couchbase gives it.
    let (connstr, bucket) = match std::env::var(CONNSTR_VAR) {
        Ok(connstr) => (connstr, std::env::var(BUCKET_VAR).unwrap()),
        Err(_) => {
            std::env::set_var(USER_VAR, "event-backbone");
            std::env::set_var(PASSWORD_VAR, "event-backbone-test");
            (
                "couchbase://127.0.0.1".to_owned(),
                "event-backbone".to_owned(),
            )
        }
    };
    let url = match connstr.split_once('?') {
        Some((hosts, options)) => format!("{hosts}/{bucket}/app/payloads?{options}"),
        None => format!("{connstr}/{bucket}/app/payloads"),
    };
    a_store_only_url_round_trips(&url, "couchbase").await;
    let no_bucket = open_store(&connstr).await.unwrap_err().to_string();
    assert!(no_bucket.contains("no bucket"), "{no_bucket}");
}
