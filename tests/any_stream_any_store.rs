//! Any stream with any store: the typed shipment-tracking flow on the Redis
//! channel and on the Kafka channel, with the payloads in MongoDB, in
//! DynamoDB and in Couchbase (the personal class in a collection or table
//! of its own), against the real servers (`scripts/start-redis`,
//! `scripts/start-kafka`, `scripts/start-mongodb`, `scripts/start-dynamodb`)
//! and the project's Couchbase KV test server (`scripts/start-couchbase`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone::couchbase::{Couchbase, CouchbaseConfig, CouchbaseStore};
use event_backbone::dynamodb::{Dynamo, DynamoConfig, DynamoStore};
use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
use event_backbone::mongodb::{Mongo, MongoConfig, MongoStore};
use event_backbone::redis::{Redis, RedisConfig, RedisStreamChannel};
use event_backbone::{
    event_contract, Consumer, ConsumerContext, Fields, HandlerError, KeyValueStore, Producer,
    PutItem, SegmentClass, StoreCapabilities, StreamChannel,
};
use serde::{Deserialize, Serialize};

/// A customer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Personal data.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// The life of a shipment, shortened.
#[event_contract]
pub trait Shipment {
    /// A customer ordered a product.
    async fn order_placed(&self, #[personal] user: User, product_id: u64);
    /// The customer has it.
    async fn on_received(&self, #[personal] email: String, product_id: u64);
}

/// Group `transit`: each order placed is received.
struct Transit {
    next: ShipmentProducer,
}

impl ShipmentConsumer for Transit {
    async fn order_placed(
        &self,
        ctx: &ConsumerContext,
        user: User,
        product_id: u64,
    ) -> Result<(), HandlerError> {
        self.next
            .caused_by(ctx)
            .on_received(&user.email, &product_id)
            .await?;
        Ok(())
    }

    async fn on_received(
        &self,
        _ctx: &ConsumerContext,
        _email: String,
        _product_id: u64,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Group `report`: what was received, by whom.
struct Report {
    received: Arc<Mutex<BTreeSet<(String, u64)>>>,
}

impl ShipmentConsumer for Report {
    async fn order_placed(
        &self,
        _ctx: &ConsumerContext,
        _user: User,
        _product_id: u64,
    ) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn on_received(
        &self,
        _ctx: &ConsumerContext,
        email: String,
        product_id: u64,
    ) -> Result<(), HandlerError> {
        self.received.lock().unwrap().insert((email, product_id));
        Ok(())
    }
}

fn var_or(name: &str, local: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| local.to_owned())
}

async fn mongo() -> Mongo {
    let config = match std::env::var_os(event_backbone::mongodb::URI_VAR) {
        Some(_) => MongoConfig::from_env().unwrap(),
        None => MongoConfig::from_url("mongodb://127.0.0.1:27017/?directConnection=true").unwrap(),
    };
    Mongo::connect(config.database("event_backbone_tests").unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-mongodb"))
}

/// Runs the flow on `channel`, payloads in `normal` and the personal class
/// in `personal`; checks what the report saw.
async fn shipment_flow(
    channel: Arc<dyn StreamChannel>,
    name: &str,
    normal: Arc<dyn KeyValueStore>,
    personal: Arc<dyn KeyValueStore>,
) {
    let run = event_backbone::MessageId::new().to_string();
    let uri = format!("e2e.{name}.{}", &run[run.len() - 12..]);
    let producer = || -> ShipmentProducer {
        Producer::builder()
            .channel(channel.clone())
            .store(normal.clone())
            .class_store(SegmentClass::personal(), personal.clone())
            .uri(&uri)
            .build_as()
            .unwrap()
    };
    let consumer = |group: &str| {
        Consumer::builder()
            .channel(channel.clone())
            .store(normal.clone())
            .class_store(SegmentClass::personal(), personal.clone())
            .uri(&uri)
            .group(group)
            .block(Duration::from_millis(100))
    };
    let received = Arc::new(Mutex::new(BTreeSet::new()));
    let transit = consumer("transit")
        .subscribe(ShipmentHandler::new(Transit { next: producer() }))
        .unwrap();
    let report = consumer("report")
        .subscribe(ShipmentHandler::new(Report {
            received: received.clone(),
        }))
        .unwrap();
    let orders = [
        ("Ann", "ann@example.com", 1001u64),
        ("Bob", "bob@example.com", 1002),
        ("Eve", "eve@example.com", 1003),
    ];
    let shop = producer();
    for (name, email, id) in orders {
        let user = User {
            email: email.into(),
            name: name.into(),
        };
        shop.order_placed(&user, &id).await.unwrap();
    }
    let expected: BTreeSet<(String, u64)> = orders
        .iter()
        .map(|(_, e, id)| (e.to_string(), *id))
        .collect();
    event_backbone::testkit::eventually("every order received, as the report saw it", || {
        let done = *received.lock().unwrap() == expected;
        async move { done }
    })
    .await;
    transit.shutdown().await.unwrap();
    report.shutdown().await.unwrap();
}

/// The flow with the payloads in MongoDB, a collection per class; six
/// messages: the personal segment of each in the personal collection, the
/// rest in the payload collection.
async fn with_mongodb(channel: Arc<dyn StreamChannel>, name: &str) {
    let mongo = mongo().await;
    let run = event_backbone::MessageId::new().to_string();
    let suffix = &run[run.len() - 12..];
    let normal = Arc::new(
        MongoStore::with_collection(&mongo, &format!("payloads_{name}_{suffix}")).unwrap(),
    );
    let personal = Arc::new(
        MongoStore::with_collection(&mongo, &format!("personal_{name}_{suffix}")).unwrap(),
    );
    shipment_flow(channel, name, normal.clone(), personal.clone()).await;
    let count = |store: &MongoStore| {
        let collection = mongo
            .database()
            .collection::<event_backbone::mongodb::driver::bson::Document>(store.collection_name());
        async move {
            collection
                .count_documents(event_backbone::mongodb::driver::bson::doc! {})
                .await
                .unwrap()
        }
    };
    assert_eq!(count(&personal).await, 6, "personal documents");
    assert_eq!(count(&normal).await, 6, "payload documents");
}

async fn dynamo(table: &str) -> Dynamo {
    let endpoint = var_or(
        event_backbone::dynamodb::ENDPOINT_VAR,
        "http://127.0.0.1:8000",
    );
    let mut config = DynamoConfig::new(table)
        .unwrap()
        .endpoint(&endpoint)
        .unwrap();
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        config = config.credentials("local", "local").region("us-east-1");
    }
    Dynamo::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-dynamodb"))
}

/// The flow with the payloads in DynamoDB, a table per class (created and
/// deleted here); six items in each.
async fn with_dynamodb(channel: Arc<dyn StreamChannel>, name: &str) {
    let run = event_backbone::MessageId::new().to_string();
    let suffix = &run[run.len() - 12..];
    let dynamo = dynamo(&format!("eb-test-payloads-{name}-{suffix}")).await;
    let normal = Arc::new(DynamoStore::new(&dynamo));
    let personal = Arc::new(
        DynamoStore::with_table(&dynamo, &format!("eb-test-personal-{name}-{suffix}")).unwrap(),
    );
    for store in [&normal, &personal] {
        store.ensure_table().await.unwrap();
    }
    shipment_flow(channel, name, normal.clone(), personal.clone()).await;
    for (store, what) in [(&personal, "personal items"), (&normal, "payload items")] {
        let scan = dynamo
            .client()
            .scan()
            .table_name(store.table())
            .consistent_read(true)
            .select(event_backbone::dynamodb::sdk::types::Select::Count)
            .send()
            .await
            .unwrap();
        let _ = dynamo
            .client()
            .delete_table()
            .table_name(store.table())
            .send()
            .await;
        assert_eq!(scan.count(), 6, "{what}");
    }
}

/// A store that notes the keys written through it, to find them again in
/// a store that cannot list its keys.
#[derive(Debug)]
struct Noting {
    inner: Arc<dyn KeyValueStore>,
    keys: Mutex<BTreeSet<String>>,
}

#[async_trait::async_trait]
impl KeyValueStore for Noting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
    async fn put_many(&self, items: &[PutItem]) -> event_backbone::Result<()> {
        self.keys
            .lock()
            .unwrap()
            .extend(items.iter().map(|i| i.key.clone()));
        self.inner.put_many(items).await
    }
    async fn insert_many(&self, items: &[PutItem]) -> event_backbone::Result<()> {
        self.keys
            .lock()
            .unwrap()
            .extend(items.iter().map(|i| i.key.clone()));
        self.inner.insert_many(items).await
    }
    async fn get_many(&self, keys: &[&str]) -> event_backbone::Result<Vec<Option<Fields>>> {
        self.inner.get_many(keys).await
    }
    async fn delete_many(&self, keys: &[&str]) -> event_backbone::Result<u64> {
        self.inner.delete_many(keys).await
    }
}

async fn couchbase(collection: &str) -> Couchbase {
    let config = match std::env::var_os(event_backbone::couchbase::CONNSTR_VAR) {
        Some(_) => CouchbaseConfig::from_env().unwrap(),
        None => CouchbaseConfig::from_url("couchbase://127.0.0.1")
            .unwrap()
            .credentials("event-backbone", "event-backbone-test")
            .bucket("event-backbone"),
    };
    Couchbase::connect(config.collection("app", collection))
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-couchbase"))
}

/// The flow with the payloads in Couchbase, the collections
/// `app.payloads` and `app.personal`: six keys in each, each in its own
/// collection only.
async fn with_couchbase(channel: Arc<dyn StreamChannel>, name: &str) {
    let (payloads, personal) = (couchbase("payloads").await, couchbase("personal").await);
    let noting = |c: &Couchbase| {
        Arc::new(Noting {
            inner: Arc::new(CouchbaseStore::new(c)),
            keys: Mutex::new(BTreeSet::new()),
        })
    };
    let (normal_store, personal_store) = (noting(&payloads), noting(&personal));
    shipment_flow(channel, name, normal_store.clone(), personal_store.clone()).await;
    for (store, own, other, what) in [
        (&normal_store, &payloads, &personal, "payload keys"),
        (&personal_store, &personal, &payloads, "personal keys"),
    ] {
        let keys = store.keys.lock().unwrap().clone();
        assert_eq!(keys.len(), 6, "{what}: {keys:?}");
        for key in &keys {
            assert!(
                own.collection().get(key, None).await.is_ok(),
                "{what}: {key} missing"
            );
            assert!(
                other.collection().get(key, None).await.is_err(),
                "{what}: {key} is in the other collection too"
            );
        }
    }
}

async fn redis_channel() -> Arc<dyn StreamChannel> {
    let config = RedisConfig::from_endpoint(
        &var_or("REDIS_EVENT_SOURCE_ENDPOINT", "127.0.0.1:6379"),
        None,
    )
    .unwrap();
    let redis = Redis::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-redis"));
    Arc::new(RedisStreamChannel::new(&redis))
}

async fn kafka_channel() -> Arc<dyn StreamChannel> {
    let config =
        KafkaConfig::from_brokers(&var_or("KAFKA_EVENT_SOURCE_BROKERS", "127.0.0.1:9092")).unwrap();
    let kafka = Kafka::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-kafka"));
    Arc::new(KafkaStreamChannel::new(&kafka))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_redis_with_the_mongodb_store() {
    with_mongodb(redis_channel().await, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_kafka_with_the_mongodb_store() {
    with_mongodb(kafka_channel().await, "kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_redis_with_the_dynamodb_store() {
    with_dynamodb(redis_channel().await, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_kafka_with_the_dynamodb_store() {
    with_dynamodb(kafka_channel().await, "kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_redis_with_the_couchbase_store() {
    with_couchbase(redis_channel().await, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_kafka_with_the_couchbase_store() {
    with_couchbase(kafka_channel().await, "kafka").await;
}
