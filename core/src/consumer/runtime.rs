//! The consumer loop: read a batch (at start, first what is pending under
//! this consumer's name; every claim interval, what other members left too
//! long), take in what it holds not already, load the payloads in one round
//! per store, and hand each message to its lane (per key) or its own task,
//! where [`super::settle`] takes it until it is settled. The
//! [window](super::window) bounds what is read and not settled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::keep_alive::KeepAlive;
use super::lanes::{lane_of, Lanes};
use super::lifetime::ConsumerStats;
use super::options::ClaimPolicy;
use super::settle::{InHand, Settler, Work};
use super::source::{BatchFailure, LoadFailure};
use super::window::Window;
use crate::capabilities::Ordering as MessageOrder;
use crate::channel::{Delivery, EntryId, GroupStart};
use crate::message::Message;
use crate::telemetry::lag::LagSampler;
use crate::telemetry::spans;
use crate::Result;

pub(crate) struct Runtime {
    pub(crate) settler: Arc<Settler>,
    pub(crate) group_start: GroupStart,
    pub(crate) batch_size: usize,
    pub(crate) ordering: MessageOrder,
    pub(crate) block: Duration,
    pub(crate) claim: Option<ClaimPolicy>,
    pub(crate) window: Arc<Window>,
    pub(crate) keep_alive: Option<KeepAlive>,
    pub(crate) stop_after: Option<u64>,
    pub(crate) stop_when_empty: bool,
    pub(crate) lag: Option<LagSampler>,
}

/// Where a read came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// What is pending under this consumer's name.
    Own,
    /// Entries other members left pending too long.
    Claim,
    /// New entries.
    New,
}

impl Runtime {
    pub(crate) async fn run(
        mut self,
        ack_task: tokio::task::JoinHandle<u64>,
    ) -> Result<ConsumerStats> {
        let sampling = self.lag.take().map(|sampler| {
            let stop = CancellationToken::new();
            (stop.clone(), tokio::spawn(sampler.run(stop)))
        });
        // Touching lasts until the last acknowledgement is written: an
        // entry waiting for its acknowledgement is still held.
        let keeping = self.keep_alive.take().map(|keep| {
            let stop = CancellationToken::new();
            (stop.clone(), tokio::spawn(keep.run(stop)))
        });
        let result = self.consume().await;
        let s = &self.settler;
        s.acker.finish();
        let _ = ack_task.await;
        if let Some((stop, task)) = keeping {
            stop.cancel();
            let _ = task.await;
        }
        if let Err(e) = s
            .source
            .channel
            .leave_group(s.source.stream(), &s.group, &s.consumer)
            .await
        {
            tracing::warn!(stream = s.source.stream(), group = s.group, error = %e, "leaving the group failed");
        }
        if let Some((stop, sampler)) = sampling {
            // One last sample, once everything is acknowledged.
            stop.cancel();
            let _ = sampler.await;
        }
        result.map(|()| self.settler.counters.snapshot())
    }

    async fn consume(&self) -> Result<()> {
        let s = &self.settler;
        let source = &s.source;
        let stream = source.stream();
        let channel = source.channel.as_ref();
        source
            .retry
            .run("creating the consumer group", || {
                channel.ensure_group(stream, &s.group, self.group_start)
            })
            .await?;

        let lanes = Lanes::default();
        let mut in_flight = JoinSet::new();
        let mut taken: u64 = 0;
        let mut failures: u32 = 0;
        let mut last_claim = Instant::now();
        let mut recovered_own = false;

        loop {
            while let Some(done) = in_flight.try_join_next() {
                surface_panic(done);
            }
            if s.stop.is_cancelled() {
                break;
            }
            let remaining = self
                .stop_after
                .map_or(u64::MAX, |n| n.saturating_sub(taken));
            if remaining == 0 {
                break;
            }
            let count = self
                .batch_size
                .min(remaining.min(usize::MAX as u64) as usize);

            // What is pending under this name: what this consumer read
            // before it stopped, or read when a reply was lost. Taken back
            // at start, and after a failed read once nothing is in hand
            // (taking back an entry counts a delivery: one in hand would
            // come back with a count it never had).
            let nothing_in_hand = s.held.is_empty().unwrap_or(in_flight.is_empty());
            let (from, read) = if !recovered_own && nothing_in_hand {
                recovered_own = true;
                let read = channel
                    .read_pending(stream, &s.group, &s.consumer, count)
                    .await;
                (Read::Own, read)
            } else if let Some(claim) = self.claim.filter(|c| last_claim.elapsed() >= c.interval) {
                last_claim = Instant::now();
                let read = channel
                    .claim_stale(stream, &s.group, &s.consumer, claim.min_idle, count)
                    .await;
                (Read::Claim, read)
            } else {
                let read = channel
                    .read_group(stream, &s.group, &s.consumer, count, self.block)
                    .await;
                (Read::New, read)
            };

            let deliveries = match read {
                Ok(deliveries) => {
                    failures = 0;
                    deliveries
                }
                Err(e) if e.is_transient() => {
                    // A read may have delivered entries whose reply was lost:
                    // take back this consumer's pending entries once reads
                    // work again.
                    recovered_own = false;
                    failures += 1;
                    let delay = source
                        .retry
                        .delay_before(failures.saturating_add(1).min(16));
                    tracing::warn!(stream, group = s.group, error = %e, ?delay, "read failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = s.stop.cancelled() => {}
                    }
                    continue;
                }
                Err(e) => {
                    // Messages waiting to be tried again give up (they stay
                    // pending); those running finish.
                    s.stop.cancel();
                    drain(&mut in_flight).await;
                    return Err(e);
                }
            };

            if deliveries.is_empty() {
                // Only a read of new entries tells that the stream is empty.
                if from == Read::New && self.stop_when_empty && in_flight.is_empty() {
                    break;
                }
                if !in_flight.is_empty() && self.block.is_zero() {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            let accepted = self.take_in(deliveries, &lanes, &mut in_flight).await;
            taken += accepted;
            s.counters.received(accepted);
            if from == Read::Claim {
                s.counters.claimed(accepted);
            }
        }
        drain(&mut in_flight).await;
        Ok(())
    }

    /// Takes in a batch of deliveries: entries already in hand are skipped,
    /// unreadable ones go to the dead-letter stream (those of a newer
    /// format are left pending), the payloads of the rest are loaded, and
    /// each message goes to its lane or its own task once the window has
    /// room. Returns how many it took.
    async fn take_in(
        &self,
        deliveries: Vec<Delivery>,
        lanes: &Lanes,
        in_flight: &mut JoinSet<()>,
    ) -> u64 {
        let s = &self.settler;
        let mut taken = 0u64;
        let mut readable = Vec::with_capacity(deliveries.len());
        let mut received = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let Delivery {
                entry,
                delivery_count,
                lease,
                ..
            } = delivery;
            if !s.held.take(&entry.id) {
                // Already in hand (its own claim, or its own pending list,
                // gave it again): it is on its way.
                continue;
            }
            taken += 1;
            match entry.body {
                Ok(metadata) => {
                    readable.push((entry.id, metadata));
                    received.push((delivery_count, lease));
                }
                Err(malformed) => {
                    if let Some(version) = malformed.newer_version {
                        tracing::warn!(
                            stream = s.source.stream(), group = s.group, entry = %entry.id, version,
                            "an entry of a newer format version is left pending for a consumer \
                             that reads it (upgrade this one)"
                        );
                        s.held.release(&entry.id);
                        continue;
                    }
                    let reason = if malformed.reason.starts_with("malformed metadata") {
                        malformed.reason
                    } else {
                        format!("malformed metadata: {}", malformed.reason)
                    };
                    let item = InHand {
                        entry_id: entry.id,
                        work: Work::Malformed {
                            raw: malformed.raw,
                            reason,
                        },
                        delivery_count,
                        lease,
                        slot: self.window.admit(None).await,
                    };
                    self.dispatch(None, item, lanes, in_flight);
                }
            }
        }
        if readable.is_empty() {
            return taken;
        }
        let span = spans::fetch(
            s.source.channel.backend(),
            s.source.stream(),
            &s.group,
            &readable,
        );
        let works = self.load(readable, &span).await;
        for ((entry_id, work), (delivery_count, lease)) in works.into_iter().zip(received) {
            let key = match &work {
                Work::Loaded(m) => lane_of(self.ordering, m.metadata()),
                Work::Unloaded(m) | Work::Rejected { metadata: m, .. } => lane_of(self.ordering, m),
                Work::Malformed { .. } => None,
            }
            .map(str::to_owned);
            let slot = self.window.admit(key.as_deref()).await;
            let item = InHand {
                entry_id,
                work,
                delivery_count,
                lease,
                slot,
            };
            self.dispatch(key, item, lanes, in_flight);
        }
        taken
    }

    /// Loads the payloads of a batch, in one round per store. A transient
    /// failure leaves every message to be loaded again later; a permanent
    /// one (one unreadable key or vault record fails the whole fetch) has
    /// the batch loaded message by message, so that only what cannot be
    /// read is dead-lettered.
    async fn load(
        &self,
        readable: Vec<(EntryId, crate::envelope::Metadata)>,
        span: &tracing::Span,
    ) -> Vec<(EntryId, Work)> {
        let source = &self.settler.source;
        let failure = match source.load_batch(readable).instrument(span.clone()).await {
            Ok(loaded) => return loaded.into_iter().map(|one| work_of(one, span)).collect(),
            Err(failure) => failure,
        };
        let BatchFailure { error, entries } = failure;
        spans::fail(span, error.kind());
        if error.is_transient() {
            tracing::warn!(
                parent: span,
                stream = source.stream(), error = %error, count = entries.len(),
                "payloads could not be fetched; each message is tried again after a backoff"
            );
            return entries
                .into_iter()
                .map(|(id, metadata)| (id, Work::Unloaded(metadata)))
                .collect();
        }
        tracing::warn!(
            parent: span,
            stream = source.stream(), error = %error, count = entries.len(),
            "payloads could not be fetched; loading the batch message by message"
        );
        let one_by_one = entries.into_iter().map(|(id, metadata)| async move {
            let loaded = source
                .load_batch(vec![(id.clone(), metadata)])
                .instrument(span.clone())
                .await;
            match loaded.map(|mut one| one.pop()) {
                Ok(Some(one)) => work_of(one, span),
                Ok(None) => unreachable!("one entry loads as one message"),
                Err(BatchFailure { error, mut entries }) => {
                    let (id, metadata) = entries.pop().expect("the entry comes back");
                    (id, Work::after_failure(metadata, &error, span))
                }
            }
        });
        futures_util::future::join_all(one_by_one).await
    }

    /// Starts a message on its way: into its key's lane, or a task of its
    /// own.
    fn dispatch(
        &self,
        key: Option<String>,
        item: InHand,
        lanes: &Lanes,
        in_flight: &mut JoinSet<()>,
    ) {
        let settler = self.settler.clone();
        // The task holds its future boxed: the runtime moves a task's
        // state around, and a message's way is a large future.
        match key {
            None => {
                in_flight.spawn(Box::pin(async move { settler.settle(item).await }));
            }
            Some(key) => {
                if let Some(first) = lanes.enter(&key, item) {
                    in_flight.spawn(Box::pin(run_lane(settler, lanes.clone(), key, first)));
                }
            }
        }
    }
}

/// A loaded message, or what is to become of one that did not load.
fn work_of(
    loaded: std::result::Result<Message, LoadFailure>,
    span: &tracing::Span,
) -> (EntryId, Work) {
    match loaded {
        Ok(message) => (message.entry_id().clone(), Work::Loaded(message)),
        Err(failure) => {
            if failure.error.is_transient() {
                tracing::warn!(
                    entry = %failure.entry_id,
                    error = %super::settle::shown(&failure.error, &failure.metadata),
                    "the payload could not be loaded yet; trying again after a backoff"
                );
            }
            let work = Work::after_failure(failure.metadata, &failure.error, span);
            (failure.entry_id, work)
        }
    }
}

/// Settles the messages of one key, one after the other, until none waits.
/// When the consumer stops, those still waiting stay pending.
async fn run_lane(settler: Arc<Settler>, lanes: Lanes, key: String, first: InHand) {
    // Should settling panic (a bug), the key is not left busy for ever
    // with its queue held: the queue is let go, pending, for the claim or
    // the next start.
    let abandon = AbandonOnPanic {
        settler: &settler,
        lanes: &lanes,
        key: &key,
    };
    let mut next = Some(first);
    while let Some(item) = next {
        if settler.stop.is_cancelled() {
            settler.held.release(&item.entry_id);
        } else {
            settler.settle(item).await;
        }
        next = lanes.next(&key);
    }
    std::mem::forget(abandon);
}

struct AbandonOnPanic<'a> {
    settler: &'a Settler,
    lanes: &'a Lanes,
    key: &'a str,
}

impl Drop for AbandonOnPanic<'_> {
    fn drop(&mut self) {
        while let Some(item) = self.lanes.next(self.key) {
            self.settler.held.release(&item.entry_id);
        }
    }
}

async fn drain(in_flight: &mut JoinSet<()>) {
    while let Some(done) = in_flight.join_next().await {
        surface_panic(done);
    }
}

fn surface_panic(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        // Handler panics are caught in handling; this is a bug of ours.
        tracing::error!(error = %e, "a message task ended abnormally");
    }
}
