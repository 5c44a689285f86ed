//! Shipment tracking, after the EventSource.Backbone hello world.
//!
//! * a producer places a few orders (`order_placed`);
//! * a consumer in group `transit` turns each event into the next one with its
//!   own producer: `packing`, then `on_delivery`, then `on_received`;
//! * a consumer in group `report` prints every event, and stops the show when
//!   every order is received.
//!
//! All three roles run in this one process, on the in-memory backend:
//! `cargo run --example shipment_tracking`; in the SQLite file `events.db`,
//! which outlives the run, with `cargo run --features sqlite --example
//! shipment_tracking`; or on Redis, with
//! `REDIS_EVENT_SOURCE_ENDPOINT=127.0.0.1:6379 cargo run --features redis
//! --example shipment_tracking` (and `REDIS_EVENT_SOURCE_PASS` if needed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
#[cfg(not(feature = "sqlite"))]
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::{
    event_contract, Consumer, ConsumerBuilder, ConsumerContext, HandlerError, KeyValueStore,
    Producer, SegmentClass, StreamChannel,
};
use serde::{Deserialize, Serialize};

/// A customer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct User {
    /// Contact address: personal data.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// Something to ship.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Product {
    /// Product id.
    pub id: u64,
    /// What it is.
    pub name: String,
    /// Price in cents.
    pub price: u64,
}

/// The life of a shipment.
#[event_contract]
pub trait ShipmentTracking {
    /// A customer ordered a product.
    async fn order_placed(&self, #[personal] user: User, product: Product, time: DateTime<Utc>);
    /// The warehouse is packing it.
    async fn packing(&self, #[personal] email: String, product_id: u64, time: DateTime<Utc>);
    /// It is on its way.
    async fn on_delivery(&self, #[personal] email: String, product_id: u64, time: DateTime<Utc>);
    /// The customer has it.
    async fn on_received(&self, #[personal] email: String, product_id: u64, time: DateTime<Utc>);
}

/// Group `transit`: moves each shipment one stage further.
struct Transit {
    next: ShipmentTrackingProducer,
}

impl ShipmentTrackingConsumer for Transit {
    async fn order_placed(
        &self,
        ctx: &ConsumerContext,
        user: User,
        product: Product,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let next = self.next.caused_by(ctx);
        next.packing(&user.email, &product.id, &Utc::now()).await?;
        Ok(())
    }

    async fn packing(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let next = self.next.caused_by(ctx);
        next.on_delivery(&email, &product_id, &Utc::now()).await?;
        Ok(())
    }

    async fn on_delivery(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let next = self.next.caused_by(ctx);
        next.on_received(&email, &product_id, &Utc::now()).await?;
        Ok(())
    }

    async fn on_received(
        &self,
        _ctx: &ConsumerContext,
        _email: String,
        _product_id: u64,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Group `report`: prints every event; stops when every order is received.
struct Report {
    orders: usize,
    received: AtomicUsize,
}

impl Report {
    fn line(&self, ctx: &ConsumerContext, what: String) {
        println!(
            "[report] {:<12} {what} (message {}, caused by {})",
            ctx.operation(),
            ctx.message_id(),
            ctx.metadata().causation_id.as_deref().unwrap_or("-"),
        );
    }
}

impl ShipmentTrackingConsumer for Report {
    async fn order_placed(
        &self,
        ctx: &ConsumerContext,
        user: User,
        product: Product,
        time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        self.line(
            ctx,
            format!(
                "{} ordered {} #{} for ${:.2} at {}",
                user.name,
                product.name,
                product.id,
                product.price as f64 / 100.0,
                time.format("%H:%M:%S%.3f")
            ),
        );
        Ok(())
    }

    async fn packing(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        self.line(
            ctx,
            format!("product #{product_id} for {email} is being packed"),
        );
        Ok(())
    }

    async fn on_delivery(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        self.line(
            ctx,
            format!("product #{product_id} for {email} is on its way"),
        );
        Ok(())
    }

    async fn on_received(
        &self,
        ctx: &ConsumerContext,
        email: String,
        product_id: u64,
        _time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        self.line(ctx, format!("product #{product_id} reached {email}"));
        if self.received.fetch_add(1, Ordering::SeqCst) + 1 == self.orders {
            ctx.cancel();
        }
        Ok(())
    }
}

/// The backend: Redis when `REDIS_EVENT_SOURCE_ENDPOINT` is set (feature
/// `redis`), otherwise the SQLite file `events.db` (feature `sqlite`: it
/// outlives the run), otherwise memory. Each run gets a stream of its own.
struct Backend {
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    personal: Arc<dyn KeyValueStore>,
    uri: String,
}

impl Backend {
    async fn select() -> Result<Self, Box<dyn std::error::Error>> {
        let run = event_backbone::MessageId::new().to_string();
        let uri = format!("hello.event-sourcing.{}", &run[run.len() - 8..]);
        if std::env::var_os("REDIS_EVENT_SOURCE_ENDPOINT").is_some() {
            #[cfg(feature = "redis")]
            {
                use event_backbone::redis::{Redis, RedisHashStore, RedisStreamChannel};
                let redis = Redis::from_env().await?;
                println!(
                    "[setup]  Redis at {}, stream {uri}",
                    redis.config().address()
                );
                let store: Arc<dyn KeyValueStore> = Arc::new(RedisHashStore::new(&redis));
                return Ok(Self {
                    channel: Arc::new(RedisStreamChannel::new(&redis)),
                    personal: store.clone(),
                    store,
                    uri,
                });
            }
            #[cfg(not(feature = "redis"))]
            eprintln!("note: built without the `redis` feature; running in memory");
        }
        #[cfg(feature = "sqlite")]
        let (backend, place) = {
            let url = "sqlite:events.db";
            let store = event_backbone::open_store(url).await?;
            let backend = Self {
                channel: event_backbone::open_channel(url).await?,
                personal: store.clone(),
                store,
                uri,
            };
            (backend, "SQLite file events.db")
        };
        #[cfg(not(feature = "sqlite"))]
        let (backend, place) = (
            Self {
                channel: Arc::new(MemoryChannel::new()),
                store: Arc::new(MemoryStore::new()),
                personal: Arc::new(MemoryStore::new()),
                uri,
            },
            "in memory",
        );
        println!("[setup]  {place}, stream {}", backend.uri);
        Ok(backend)
    }

    fn producer(&self) -> event_backbone::Result<ShipmentTrackingProducer> {
        Producer::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .class_store(SegmentClass::personal(), self.personal.clone())
            .uri(&self.uri)
            .build_as()
    }

    fn consumer(&self, group: &str) -> ConsumerBuilder {
        Consumer::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .class_store(SegmentClass::personal(), self.personal.clone())
            .uri(&self.uri)
            .group(group)
            .block(Duration::from_millis(100))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = Backend::select().await?;
    let orders = [
        ("Ann", "ann@example.com", 1001, "Kettle", 2_499),
        ("Bob", "bob@example.com", 1002, "Lamp", 3_950),
        ("Eve", "eve@example.com", 1003, "Rug", 12_000),
    ];

    let transit = backend
        .consumer("transit")
        .subscribe(ShipmentTrackingHandler::new(Transit {
            next: backend.producer()?,
        }))?;
    let report =
        backend
            .consumer("report")
            .concurrency(1)
            .subscribe(ShipmentTrackingHandler::new(Report {
                orders: orders.len(),
                received: AtomicUsize::new(0),
            }))?;

    let producer = backend.producer()?;
    for (name, email, id, product, price) in orders {
        let user = User {
            email: email.into(),
            name: name.into(),
        };
        let product = Product {
            id,
            name: product.into(),
            price,
        };
        let receipt = producer.order_placed(&user, &product, &Utc::now()).await?;
        println!(
            "[shop]   order_placed for {name}: message {}",
            receipt.message_id
        );
    }

    let report = tokio::time::timeout(Duration::from_secs(30), report.completion()).await??;
    let transit = transit.shutdown().await?;
    println!(
        "done: report handled {}, transit handled {}",
        report.handled, transit.handled
    );
    Ok(())
}
