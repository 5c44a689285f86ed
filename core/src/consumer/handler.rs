use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::context::ConsumerContext;
use crate::BoxError;

/// The error a handler returns: any error type, boxed (`?` converts).
pub type HandlerError = BoxError;

/// What a handler made of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It handled the message.
    Handled,
    /// It does not know this operation (or version): the consumer's
    /// [`super::Fallback`] decides.
    Unknown,
}

/// Handles the messages of a subscription.
///
/// Errors are retried with the consumer's retry policy, then left pending for
/// a later delivery, and dead-lettered after the maximum number of
/// deliveries. Typed contracts (`#[event_contract]`) generate an
/// implementation of this trait.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one message.
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError>;
}

#[async_trait]
impl<H: Handler + ?Sized> Handler for Arc<H> {
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        (**self).handle(ctx).await
    }
}

#[async_trait]
impl<H: Handler + ?Sized> Handler for Box<H> {
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        (**self).handle(ctx).await
    }
}

/// Several handlers on one subscription: each message goes to every one of
/// them, in order. It is `Handled` if any handled it, `Unknown` if none
/// knew it. The first error stops the chain (and a retry runs the whole
/// chain again, so handlers should be idempotent, as at-least-once delivery
/// asks anyway).
#[derive(Clone, Default)]
pub struct Handlers(Vec<Arc<dyn Handler>>);

impl Handlers {
    /// No handlers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler.
    pub fn with(mut self, handler: impl Handler) -> Self {
        self.0.push(Arc::new(handler));
        self
    }

    /// Adds a shared handler.
    pub fn with_shared(mut self, handler: Arc<dyn Handler>) -> Self {
        self.0.push(handler);
        self
    }

    /// Number of handlers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handlers({})", self.0.len())
    }
}

#[async_trait]
impl Handler for Handlers {
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        let mut outcome = Outcome::Unknown;
        for handler in &self.0 {
            if handler.handle(ctx).await? == Outcome::Handled {
                outcome = Outcome::Handled;
            }
        }
        Ok(outcome)
    }
}

/// A handler made of an async closure; see [`handler_fn`].
#[derive(Clone)]
pub struct FnHandler<F>(F);

impl<F> std::fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnHandler")
    }
}

/// Wraps an async closure taking the context by value (it is cheap to
/// clone) as a [`Handler`] that handles every operation.
///
/// ```
/// use event_backbone_core::{handler_fn, ConsumerContext};
/// let handler = handler_fn(|ctx: ConsumerContext| async move {
///     let amount: u64 = ctx.segment("amount")?; // any error converts with `?`
///     println!("{} v{}: {amount}", ctx.operation(), ctx.version());
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(ConsumerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    FnHandler(f)
}

#[async_trait]
impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(ConsumerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        (self.0)(ctx.clone()).await?;
        Ok(Outcome::Handled)
    }
}
