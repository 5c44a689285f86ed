//! The channel suite: what every [`crate::StreamChannel`] must do, through
//! the trait and through the producer and consumer runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::report::{CaseFailure, CaseResult, ChannelCase};
use super::{ensure, ChannelHarness};
use crate::address::dead_letter_key;
use crate::capabilities::{ChannelCapabilities, Ordering};
use crate::channel::{EntryId, GroupStart, StreamPosition};
use crate::consumer::{
    AckMode, ClaimPolicy, ConsumerContext, Handler, HandlerError, Outcome,
    HEADER_DEAD_LETTER_ENTRY, HEADER_DEAD_LETTER_REASON,
};
use crate::envelope::{MessageId, Metadata, Origin, SegmentClass, SegmentLocation, SegmentRef};
use crate::retry::RetryPolicy;
use crate::{Result, Segments, StreamAddress};

const WAIT: Duration = Duration::from_secs(60);
const SHORT_BLOCK: Duration = Duration::from_millis(100);

fn always(_: &ChannelCapabilities) -> Result<(), &'static str> {
    Ok(())
}

fn needs_groups(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.consumer_groups {
        Ok(())
    } else {
        Err("the channel does not declare consumer groups")
    }
}

fn needs_claim(c: &ChannelCapabilities) -> Result<(), &'static str> {
    needs_groups(c)?;
    if c.claim {
        Ok(())
    } else {
        Err("the channel does not declare claiming of stale entries")
    }
}

fn needs_parallel_members(c: &ChannelCapabilities) -> Result<(), &'static str> {
    needs_groups(c)?;
    if c.parallel_members {
        Ok(())
    } else {
        Err("members of one group do not receive entries at the same time on this channel")
    }
}

fn needs_replay(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.replay {
        Ok(())
    } else {
        Err("the channel does not declare replay")
    }
}

fn needs_get(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.get_by_id {
        Ok(())
    } else {
        Err("the channel does not declare get by id")
    }
}

macro_rules! channel_case {
    ($name:ident, $applies:expr) => {
        ChannelCase {
            name: stringify!($name),
            applies: $applies,
            run: |h| Box::pin(async move { $name(&h).await }),
        }
    };
}

/// Every case of the channel suite, in order.
pub fn channel_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(append_then_read_in_order, needs_groups),
        channel_case!(append_many_keeps_order_500, needs_replay),
        channel_case!(two_groups_each_get_every_message, needs_groups),
        channel_case!(
            one_group_splits_1000_without_loss_or_duplicate,
            needs_parallel_members
        ),
        channel_case!(unacked_entry_is_claimed_after_min_idle, needs_claim),
        channel_case!(ack_removes_from_pending, needs_groups),
        channel_case!(batch_size_is_respected, needs_groups),
        channel_case!(block_timeout_returns_empty, needs_groups),
        channel_case!(replay_from_start_and_from_id, needs_replay),
        channel_case!(replay_from_a_time, needs_replay),
        channel_case!(get_by_id, needs_get),
        channel_case!(group_from_beginning_vs_latest, needs_groups),
        channel_case!(ensure_group_is_idempotent, needs_groups),
        channel_case!(twenty_producers_times_100_arrive_exactly_once, needs_groups),
        channel_case!(one_mib_payload, needs_groups),
        channel_case!(unicode_and_binary_segments, needs_groups),
        channel_case!(streams_isolated_by_uri_and_environment, needs_groups),
        channel_case!(info_reports_length_and_pending, needs_groups),
        channel_case!(failed_handler_is_redelivered, needs_claim),
        channel_case!(dead_letter_after_max_deliveries, needs_claim),
        channel_case!(unknown_operation_is_dead_lettered, needs_groups),
        channel_case!(manual_ack_leaves_unacked_pending, needs_groups),
        channel_case!(shutdown_finishes_in_flight_and_loses_nothing, needs_groups),
        channel_case!(empty_stream_reads_are_empty, always),
    ]
}

fn sample(stream: &str, n: u32) -> Metadata {
    Metadata {
        message_id: MessageId::new(),
        operation: "sample".to_owned(),
        version: 1,
        uri: stream.to_owned(),
        environment: None,
        produced_at_ms: 1_700_000_000_000 + u64::from(n),
        origin: Origin::Original,
        content_type: "application/postcard".to_owned(),
        correlation_id: Some(format!("corr-{n}")),
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        headers: BTreeMap::from([("n".to_owned(), n.to_string())]),
        segments: vec![SegmentRef {
            name: "n".to_owned(),
            class: SegmentClass::NORMAL,
            location: SegmentLocation::Inline(Bytes::from(n.to_le_bytes().to_vec())),
        }],
    }
}

fn header_n(m: &Metadata) -> Option<u32> {
    m.headers.get("n").and_then(|n| n.parse().ok())
}

/// A new stream with group `g` (from the beginning) and `n` samples.
async fn grouped(h: &ChannelHarness, name: &str, n: u32) -> Result<(String, Vec<EntryId>)> {
    let stream = h.uri(name);
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    let ids = append_samples(h, &stream, n).await?;
    Ok((stream, ids))
}

/// Sends `n` messages of `operation` with segment `i` = 0, 1, ...
async fn send_numbered(producer: &crate::Producer, operation: &str, n: u32) -> Result<()> {
    for i in 0..n {
        producer.message(operation).segment("i", &i)?.send().await?;
    }
    Ok(())
}

/// The pending count of a group, `None` if the group is unknown.
async fn pending(h: &ChannelHarness, stream: &str, group: &str) -> Result<Option<u64>> {
    Ok(h.channel
        .info(stream)
        .await?
        .group(group)
        .map(|g| g.pending))
}

/// Whether the channel reads a stream in append order (else per key only:
/// the cases then compare what was read as a set).
fn stream_ordered(h: &ChannelHarness) -> bool {
    h.channel.capabilities().ordering == Ordering::Stream
}

/// `v` sorted when the channel does not order the whole stream.
fn in_channel_order(h: &ChannelHarness, mut v: Vec<u32>) -> Vec<u32> {
    if !stream_ordered(h) {
        v.sort_unstable();
    }
    v
}

/// Reads until `n` entries came or a read returns none: a read may return
/// fewer than asked (a channel with partitions delivers them as they come).
async fn read_n(
    h: &ChannelHarness,
    stream: &str,
    group: &str,
    consumer: &str,
    n: usize,
) -> Result<Vec<crate::Delivery>> {
    let mut out = Vec::new();
    while out.len() < n {
        let read = h
            .channel
            .read_group(stream, group, consumer, n - out.len(), SHORT_BLOCK)
            .await?;
        if read.is_empty() {
            break;
        }
        out.extend(read);
    }
    Ok(out)
}

fn delivered_ns(read: &[crate::Delivery]) -> Vec<u32> {
    read.iter()
        .filter_map(|d| d.entry.body.as_ref().ok().and_then(header_n))
        .collect()
}

async fn append_samples(h: &ChannelHarness, stream: &str, n: u32) -> Result<Vec<EntryId>> {
    let batch: Vec<Metadata> = (0..n).map(|i| sample(stream, i)).collect();
    h.channel.append_many(stream, &batch).await
}

/// Consumes the one message of stream `name` (group `default`).
async fn receive_one(h: &ChannelHarness, name: &str) -> Result<crate::Message, CaseFailure> {
    let received = Arc::new(Mutex::new(None));
    let r = received.clone();
    h.consumer(name)
        .stop_after(1)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() = Some(ctx.message().clone());
                Ok::<(), HandlerError>(())
            }
        })?
        .completion()
        .await?;
    let got = received.lock().unwrap().take();
    got.ok_or_else(|| CaseFailure::new(format!("the consumer of {name:?} received nothing")))
}

/// Polls `check` until it returns true, failing after [`WAIT`].
async fn poll_until<F, Fut>(what: &str, mut check: F) -> CaseResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            return Err(CaseFailure::new(format!(
                "timed out after {WAIT:?} waiting for {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records what a subscription handled.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<(String, ConsumerContext)>>>);

impl Ledger {
    fn record(&self, who: &str, ctx: &ConsumerContext) {
        self.0.lock().unwrap().push((who.to_owned(), ctx.clone()));
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn contexts(&self) -> Vec<(String, ConsumerContext)> {
        self.0.lock().unwrap().clone()
    }
}

/// Appended entries are read back by a group in order, metadata intact.
pub async fn append_then_read_in_order(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("in-order");
    let written: Vec<Metadata> = (0..10).map(|i| sample(&stream, i)).collect();
    let first = h.channel.append(&stream, &written[0]).await?;
    let rest = h.channel.append_many(&stream, &written[1..]).await?;
    ensure!(
        rest.len() == 9,
        "append_many of 9 returned {} ids",
        rest.len()
    );
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    let mut read = read_n(h, &stream, "g", "c1", 100).await?;
    ensure!(read.len() == 10, "read {} of 10 entries", read.len());
    let mut appended: Vec<EntryId> = std::iter::once(first).chain(rest).collect();
    if !stream_ordered(h) {
        // Per-key order only: match entries to what was written by id.
        read.sort_by(|a, b| a.entry.id.cmp(&b.entry.id));
        let mut pairs: Vec<(EntryId, Metadata)> = appended
            .iter()
            .cloned()
            .zip(written.iter().cloned())
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        appended = pairs.iter().map(|(id, _)| id.clone()).collect();
        let written: Vec<Metadata> = pairs.into_iter().map(|(_, m)| m).collect();
        return check_read(&read, &written, &appended);
    }
    check_read(&read, &written, &appended)
}

fn check_read(read: &[crate::Delivery], written: &[Metadata], ids: &[EntryId]) -> CaseResult {
    for (i, ((d, w), id)) in read.iter().zip(written).zip(ids).enumerate() {
        let got = d
            .entry
            .body
            .as_ref()
            .map_err(|m| CaseFailure::new(format!("entry {i} malformed: {}", m.reason)))?;
        ensure!(got == w, "entry {i} differs:\n got {got:?}\nwant {w:?}");
        ensure!(
            d.entry.id == *id,
            "entry {i} has id {}, append returned {id}",
            d.entry.id
        );
        ensure!(
            d.delivery_count == 1,
            "entry {i} delivery count {} on first delivery",
            d.delivery_count
        );
    }
    Ok(())
}

/// `append_many` of 500 returns 500 distinct ids, in stream order.
pub async fn append_many_keeps_order_500(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("order-500");
    let ids = append_samples(h, &stream, 500).await?;
    let distinct: BTreeSet<&EntryId> = ids.iter().collect();
    ensure!(
        ids.len() == 500 && distinct.len() == 500,
        "{} ids, {} distinct",
        ids.len(),
        distinct.len()
    );
    let mut read = Vec::new();
    let mut from = StreamPosition::Start;
    loop {
        let page = h.channel.read_range(&stream, &from, None, 128).await?;
        let Some(last) = page.last() else { break };
        from = StreamPosition::After(last.id.clone());
        read.extend(page);
        ensure!(read.len() <= 500, "paging returned more than 500 entries");
    }
    ensure!(
        read.len() == 500,
        "replay found {} of 500 entries",
        read.len()
    );
    if !stream_ordered(h) {
        // Paging must still give every entry once.
        let got: BTreeSet<&EntryId> = read.iter().map(|e| &e.id).collect();
        ensure!(
            got == distinct,
            "paging gave other ids than append returned"
        );
        return Ok(());
    }
    for (i, (e, id)) in read.iter().zip(&ids).enumerate() {
        ensure!(
            e.id == *id,
            "position {i}: id {} but append returned {id}",
            e.id
        );
        let n = e.body.as_ref().ok().and_then(header_n);
        ensure!(n == Some(i as u32), "position {i} holds entry {n:?}");
    }
    Ok(())
}

/// Two groups each receive every entry.
pub async fn two_groups_each_get_every_message(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("two-groups");
    h.channel
        .ensure_group(&stream, "a", GroupStart::Beginning)
        .await?;
    h.channel
        .ensure_group(&stream, "b", GroupStart::Beginning)
        .await?;
    append_samples(h, &stream, 50).await?;
    for group in ["a", "b"] {
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let read = h
                .channel
                .read_group(&stream, group, "c", 20, SHORT_BLOCK)
                .await?;
            if read.is_empty() {
                break;
            }
            seen.extend(
                read.iter()
                    .filter_map(|d| d.entry.body.as_ref().ok().and_then(header_n)),
            );
        }
        let expected: Vec<u32> = (0..50).collect();
        let seen = in_channel_order(h, seen);
        ensure!(seen == expected, "group {group} saw {seen:?}");
    }
    Ok(())
}

/// Two consumers of one group split 1,000 messages: none lost, none twice,
/// both did some.
pub async fn one_group_splits_1000_without_loss_or_duplicate(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("split")?;
    let ledger = Ledger::default();
    let mut lifetimes = Vec::new();
    for name in ["first", "second"] {
        let ledger = ledger.clone();
        lifetimes.push(
            h.consumer("split")
                .group("workers")
                .consumer_name(name)
                .batch_size(10)
                .concurrency(1)
                .block(SHORT_BLOCK)
                .subscribe_fn(move |ctx: ConsumerContext| {
                    let ledger = ledger.clone();
                    async move {
                        ledger.record(name, &ctx);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        Ok::<(), HandlerError>(())
                    }
                })?,
        );
    }
    send_numbered(&producer, "work", 1000).await?;
    poll_until("1000 messages handled", || async {
        Ok(ledger.len() >= 1000)
    })
    .await?;
    for l in lifetimes {
        l.shutdown().await?;
    }
    let handled = ledger.contexts();
    let mut per_consumer: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (who, ctx) in &handled {
        *per_consumer.entry(who.clone()).or_default() += 1;
        let i: u32 = ctx.segment("i")?;
        ensure!(seen.insert(i), "message {i} handled twice");
    }
    ensure!(
        seen.len() == 1000,
        "handled {} distinct of 1000",
        seen.len()
    );
    ensure!(per_consumer.len() == 2, "only {per_consumer:?} did work");
    Ok(())
}

/// An entry read but not acknowledged is claimed by another member only
/// after `min_idle`, with delivery count 2.
pub async fn unacked_entry_is_claimed_after_min_idle(h: &ChannelHarness) -> CaseResult {
    let (stream, ids) = grouped(h, "claim", 1).await?;
    let first = h
        .channel
        .read_group(&stream, "g", "crashed", 10, SHORT_BLOCK)
        .await?;
    ensure!(first.len() == 1, "read {} entries, expected 1", first.len());
    let min_idle = Duration::from_millis(500);
    let early = h
        .channel
        .claim_stale(&stream, "g", "rescuer", min_idle, 10)
        .await?;
    ensure!(
        early.is_empty(),
        "claimed {} entries before min idle",
        early.len()
    );
    tokio::time::sleep(min_idle + Duration::from_millis(200)).await;
    let claimed = h
        .channel
        .claim_stale(&stream, "g", "rescuer", min_idle, 10)
        .await?;
    ensure!(
        claimed.len() == 1,
        "claimed {} entries after min idle, expected 1",
        claimed.len()
    );
    ensure!(
        claimed[0].entry.id == ids[0],
        "claimed {} instead of {}",
        claimed[0].entry.id,
        ids[0]
    );
    ensure!(
        claimed[0].delivery_count == 2,
        "delivery count {} after one claim, expected 2",
        claimed[0].delivery_count
    );
    ensure!(claimed[0].entry.body.is_ok(), "claimed entry is unreadable");
    let again = h
        .channel
        .claim_stale(&stream, "g", "third", min_idle, 10)
        .await?;
    ensure!(
        again.is_empty(),
        "the claim did not reset the idle time: claimed again at once"
    );
    h.channel.ack(&stream, "g", &[ids[0].clone()]).await?;
    let pending = pending(h, &stream, "g").await?;
    ensure!(
        pending == Some(0),
        "pending {pending:?} after the rescuer's ack"
    );
    Ok(())
}

/// Acknowledged entries leave the pending list; others stay.
pub async fn ack_removes_from_pending(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "ack", 5).await?;
    let read = read_n(h, &stream, "g", "c", 5).await?;
    ensure!(read.len() == 5, "read {} of 5", read.len());
    let before = pending(h, &stream, "g").await?;
    ensure!(
        before == Some(5),
        "pending {before:?} after reading 5, expected 5"
    );
    let ids: Vec<EntryId> = read.iter().take(3).map(|d| d.entry.id.clone()).collect();
    h.channel.ack(&stream, "g", &ids).await?;
    let after = pending(h, &stream, "g").await?;
    ensure!(
        after == Some(2),
        "pending {after:?} after acking 3 of 5, expected 2"
    );
    h.channel.ack(&stream, "g", &ids).await?;
    let twice = pending(h, &stream, "g").await?;
    ensure!(
        twice == Some(2),
        "acking again changed pending to {twice:?}"
    );
    let next = h
        .channel
        .read_group(&stream, "g", "c", 10, SHORT_BLOCK)
        .await?;
    ensure!(
        next.is_empty(),
        "acked or pending entries were delivered again as new: {}",
        next.len()
    );
    Ok(())
}

/// A read returns at most `count` entries.
pub async fn batch_size_is_respected(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "batch", 10).await?;
    let mut sizes = Vec::new();
    loop {
        let read = h
            .channel
            .read_group(&stream, "g", "c", 3, SHORT_BLOCK)
            .await?;
        if read.is_empty() {
            break;
        }
        sizes.push(read.len());
    }
    if stream_ordered(h) {
        ensure!(
            sizes == [3, 3, 3, 1],
            "batch sizes {sizes:?}, expected [3, 3, 3, 1]"
        );
    } else {
        // Partitions deliver as they come: no read above 3, 10 in all.
        ensure!(
            sizes.iter().all(|&n| n <= 3) && sizes.iter().sum::<usize>() == 10,
            "batch sizes {sizes:?}, expected reads of at most 3 adding up to 10"
        );
    }
    Ok(())
}

/// A read on a stream with nothing new waits about the block timeout and
/// returns empty; a read that finds an entry appended while it waits
/// returns it.
pub async fn block_timeout_returns_empty(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("block");
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    let start = Instant::now();
    let read = h
        .channel
        .read_group(&stream, "g", "c", 10, Duration::from_millis(300))
        .await?;
    let waited = start.elapsed();
    ensure!(
        read.is_empty(),
        "read {} entries from an empty stream",
        read.len()
    );
    ensure!(
        waited >= Duration::from_millis(200),
        "returned after {waited:?}, before the 300 ms block"
    );
    ensure!(
        waited < Duration::from_secs(10),
        "blocked {waited:?} for a 300 ms timeout"
    );

    let channel = h.channel.clone();
    let s = stream.clone();
    let reader = tokio::spawn(async move {
        channel
            .read_group(&s, "g", "c", 10, Duration::from_secs(10))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    append_samples(h, &stream, 1).await?;
    let woke = reader
        .await
        .map_err(|e| CaseFailure::new(format!("reader task: {e}")))??;
    ensure!(
        woke.len() == 1,
        "a blocked read got {} entries after an append",
        woke.len()
    );
    Ok(())
}

/// Replay from the start, from an id (inclusive), after an id, up to an id,
/// with a count; and through the consumer's replay stream.
pub async fn replay_from_start_and_from_id(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("replay");
    append_samples(h, &stream, 10).await?;
    let ns = |entries: &[crate::Entry]| -> Vec<u32> {
        entries
            .iter()
            .filter_map(|e| e.body.as_ref().ok().and_then(header_n))
            .collect()
    };
    // The replay order: append order on a stream-ordered channel; on others
    // whatever order the channel replays in, which positions must respect.
    let all = h
        .channel
        .read_range(&stream, &StreamPosition::Start, None, 100)
        .await?;
    let order = ns(&all);
    ensure!(
        in_channel_order(h, order.clone()) == (0..10).collect::<Vec<_>>(),
        "replay from the start: {order:?}, expected 0 to 9"
    );
    let at = |n: u32| -> &EntryId {
        let i = order.iter().position(|&x| x == n).expect("replayed");
        &all[i].id
    };
    let (n4, n6) = (order[4], order[6]);
    let cases = [
        (
            "from the 5th entry",
            StreamPosition::From(at(n4).clone()),
            None,
            100,
            order[4..].to_vec(),
        ),
        (
            "after the 5th entry",
            StreamPosition::After(at(n4).clone()),
            None,
            100,
            order[5..].to_vec(),
        ),
        (
            "from the 5th to the 7th entry",
            StreamPosition::From(at(n4).clone()),
            Some(at(n6)),
            100,
            order[4..=6].to_vec(),
        ),
        (
            "from the start, count 2",
            StreamPosition::Start,
            None,
            2,
            order[..2].to_vec(),
        ),
    ];
    for (label, from, to, count, expected) in cases {
        let got = ns(&h.channel.read_range(&stream, &from, to, count).await?);
        ensure!(
            got == expected,
            "replay {label}: {got:?}, expected {expected:?}"
        );
    }

    let producer = h.producer("replay-typed")?;
    send_numbered(&producer, "counted", 25).await?;
    let replayed: Vec<_> = h
        .consumer("replay-typed")
        .batch_size(7)
        .replay(StreamPosition::Start)?
        .collect()
        .await;
    let mut got = Vec::new();
    for m in replayed {
        got.push(m?.segment::<u32>("i")?);
    }
    let got = in_channel_order(h, got);
    ensure!(
        got == (0..25).collect::<Vec<_>>(),
        "replay stream gave {got:?}"
    );
    Ok(())
}

/// Replay from a time gives the entries appended at or after it; the
/// receiver finds a message by its message id.
pub async fn replay_from_a_time(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("time");
    append_samples(h, &stream, 3).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let between = crate::producer::now_ms();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later: Vec<Metadata> = (10..13).map(|i| sample(&stream, i)).collect();
    h.channel.append_many(&stream, &later).await?;
    let read = h
        .channel
        .read_range(&stream, &StreamPosition::Time(between), None, 100)
        .await?;
    let ns: Vec<u32> = read
        .iter()
        .filter_map(|e| e.body.as_ref().ok().and_then(header_n))
        .collect();
    let ns = in_channel_order(h, ns);
    ensure!(
        ns == [10, 11, 12],
        "replay from a time between the batches gave {ns:?}"
    );
    let future = crate::producer::now_ms() + 60_000;
    let none = h
        .channel
        .read_range(&stream, &StreamPosition::Time(future), None, 100)
        .await?;
    ensure!(
        none.is_empty(),
        "replay from a future time gave {} entries",
        none.len()
    );

    let producer = h.producer("find")?;
    let mut receipts = Vec::new();
    for i in 0..5u32 {
        receipts.push(producer.message("n").segment("i", &i)?.send().await?);
    }
    let receiver = h.consumer("find").receiver()?;
    let found = receiver.find(receipts[3].message_id).await?;
    let i = found.map(|m| m.segment::<u32>("i")).transpose()?;
    ensure!(i == Some(3), "find by message id returned {i:?}");
    let missing = receiver.find(crate::MessageId::new()).await?;
    ensure!(
        missing.is_none(),
        "find of an unknown message id returned a message"
    );
    Ok(())
}

/// One entry by id; an id not in the stream is `None`.
pub async fn get_by_id(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("get");
    let ids = append_samples(h, &stream, 3).await?;
    let got = h.channel.get(&stream, &ids[1]).await?;
    let n = got
        .as_ref()
        .and_then(|e| e.body.as_ref().ok())
        .and_then(header_n);
    ensure!(n == Some(1), "get({}) returned entry {n:?}", ids[1]);
    ensure!(
        got.map(|e| e.id) == Some(ids[1].clone()),
        "get returned another id"
    );
    let elsewhere = h.channel.get(&h.uri("get-empty"), &ids[1]).await?;
    ensure!(
        elsewhere.is_none(),
        "an id from another stream was found: {elsewhere:?}"
    );

    let producer = h.producer("get-typed")?;
    let receipt = producer
        .message("one")
        .segment("text", "hello")?
        .send()
        .await?;
    let message = h
        .consumer("get-typed")
        .receiver()?
        .get(receipt.entry_id())
        .await?;
    let message = message.ok_or_else(|| CaseFailure::new("the receiver found no message"))?;
    ensure!(
        message.message_id() == receipt.message_id,
        "the receiver returned another message"
    );
    let text: String = message.segment("text")?;
    ensure!(text == "hello", "the receiver's payload is {text:?}");
    Ok(())
}

/// A group from the beginning sees old entries; one from latest only new.
pub async fn group_from_beginning_vs_latest(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("start");
    append_samples(h, &stream, 3).await?;
    h.channel
        .ensure_group(&stream, "early", GroupStart::Beginning)
        .await?;
    h.channel
        .ensure_group(&stream, "late", GroupStart::Latest)
        .await?;
    let new = vec![sample(&stream, 100), sample(&stream, 101)];
    h.channel.append_many(&stream, &new).await?;
    let early = in_channel_order(
        h,
        delivered_ns(&read_n(h, &stream, "early", "c", 100).await?),
    );
    let late = in_channel_order(
        h,
        delivered_ns(&read_n(h, &stream, "late", "c", 100).await?),
    );
    ensure!(
        early == [0, 1, 2, 100, 101],
        "group from the beginning saw {early:?}"
    );
    ensure!(late == [100, 101], "group from latest saw {late:?}");
    Ok(())
}

/// Ensuring an existing group leaves its position and pending list alone.
pub async fn ensure_group_is_idempotent(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "ensure", 4).await?;
    let first = read_n(h, &stream, "g", "c", 2).await?;
    ensure!(first.len() == 2, "read {} of 2", first.len());
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    h.channel
        .ensure_group(&stream, "g", GroupStart::Latest)
        .await?;
    let rest = read_n(h, &stream, "g", "c", 10).await?;
    let ns = delivered_ns(&rest);
    if stream_ordered(h) {
        ensure!(
            ns == [2, 3],
            "after ensure_group again the group read {ns:?}, expected [2, 3]"
        );
    } else {
        let mut all = delivered_ns(&first);
        all.extend(&ns);
        all.sort_unstable();
        ensure!(
            all == [0, 1, 2, 3],
            "after ensure_group again the group read {ns:?} besides {:?}",
            delivered_ns(&first)
        );
    }
    let pending = pending(h, &stream, "g").await?;
    ensure!(pending == Some(4), "pending {pending:?}, expected 4");
    Ok(())
}

/// 20 tasks send 100 messages each through one producer: each arrives
/// exactly once, and in each task's order where the channel orders streams.
pub async fn twenty_producers_times_100_arrive_exactly_once(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("many-producers")?;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20u32 {
        let producer = producer.clone();
        tasks.spawn(async move {
            for i in 0..100u32 {
                producer
                    .message("sent")
                    .segment("t", &t)?
                    .segment("i", &i)?
                    .send()
                    .await?;
            }
            Ok::<_, crate::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| CaseFailure::new(format!("producer task: {e}")))??;
    }
    let ledger = Ledger::default();
    let l = ledger.clone();
    let stats = h
        .consumer("many-producers")
        .concurrency(1)
        .batch_size(100)
        .stop_after(2000)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let l = l.clone();
            async move {
                l.record("c", &ctx);
                Ok::<(), HandlerError>(())
            }
        })?
        .completion()
        .await?;
    ensure!(stats.handled == 2000, "handled {} of 2000", stats.handled);
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    let ordered = h.channel.capabilities().ordering == Ordering::Stream;
    for (_, ctx) in ledger.contexts() {
        let t: u32 = ctx.segment("t")?;
        let i: u32 = ctx.segment("i")?;
        ensure!(seen.insert((t, i)), "({t}, {i}) arrived twice");
        if ordered {
            if let Some(prev) = last.insert(t, i) {
                ensure!(prev < i, "task {t}: {i} arrived after {prev}");
            }
        }
    }
    ensure!(seen.len() == 2000, "{} distinct of 2000", seen.len());
    Ok(())
}

/// A 1 MiB segment travels through the store, not the stream, and comes back
/// byte for byte.
pub async fn one_mib_payload(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("big")?;
    let blob: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    let mut segments = Segments::new();
    segments.insert("blob", blob.clone());
    let receipt = producer.send("upload", 0, segments).await?;
    let stream = producer.streams()[0].to_owned();
    let entries = h
        .channel
        .read_range(&stream, &StreamPosition::Start, None, 10)
        .await;
    if let Ok(entries) = entries {
        if let Some(Ok(m)) = entries.first().map(|e| &e.body) {
            let inline: usize = m
                .segments
                .iter()
                .map(|s| match &s.location {
                    SegmentLocation::Inline(b) => b.len(),
                    SegmentLocation::Stored { .. } | SegmentLocation::Standard => 0,
                })
                .sum();
            ensure!(
                inline == 0,
                "{inline} payload bytes travelled in the stream"
            );
        }
    }
    let got = receive_one(h, "big").await?;
    let bytes = got.raw_segment("blob").cloned();
    ensure!(
        got.message_id() == receipt.message_id,
        "received another message"
    );
    ensure!(
        bytes.as_deref() == Some(&blob[..]),
        "the 1 MiB segment came back as {:?} bytes",
        bytes.map(|b| b.len())
    );
    Ok(())
}

/// Segment names in any script and values with every byte survive.
pub async fn unicode_and_binary_segments(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("unicode")?;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut segments = Segments::new();
    segments.insert("данные", all_bytes.clone());
    segments.insert("名前", b"\xff\xfe\x00".to_vec());
    segments.insert("emoji🎉 name", Vec::new());
    segments.insert_classed("pérsönal", SegmentClass::PERSONAL, b"\x00\x01".to_vec());
    producer.send("ünïcödé.op", 3, segments.clone()).await?;
    let got = receive_one(h, "unicode").await?;
    ensure!(
        got.operation() == "ünïcödé.op" && got.version() == 3,
        "operation {:?} v{}",
        got.operation(),
        got.version()
    );
    ensure!(
        got.segments() == &segments,
        "segments differ: {:?} vs {:?}",
        got.segments(),
        segments
    );
    Ok(())
}

/// Streams of different uris or environments do not see each other.
pub async fn streams_isolated_by_uri_and_environment(h: &ChannelHarness) -> CaseResult {
    let x = h.uri("iso-x");
    let y = h.uri("iso-y");
    let addresses = [
        (Some("envA"), &x),
        (Some("envB"), &x),
        (None, &x),
        (Some("envA"), &y),
    ];
    for (marker, (env, uri)) in addresses.iter().enumerate() {
        let mut builder = crate::Producer::builder()
            .channel(h.channel.clone())
            .store(h.store.clone())
            .uri(uri.as_str());
        if let Some(env) = env {
            builder = builder.environment(*env);
        }
        builder
            .build()?
            .message("mark")
            .segment("marker", &(marker as u32))?
            .send()
            .await?;
    }
    for (marker, (env, uri)) in addresses.iter().enumerate() {
        let stream = StreamAddress::new(*env, uri)?.stream_key().to_owned();
        let entries = h
            .channel
            .read_range(&stream, &StreamPosition::Start, None, 10)
            .await;
        let count = match entries {
            Ok(e) => e.len(),
            Err(_) => {
                h.channel
                    .ensure_group(&stream, "iso", GroupStart::Beginning)
                    .await?;
                h.channel
                    .read_group(&stream, "iso", "c", 10, SHORT_BLOCK)
                    .await?
                    .len()
            }
        };
        ensure!(
            count == 1,
            "stream {stream:?} holds {count} entries, expected only its own"
        );
        let mut consumer = h
            .consumer("unused")
            .uri(uri.as_str())
            .group("iso2")
            .stop_after(1);
        if let Some(env) = env {
            consumer = consumer.environment(*env);
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        consumer
            .subscribe_fn(move |ctx: ConsumerContext| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(ctx.segment::<u32>("marker")?);
                    Ok::<(), HandlerError>(())
                }
            })?
            .completion()
            .await?;
        let seen = seen.lock().unwrap().clone();
        ensure!(
            seen == [marker as u32],
            "stream {stream:?} delivered markers {seen:?}, expected [{marker}]"
        );
    }
    Ok(())
}

/// `info` reports the length, and per group the pending count (and lag,
/// when known).
pub async fn info_reports_length_and_pending(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "info", 5).await?;
    let read = read_n(h, &stream, "g", "c", 3).await?;
    ensure!(read.len() == 3, "read {} of 3", read.len());
    h.channel
        .ack(&stream, "g", &[read[0].entry.id.clone()])
        .await?;
    let info = h.channel.info(&stream).await?;
    ensure!(info.length == 5, "length {} after 5 appends", info.length);
    let g = info
        .group("g")
        .ok_or_else(|| CaseFailure::new(format!("group g missing from {info:?}")))?;
    ensure!(
        g.pending == 2,
        "pending {}, expected 2 (3 read, 1 acked)",
        g.pending
    );
    if let Some(lag) = g.lag {
        ensure!(lag == 2, "lag {lag}, expected 2 unread");
    }
    let empty = h.channel.info(&h.uri("info-none")).await?;
    ensure!(
        empty.length == 0 && empty.groups.is_empty(),
        "a stream never written reports {empty:?}"
    );
    Ok(())
}

/// A handler that fails is given the message again (delivery count 2) and
/// then succeeds; nothing is dead-lettered.
pub async fn failed_handler_is_redelivered(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("redeliver")?;
    producer.message("flaky").segment("x", &1u8)?.send().await?;
    let counts = Arc::new(Mutex::new(Vec::new()));
    let c = counts.clone();
    let lifetime = h
        .consumer("redeliver")
        .retry(RetryPolicy::none())
        .block(Duration::from_millis(50))
        .claim(ClaimPolicy {
            interval: Duration::from_millis(50),
            min_idle: Duration::from_millis(200),
        })
        .subscribe_fn(move |ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.lock().unwrap().push(ctx.delivery_count());
                if ctx.delivery_count() < 2 {
                    return Err(HandlerError::from("first delivery fails"));
                }
                Ok(())
            }
        })?;
    let stream = producer.streams()[0].to_owned();
    poll_until("the second delivery to be acked", || async {
        let done = counts.lock().unwrap().len() >= 2;
        let pending = pending(h, &stream, "default").await?;
        Ok(done && pending == Some(0))
    })
    .await?;
    let stats = lifetime.shutdown().await?;
    let counts = counts.lock().unwrap().clone();
    ensure!(
        counts == [1, 2],
        "deliveries seen {counts:?}, expected [1, 2]"
    );
    ensure!(
        stats.dead_lettered == 0,
        "{} dead-lettered",
        stats.dead_lettered
    );
    Ok(())
}

/// After the maximum deliveries the message goes to `{stream}:dead-letter`
/// with the reason and the original ids, and the original is acknowledged.
pub async fn dead_letter_after_max_deliveries(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("dlq")?;
    let receipt = producer
        .message("poison")
        .segment("x", &7u32)?
        .send()
        .await?;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let lifetime = h
        .consumer("dlq")
        .retry(RetryPolicy::none())
        .max_deliveries(2)
        .block(Duration::from_millis(50))
        .claim(ClaimPolicy {
            interval: Duration::from_millis(50),
            min_idle: Duration::from_millis(200),
        })
        .subscribe_fn(move |_ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.fetch_add(1, AtomicOrdering::SeqCst);
                Err::<(), _>(HandlerError::from("always fails"))
            }
        })?;
    let stream = producer.streams()[0].to_owned();
    let dlq = dead_letter_key(&stream);
    poll_until("a dead letter and no pending entry", || async {
        let dead = h.channel.info(&dlq).await?.length;
        let pending = pending(h, &stream, "default").await?;
        Ok(dead == 1 && pending == Some(0))
    })
    .await?;
    let stats = lifetime.shutdown().await?;
    ensure!(
        calls.load(AtomicOrdering::SeqCst) == 2,
        "handler called {} times for max 2 deliveries",
        calls.load(AtomicOrdering::SeqCst)
    );
    ensure!(
        stats.dead_lettered == 1,
        "stats report {} dead letters",
        stats.dead_lettered
    );
    let dead = dead_letters(h, &dlq).await?;
    let m = &dead[0];
    let reason = m
        .headers
        .get(HEADER_DEAD_LETTER_REASON)
        .cloned()
        .unwrap_or_default();
    ensure!(
        reason.contains("always fails") && reason.contains("2 deliveries"),
        "reason {reason:?}"
    );
    ensure!(
        m.headers.get(HEADER_DEAD_LETTER_ENTRY) == Some(&receipt.entry_id().to_string()),
        "entry header {:?}",
        m.headers.get(HEADER_DEAD_LETTER_ENTRY)
    );
    ensure!(
        m.origin
            == Origin::Copy {
                original: receipt.message_id
            },
        "origin {:?}",
        m.origin
    );
    ensure!(m.operation == "poison", "operation {:?}", m.operation);
    Ok(())
}

async fn dead_letters(h: &ChannelHarness, dlq: &str) -> Result<Vec<Metadata>, CaseFailure> {
    let entries = match h
        .channel
        .read_range(dlq, &StreamPosition::Start, None, 10)
        .await
    {
        Ok(e) => e,
        Err(_) => {
            h.channel
                .ensure_group(dlq, "inspect", GroupStart::Beginning)
                .await?;
            h.channel
                .read_group(dlq, "inspect", "c", 10, SHORT_BLOCK)
                .await?
                .into_iter()
                .map(|d| d.entry)
                .collect()
        }
    };
    entries
        .into_iter()
        .map(|e| {
            e.body
                .map_err(|m| CaseFailure::new(format!("unreadable dead letter: {}", m.reason)))
        })
        .collect()
}

struct KnowsOnly(&'static str);

#[async_trait]
impl Handler for KnowsOnly {
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        Ok(if ctx.operation() == self.0 {
            Outcome::Handled
        } else {
            Outcome::Unknown
        })
    }
}

/// A message no handler knows goes to the dead-letter stream with reason
/// `unknown operation`; the known one is handled.
pub async fn unknown_operation_is_dead_lettered(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("unknown")?;
    producer.message("known").send().await?;
    producer.message("mystery").version(4).send().await?;
    let stats = h
        .consumer("unknown")
        .stop_after(2)
        .subscribe(KnowsOnly("known"))?
        .completion()
        .await?;
    ensure!(
        stats.handled == 1 && stats.dead_lettered == 1,
        "stats {stats:?}"
    );
    let dlq = dead_letter_key(producer.streams()[0]);
    let dead = dead_letters(h, &dlq).await?;
    ensure!(dead.len() == 1, "{} dead letters", dead.len());
    let reason = dead[0]
        .headers
        .get(HEADER_DEAD_LETTER_REASON)
        .cloned()
        .unwrap_or_default();
    ensure!(
        reason.contains("unknown operation") && reason.contains("mystery"),
        "reason {reason:?}"
    );
    let pending = pending(h, producer.streams()[0], "default").await?;
    ensure!(pending == Some(0), "pending {pending:?}");
    Ok(())
}

/// With manual acknowledgement, only what the handler acked leaves pending.
pub async fn manual_ack_leaves_unacked_pending(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("manual")?;
    send_numbered(&producer, "m", 4).await?;
    h.consumer("manual")
        .ack_mode(AckMode::Manual)
        .no_claim()
        .stop_after(4)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            if ctx.segment::<u32>("i")? % 2 == 0 {
                ctx.ack();
            }
            Ok::<(), HandlerError>(())
        })?
        .completion()
        .await?;
    let pending = pending(h, producer.streams()[0], "default").await?;
    ensure!(
        pending == Some(2),
        "pending {pending:?}, expected the 2 messages not acked"
    );
    Ok(())
}

/// Shutdown stops fetching, lets in-flight handlers finish and acks them; a
/// later consumer of the group handles the rest: every message once.
pub async fn shutdown_finishes_in_flight_and_loses_nothing(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("shutdown")?;
    send_numbered(&producer, "slow", 20).await?;
    let started = Arc::new(AtomicU32::new(0));
    let finished = Arc::new(AtomicU32::new(0));
    let ledger = Ledger::default();
    let handler = {
        let (started, finished, ledger) = (started.clone(), finished.clone(), ledger.clone());
        move |ctx: ConsumerContext| {
            let (started, finished, ledger) = (started.clone(), finished.clone(), ledger.clone());
            async move {
                started.fetch_add(1, AtomicOrdering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                ledger.record("first", &ctx);
                finished.fetch_add(1, AtomicOrdering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let lifetime = h
        .consumer("shutdown")
        .group("g")
        .batch_size(4)
        .concurrency(4)
        .block(SHORT_BLOCK)
        .subscribe_fn(handler)?;
    poll_until("a handler to start", || async {
        Ok(started.load(AtomicOrdering::SeqCst) > 0)
    })
    .await?;
    lifetime.shutdown().await?;
    let (s, f) = (
        started.load(AtomicOrdering::SeqCst),
        finished.load(AtomicOrdering::SeqCst),
    );
    ensure!(
        s == f,
        "{s} handlers started but only {f} finished at shutdown"
    );
    ensure!(f < 20, "shutdown did not stop fetching: all {f} handled");
    let stream = producer.streams()[0].to_owned();
    let pending = pending(h, &stream, "g").await?;
    ensure!(
        pending == Some(0),
        "pending {pending:?} after a graceful shutdown"
    );

    let l = ledger.clone();
    h.consumer("shutdown")
        .group("g")
        .block(SHORT_BLOCK)
        .stop_when_empty()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let l = l.clone();
            async move {
                l.record("second", &ctx);
                Ok::<(), HandlerError>(())
            }
        })?
        .completion()
        .await?;
    let mut seen = BTreeSet::new();
    for (who, ctx) in ledger.contexts() {
        let i: u32 = ctx.segment("i")?;
        ensure!(
            seen.insert(i),
            "message {i} handled twice (second time by {who})"
        );
    }
    ensure!(seen.len() == 20, "{} of 20 handled in all", seen.len());
    Ok(())
}

/// Reads of a stream that was never written are empty, not errors.
pub async fn empty_stream_reads_are_empty(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("never-written");
    let caps = h.channel.capabilities();
    if caps.replay {
        let entries = h
            .channel
            .read_range(&stream, &StreamPosition::Start, None, 10)
            .await?;
        ensure!(
            entries.is_empty(),
            "read_range of a new stream returned {}",
            entries.len()
        );
    }
    let info = h.channel.info(&stream).await?;
    ensure!(info.length == 0, "info of a new stream: {info:?}");
    if caps.consumer_groups {
        h.channel
            .ensure_group(&stream, "g", GroupStart::Beginning)
            .await?;
        let read = h
            .channel
            .read_group(&stream, "g", "c", 10, Duration::from_millis(50))
            .await?;
        ensure!(
            read.is_empty(),
            "read_group of a new stream returned {}",
            read.len()
        );
    }
    Ok(())
}
