//! # event-backbone-core
//!
//! The core of [event-backbone](https://docs.rs/event-backbone): event
//! sourcing and CQRS messaging with the claim-check pattern. The stream
//! carries the sequence and the [`Metadata`]; a key-value store carries the
//! payload ([`Segments`]), one field per event parameter, under a standard
//! key.
//!
//! This crate holds the envelope, the two backend traits
//! ([`StreamChannel`], [`KeyValueStore`]), the [`Producer`] and [`Consumer`]
//! runtime, the in-memory backend ([`memory`]) and, behind the `testkit`
//! feature, the conformance kit every backend must pass.
//!
//! ```
//! use std::sync::Arc;
//! use event_backbone_core::memory::{MemoryChannel, MemoryStore};
//! use event_backbone_core::{Consumer, ConsumerContext, Producer};
//!
//! # #[tokio::main] async fn main() -> event_backbone_core::Result<()> {
//! let channel = Arc::new(MemoryChannel::new());
//! let store = Arc::new(MemoryStore::new());
//!
//! let producer = Producer::builder()
//!     .channel(channel.clone())
//!     .store(store.clone())
//!     .uri("shipments")
//!     .build()?;
//! producer.message("packed").segment("order", &7u64)?.send().await?;
//!
//! let consumer = Consumer::builder()
//!     .channel(channel)
//!     .store(store)
//!     .uri("shipments")
//!     .group("billing")
//!     .stop_after(1)
//!     .subscribe_fn(|ctx: ConsumerContext| async move {
//!         let order: u64 = ctx.segment("order")?;
//!         assert_eq!(order, 7);
//!         Ok(())
//!     })?;
//! let stats = consumer.completion().await?;
//! assert_eq!(stats.handled, 1);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod address;
pub mod capabilities;
pub mod channel;
pub mod clock;
pub mod codec;
pub mod config;
pub mod consumer;
pub mod contract;
mod endpoint;
mod entry_id;
pub mod envelope;
mod error;
pub(crate) mod hex;
pub mod interceptor;
mod lease;
pub mod memory;
mod message;
pub mod names;
pub mod outbox;
pub mod privacy;
pub mod producer;
pub mod retry;
pub mod store;
mod store_set;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
mod transaction;

pub use address::StreamAddress;
pub use capabilities::{ChannelCapabilities, Ordering, StoreCapabilities};
pub use channel::{
    Delivery, Entry, EntryId, GroupInfo, GroupStart, MalformedEntry, MemberInfo, StreamChannel,
    StreamInfo, StreamPosition,
};
pub use codec::Codec;
pub use consumer::{
    handler_fn, AckMode, ClaimPolicy, Consumer, ConsumerBuilder, ConsumerContext, ConsumerLifetime,
    ConsumerStats, Consuming, CopyReport, CopyTarget, Copying, DeadLetter, EventStream, Fallback,
    FnHandler, Handler, HandlerError, Handlers, MessageStream, NotCopied, Outcome, Receiver,
    ReceiverBuilder, Receiving, Redrive, RedriveBuilder, Redriving, Replay, ReplayBuilder,
    Replaying, StreamCopy, StreamCopyBuilder, SubjectRequests, SubjectRequestsBuilder, Subjects,
    HEADER_COPIED_FROM_ENTRY, HEADER_COPIED_FROM_STREAM, HEADER_REDRIVEN_FROM,
    HEADER_REDRIVEN_REASON,
};
pub use contract::{ContractEvent, OperationInfo, Recorded, SegmentInfo};
pub use endpoint::{EndpointBuilder, Paging, Reading};
pub use envelope::{
    MessageId, Metadata, Origin, Segment, SegmentClass, SegmentLocation, SegmentRef, Segments,
};
pub use error::{BoxError, DecodeError, Error, Result, Transient};
pub use interceptor::{ConsumerInterceptor, ProducerInterceptor};
pub use lease::{Lease, LeaseGuard};
pub use message::Message;
pub use producer::{
    MessageBuilder, OutgoingMessage, Producer, ProducerBuilder, Producing, Receipt, SentEntry,
};
pub use retry::RetryPolicy;
pub use store::{Fields, KeyValueStore, PutItem};
pub use store_set::DEFAULT_STORE;

/// Re-exports for generated code and backends; not a stable API of its own.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use serde;

    /// A contract parameter whose segment can be erased (any class but
    /// `normal`): it decodes as `None` or its default when its data is gone.
    #[diagnostic::on_unimplemented(
        message = "a `#[personal]` or `#[subject]` parameter (or one of a class other than \
                   `normal`) must be an `Option` or implement `Default`; `{Self}` is neither",
        label = "this parameter's segment can be erased",
        note = "erasing its data subject (or an expired payload) removes the segment, and a \
                replay must still decode the event: it gets `None` or the default in its place, \
                and `ctx.message().erased_segments()` names what is gone; a subject id that \
                tells no one who the person is can stay readable: `#[subject(pseudonymous)]`"
    )]
    pub trait ErasableParameter: Sized {
        /// What stands in for an erased value.
        fn erased() -> Self;
    }

    impl<T: Default> ErasableParameter for T {
        fn erased() -> Self {
            T::default()
        }
    }

    /// The value, or what stands in for it when it was erased.
    pub fn or_erased<T: ErasableParameter>(value: Option<T>) -> T {
        value.unwrap_or_else(T::erased)
    }
}
