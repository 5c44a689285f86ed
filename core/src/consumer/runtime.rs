//! The consumer loop: read a batch (or claim stale entries), load its
//! payloads in one round per store, run handlers with bounded concurrency
//! (in lanes per key when the consumer keeps an order), and acknowledge in
//! batches. At most a window of messages is read and not yet settled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::dispatch::Dispatcher;
use super::lanes::{lane_of, Lanes, Queued};
use super::lifetime::ConsumerStats;
use super::options::ClaimPolicy;
use super::redelivery::settle;
use crate::capabilities::Ordering as MessageOrder;
use crate::channel::{Delivery, GroupStart};
use crate::telemetry::lag::LagSampler;
use crate::telemetry::spans;
use crate::Result;

pub(crate) struct Runtime {
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) group_start: GroupStart,
    pub(crate) batch_size: usize,
    pub(crate) concurrency: usize,
    pub(crate) ordering: MessageOrder,
    pub(crate) block: Duration,
    pub(crate) claim: Option<ClaimPolicy>,
    pub(crate) stop_after: Option<u64>,
    pub(crate) stop_when_empty: bool,
    pub(crate) lag: Option<LagSampler>,
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
        let result = self.consume().await;
        self.dispatcher.acker.finish();
        let _ = ack_task.await;
        let d = &self.dispatcher;
        if let Err(e) = d
            .source
            .channel
            .leave_group(d.source.stream(), &d.group, &d.consumer)
            .await
        {
            tracing::warn!(stream = d.source.stream(), group = d.group, error = %e, "leaving the group failed");
        }
        if let Some((stop, sampler)) = sampling {
            // One last sample, once everything is acknowledged.
            stop.cancel();
            let _ = sampler.await;
        }
        result.map(|()| self.dispatcher.counters.snapshot())
    }

    async fn consume(&self) -> Result<()> {
        let d = &self.dispatcher;
        let source = &d.source;
        let stream = source.stream();
        let channel = source.channel.as_ref();
        source
            .retry
            .run("creating the consumer group", || {
                channel.ensure_group(stream, &d.group, self.group_start)
            })
            .await?;

        let permits = Arc::new(Semaphore::new(self.concurrency));
        // Messages read and not settled: running, waiting for a
        // redelivery, or queued behind their key. Lanes read ahead, to find
        // messages of other keys.
        let window = match self.ordering {
            MessageOrder::None => self.concurrency,
            _ => self.concurrency + self.batch_size,
        };
        let window = Arc::new(Semaphore::new(window));
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
            if d.stop.is_cancelled() {
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

            let mut fresh_read = false;
            let read = if !recovered_own {
                // What is pending under this name: what this consumer read
                // before it stopped, or read when a reply was lost. Settle
                // what is in flight first, so nothing is handled twice.
                drain(&mut in_flight).await;
                d.acker.flush().await;
                recovered_own = true;
                channel
                    .read_pending(stream, &d.group, &d.consumer, count)
                    .await
            } else if let Some(claim) = self.claim.filter(|c| last_claim.elapsed() >= c.interval) {
                last_claim = Instant::now();
                let claimed = channel
                    .claim_stale(stream, &d.group, &d.consumer, claim.min_idle, count)
                    .await;
                if let Ok(c) = &claimed {
                    d.counters.claimed(c.len() as u64);
                }
                claimed
            } else {
                fresh_read = true;
                channel
                    .read_group(stream, &d.group, &d.consumer, count, self.block)
                    .await
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
                    tracing::warn!(stream, group = d.group, error = %e, ?delay, "read failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = d.stop.cancelled() => {}
                    }
                    continue;
                }
                Err(e) => {
                    drain(&mut in_flight).await;
                    return Err(e);
                }
            };

            if deliveries.is_empty() {
                // Only a read of new entries tells that the stream is empty.
                if fresh_read && self.stop_when_empty && in_flight.is_empty() {
                    break;
                }
                if !in_flight.is_empty() && self.block.is_zero() {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            taken += deliveries.len() as u64;
            d.counters.received(deliveries.len() as u64);
            let running = Running {
                permits: &permits,
                window: &window,
                lanes: &lanes,
            };
            self.dispatch(deliveries, &running, &mut in_flight).await;
        }
        drain(&mut in_flight).await;
        Ok(())
    }

    async fn dispatch(
        &self,
        deliveries: Vec<Delivery>,
        running: &Running<'_>,
        in_flight: &mut JoinSet<()>,
    ) {
        let d = &self.dispatcher;
        let mut readable = Vec::with_capacity(deliveries.len());
        let mut counts = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match delivery.entry.body {
                Ok(metadata) => {
                    counts.push(delivery.delivery_count);
                    readable.push((delivery.entry.id, metadata));
                }
                Err(malformed) => {
                    let reason = format!("malformed metadata: {}", malformed.reason);
                    d.dead_letter_malformed(
                        &delivery.entry.id,
                        malformed.raw,
                        delivery.delivery_count,
                        &reason,
                    )
                    .await;
                }
            }
        }
        if readable.is_empty() {
            return;
        }
        let count_read = readable.len();
        let span = spans::fetch(
            d.source.channel.backend(),
            d.source.stream(),
            &d.group,
            &readable,
        );
        let loaded = match d.source.load(readable).instrument(span.clone()).await {
            Ok(loaded) => loaded,
            Err(e) => {
                spans::fail(&span, e.kind());
                tracing::error!(
                    parent: &span,
                    stream = d.source.stream(), error = %e, count = count_read,
                    "payloads could not be fetched; the entries stay pending"
                );
                return;
            }
        };
        for (message, count) in loaded.into_iter().zip(counts) {
            match message {
                Ok(message) => {
                    let slot = running
                        .window
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    let queued = Queued {
                        message,
                        delivery_count: count,
                        slot,
                    };
                    let (dispatcher, permits) = (d.clone(), running.permits.clone());
                    match lane_of(self.ordering, &queued.message) {
                        None => {
                            in_flight.spawn(async move {
                                settle(dispatcher, permits, queued.message, queued.delivery_count)
                                    .await;
                                drop(queued.slot);
                            });
                        }
                        Some(key) => {
                            if let Some(first) = running.lanes.enter(&key, queued) {
                                let lanes = running.lanes.clone();
                                in_flight.spawn(run_lane(dispatcher, permits, lanes, key, first));
                            }
                        }
                    }
                }
                Err(failure) if failure.error.is_transient() => {
                    tracing::warn!(
                        entry = %failure.entry_id, error = %failure.error,
                        "message left pending"
                    );
                }
                Err(failure) => {
                    let reason = failure.error.to_string();
                    d.dead_letter(&failure.metadata, &failure.entry_id, count, &reason, &span)
                        .await
                }
            }
        }
    }
}

/// What the handlers of a consumer share.
struct Running<'a> {
    permits: &'a Arc<Semaphore>,
    window: &'a Arc<Semaphore>,
    lanes: &'a Lanes,
}

/// Settles the messages of one key, one after the other, until none waits.
/// When the consumer stops, those still waiting stay pending.
async fn run_lane(
    dispatcher: Arc<Dispatcher>,
    permits: Arc<Semaphore>,
    lanes: Lanes,
    key: String,
    first: Queued,
) {
    let mut next = Some(first);
    while let Some(queued) = next {
        if !dispatcher.stop.is_cancelled() {
            settle(
                dispatcher.clone(),
                permits.clone(),
                queued.message,
                queued.delivery_count,
            )
            .await;
        }
        drop(queued.slot);
        next = lanes.next(&key);
    }
}

async fn drain(in_flight: &mut JoinSet<()>) {
    while let Some(done) = in_flight.join_next().await {
        surface_panic(done);
    }
}

fn surface_panic(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        // Handler panics are caught in dispatch; this is a bug of ours.
        tracing::error!(error = %e, "a message task ended abnormally");
    }
}
