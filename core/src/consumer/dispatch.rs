//! What happens to one message: the handler (with retries), then ack,
//! fallback, dead letter, or leaving it pending for a later delivery.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::ack::AckSender;
use super::context::ConsumerContext;
use super::dead_letter::DeadLetters;
use super::handler::{Handler, HandlerError, Outcome};
use super::lifetime::ConsumerStats;
use super::options::{AckMode, Fallback};
use super::source::Source;
use crate::channel::EntryId;
use crate::envelope::Metadata;
use crate::message::Message;
use crate::retry::RetryPolicy;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) redelivered: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ConsumerStats {
        ConsumerStats {
            received: self.received.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
        }
    }
}

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
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            let appended = self
                .dead_letters()
                .message(metadata, entry, deliveries, reason)
                .await;
            self.settle_dead_letter(appended, entry);
        })
    }

    /// Dead-letters an unreadable entry, then acknowledges it.
    pub(crate) async fn dead_letter_malformed(
        &self,
        entry: &EntryId,
        raw: bytes::Bytes,
        deliveries: u32,
        reason: &str,
    ) {
        let appended = self
            .dead_letters()
            .malformed(entry, raw, deliveries, reason)
            .await;
        self.settle_dead_letter(appended, entry);
    }

    fn settle_dead_letter(&self, appended: crate::Result<EntryId>, entry: &EntryId) {
        match appended {
            Ok(_) => {
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                self.acker.ack(entry.clone());
            }
            Err(e) => tracing::error!(
                stream = self.source.stream(), entry = %entry, error = %e,
                "dead-letter append failed; the entry stays pending"
            ),
        }
    }

    /// Runs the handler on one message and settles it, or says it is to be
    /// delivered again.
    pub(crate) async fn process(&self, message: Message, delivery_count: u32) -> Settled {
        let ctx = ConsumerContext::new(
            message,
            delivery_count,
            &self.group,
            &self.consumer,
            self.acker.clone(),
            self.stop.clone(),
        );
        let verdict = self.run_with_retries(self.handler.as_ref(), &ctx).await;
        let verdict = match verdict {
            Verdict::Unknown => match &self.fallback {
                Fallback::DeadLetter => {
                    let reason = unknown_reason(&ctx);
                    self.dead_letter(ctx.metadata(), ctx.entry_id(), delivery_count, &reason)
                        .await;
                    return Settled::Done;
                }
                Fallback::Ack => {
                    tracing::debug!(operation = ctx.operation(), "no handler; acknowledged");
                    Verdict::Handled
                }
                Fallback::Handler(fallback) => {
                    match self.run_with_retries(fallback.as_ref(), &ctx).await {
                        Verdict::Unknown => {
                            let reason = unknown_reason(&ctx);
                            self.dead_letter(
                                ctx.metadata(),
                                ctx.entry_id(),
                                delivery_count,
                                &reason,
                            )
                            .await;
                            return Settled::Done;
                        }
                        other => other,
                    }
                }
            },
            other => other,
        };
        match verdict {
            Verdict::Handled | Verdict::Unknown => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                if self.ack_mode != AckMode::Manual {
                    ctx.ack();
                }
                Settled::Done
            }
            Verdict::Failed(error) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
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
                    self.dead_letter(ctx.metadata(), ctx.entry_id(), delivery_count, &reason)
                        .await;
                    Settled::Done
                } else {
                    Settled::Redeliver(Box::new(ctx.message().clone()))
                }
            }
        }
    }

    async fn run_with_retries(&self, handler: &dyn Handler, ctx: &ConsumerContext) -> Verdict {
        let mut attempt = 1;
        loop {
            let result = AssertUnwindSafe(handler.handle(ctx)).catch_unwind().await;
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

fn unknown_reason(ctx: &ConsumerContext) -> String {
    format!(
        "unknown operation {:?} version {}",
        ctx.operation(),
        ctx.version()
    )
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {text}")
}
