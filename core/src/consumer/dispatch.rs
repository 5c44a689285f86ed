//! What happens to one message: the handler (with retries), then ack,
//! fallback, dead letter, or leaving it pending for a later delivery.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ack::AckSender;
use super::context::ConsumerContext;
use super::counters::Counters;
use super::dead_letter::DeadLetters;
use super::handler::{Handler, HandlerError, Outcome};
use super::options::{AckMode, Fallback};
use super::source::Source;
use crate::channel::EntryId;
use crate::clock::now_ms;
use crate::envelope::Metadata;
use crate::message::Message;
use crate::retry::RetryPolicy;
use crate::telemetry::{spans, HANDLER_ERROR};

pub(crate) struct Dispatcher {
    pub(crate) source: Arc<Source>,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) fallback: Fallback,
    pub(crate) ack_mode: AckMode,
    pub(crate) handler_retry: RetryPolicy,
    pub(crate) max_deliveries: u32,
    pub(crate) redelivery: RetryPolicy,
    pub(crate) counters: Counters,
    pub(crate) acker: AckSender,
    pub(crate) stop: CancellationToken,
}

/// What is left to do with a message once its handler has run.
pub(crate) enum Settled {
    /// Acknowledged, dead-lettered, or left pending for good (the consumer
    /// is stopping, or manual acknowledgement).
    Done,
    /// The handler failed: deliver it again after the backoff.
    Redeliver(Box<Message>),
}

enum Verdict {
    Handled,
    Unknown,
    Failed(HandlerError),
}

impl Dispatcher {
    fn dead_letters(&self) -> DeadLetters<'_> {
        DeadLetters {
            channel: self.source.channel.as_ref(),
            address: &self.source.address,
            group: &self.group,
            retry: &self.source.retry,
        }
    }

    /// Dead-letters a readable message, then acknowledges the original. If
    /// the dead-letter append fails the original stays pending. Boxed: the
    /// rare path does not enlarge every message's task.
    pub(crate) fn dead_letter<'a>(
        &'a self,
        metadata: &'a Metadata,
        entry: &'a EntryId,
        deliveries: u32,
        reason: &'a str,
        parent: &tracing::Span,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        let span = self.dead_letter_span(parent, Some(&metadata.message_id), deliveries);
        Box::pin(
            async move {
                let appended = self
                    .dead_letters()
                    .message(metadata, entry, deliveries, reason)
                    .await;
                self.settle_dead_letter(appended, entry, &tracing::Span::current());
            }
            .instrument(span),
        )
    }

    /// Dead-letters an unreadable entry, then acknowledges it.
    pub(crate) async fn dead_letter_malformed(
        &self,
        entry: &EntryId,
        raw: bytes::Bytes,
        deliveries: u32,
        reason: &str,
    ) {
        let span = self.dead_letter_span(&tracing::Span::none(), None, deliveries);
        let appended = self
            .dead_letters()
            .malformed(entry, raw, deliveries, reason)
            .instrument(span.clone())
            .await;
        self.settle_dead_letter(appended, entry, &span);
    }

    fn dead_letter_span(
        &self,
        parent: &tracing::Span,
        message_id: Option<&dyn std::fmt::Display>,
        deliveries: u32,
    ) -> tracing::Span {
        spans::dead_letter(
            parent,
            self.source.channel.backend(),
            self.source.stream(),
            &self.group,
            message_id,
            deliveries,
        )
    }

    fn settle_dead_letter(
        &self,
        appended: crate::Result<EntryId>,
        entry: &EntryId,
        span: &tracing::Span,
    ) {
        match appended {
            Ok(_) => {
                self.counters.dead_lettered();
                self.acker.ack(entry.clone());
            }
            Err(e) => {
                spans::fail(span, e.kind());
                tracing::error!(
                    parent: span,
                    stream = self.source.stream(), entry = %entry, error = %e,
                    "dead-letter append failed; the entry stays pending"
                )
            }
        }
    }

    /// The `process` span of one delivery.
    pub(crate) fn process_span(&self, message: &Message, delivery_count: u32) -> tracing::Span {
        spans::process(
            self.source.channel.backend(),
            self.source.stream(),
            &self.group,
            message.metadata(),
            delivery_count,
        )
    }

    /// Runs the handler on one message and settles it, or says it is to be
    /// delivered again. The span (from [`Self::process_span`]) is current
    /// where user code runs (the handler); the rest names it as parent.
    pub(crate) async fn process(
        &self,
        message: Message,
        delivery_count: u32,
        span: &tracing::Span,
    ) -> Settled {
        let started = Instant::now();
        let ctx = ConsumerContext::new(
            message,
            delivery_count,
            &self.group,
            &self.consumer,
            self.acker.clone(),
            self.stop.clone(),
        );
        let verdict = self
            .run_with_retries(self.handler.as_ref(), &ctx, span)
            .await;
        let verdict = match verdict {
            Verdict::Unknown => match &self.fallback {
                Fallback::DeadLetter => {
                    return self.dead_letter_unknown(&ctx, delivery_count, span).await;
                }
                Fallback::Ack => {
                    tracing::debug!(operation = ctx.operation(), "no handler; acknowledged");
                    Verdict::Handled
                }
                Fallback::Handler(fallback) => {
                    match self.run_with_retries(fallback.as_ref(), &ctx, span).await {
                        Verdict::Unknown => {
                            return self.dead_letter_unknown(&ctx, delivery_count, span).await;
                        }
                        other => other,
                    }
                }
            },
            other => other,
        };
        let metrics = &self.counters.metrics;
        metrics.processed(started.elapsed(), matches!(verdict, Verdict::Failed(_)));
        match verdict {
            Verdict::Handled | Verdict::Unknown => {
                let produced = ctx.metadata().produced_at_ms;
                metrics.end_to_end(Duration::from_millis(now_ms().saturating_sub(produced)));
                self.counters.handled();
                if self.ack_mode != AckMode::Manual {
                    ctx.ack();
                }
                Settled::Done
            }
            Verdict::Failed(error) => {
                spans::fail(span, HANDLER_ERROR);
                self.counters.failed();
                tracing::warn!(
                    stream = self.source.stream(), operation = ctx.operation(),
                    entry = %ctx.entry_id(), delivery_count, error = %error,
                    "handler failed"
                );
                if self.ack_mode == AckMode::Always {
                    ctx.ack();
                    Settled::Done
                } else if ctx.is_acked() || self.stop.is_cancelled() {
                    // Stopping: it stays pending, for the next start.
                    Settled::Done
                } else if delivery_count >= self.max_deliveries {
                    let reason =
                        format!("handler failed after {delivery_count} deliveries: {error}");
                    self.dead_letter(
                        ctx.metadata(),
                        ctx.entry_id(),
                        delivery_count,
                        &reason,
                        span,
                    )
                    .await;
                    Settled::Done
                } else {
                    Settled::Redeliver(Box::new(ctx.message().clone()))
                }
            }
        }
    }

    /// A message no handler knows, for the dead-letter fallback.
    async fn dead_letter_unknown(
        &self,
        ctx: &ConsumerContext,
        delivery_count: u32,
        span: &tracing::Span,
    ) -> Settled {
        spans::fail(span, UNKNOWN_OPERATION);
        let reason = format!(
            "unknown operation {:?} version {}",
            ctx.operation(),
            ctx.version()
        );
        self.dead_letter(
            ctx.metadata(),
            ctx.entry_id(),
            delivery_count,
            &reason,
            span,
        )
        .await;
        Settled::Done
    }

    async fn run_with_retries(
        &self,
        handler: &dyn Handler,
        ctx: &ConsumerContext,
        span: &tracing::Span,
    ) -> Verdict {
        let mut attempt = 1;
        loop {
            let handling = handler.handle(ctx).instrument(span.clone());
            let result = AssertUnwindSafe(handling).catch_unwind().await;
            let error: HandlerError = match result {
                Ok(Ok(Outcome::Handled)) => return Verdict::Handled,
                Ok(Ok(Outcome::Unknown)) => return Verdict::Unknown,
                Ok(Err(e)) => e,
                Err(panic) => panic_message(panic).into(),
            };
            if attempt >= self.handler_retry.max_attempts() || self.stop.is_cancelled() {
                return Verdict::Failed(error);
            }
            attempt += 1;
            Box::pin(tokio::time::sleep(self.handler_retry.delay_before(attempt))).await;
        }
    }
}

/// `error.type` of a message no handler knows.
const UNKNOWN_OPERATION: &str = "unknown_operation";

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {text}")
}
