//! Running the handler on one delivery: retries within the delivery, a
//! panic caught as a failure, and the fallback for an operation the
//! handler does not know. What becomes of the message then is
//! [`super::settle`]'s business.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::ConsumerContext;
use super::handler::{Handler, HandlerError, Outcome};
use super::options::Fallback;
use crate::retry::RetryPolicy;

/// The handler, its fallback and its retries.
pub(crate) struct Handling {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) fallback: Fallback,
    pub(crate) retry: RetryPolicy,
}

/// What a delivery's handling came to.
pub(crate) enum Verdict {
    /// Handled (or acknowledged by the `Ack` fallback).
    Handled,
    /// No handler knows the operation, and the fallback says dead-letter.
    Unknown,
    /// The handler failed, after its retries within the delivery.
    Failed(HandlerError),
}

impl Handling {
    /// Runs the handler (then the fallback, if the handler does not know
    /// the operation) on one delivery. `span` is current where user code
    /// runs.
    pub(crate) async fn run(
        &self,
        ctx: &ConsumerContext,
        span: &tracing::Span,
        stop: &CancellationToken,
    ) -> Verdict {
        match self
            .with_retries(self.handler.as_ref(), ctx, span, stop)
            .await
        {
            Some(Ok(())) => Verdict::Handled,
            Some(Err(error)) => Verdict::Failed(error),
            None => match &self.fallback {
                Fallback::DeadLetter => Verdict::Unknown,
                Fallback::Ack => {
                    tracing::debug!(operation = ctx.operation(), "no handler; acknowledged");
                    Verdict::Handled
                }
                Fallback::Handler(fallback) => {
                    match self.with_retries(fallback.as_ref(), ctx, span, stop).await {
                        Some(Ok(())) => Verdict::Handled,
                        Some(Err(error)) => Verdict::Failed(error),
                        None => Verdict::Unknown,
                    }
                }
            },
        }
    }

    /// `None`: the handler does not know the operation.
    async fn with_retries(
        &self,
        handler: &dyn Handler,
        ctx: &ConsumerContext,
        span: &tracing::Span,
        stop: &CancellationToken,
    ) -> Option<Result<(), HandlerError>> {
        let mut attempt = 1;
        loop {
            let handling = handler.handle(ctx).instrument(span.clone());
            let error: HandlerError = match AssertUnwindSafe(handling).catch_unwind().await {
                Ok(Ok(Outcome::Handled)) => return Some(Ok(())),
                Ok(Ok(Outcome::Unknown)) => return None,
                Ok(Err(e)) => e,
                Err(panic) => panic_message(panic).into(),
            };
            if attempt >= self.retry.max_attempts() || stop.is_cancelled() {
                return Some(Err(error));
            }
            attempt += 1;
            Box::pin(tokio::time::sleep(self.retry.delay_before(attempt))).await;
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {text}")
}
