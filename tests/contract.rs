//! Typed contracts on the in-memory backend: every kind of parameter round
//! trips; versions coexist; deprecated and unknown operations reach the
//! fallback; groups, several handlers, and typed replay after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};
use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::{
    event_contract, Consumer, ConsumerBuilder, ConsumerContext, ContractEvent, EndpointBuilder,
    Fallback, HandlerError, Handlers, KeyValueStore, Outcome, Producer, Receiver, Replay,
    ReplayBuilder, SegmentClass,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Product {
    Book { isbn: String },
    Gift(u32),
    Nothing,
}

/// Every kind of parameter.
#[event_contract(event_derive(Debug, Clone, PartialEq))]
pub trait Kinds {
    /// A struct, an enum and a timestamp.
    async fn structured(&self, user: User, product: Product, time: DateTime<Utc>);
    async fn optional(&self, maybe: Option<u64>, none: Option<String>);
    async fn listed(&self, items: Vec<Product>, map: BTreeMap<String, i64>);
    async fn scalars(
        &self,
        text: String,
        small: u8,
        signed: i64,
        big: u128,
        float: f64,
        single: f32,
        flag: bool,
        letter: char,
    );
    async fn times(&self, system: SystemTime, elapsed: Duration);
    async fn bytes(&self, raw: Vec<u8>);
    async fn ping(&self);
    async fn secret(&self, #[personal] email: String, #[personal] phone: Option<String>, id: u32);
    #[event(name = "renamed.op", version = 3)]
    async fn custom_names(&self, #[segment(name = "the-value", class = "financial")] value: i32);
}

#[derive(Default)]
struct KindsLog(Mutex<Vec<KindsEvent>>);

impl KindsConsumer for Arc<KindsLog> {
    async fn structured(
        &self,
        _: &ConsumerContext,
        user: User,
        product: Product,
        time: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(KindsEvent::Structured {
            user,
            product,
            time,
        });
        Ok(())
    }
    async fn optional(
        &self,
        _: &ConsumerContext,
        maybe: Option<u64>,
        none: Option<String>,
    ) -> Result<(), HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push(KindsEvent::Optional { maybe, none });
        Ok(())
    }
    async fn listed(
        &self,
        _: &ConsumerContext,
        items: Vec<Product>,
        map: BTreeMap<String, i64>,
    ) -> Result<(), HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push(KindsEvent::Listed { items, map });
        Ok(())
    }
    #[allow(clippy::too_many_arguments)]
    async fn scalars(
        &self,
        _: &ConsumerContext,
        text: String,
        small: u8,
        signed: i64,
        big: u128,
        float: f64,
        single: f32,
        flag: bool,
        letter: char,
    ) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(KindsEvent::Scalars {
            text,
            small,
            signed,
            big,
            float,
            single,
            flag,
            letter,
        });
        Ok(())
    }
    async fn times(
        &self,
        _: &ConsumerContext,
        system: SystemTime,
        elapsed: Duration,
    ) -> Result<(), HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push(KindsEvent::Times { system, elapsed });
        Ok(())
    }
    async fn bytes(&self, _: &ConsumerContext, raw: Vec<u8>) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(KindsEvent::Bytes { raw });
        Ok(())
    }
    async fn ping(&self, _: &ConsumerContext) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(KindsEvent::Ping);
        Ok(())
    }
    async fn secret(
        &self,
        _: &ConsumerContext,
        email: String,
        phone: Option<String>,
        id: u32,
    ) -> Result<(), HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push(KindsEvent::Secret { email, phone, id });
        Ok(())
    }
    async fn custom_names(&self, _: &ConsumerContext, value: i32) -> Result<(), HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push(KindsEvent::CustomNames { value });
        Ok(())
    }
}

struct Backend {
    channel: Arc<MemoryChannel>,
    store: Arc<MemoryStore>,
    personal: Arc<MemoryStore>,
}

impl Backend {
    fn new() -> Self {
        Self {
            channel: Arc::new(MemoryChannel::new()),
            store: Arc::new(MemoryStore::new()),
            personal: Arc::new(MemoryStore::new()),
        }
    }
    fn producer<P: From<Producer>>(&self, uri: &str) -> P {
        Producer::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .class_store(SegmentClass::personal(), self.personal.clone())
            .uri(uri)
            .build_as()
            .unwrap()
    }
    fn consumer(&self, uri: &str) -> ConsumerBuilder {
        self.on(Consumer::builder(), uri)
            .block(Duration::from_millis(50))
    }

    fn replay(&self, uri: &str) -> ReplayBuilder {
        self.on(Replay::builder(), uri)
    }

    /// A builder of any role on these backends.
    fn on<R>(&self, builder: EndpointBuilder<R>, uri: &str) -> EndpointBuilder<R> {
        builder
            .channel(self.channel.clone())
            .store(self.store.clone())
            .class_store(SegmentClass::personal(), self.personal.clone())
            .uri(uri)
    }
}

fn samples() -> Vec<KindsEvent> {
    let user = User {
        name: "Ann".into(),
        tags: vec!["vip".into(), "ünï".into()],
    };
    vec![
        KindsEvent::Structured {
            user,
            product: Product::Book {
                isbn: "978-0".into(),
            },
            time: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
        },
        KindsEvent::Optional {
            maybe: Some(7),
            none: None,
        },
        KindsEvent::Listed {
            items: vec![Product::Gift(3), Product::Nothing],
            map: BTreeMap::from([("a".into(), -1), ("b".into(), i64::MAX)]),
        },
        KindsEvent::Scalars {
            text: "名前 🎉".into(),
            small: 255,
            signed: i64::MIN,
            big: u128::MAX,
            float: -1.5e300,
            single: 3.25,
            flag: true,
            letter: 'ß',
        },
        KindsEvent::Times {
            system: UNIX_EPOCH + Duration::from_millis(1_700_000_000_456),
            elapsed: Duration::from_nanos(1_234_567_891),
        },
        KindsEvent::Bytes {
            raw: (0..=255u8).collect(),
        },
        KindsEvent::Ping,
        KindsEvent::Secret {
            email: "ann@example.com".into(),
            phone: Some("+1 555".into()),
            id: 9,
        },
        KindsEvent::CustomNames { value: -42 },
    ]
}

async fn send_all(p: &KindsProducer, events: &[KindsEvent]) {
    for e in events {
        match e {
            KindsEvent::Structured {
                user,
                product,
                time,
            } => p.structured(user, product, time).await,
            KindsEvent::Optional { maybe, none } => p.optional(maybe, none).await,
            KindsEvent::Listed { items, map } => p.listed(items, map).await,
            KindsEvent::Scalars {
                text,
                small,
                signed,
                big,
                float,
                single,
                flag,
                letter,
            } => {
                p.scalars(text, small, signed, big, float, single, flag, letter)
                    .await
            }
            KindsEvent::Times { system, elapsed } => p.times(system, elapsed).await,
            KindsEvent::Bytes { raw } => p.bytes(raw).await,
            KindsEvent::Ping => p.ping().await,
            KindsEvent::Secret { email, phone, id } => p.secret(email, phone, id).await,
            KindsEvent::CustomNames { value } => p.custom_names(value).await,
        }
        .unwrap();
    }
}

#[tokio::test]
async fn every_kind_of_parameter_round_trips() {
    let b = Backend::new();
    let producer: KindsProducer = b.producer("kinds");
    let events = samples();
    send_all(&producer, &events).await;

    let log = Arc::new(KindsLog::default());
    let stats = b
        .consumer("kinds")
        .concurrency(1)
        .stop_after(events.len() as u64)
        .subscribe(KindsHandler::new(log.clone()))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(
        (stats.handled, stats.dead_lettered),
        (events.len() as u64, 0)
    );
    assert_eq!(*log.0.lock().unwrap(), events);
}

#[tokio::test]
async fn segments_follow_names_and_classes() {
    let b = Backend::new();
    let producer: KindsProducer = b.producer("layout");
    let receipt = producer.secret("ann@example.com", &None, &1).await.unwrap();
    let id = receipt.message_id;
    let personal = b
        .personal
        .get(&format!("layout:secret:v0:personal:{id}"))
        .await;
    let personal = personal
        .unwrap()
        .expect("personal key in the personal store");
    assert_eq!(personal.keys().collect::<Vec<_>>(), ["email", "phone"]);
    let normal = b
        .store
        .get(&format!("layout:secret:v0:normal:{id}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(normal.keys().collect::<Vec<_>>(), ["id"]);

    let receipt = producer.custom_names(&5).await.unwrap();
    let key = format!("layout:renamed.op:v3:financial:{}", receipt.message_id);
    let fields = b
        .store
        .get(&key)
        .await
        .unwrap()
        .expect("custom class and segment name");
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["the-value"]);
    assert_eq!(Kinds::OPERATIONS.len(), 9);
    let op = Kinds::OPERATIONS
        .iter()
        .find(|o| o.name == "renamed.op")
        .unwrap();
    assert_eq!(
        (op.version, op.segments[0].name, op.segments[0].class),
        (3, "the-value", "financial")
    );

    // Erasure: the personal key goes; the event still decodes, with None
    // for the Option parameter and the default for the other one, and the
    // message names both as erased.
    assert!(b
        .personal
        .delete(&format!("layout:secret:v0:personal:{id}"))
        .await
        .unwrap());
    let events: Vec<_> = b
        .replay("layout")
        .events::<KindsEvent>()
        .unwrap()
        .collect()
        .await;
    let recorded = events[0].as_ref().unwrap();
    match &recorded.event {
        KindsEvent::Secret { email, phone, id } => {
            assert_eq!((email.as_str(), phone, *id), ("", &None, 1));
        }
        other => panic!("expected the secret event, found {other:?}"),
    }
    assert_eq!(recorded.erased, ["email", "phone"]);
}

/// Versions of one event side by side, one deprecated, one below the
/// contract's minimum.
#[event_contract(min_version = 1)]
pub trait Orders {
    #[event(name = "order_placed", version = 0)]
    async fn order_placed_v0(&self, id: u32);
    #[event(name = "order_placed", version = 1, deprecated)]
    async fn order_placed_v1(&self, id: u32);
    #[event(name = "order_placed", version = 2)]
    async fn order_placed(&self, id: u32, total: u64);
    #[event(version = 1)]
    async fn cancelled(&self, id: u32);
}

#[event_contract(min_version = 0)]
pub trait OldOrders {
    #[event(name = "order_placed", version = 0)]
    async fn order_placed_v0(&self, id: u32);
    #[event(name = "order_placed", version = 1)]
    async fn order_placed_v1(&self, id: u32);
    async fn refunded(&self, id: u32);
}

#[derive(Default)]
struct OrdersLog {
    seen: Mutex<Vec<String>>,
}

impl OrdersConsumer for Arc<OrdersLog> {
    async fn order_placed(
        &self,
        _: &ConsumerContext,
        id: u32,
        total: u64,
    ) -> Result<(), HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("placed v2 {id} {total}"));
        Ok(())
    }
    async fn cancelled(&self, ctx: &ConsumerContext, id: u32) -> Result<(), HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("cancelled {id} by {}", ctx.group()));
        Ok(())
    }
    async fn fallback(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("fallback {} v{}", ctx.operation(), ctx.version()));
        Ok(Outcome::Handled)
    }
}

#[tokio::test]
async fn versions_coexist_and_old_deprecated_unknown_go_to_the_fallback() {
    let b = Backend::new();
    let old: OldOrdersProducer = b.producer("orders");
    let new: OrdersProducer = b.producer("orders");
    old.order_placed_v0(&1).await.unwrap(); // below min_version: not in Orders
    #[allow(deprecated)]
    new.order_placed_v1(&2).await.unwrap(); // deprecated
    new.order_placed(&3, &300).await.unwrap();
    old.refunded(&4).await.unwrap(); // unknown to Orders
    new.cancelled(&5).await.unwrap();

    let log = Arc::new(OrdersLog::default());
    b.consumer("orders")
        .concurrency(1)
        .stop_after(5)
        .subscribe(OrdersHandler::new(log.clone()))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(
        *log.seen.lock().unwrap(),
        [
            "fallback order_placed v0",
            "fallback order_placed v1",
            "placed v2 3 300",
            "fallback refunded v0",
            "cancelled 5 by default",
        ]
    );
    assert!(
        Orders::OPERATIONS.iter().all(|o| o.version >= 1),
        "v0 is not generated"
    );
    assert!(Orders::OPERATIONS.iter().any(|o| o.deprecated));

    // The typed replay sees the deprecated event but not v0 or refunded.
    let replayed: Vec<_> = b
        .replay("orders")
        .events::<OrdersEvent>()
        .unwrap()
        .map(|r| r.unwrap().event)
        .map(|e| format!("{} v{}", e.operation(), e.version()))
        .collect()
        .await;
    assert_eq!(
        replayed,
        ["order_placed v1", "order_placed v2", "cancelled v1"]
    );
}

struct Silent;

impl OrdersConsumer for Silent {
    async fn order_placed(&self, _: &ConsumerContext, _: u32, _: u64) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn cancelled(&self, _: &ConsumerContext, _: u32) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn without_a_fallback_override_unknown_operations_are_dead_lettered() {
    let b = Backend::new();
    let old: OldOrdersProducer = b.producer("dlq");
    old.refunded(&1).await.unwrap();
    let stats = b
        .consumer("dlq")
        .stop_after(1)
        .subscribe(OrdersHandler::new(Silent))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!(stats.dead_lettered, 1);
    let stats = b
        .consumer("dlq")
        .group("lenient")
        .fallback(Fallback::Ack)
        .stop_after(1)
        .subscribe(OrdersHandler::new(Silent))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((stats.handled, stats.dead_lettered), (1, 0));
}

#[tokio::test]
async fn two_groups_and_several_handlers() {
    let b = Backend::new();
    let new: OrdersProducer = b.producer("groups");
    for id in 0..3 {
        new.cancelled(&id).await.unwrap();
    }
    let first = Arc::new(OrdersLog::default());
    let second = Arc::new(OrdersLog::default());
    let other_group = Arc::new(OrdersLog::default());
    let both = Handlers::new()
        .with(OrdersHandler::new(first.clone()))
        .with(OrdersHandler::new(second.clone()));
    let a = b
        .consumer("groups")
        .group("a")
        .stop_after(3)
        .subscribe(both)
        .unwrap();
    let c = b
        .consumer("groups")
        .group("c")
        .stop_after(3)
        .subscribe(OrdersHandler::new(other_group.clone()))
        .unwrap();
    a.completion().await.unwrap();
    c.completion().await.unwrap();
    let sorted = |log: &OrdersLog| {
        let mut v = log.seen.lock().unwrap().clone();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&first),
        ["cancelled 0 by a", "cancelled 1 by a", "cancelled 2 by a"]
    );
    assert_eq!(sorted(&second), sorted(&first));
    assert_eq!(
        sorted(&other_group),
        ["cancelled 0 by c", "cancelled 1 by c", "cancelled 2 by c"]
    );
}

#[tokio::test]
async fn typed_replay_rebuilds_state_after_the_consumer_restarts() {
    let b = Backend::new();
    let new: OrdersProducer = b.producer("rebuild");
    for id in 0..4u32 {
        new.order_placed(&id, &(u64::from(id) * 100)).await.unwrap();
    }
    new.cancelled(&1).await.unwrap();

    // A consumer handles everything, then "restarts": its state is gone.
    b.consumer("rebuild")
        .stop_after(5)
        .subscribe(OrdersHandler::new(Silent))
        .unwrap()
        .completion()
        .await
        .unwrap();
    let mut open: BTreeMap<u32, u64> = BTreeMap::new();
    let mut history = b.replay("rebuild").events::<OrdersEvent>().unwrap();
    while let Some(recorded) = history.next().await {
        match recorded.unwrap().event {
            OrdersEvent::OrderPlaced { id, total } => {
                open.insert(id, total);
            }
            OrdersEvent::Cancelled { id } => {
                open.remove(&id);
            }
            OrdersEvent::OrderPlacedV1 { .. } => unreachable!("not sent"),
        }
    }
    assert_eq!(open, BTreeMap::from([(0, 0), (2, 200), (3, 300)]));

    // The typed receiver, by entry id and by message id.
    let receipt = new.cancelled(&9).await.unwrap();
    let receiver = b.on(Receiver::builder(), "rebuild").build().unwrap();
    let by_entry = receiver
        .get_event::<OrdersEvent>(receipt.entry_id())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(by_entry.event, OrdersEvent::Cancelled { id: 9 }));
    let by_id = receiver
        .find_event::<OrdersEvent>(receipt.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.metadata.message_id, receipt.message_id);
    let old: OldOrdersProducer = b.producer("rebuild");
    let refunded = old.refunded(&1).await.unwrap();
    let err = receiver
        .get_event::<OrdersEvent>(refunded.entry_id())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not part of contract Orders"),
        "{err}"
    );
}

#[tokio::test]
async fn a_handler_error_is_retried_and_dead_lettered_like_any_other() {
    struct Failing;
    impl OrdersConsumer for Failing {
        async fn order_placed(
            &self,
            _: &ConsumerContext,
            _: u32,
            _: u64,
        ) -> Result<(), HandlerError> {
            Err("out of stock".into())
        }
        async fn cancelled(&self, _: &ConsumerContext, _: u32) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    let b = Backend::new();
    let new: OrdersProducer = b.producer("failing");
    new.order_placed(&1, &1).await.unwrap();
    let stats = b
        .consumer("failing")
        .retry(event_backbone::RetryPolicy::none())
        .max_deliveries(1)
        .stop_after(1)
        .subscribe(OrdersHandler::new(Failing))
        .unwrap()
        .completion()
        .await
        .unwrap();
    assert_eq!((stats.failed, stats.dead_lettered), (1, 1));
}

#[test]
fn contract_event_identity() {
    let e = OrdersEvent::Cancelled { id: 1 };
    assert_eq!((e.operation(), e.version()), ("cancelled", 1));
    assert_eq!(<OrdersEvent as ContractEvent>::CONTRACT, "Orders");
}
