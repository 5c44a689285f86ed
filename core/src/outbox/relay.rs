//! [`OutboxRelay`]: moves the messages a transaction wrote to the outbox on
//! to the producer's channel and stores, as they are.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::report::RelayReport;
use super::{outbox_key, outbox_stream, OUTBOX_SUFFIX};
use crate::address::StreamAddress;
use crate::channel::{Delivery, EntryId, GroupStart, StreamChannel};
use crate::consumer::dead_letter::DeadLetters;
use crate::envelope::{Metadata, SegmentClass, SegmentLocation};
use crate::producer::Producer;
use crate::retry::RetryPolicy;
use crate::store::{KeyValueStore, PutItem};
use crate::{Error, Result};

/// The consumer group the relay reads the outbox with (default).
pub const RELAY_GROUP: &str = "outbox-relay";
/// The consumer name the relay reads as: a relay started again takes over
/// what the one before it had read and not finished, first, in order.
pub const RELAY_CONSUMER: &str = "relay";

/// Moves committed outbox messages on to the producer's channel and stores:
/// the other half of [`Producer::send_in`] when the producer's channel is
/// not the transaction's database's.
///
/// For each stream of the producer it reads its outbox stream
/// ([`outbox_stream`](super::outbox_stream), consumer group
/// [`RELAY_GROUP`], as consumer [`RELAY_CONSUMER`]): first what it had read
/// before and not acknowledged (a relay that died mid-batch), then new
/// messages. Each batch's payloads are read from the outbox store (under
/// their [`outbox_key`](super::outbox_key)s) and written to the producer's
/// stores under their standard keys (routed by segment class, with its
/// payload TTL), its entries appended to the producer's stream
/// **unchanged** (same message ids), then the batch is acknowledged in the
/// outbox and its outbox payloads deleted.
///
/// - **At least once**: a relay killed between the append and the
///   acknowledgement appends that batch again when it starts (the same
///   message ids: consumers that must see each once deduplicate by id).
/// - **In outbox order**: batches go one after another, entries in the
///   outbox's order; run **one relay per outbox stream** (two would share
///   the consumer name and interleave). On PostgreSQL the outbox order is
///   the order in which the transactions began to write: the order of
///   their commits when they do not overlap, not always when they do.
/// - **Nothing stuck**: an entry that cannot be relayed for good
///   (unreadable, its payload missing from the outbox, refused by the
///   target while the target takes others) goes to the outbox stream's
///   dead-letter stream with the reason, its payload kept in the outbox
///   store; a transient failure is waited out ([`Self::run`]) or returned
///   ([`Self::relay_once`]) and the batch read again. A failure that is not
///   one message's (a producer without a store for a class, a target that
///   refuses every message) stops the relay with that error, its entries
///   still pending, rather than dead-letter the outbox.
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::outbox::OutboxRelay;
/// use event_backbone_core::Producer;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// // Where messages go.
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let producer = Producer::builder().channel(channel.clone()).store(store).uri("orders").build()?;
/// // The outbox (in a real application: the database's channel and store).
/// let (outbox, outbox_store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let relay = OutboxRelay::builder().channel(outbox).store(outbox_store).to(&producer).build()?;
/// let report = relay.relay_once().await?;
/// assert!(report.is_empty());
/// # Ok(()) }
/// ```
pub struct OutboxRelay {
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    producer: Producer,
    group: String,
    batch_size: usize,
    block: Duration,
    retry: RetryPolicy,
    /// Whether the group exists, per target.
    ensured: Vec<AtomicBool>,
    /// The address of each target's outbox stream (its dead letters go
    /// beside it).
    outboxes: Vec<StreamAddress>,
}

/// Builds an [`OutboxRelay`]: the outbox's channel and store, and the
/// producer whose channel and stores messages go to.
#[must_use = "a builder does nothing until .build()"]
pub struct OutboxRelayBuilder {
    channel: Option<Arc<dyn StreamChannel>>,
    store: Option<Arc<dyn KeyValueStore>>,
    producer: Option<Producer>,
    group: String,
    batch_size: usize,
    block: Duration,
}

impl OutboxRelay {
    /// A relay to configure.
    pub fn builder() -> OutboxRelayBuilder {
        OutboxRelayBuilder {
            channel: None,
            store: None,
            producer: None,
            group: RELAY_GROUP.to_owned(),
            batch_size: 100,
            block: Duration::from_secs(1),
        }
    }

    /// One pass: one batch per stream (what was read before and not
    /// finished, else what is new), without waiting for new messages.
    pub async fn relay_once(&self) -> Result<RelayReport> {
        self.pass(Duration::ZERO).await
    }

    /// Relays until `cancel` is cancelled, waiting for new messages up to
    /// the block time per read; transient failures (the target or the
    /// outbox unreachable) are logged and waited out, with backoff. Returns
    /// what it relayed; a permanent failure that is no single message's
    /// (a configuration error) ends it.
    pub async fn run(&self, cancel: CancellationToken) -> Result<RelayReport> {
        let mut total = RelayReport::default();
        let backoff = RetryPolicy::exponential(u32::MAX)
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(5));
        let mut failures = 0;
        let block = self.block / self.ensured.len().max(1) as u32;
        while !cancel.is_cancelled() {
            match self.pass(block).await {
                Ok(report) => {
                    failures = 0;
                    total.add(report);
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox relay: waiting out a transient failure");
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(backoff.delay_before(failures)) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    async fn pass(&self, block: Duration) -> Result<RelayReport> {
        let mut report = RelayReport::default();
        for (i, target) in self.producer.streams().into_iter().enumerate() {
            let outbox = outbox_stream(target);
            let stream = outbox.as_str();
            if !self.ensured[i].load(Ordering::Relaxed) {
                self.channel
                    .ensure_group(stream, &self.group, GroupStart::Beginning)
                    .await?;
                self.ensured[i].store(true, Ordering::Relaxed);
            }
            let mut batch = self
                .channel
                .read_pending(stream, &self.group, RELAY_CONSUMER, self.batch_size)
                .await?;
            if batch.is_empty() {
                batch = self
                    .channel
                    .read_group(stream, &self.group, RELAY_CONSUMER, self.batch_size, block)
                    .await?;
            }
            if !batch.is_empty() {
                report.add(self.relay(i, stream, batch).await?);
            }
        }
        Ok(report)
    }

    /// Relays one batch of the outbox stream `stream` to the producer's
    /// target `i`.
    async fn relay(&self, i: usize, stream: &str, batch: Vec<Delivery>) -> Result<RelayReport> {
        let mut report = RelayReport::default();
        let ready = self.prepare(i, stream, batch, &mut report).await?;
        self.forward(i, stream, ready, &mut report).await?;
        Ok(report)
    }

    /// The deliveries that can be relayed, with their payloads read from
    /// the outbox (in one read); the others dead-lettered, in `report`.
    async fn prepare(
        &self,
        i: usize,
        stream: &str,
        batch: Vec<Delivery>,
        report: &mut RelayReport,
    ) -> Result<Vec<Ready>> {
        let mut ready: Vec<Ready> = Vec::with_capacity(batch.len());
        let mut readable: Vec<Readable> = Vec::with_capacity(batch.len());
        for delivery in batch {
            let id = delivery.entry.id;
            let metadata = match delivery.entry.body {
                Ok(metadata) => metadata,
                Err(malformed) => {
                    let reason = format!("the outbox entry is unreadable: {}", malformed.reason);
                    self.dead_letters(i)
                        .malformed(&id, malformed.raw, delivery.delivery_count, &reason)
                        .await?;
                    self.finish(stream, std::slice::from_ref(&id), &[]).await?;
                    report.dead_lettered.push((id, reason));
                    continue;
                }
            };
            match wanted(&metadata) {
                Ok(keys) => readable.push((id, metadata, delivery.delivery_count, keys)),
                Err(reason) => {
                    self.dead_letter(i, stream, &id, &metadata, delivery.delivery_count, &reason)
                        .await?;
                    report.dead_lettered.push((id, reason));
                }
            }
        }
        // Every payload of the batch in one read.
        let waiting: Vec<String> = readable
            .iter()
            .flat_map(|(.., keys)| keys.iter().map(|(_, key)| outbox_key(key)))
            .collect();
        let found = match waiting.is_empty() {
            true => Vec::new(),
            false => {
                let keys: Vec<&str> = waiting.iter().map(String::as_str).collect();
                self.store.get_many(&keys).await?
            }
        };
        let mut found = found.into_iter().zip(waiting);
        for (id, metadata, deliveries, keys) in readable {
            let mut payloads = Vec::with_capacity(keys.len());
            let mut missing = None;
            for (class, key) in keys {
                match found.next() {
                    Some((Some(fields), _)) => payloads.push((
                        class,
                        PutItem {
                            key,
                            fields,
                            ttl: None,
                        },
                    )),
                    Some((None, waiting)) => {
                        missing.get_or_insert(waiting);
                    }
                    None => missing = Some(outbox_key(&key)),
                }
            }
            match missing {
                None => ready.push(Ready {
                    id,
                    metadata,
                    payloads,
                    deliveries,
                }),
                Some(waiting) => {
                    let reason = format!("its payload {waiting:?} is not in the outbox store");
                    self.dead_letter(i, stream, &id, &metadata, deliveries, &reason)
                        .await?;
                    report.dead_lettered.push((id, reason));
                }
            }
        }
        Ok(ready)
    }

    /// Forwards prepared messages: the whole batch, else one at a time to
    /// find what the target refuses.
    async fn forward(
        &self,
        i: usize,
        stream: &str,
        ready: Vec<Ready>,
        report: &mut RelayReport,
    ) -> Result<()> {
        if ready.is_empty() {
            return Ok(());
        }
        let target = &self.producer.targets()[i];
        let (metadata, payloads) = Ready::split(&ready);
        match target.forward(&metadata, payloads).await {
            Ok(_) => {
                report.relayed += ready.len() as u64;
                return self.finish_ready(stream, &ready).await;
            }
            Err(e) if !refusal(&e) => return Err(e),
            // Refused: find which, one at a time, in order.
            Err(_) => {}
        }
        let mut works = false;
        let mut doubt: Option<(Ready, Error)> = None;
        for one in ready {
            let (metadata, payloads) = Ready::split(std::slice::from_ref(&one));
            match target.forward(&metadata, payloads).await {
                Ok(_) => {
                    works = true;
                    if let Some((refused, e)) = doubt.take() {
                        // The target takes messages: that one was refused.
                        self.refused(i, stream, refused, &e, report).await?;
                    }
                    report.relayed += 1;
                    self.finish_ready(stream, std::slice::from_ref(&one))
                        .await?;
                }
                Err(e) if !refusal(&e) => return Err(e),
                Err(e) if works || of_the_message(&e) => {
                    self.refused(i, stream, one, &e, report).await?;
                }
                // Refused, and nothing has gone through yet: the message or
                // the target? The next message tells.
                Err(e) => match doubt {
                    None => doubt = Some((one, e)),
                    // Two in a row: the target, not the messages.
                    Some(_) => return Err(e),
                },
            }
        }
        match doubt {
            Some((refused, e)) => self.probe(i, stream, refused, e, report).await,
            None => Ok(()),
        }
    }

    /// A refusal the relay cannot tell from a broken target, and nothing
    /// else of its batch went through: the next message decides. Taken
    /// through, the target works and the refused message is dead-lettered;
    /// refused too (or none there yet), the relay stops with the error,
    /// both left pending in order.
    async fn probe(
        &self,
        i: usize,
        stream: &str,
        refused: Ready,
        e: Error,
        report: &mut RelayReport,
    ) -> Result<()> {
        let next = self
            .channel
            .read_group(stream, &self.group, RELAY_CONSUMER, 1, Duration::ZERO)
            .await?;
        let Some(probe) = self.prepare(i, stream, next, report).await?.pop() else {
            return Err(e);
        };
        let target = &self.producer.targets()[i];
        let (metadata, payloads) = Ready::split(std::slice::from_ref(&probe));
        match target.forward(&metadata, payloads).await {
            Ok(_) => {
                self.refused(i, stream, refused, &e, report).await?;
                report.relayed += 1;
                self.finish_ready(stream, std::slice::from_ref(&probe))
                    .await
            }
            Err(other) if refusal(&other) && of_the_message(&other) => {
                self.refused(i, stream, probe, &other, report).await?;
                Err(e)
            }
            Err(other) if !refusal(&other) => Err(other),
            Err(_) => Err(e),
        }
    }

    /// Dead-letters a message the target refused.
    async fn refused(
        &self,
        i: usize,
        stream: &str,
        one: Ready,
        e: &Error,
        report: &mut RelayReport,
    ) -> Result<()> {
        let reason = format!("the target refused it: {e}");
        self.dead_letter(i, stream, &one.id, &one.metadata, one.deliveries, &reason)
            .await?;
        report.dead_lettered.push((one.id, reason));
        Ok(())
    }

    fn dead_letters(&self, i: usize) -> DeadLetters<'_> {
        DeadLetters {
            channel: self.channel.as_ref(),
            address: &self.outboxes[i],
            group: &self.group,
            retry: &self.retry,
        }
    }

    /// Dead-letters a message in the outbox (its payload stays there) and
    /// acknowledges it.
    async fn dead_letter(
        &self,
        i: usize,
        stream: &str,
        id: &EntryId,
        metadata: &Metadata,
        deliveries: u32,
        reason: &str,
    ) -> Result<()> {
        tracing::warn!(stream, entry = %id, reason, "outbox relay: dead-lettering an entry");
        // The dead letter names where the payload is: under its outbox keys.
        let mut kept = metadata.clone();
        for segment in &mut kept.segments {
            if matches!(segment.location, SegmentLocation::Standard) {
                segment.location = SegmentLocation::Stored {
                    store: segment.class.as_str().to_owned(),
                    key: outbox_key(&metadata.standard_payload_key(&segment.class)),
                };
            }
        }
        self.dead_letters(i)
            .message(&kept, id, deliveries, reason, None)
            .await?;
        self.finish(stream, std::slice::from_ref(id), &[]).await
    }

    async fn finish_ready(&self, stream: &str, ready: &[Ready]) -> Result<()> {
        let ids: Vec<EntryId> = ready.iter().map(|r| r.id.clone()).collect();
        let keys: Vec<String> = ready
            .iter()
            .flat_map(|r| r.payloads.iter().map(|(_, item)| outbox_key(&item.key)))
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.finish(stream, &ids, &keys).await
    }

    /// Acknowledges entries in the outbox, then deletes their payload rows
    /// there (best effort: rows left behind are harmless).
    async fn finish(&self, stream: &str, ids: &[EntryId], keys: &[&str]) -> Result<()> {
        self.retry
            .run("acknowledging relayed outbox entries", || {
                self.channel.ack(stream, &self.group, ids)
            })
            .await?;
        if !keys.is_empty() {
            if let Err(e) = self.store.delete_many(keys).await {
                tracing::warn!(error = %e, "outbox relay: relayed payloads left in the outbox store");
            }
        }
        Ok(())
    }
}

/// A readable outbox entry: its id, metadata, deliveries, and its payload
/// keys by class.
type Readable = (EntryId, Metadata, u32, Vec<(SegmentClass, String)>);

/// The standard payload keys of a message, one per class it stores
/// segments of; or why it cannot be relayed.
fn wanted(metadata: &Metadata) -> std::result::Result<Vec<(SegmentClass, String)>, String> {
    let mut classes: BTreeSet<&str> = BTreeSet::new();
    let mut keys = Vec::new();
    for segment in &metadata.segments {
        match &segment.location {
            SegmentLocation::Inline(_) => continue,
            SegmentLocation::Stored { .. } => {
                return Err(format!(
                    "segment {:?} names a store of its own; an outbox message keeps its \
                     payload under the standard keys",
                    segment.name
                ))
            }
            SegmentLocation::Standard => {}
        }
        if classes.insert(segment.class.as_str()) {
            keys.push((
                segment.class.clone(),
                metadata.standard_payload_key(&segment.class),
            ));
        }
    }
    Ok(keys)
}

/// Whether a failed forward may be a refusal of the messages rather than
/// a target to wait for or a configuration to fix: permanent, and not the
/// relay's configuration.
fn refusal(e: &Error) -> bool {
    match e {
        Error::Config { .. } | Error::UnknownStore { .. } => false,
        // Some appended: the rest failed for the cause's reason.
        Error::PartlyAppended { source, .. } => refusal(source),
        e => !e.is_transient(),
    }
}

/// Whether a refusal is for sure the message's own (its size, its data)
/// rather than possibly the target's.
fn of_the_message(e: &Error) -> bool {
    matches!(
        e,
        Error::ValueTooLarge { .. } | Error::Encode { .. } | Error::ReservedHeader { .. }
    )
}

/// A message ready to relay: its outbox entry, metadata and payload.
struct Ready {
    id: EntryId,
    metadata: Metadata,
    payloads: Vec<(SegmentClass, PutItem)>,
    deliveries: u32,
}

impl Ready {
    fn split(ready: &[Ready]) -> (Vec<Metadata>, Vec<(SegmentClass, PutItem)>) {
        let metadata = ready.iter().map(|r| r.metadata.clone()).collect();
        let payloads = ready.iter().flat_map(|r| r.payloads.clone()).collect();
        (metadata, payloads)
    }
}

impl OutboxRelayBuilder {
    /// The outbox's channel (required): the transaction's database's.
    pub fn channel(mut self, channel: Arc<dyn StreamChannel>) -> Self {
        self.channel = Some(channel);
        self
    }

    /// The outbox's store (required): where the transaction wrote the
    /// payloads.
    pub fn store(mut self, store: Arc<dyn KeyValueStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The producer whose channel and stores the messages go to (required):
    /// the one the application sends with (`send_in`), for its streams, its
    /// stores per class, its payload TTL and its backend retry.
    pub fn to(mut self, producer: &Producer) -> Self {
        self.producer = Some(producer.clone());
        self
    }

    /// The consumer group that reads the outbox (default [`RELAY_GROUP`]).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Messages per batch (default 100).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// How long [`OutboxRelay::run`] waits for new messages per read
    /// (default 1 s).
    pub fn block(mut self, timeout: Duration) -> Self {
        self.block = timeout;
        self
    }

    /// The relay.
    pub fn build(self) -> Result<OutboxRelay> {
        let missing = |what: &str| {
            Error::config(
                "outbox relay",
                format!("{what} is required: OutboxRelay::builder().channel(..).store(..).to(&producer)"),
            )
        };
        let producer = self.producer.ok_or_else(|| missing("to(&producer)"))?;
        let channel = self.channel.ok_or_else(|| missing("channel"))?;
        crate::names::check("group", &self.group)?;
        let outboxes = producer
            .targets()
            .iter()
            .map(|t| t.address.beside(OUTBOX_SUFFIX))
            .collect();
        Ok(OutboxRelay {
            outboxes,
            ensured: producer
                .streams()
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            store: self.store.ok_or_else(|| missing("store"))?,
            channel,
            producer,
            group: self.group,
            batch_size: self.batch_size,
            block: self.block,
            retry: RetryPolicy::default(),
        })
    }
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("outbox", &self.channel.backend())
            .field("streams", &self.producer.streams())
            .field("group", &self.group)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}
