//! Any stream with any store: the typed shipment-tracking flow on the Redis
//! channel and on the Kafka channel, with the payloads in MongoDB (the
//! personal class in a collection of its own), against the real servers
//! (`scripts/start-redis`, `scripts/start-kafka`, `scripts/start-mongodb`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
use event_backbone::mongodb::{Mongo, MongoConfig, MongoStore};
use event_backbone::redis::{Redis, RedisConfig, RedisStreamChannel};
use event_backbone::{
    event_contract, Consumer, ConsumerContext, HandlerError, KeyValueStore, Producer, SegmentClass,
    StreamChannel,
};
use serde::{Deserialize, Serialize};

/// A customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// Runs the flow on `channel`, payloads in MongoDB; checks what the report
/// saw and what the collections hold.
async fn shipment_flow(channel: Arc<dyn StreamChannel>, name: &str) {
    let mongo = mongo().await;
    let run = event_backbone::MessageId::new().to_string();
    let suffix = &run[run.len() - 12..];
    let normal = Arc::new(
        MongoStore::with_collection(&mongo, &format!("payloads_{name}_{suffix}")).unwrap(),
    );
    let personal = Arc::new(
        MongoStore::with_collection(&mongo, &format!("personal_{name}_{suffix}")).unwrap(),
    );
    let uri = format!("e2e.{name}.{suffix}");
    let producer = || -> ShipmentProducer {
        Producer::builder()
            .channel(channel.clone())
            .store(normal.clone() as Arc<dyn KeyValueStore>)
            .class_store(
                SegmentClass::personal(),
                personal.clone() as Arc<dyn KeyValueStore>,
            )
            .uri(&uri)
            .build_as()
            .unwrap()
    };
    let consumer = |group: &str| {
        Consumer::builder()
            .channel(channel.clone())
            .store(normal.clone() as Arc<dyn KeyValueStore>)
            .class_store(
                SegmentClass::personal(),
                personal.clone() as Arc<dyn KeyValueStore>,
            )
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
    // Six messages: the personal segment of each in the personal collection,
    // the rest in the payload collection.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_redis_with_the_mongodb_store() {
    let config = RedisConfig::from_endpoint(
        &var_or("REDIS_EVENT_SOURCE_ENDPOINT", "127.0.0.1:6379"),
        None,
    )
    .unwrap();
    let redis = Redis::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-redis"));
    shipment_flow(Arc::new(RedisStreamChannel::new(&redis)), "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_tracking_on_kafka_with_the_mongodb_store() {
    let config =
        KafkaConfig::from_brokers(&var_or("KAFKA_EVENT_SOURCE_BROKERS", "127.0.0.1:9092")).unwrap();
    let kafka = Kafka::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-kafka"));
    shipment_flow(Arc::new(KafkaStreamChannel::new(&kafka)), "kafka").await;
}
