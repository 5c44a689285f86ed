//! Receiving messages: [`Consumer`] (consumer groups), [`Replay`] (a typed
//! history without a group), [`Receiver`] (one message by entry id or
//! message id), [`SubjectRequests`] (export and erasure by data subject)
//! and [`StreamCopy`] (a stream copied into another); each has a builder of
//! its own.

mod ack;
mod builder;
mod context;
mod copy;
mod counters;
pub(crate) mod dead_letter;
mod handler;
mod handling;
mod held;
mod keep_alive;
mod lanes;
mod lifetime;
mod options;
mod receiver;
mod redrive;
mod replay;
mod runtime;
mod settle;
mod source;
mod subject;
mod trust;
mod window;

pub use crate::message::Message;
pub use builder::{ConsumerBuilder, Consuming};
pub use context::ConsumerContext;
pub use copy::{
    CopyReport, CopyTarget, Copying, NotCopied, StreamCopy, StreamCopyBuilder,
    HEADER_COPIED_FROM_ENTRY, HEADER_COPIED_FROM_STREAM,
};
pub use dead_letter::{
    HEADER_DEAD_LETTER_DELIVERIES, HEADER_DEAD_LETTER_ENTRY, HEADER_DEAD_LETTER_GROUP,
    HEADER_DEAD_LETTER_REASON, HEADER_DEAD_LETTER_STREAM, MALFORMED_OPERATION, RAW_SEGMENT,
};
pub use handler::{handler_fn, FnHandler, Handler, HandlerError, Handlers, Outcome};
pub use lifetime::{ConsumerLifetime, ConsumerStats};
pub use options::{AckMode, ClaimPolicy, Fallback};
pub use receiver::{Receiver, ReceiverBuilder, Receiving};
pub use redrive::{
    DeadLetter, Redrive, RedriveBuilder, Redriving, HEADER_REDRIVEN_FROM, HEADER_REDRIVEN_REASON,
};
pub use replay::{EventStream, MessageStream, Replay, ReplayBuilder, Replaying};
pub use subject::{SubjectRequests, SubjectRequestsBuilder, Subjects};

/// Entry point of the consumer side; see [`Consumer::builder`].
#[derive(Debug)]
pub struct Consumer;

impl Consumer {
    /// Starts a builder.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder::with_role(Consuming::default())
    }
}
