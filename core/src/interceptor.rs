//! Interceptors: code that sees every message on its way out (producer) or
//! in (consumer): add headers, encrypt or compress segments, and the reverse.

use std::fmt;

use async_trait::async_trait;

use crate::envelope::{Metadata, Segments};
use crate::BoxError;

/// Runs on every message a producer sends, before its payload is stored.
///
/// It may add headers (`metadata.headers`) and transform segment bytes. The
/// segment index is not built yet when it runs.
#[async_trait]
pub trait ProducerInterceptor: Send + Sync + fmt::Debug + 'static {
    /// A name for error messages.
    fn name(&self) -> &str;

    /// Transforms the message on its way out.
    async fn on_send(
        &self,
        metadata: &mut Metadata,
        segments: &mut Segments,
    ) -> Result<(), BoxError>;
}

/// Runs on every message a consumer (or replay, or receiver) reads, after its
/// payload is fetched and before the handler sees it: the reverse of a
/// [`ProducerInterceptor`].
#[async_trait]
pub trait ConsumerInterceptor: Send + Sync + fmt::Debug + 'static {
    /// A name for error messages.
    fn name(&self) -> &str;

    /// Transforms the message on its way in. An error dead-letters the
    /// message, unless it is [`Transient`](crate::Transient) (or a
    /// transient [`Error`](crate::Error)): the consumer then keeps the
    /// message and tries again after a backoff.
    async fn on_receive(
        &self,
        metadata: &Metadata,
        segments: &mut Segments,
    ) -> Result<(), BoxError>;
}
