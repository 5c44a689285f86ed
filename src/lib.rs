//! # event-backbone
//!
//! Event sourcing and CQRS messaging for Rust, with the **claim-check**
//! pattern: the stream carries the sequence and a channel-agnostic envelope
//! of metadata; a key-value store carries the payload, one field per event
//! parameter, under a standard key. Personal data can be split into keys of
//! its own and erased.
//!
//! ```text
//!  producer ──(1) put payload──▶ key-value store   {env}:{uri}:{op}:v{n}:{class}:{id}
//!     │                              ▲
//!     └──(2) append metadata──▶ stream {env}:{uri}
//!                                    │
//!  consumer group ◀──(3) read─────────┘ ──(4) fetch payload── store ──(5) handle, ack
//! ```
//!
//! Any stream goes with any store, chosen when a producer or consumer is
//! built; every backend is a Cargo feature. With no feature, the in-memory
//! backend ([`memory`]) runs everything in one process with no server.
//!
//! ```
//! use std::sync::Arc;
//! use event_backbone::memory::{MemoryChannel, MemoryStore};
//! use event_backbone::{Consumer, ConsumerContext, Producer};
//!
//! # #[tokio::main] async fn main() -> event_backbone::Result<()> {
//! let channel = Arc::new(MemoryChannel::new());
//! let store = Arc::new(MemoryStore::new());
//!
//! let producer = Producer::builder()
//!     .channel(channel.clone())
//!     .store(store.clone())
//!     .uri("shipments")
//!     .build()?;
//! producer
//!     .message("order_placed")
//!     .segment("product_id", &1234u64)?
//!     .personal("email", "ann@example.com")?
//!     .send()
//!     .await?;
//!
//! let stats = Consumer::builder()
//!     .channel(channel)
//!     .store(store)
//!     .uri("shipments")
//!     .group("billing")
//!     .stop_after(1)
//!     .subscribe_fn(|ctx: ConsumerContext| async move {
//!         let product: u64 = ctx.segment("product_id")?;
//!         let email: String = ctx.segment("email")?;
//!         println!("{} {product} for {email}", ctx.operation());
//!         Ok(())
//!     })?
//!     .completion()
//!     .await?;
//! assert_eq!(stats.handled, 1);
//! # Ok(()) }
//! ```
//!
//! ## Typed contracts
//!
//! A trait is the contract; [`event_contract`] generates its typed producer,
//! consumer trait, dispatch glue and event enum:
//!
//! ```
//! use std::sync::Arc;
//! use event_backbone::memory::{MemoryChannel, MemoryStore};
//! use event_backbone::{event_contract, Consumer, ConsumerContext, HandlerError, Producer, Replay};
//! use futures_util::StreamExt;
//!
//! /// Payments.
//! #[event_contract]
//! pub trait Payments {
//!     /// Money came in.
//!     async fn paid(&self, #[personal] payer: String, cents: u64);
//!     /// Money went back.
//!     async fn refunded(&self, cents: u64);
//! }
//!
//! struct Ledger;
//!
//! impl PaymentsConsumer for Ledger {
//!     async fn paid(&self, _: &ConsumerContext, payer: String, cents: u64) -> Result<(), HandlerError> {
//!         println!("{payer} paid {cents}");
//!         Ok(())
//!     }
//!     async fn refunded(&self, _: &ConsumerContext, cents: u64) -> Result<(), HandlerError> {
//!         println!("refunded {cents}");
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> event_backbone::Result<()> {
//! let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
//! let payments: PaymentsProducer = Producer::builder()
//!     .channel(channel.clone())
//!     .store(store.clone())
//!     .uri("payments")
//!     .build_as()?;
//! payments.paid("ann", &1200).await?;
//! payments.refunded(&200).await?;
//!
//! Consumer::builder()
//!     .channel(channel.clone())
//!     .store(store.clone())
//!     .uri("payments")
//!     .stop_after(2)
//!     .subscribe(PaymentsHandler::new(Ledger))?
//!     .completion()
//!     .await?;
//!
//! // Event sourcing: rebuild the balance from the history.
//! let mut balance = 0i64;
//! let mut history = Replay::builder()
//!     .channel(channel)
//!     .store(store)
//!     .uri("payments")
//!     .events::<PaymentsEvent>()?;
//! while let Some(recorded) = history.next().await {
//!     match recorded?.event {
//!         PaymentsEvent::Paid { cents, .. } => balance += cents as i64,
//!         PaymentsEvent::Refunded { cents } => balance -= cents as i64,
//!     }
//! }
//! assert_eq!(balance, 1000);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | what |
//! |---|---|
//! | `redis` | Redis Streams channel and Redis Hash store (`event_backbone::redis`) |
//! | `kafka` | Kafka channel on rdkafka, one topic per stream (`event_backbone::kafka`) |
//! | `mongodb` | MongoDB store on the official driver, one document per payload key (`event_backbone::mongodb`) |
//! | `dynamodb` | DynamoDB store on aws-sdk-dynamodb, one item per payload key, large values in pieces (`event_backbone::dynamodb`; Rust 1.94.1) |
//! | `couchbase` | Couchbase store on the official SDK, one binary document per payload key (`event_backbone::couchbase`) |
//! | `sqlite` | SQLite channel and store in one file (WAL): durable with no server (`event_backbone::sqlite`; Rust 1.94) |
//! | `postgres` | PostgreSQL channel and store on sqlx, entries read in commit-safe order, woken by `LISTEN/NOTIFY` (`event_backbone::postgres`; Rust 1.94) |
//! | `json` | the JSON codec ([`Codec::Json`](crate::Codec)) |
//! | `opentelemetry` | trace context across producer and consumer through `tracing-opentelemetry` (see [`telemetry`]) |
//! | `testkit` | the conformance kit for your own backends (`event_backbone::testkit`) |
//! | `full` | every feature (Rust 1.94.1, for `dynamodb`) |
//!
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod open;

pub use event_backbone_core::*;
/// Turns a trait into an event contract: see the [crate docs](crate#typed-contracts)
/// and the README for the generated items and the options.
pub use event_backbone_macros::event_contract;
pub use open::{open_channel, open_store};

/// The in-memory backend: the embedded default, for examples, tests and
/// single-process use.
pub mod memory {
    pub use event_backbone_core::memory::{MemoryChannel, MemoryStore};
}

/// The Redis backend (feature `redis`): Redis Streams channel, Redis Hash
/// store, and `Producer::builder().redis(&redis)`.
#[cfg(feature = "redis")]
pub mod redis {
    pub use event_backbone_redis::*;
}

/// The Kafka backend (feature `kafka`): a stream channel on Kafka (one
/// topic per stream, Kafka consumer groups), to combine with any store.
#[cfg(feature = "kafka")]
pub mod kafka {
    pub use event_backbone_kafka::*;
}

/// The MongoDB backend (feature `mongodb`): a store, one document per
/// payload key.
#[cfg(feature = "mongodb")]
pub mod mongodb {
    pub use event_backbone_mongodb::*;
}

/// The DynamoDB backend (feature `dynamodb`): a store, one item per
/// payload key, values larger than an item split over piece items.
#[cfg(feature = "dynamodb")]
pub mod dynamodb {
    pub use event_backbone_dynamodb::*;
}

/// The Couchbase backend (feature `couchbase`): a store, one binary
/// document per payload key.
#[cfg(feature = "couchbase")]
pub mod couchbase {
    pub use event_backbone_couchbase::*;
}

/// The PostgreSQL backend (feature `postgres`): a stream channel (entries,
/// groups and pending lists in tables) and a store (a row per payload
/// field), on sqlx.
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use event_backbone_postgres::*;
}

/// The SQLite backend (feature `sqlite`): a stream channel and a store in
/// one file, durable with no server.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use event_backbone_sqlite::*;
}

/// The README's examples, compiled and run as doc tests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
