//! One message, from the moment it is read until it is settled:
//! acknowledged, dead-lettered, or left pending (the consumer stops, or the
//! entry is no longer this member's).
//!
//! 1. A message whose payload could not be loaded (the store was away) is
//!    loaded again after a backoff, until it loads; a payload that cannot
//!    be read for good dead-letters it.
//! 2. The handler runs ([`super::handling`]), with a concurrency permit.
//! 3. Handled: acknowledged. Failed: after the redelivery backoff (waited
//!    out beside the window, not in it) the channel counts one more
//!    delivery and the handler runs again; at `max_deliveries`, or for an
//!    operation no handler knows, the message is dead-lettered.
//! 4. Whatever fails on the way (a dead-letter append, the count of a
//!    redelivery) is tried again after a backoff: nothing is left pending
//!    until a restart.
//!
//! Before each step the message is checked to be still this member's (its
//! [lease](crate::Lease), and whether another member took it): a message
//! that is not is dropped unhandled, for its new owner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ack::AckSender;
use super::context::ConsumerContext;
use super::counters::Counters;
use super::dead_letter::{DeadLetters, Reason};
use super::handling::{Handling, Verdict};
use super::held::Held;
use super::options::AckMode;
use super::source::Source;
use super::window::Slot;
use crate::channel::EntryId;
use crate::clock::now_ms;
use crate::envelope::Metadata;
use crate::lease::Lease;
use crate::message::Message;
use crate::privacy::sealed_text::holds_personal_data;
use crate::retry::RetryPolicy;
use crate::telemetry::{spans, HANDLER_ERROR};

/// An error as a log line shows it: its kind only when its text may quote
/// the personal data of the message.
pub(crate) fn shown(error: &crate::Error, metadata: &Metadata) -> String {
    if error.may_quote_data() && holds_personal_data(metadata) {
        format!(
            "{} (text not logged: the message holds personal data)",
            error.kind()
        )
    } else {
        error.to_string()
    }
}

/// What every message of a consumer is settled with.
pub(crate) struct Settler {
    pub(crate) source: Arc<Source>,
    pub(crate) group: String,
    pub(crate) consumer: String,
    /// The name of the stream's `process` spans.
    pub(crate) process_span: Box<str>,
    pub(crate) handling: Handling,
    pub(crate) ack_mode: AckMode,
    pub(crate) max_deliveries: u32,
    pub(crate) redelivery: RetryPolicy,
    pub(crate) counters: Counters,
    pub(crate) acker: AckSender,
    pub(crate) stop: CancellationToken,
    pub(crate) held: Held,
    /// Handlers running at once.
    pub(crate) permits: Semaphore,
}

/// A message read and not yet settled.
pub(crate) struct InHand {
    pub(crate) entry_id: EntryId,
    pub(crate) work: Work,
    pub(crate) delivery_count: u32,
    pub(crate) lease: Lease,
    pub(crate) slot: Slot,
}

/// Where a message is on its way.
pub(crate) enum Work {
    /// Its payload is loaded: ready for the handler.
    Loaded(Message),
    /// Its payload could not be loaded yet (the store or an interceptor
    /// failed, transiently).
    Unloaded(Metadata),
    /// It cannot be handled (a payload unreadable for good): to the
    /// dead-letter stream. `parent` is the span of the fetch that found it.
    Rejected {
        metadata: Metadata,
        reason: Reason,
        parent: tracing::Span,
    },
    /// Its entry is not readable metadata: to the dead-letter stream, raw.
    Malformed { raw: Bytes, reason: String },
}

#[cfg(test)]
impl InHand {
    /// A malformed entry numbered `n` (its delivery count), for tests of
    /// the queues it goes through.
    pub(crate) fn for_test(n: u32, slot: Slot) -> Self {
        Self {
            entry_id: EntryId::new(n.to_string()),
            work: Work::Malformed {
                raw: Bytes::new(),
                reason: String::new(),
            },
            delivery_count: n,
            lease: Lease::default(),
            slot,
        }
    }
}

/// Who lets go of a message's hold once it is settled.
enum Release {
    /// The consumer, now (left pending, dropped).
    Now,
    /// The ack task, once the acknowledgement is written.
    WithAck,
}

impl Settler {
    /// Takes one message until it is settled.
    pub(crate) async fn settle(&self, item: InHand) {
        let InHand {
            entry_id,
            work,
            delivery_count,
            lease,
            mut slot,
        } = item;
        // Let go of the entry when done here, also if settling panics (a
        // bug): a held entry is touched for ever, and no one else gets it.
        let mut hold = LetGo {
            held: &self.held,
            id: &entry_id,
            now: true,
        };
        let release = self
            .settle_work(&entry_id, work, delivery_count, &lease, &mut slot)
            .await;
        hold.now = matches!(release, Release::Now);
    }

    async fn settle_work(
        &self,
        id: &EntryId,
        work: Work,
        mut delivery_count: u32,
        lease: &Lease,
        slot: &mut Slot,
    ) -> Release {
        // Every way checks that the message is still this member's before
        // it acts. The rare ways are boxed, so that every message's task stays small.
        let message = match work {
            Work::Loaded(message) => message,
            Work::Unloaded(metadata) => {
                let reload = self.load_again(id, metadata, &mut delivery_count, lease, slot);
                match Box::pin(reload).await {
                    Reload::Ready(message) => message,
                    Reload::Rejected(metadata, reason, parent) => {
                        let dead_letter =
                            self.dead_letter(id, &metadata, delivery_count, reason, &parent, lease);
                        return Box::pin(dead_letter).await;
                    }
                    Reload::Gone => return Release::Now,
                }
            }
            Work::Rejected {
                metadata,
                reason,
                parent,
            } => {
                let dead_letter =
                    self.dead_letter(id, &metadata, delivery_count, reason, &parent, lease);
                return Box::pin(dead_letter).await;
            }
            Work::Malformed { raw, reason } => {
                let dead_letter =
                    self.dead_letter_malformed(id, raw, delivery_count, &reason, lease);
                return Box::pin(dead_letter).await;
            }
        };
        self.handle(message, delivery_count, lease, slot).await
    }

    /// Whether the entry is still this member's: its lease holds and no
    /// other member took it.
    fn still_ours(&self, id: &EntryId, lease: &Lease) -> bool {
        !lease.is_revoked() && !self.held.is_lost(id)
    }

    /// The handler, its redeliveries, and what follows.
    async fn handle(
        &self,
        mut message: Message,
        mut delivery_count: u32,
        lease: &Lease,
        slot: &mut Slot,
    ) -> Release {
        let id = message.entry_id().clone();
        loop {
            // A handler slot first, then the checks: a message that waited
            // for a slot while its partition was revoked must not start.
            let permit = self
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            if !self.still_ours(&id, lease) {
                // Left pending for its new owner.
                return Release::Now;
            }
            let Some(work) = lease.enter() else {
                return Release::Now;
            };
            let span = self.process_span(&message, delivery_count);
            let started = Instant::now();
            let ctx = ConsumerContext::new(
                message,
                delivery_count,
                &self.group,
                &self.consumer,
                self.acker.clone(),
                self.stop.clone(),
            );
            let verdict = self.handling.run(&ctx, &span, &self.stop).await;
            drop(permit);
            let metrics = &self.counters.metrics;
            metrics.processed(started.elapsed(), matches!(verdict, Verdict::Failed(_)));
            let error = match verdict {
                Verdict::Handled => {
                    let produced = ctx.metadata().produced_at_ms;
                    metrics.end_to_end(Duration::from_millis(now_ms().saturating_sub(produced)));
                    self.counters.handled();
                    if self.ack_mode != AckMode::Manual {
                        ctx.ack_settled(work);
                    }
                    return self.acked(&ctx);
                }
                Verdict::Unknown => {
                    drop(work);
                    spans::fail(&span, UNKNOWN_OPERATION);
                    let reason = Reason::plain(format!(
                        "unknown operation {:?} version {}",
                        ctx.operation(),
                        ctx.version()
                    ));
                    let dead_letter =
                        self.dead_letter(&id, ctx.metadata(), delivery_count, reason, &span, lease);
                    return Box::pin(dead_letter).await;
                }
                Verdict::Failed(error) => error,
            };
            spans::fail(&span, HANDLER_ERROR);
            self.counters.failed();
            if holds_personal_data(ctx.metadata()) {
                // Its text may quote personal data, which a log keeps
                // beyond the subject's erasure.
                tracing::warn!(
                    stream = self.source.stream(), operation = ctx.operation(),
                    entry = %id, delivery_count,
                    "handler failed (the message holds personal data: the error's text is not logged)"
                );
            } else {
                tracing::warn!(
                    stream = self.source.stream(), operation = ctx.operation(),
                    entry = %id, delivery_count, error = %error,
                    "handler failed"
                );
            }
            if self.ack_mode == AckMode::Always {
                ctx.ack_settled(work);
                return Release::WithAck;
            }
            if ctx.is_acked() {
                // The handler acknowledged it before it failed.
                return Release::WithAck;
            }
            drop(work);
            if self.stop.is_cancelled() {
                // Stopping: it stays pending, for the next start.
                return Release::Now;
            }
            if delivery_count >= self.max_deliveries {
                let reason = Reason::with_detail(
                    format!("handler failed after {delivery_count} deliveries"),
                    error.to_string(),
                );
                let dead_letter =
                    self.dead_letter(&id, ctx.metadata(), delivery_count, reason, &span, lease);
                return Box::pin(dead_letter).await;
            }
            drop(span);
            message = ctx.into_message();
            // The backoff is waited out beside the window, so that the
            // consumer reads on to other keys meanwhile.
            slot.step_aside();
            let delay = self
                .redelivery
                .delay_before(delivery_count.saturating_add(1));
            if !Box::pin(self.wait(delay)).await {
                return Release::Now;
            }
            match Box::pin(self.count_redelivery(&id, delivery_count, lease)).await {
                Some(count) => {
                    self.counters.redelivered();
                    delivery_count = count;
                }
                None => return Release::Now,
            }
        }
    }

    /// After the handler: the ack task lets go of what it acknowledges.
    fn acked(&self, ctx: &ConsumerContext) -> Release {
        if ctx.is_acked() {
            Release::WithAck
        } else {
            Release::Now
        }
    }

    /// Counts one more delivery with the channel, trying again while it
    /// fails; `None` when the entry is no longer this member's or the
    /// consumer stops.
    async fn count_redelivery(&self, id: &EntryId, delivered: u32, lease: &Lease) -> Option<u32> {
        let source = &self.source;
        let mut failures = 0u32;
        loop {
            if !self.still_ours(id, lease) {
                return None;
            }
            let counted = source
                .retry
                .run("counting a redelivery", || {
                    source.channel.redeliver(
                        source.stream(),
                        &self.group,
                        &self.consumer,
                        id,
                        delivered,
                    )
                })
                .await;
            match counted {
                Ok(Some(count)) => return Some(count),
                Ok(None) => {
                    tracing::debug!(
                        stream = source.stream(), entry = %id,
                        "no longer pending here; another member has it"
                    );
                    return None;
                }
                Err(e) => {
                    failures += 1;
                    let delay = self.backoff_after(&e, failures);
                    tracing::error!(
                        stream = source.stream(), entry = %id, error = %e, ?delay,
                        "a redelivery could not be counted; trying again"
                    );
                    if !self.wait(delay).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Loads a message's payload again, after a backoff, until it loads,
    /// fails for good, or the message is gone (the consumer stops, the
    /// entry is another member's). A message that is not readable yet (its
    /// data key is missing) is counted as delivered each time, and
    /// dead-lettered at `max_deliveries`.
    async fn load_again(
        &self,
        id: &EntryId,
        mut metadata: Metadata,
        delivery_count: &mut u32,
        lease: &Lease,
        slot: &mut Slot,
    ) -> Reload {
        let source = &self.source;
        let mut failures = 0u32;
        let mut not_readable = false;
        loop {
            failures += 1;
            if not_readable {
                // Its backoffs are waited out beside the window, like a
                // failed handler's.
                slot.step_aside();
                let delay = self
                    .redelivery
                    .delay_before(delivery_count.saturating_add(1));
                if !self.wait(delay).await {
                    return Reload::Gone;
                }
                match self.count_redelivery(id, *delivery_count, lease).await {
                    Some(count) => {
                        self.counters.redelivered();
                        *delivery_count = count;
                    }
                    None => return Reload::Gone,
                }
            } else if !self.wait(self.backoff(failures)).await || !self.still_ours(id, lease) {
                return Reload::Gone;
            }
            let entries = vec![(id.clone(), metadata.clone())];
            let span = spans::fetch(
                source.channel.backend(),
                source.stream(),
                &self.group,
                &entries,
            );
            let loaded = source.load_batch(entries).instrument(span.clone()).await;
            let error = match loaded.map(|mut one| one.pop()) {
                Ok(Some(Ok(message))) => return Reload::Ready(message),
                Ok(Some(Err(failure))) => {
                    metadata = failure.metadata;
                    failure.error
                }
                Ok(None) => unreachable!("one entry loads as one message"),
                Err(batch) => batch.error,
            };
            not_readable = error.is_not_readable_yet();
            if !error.is_transient() || (not_readable && *delivery_count >= self.max_deliveries) {
                spans::fail(&span, error.kind());
                let reason = if not_readable {
                    Reason::plain(format!(
                        "not readable after {delivery_count} deliveries: {error}"
                    ))
                } else {
                    Reason::of_error(&error)
                };
                return Reload::Rejected(metadata, reason, span);
            }
            tracing::warn!(
                parent: &span,
                stream = source.stream(), entry = %id, error = %shown(&error, &metadata),
                attempt = failures, "the payload could not be loaded yet; trying again"
            );
        }
    }

    fn dead_letters(&self) -> DeadLetters<'_> {
        DeadLetters {
            channel: self.source.channel.as_ref(),
            address: &self.source.address,
            group: &self.group,
            retry: &self.source.retry,
        }
    }

    /// Dead-letters a readable message, then acknowledges it; an append
    /// that fails is tried again until it succeeds or the message is gone.
    async fn dead_letter(
        &self,
        id: &EntryId,
        metadata: &Metadata,
        deliveries: u32,
        reason: Reason,
        parent: &tracing::Span,
        lease: &Lease,
    ) -> Release {
        let make_span = || self.dead_letter_span(parent, Some(&metadata.message_id), deliveries);
        let dead_letters = self.dead_letters();
        let (reason, sealed) = reason
            .kept_for(metadata, self.source.personal.as_ref())
            .await;
        let append = || dead_letters.message(metadata, id, deliveries, &reason, sealed.as_deref());
        self.append_dead_letter(id, lease, make_span, append).await
    }

    /// Dead-letters an unreadable entry with its raw bytes, then
    /// acknowledges it.
    async fn dead_letter_malformed(
        &self,
        id: &EntryId,
        raw: Bytes,
        deliveries: u32,
        reason: &str,
        lease: &Lease,
    ) -> Release {
        let make_span = || self.dead_letter_span(&tracing::Span::none(), None, deliveries);
        let dead_letters = self.dead_letters();
        let append = || dead_letters.malformed(id, raw.clone(), deliveries, reason);
        self.append_dead_letter(id, lease, make_span, append).await
    }

    async fn append_dead_letter<S, A, F>(
        &self,
        id: &EntryId,
        lease: &Lease,
        make_span: S,
        append: A,
    ) -> Release
    where
        S: Fn() -> tracing::Span,
        A: Fn() -> F,
        F: std::future::Future<Output = crate::Result<EntryId>>,
    {
        let mut failures = 0u32;
        loop {
            if !self.still_ours(id, lease) {
                return Release::Now;
            }
            let Some(work) = lease.enter() else {
                return Release::Now;
            };
            let span = make_span();
            match Box::pin(append().instrument(span.clone())).await {
                Ok(_) => {
                    self.counters.dead_lettered();
                    self.acker.ack(id.clone(), Some(work));
                    return Release::WithAck;
                }
                Err(e) => {
                    drop(work);
                    spans::fail(&span, e.kind());
                    failures += 1;
                    let delay = self.backoff_after(&e, failures);
                    tracing::error!(
                        parent: &span,
                        stream = self.source.stream(), entry = %id, error = %e, ?delay,
                        "dead-letter append failed; trying again"
                    );
                    if !self.wait(delay).await {
                        return Release::Now;
                    }
                }
            }
        }
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

    /// The `process` span of one delivery.
    fn process_span(&self, message: &Message, delivery_count: u32) -> tracing::Span {
        spans::process(
            &self.process_span,
            self.source.channel.backend(),
            self.source.stream(),
            &self.group,
            message.metadata(),
            delivery_count,
        )
    }

    /// The wait before the next try of something that failed `failures`
    /// times in a row: the backend retry's delays, growing to their cap.
    fn backoff(&self, failures: u32) -> Duration {
        self.source
            .retry
            .delay_before(failures.saturating_add(1).min(16))
    }

    /// The wait after a failure that must be tried again whatever it is
    /// (the message cannot move on without it): a permanent one (a
    /// dead-letter stream that refuses the copy, a missing permission)
    /// waits at least 30 s between tries, each logged, until someone mends
    /// it or the consumer stops.
    fn backoff_after(&self, error: &crate::Error, failures: u32) -> Duration {
        let delay = self.backoff(failures);
        if error.is_transient() {
            delay
        } else {
            delay.max(Duration::from_secs(30))
        }
    }

    /// Waits, unless the consumer stops first; false if it stopped.
    async fn wait(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => !self.stop.is_cancelled(),
            _ = self.stop.cancelled() => false,
        }
    }
}

impl Work {
    /// What is to become of a message whose payload did not load: loaded
    /// again later (a transient failure), or dead-lettered with the error
    /// as the reason. `parent` is the span of the fetch that failed.
    pub(crate) fn after_failure(
        metadata: Metadata,
        error: &crate::Error,
        parent: &tracing::Span,
    ) -> Self {
        if error.is_transient() {
            Work::Unloaded(metadata)
        } else {
            Work::Rejected {
                metadata,
                reason: Reason::of_error(error),
                parent: parent.clone(),
            }
        }
    }
}

/// Lets go of a held entry when dropped, unless the ack task will.
struct LetGo<'a> {
    held: &'a Held,
    id: &'a EntryId,
    now: bool,
}

impl Drop for LetGo<'_> {
    fn drop(&mut self) {
        if self.now {
            self.held.release(self.id);
        }
    }
}

/// What loading a payload again came to.
enum Reload {
    Ready(Message),
    Rejected(Metadata, Reason, tracing::Span),
    /// The consumer stops, or the entry is another member's.
    Gone,
}

/// `error.type` of a message no handler knows.
const UNKNOWN_OPERATION: &str = "unknown_operation";
