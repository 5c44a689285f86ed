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
//! ## Features
//!
//! | feature | what |
//! |---|---|
//! | `json` | the JSON codec ([`Codec::Json`](crate::Codec)) |
//! | `testkit` | the conformance kit for your own backends (`event_backbone::testkit`) |
//! | `full` | every feature |
//!
//! Backends (Redis, Kafka, MongoDB, DynamoDB, Couchbase) are added as
//! features of this crate as they land; see the changelog.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use event_backbone_core::*;
pub use event_backbone_macros::event_contract;

/// The in-memory backend: the embedded default, for examples, tests and
/// single-process use.
pub mod memory {
    pub use event_backbone_core::memory::{MemoryChannel, MemoryStore};
}

/// The README's examples, compiled and run as doc tests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
