//! What the channel cases share: the capability checks that decide which
//! cases apply, sample entries, reading and polling, a ledger of handled
//! messages.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::capabilities::{ChannelCapabilities, Ordering};
use crate::channel::{EntryId, GroupStart, StreamPosition};
use crate::consumer::{ConsumerContext, HandlerError};
use crate::envelope::{MessageId, Metadata, Origin, SegmentClass, SegmentLocation, SegmentRef};
use crate::testkit::{CaseFailure, CaseResult, ChannelHarness};
use crate::Result;

pub(super) const WAIT: Duration = Duration::from_secs(60);

pub(super) const SHORT_BLOCK: Duration = Duration::from_millis(100);

pub(super) fn always(_: &ChannelCapabilities) -> Result<(), &'static str> {
    Ok(())
}

pub(super) fn needs_groups(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.consumer_groups {
        Ok(())
    } else {
        Err("the channel does not declare consumer groups")
    }
}

pub(super) fn needs_claim(c: &ChannelCapabilities) -> Result<(), &'static str> {
    needs_groups(c)?;
    if c.claim {
        Ok(())
    } else {
        Err("the channel does not declare claiming of stale entries")
    }
}

pub(super) fn needs_durable_counts(c: &ChannelCapabilities) -> Result<(), &'static str> {
    needs_groups(c)?;
    if c.durable_delivery_counts {
        Ok(())
    } else {
        Err("the channel does not declare delivery counts that outlive a consumer")
    }
}

pub(super) fn needs_parallel_members(c: &ChannelCapabilities) -> Result<(), &'static str> {
    needs_groups(c)?;
    if c.parallel_members {
        Ok(())
    } else {
        Err("members of one group do not receive entries at the same time on this channel")
    }
}

pub(super) fn needs_list_streams(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.list_streams {
        Ok(())
    } else {
        Err("the channel does not declare list_streams")
    }
}

pub(super) fn needs_replay(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.replay {
        Ok(())
    } else {
        Err("the channel does not declare replay")
    }
}

pub(super) fn needs_get(c: &ChannelCapabilities) -> Result<(), &'static str> {
    if c.get_by_id {
        Ok(())
    } else {
        Err("the channel does not declare get by id")
    }
}

/// A [`ChannelCase`] of a case function and the check of whether it applies.
macro_rules! channel_case {
    ($name:ident, $applies:expr) => {
        channel_case!($name, $applies, alone: false)
    };
    ($name:ident, $applies:expr, alone: $alone:expr) => {
        ChannelCase {
            name: stringify!($name),
            applies: $applies,
            run: |h| Box::pin(async move { $name(&h).await }),
            alone: $alone,
        }
    };
}
pub(super) use channel_case;

pub(super) fn sample(stream: &str, n: u32) -> Metadata {
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
        // Every other entry names a subject: the channel keeps the field.
        subject: (n % 2 == 1).then(|| crate::privacy::SubjectHash::from_bytes([n as u8; 16])),
    }
}

pub(super) fn header_n(m: &Metadata) -> Option<u32> {
    m.headers.get("n").and_then(|n| n.parse().ok())
}

/// A new stream with group `g` (from the beginning) and `n` samples.
pub(super) async fn grouped(
    h: &ChannelHarness,
    name: &str,
    n: u32,
) -> Result<(String, Vec<EntryId>)> {
    let stream = h.uri(name);
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    let ids = append_samples(h, &stream, n).await?;
    Ok((stream, ids))
}

/// Sends `n` messages of `operation` with segment `i` = 0, 1, ...
pub(super) async fn send_numbered(
    producer: &crate::Producer,
    operation: &str,
    n: u32,
) -> Result<()> {
    for i in 0..n {
        producer.message(operation).segment("i", &i)?.send().await?;
    }
    Ok(())
}

/// The pending count of a group, `None` if the group is unknown.
pub(super) async fn pending(h: &ChannelHarness, stream: &str, group: &str) -> Result<Option<u64>> {
    Ok(h.channel
        .info(stream)
        .await?
        .group(group)
        .map(|g| g.pending))
}

/// Whether the channel reads a stream in append order (else per key only:
/// the cases then compare what was read as a set).
pub(super) fn stream_ordered(h: &ChannelHarness) -> bool {
    h.channel.capabilities().ordering == Ordering::Stream
}

/// `v` sorted when the channel does not order the whole stream.
pub(super) fn in_channel_order(h: &ChannelHarness, mut v: Vec<u32>) -> Vec<u32> {
    if !stream_ordered(h) {
        v.sort_unstable();
    }
    v
}

/// Reads until `n` entries came or a read returns none: a read may return
/// fewer than asked (a channel with partitions delivers them as they come).
pub(super) async fn read_n(
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

pub(super) fn delivered_ns(read: &[crate::Delivery]) -> Vec<u32> {
    read.iter()
        .filter_map(|d| d.entry.body.as_ref().ok().and_then(header_n))
        .collect()
}

pub(super) async fn append_samples(
    h: &ChannelHarness,
    stream: &str,
    n: u32,
) -> Result<Vec<EntryId>> {
    let batch: Vec<Metadata> = (0..n).map(|i| sample(stream, i)).collect();
    h.channel.append_many(stream, &batch).await
}

/// Every entry of a stream: by replay where the channel declares it, else
/// through a group of its own (`inspect`) from the beginning.
pub(super) async fn stream_entries(h: &ChannelHarness, stream: &str) -> Result<Vec<crate::Entry>> {
    if h.channel.capabilities().replay {
        let mut entries = Vec::new();
        let mut from = StreamPosition::Start;
        loop {
            let page = h.channel.read_range(stream, &from, None, 100).await?;
            let Some(last) = page.last() else {
                return Ok(entries);
            };
            from = StreamPosition::After(last.id.clone());
            entries.extend(page);
        }
    }
    h.channel
        .ensure_group(stream, "inspect", GroupStart::Beginning)
        .await?;
    // Reads ask for what is left of this bound, a count every server takes
    // (a `usize::MAX` would overflow a server's 64-bit signed count).
    let read = read_n(h, stream, "inspect", "c", 10_000).await?;
    Ok(read.into_iter().map(|d| d.entry).collect())
}

/// Consumes the one message of stream `name` (group `default`).
pub(super) async fn receive_one(
    h: &ChannelHarness,
    name: &str,
) -> Result<crate::Message, CaseFailure> {
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
pub(super) async fn poll_until<F, Fut>(what: &str, mut check: F) -> CaseResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    // A transient error (a slow broker's timeout) is "not yet"; it is
    // reported if the wait runs out.
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if e.is_transient() => last_error = Some(e),
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() > WAIT {
            let error = last_error.map_or_else(String::new, |e| format!(" (last error: {e})"));
            return Err(CaseFailure::new(format!(
                "timed out after {WAIT:?} waiting for {what}{error}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records what a subscription handled.
#[derive(Clone, Default)]
pub(super) struct Ledger(Arc<Mutex<Vec<(String, ConsumerContext)>>>);

impl Ledger {
    pub(super) fn record(&self, who: &str, ctx: &ConsumerContext) {
        self.0.lock().unwrap().push((who.to_owned(), ctx.clone()));
    }
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub(super) fn contexts(&self) -> Vec<(String, ConsumerContext)> {
        self.0.lock().unwrap().clone()
    }
}

/// The handler calls of a subscription, per message: how many, in what
/// order, and whether two ran at once.
#[derive(Clone, Default)]
pub(super) struct Runs(Arc<Mutex<RunsState>>);

#[derive(Default)]
struct RunsState {
    running: std::collections::HashSet<crate::MessageId>,
    /// Messages a handler started while another call of it ran.
    overlaps: Vec<crate::MessageId>,
    /// (message id, delivery count) of every call, in the order started.
    calls: Vec<(crate::MessageId, u32)>,
    /// Calls that returned `Ok`, per message.
    handled: BTreeMap<crate::MessageId, u32>,
}

impl Runs {
    /// Notes that a call starts.
    pub(super) fn start(&self, ctx: &ConsumerContext) {
        let mut state = self.0.lock().unwrap();
        let id = ctx.message_id();
        if !state.running.insert(id) {
            state.overlaps.push(id);
        }
        state.calls.push((id, ctx.delivery_count()));
    }

    /// Notes that a call ended, handled or not.
    pub(super) fn end(&self, ctx: &ConsumerContext, handled: bool) {
        let mut state = self.0.lock().unwrap();
        let id = ctx.message_id();
        state.running.remove(&id);
        if handled {
            *state.handled.entry(id).or_default() += 1;
        }
    }

    /// Calls started.
    pub(super) fn calls(&self) -> usize {
        self.0.lock().unwrap().calls.len()
    }

    /// The (message id, delivery count) of every call, in order.
    pub(super) fn call_list(&self) -> Vec<(crate::MessageId, u32)> {
        self.0.lock().unwrap().calls.clone()
    }

    /// Messages handled at least once.
    pub(super) fn handled(&self) -> usize {
        self.0.lock().unwrap().handled.len()
    }

    /// Messages handled more than once, with how often.
    pub(super) fn handled_twice(&self) -> Vec<(crate::MessageId, u32)> {
        let state = self.0.lock().unwrap();
        state
            .handled
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (*id, *n))
            .collect()
    }

    /// Messages a call of which started while another ran.
    pub(super) fn overlaps(&self) -> Vec<crate::MessageId> {
        self.0.lock().unwrap().overlaps.clone()
    }

    /// Runs `body` as a handler call, recorded.
    pub(super) async fn run<F>(&self, ctx: &ConsumerContext, body: F) -> Result<(), HandlerError>
    where
        F: Future<Output = Result<(), HandlerError>>,
    {
        self.start(ctx);
        let result = body.await;
        self.end(ctx, result.is_ok());
        result
    }
}

/// A backend retry for cases that outlast it on purpose: three attempts
/// within about 60 ms.
pub(super) fn quick_backend_retry() -> crate::RetryPolicy {
    crate::RetryPolicy::exponential(3)
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(40))
        .jitter(false)
}

/// The redelivery backoff of the cases: 50 ms, no jitter.
pub(super) fn quick_redelivery() -> crate::RetryPolicy {
    crate::RetryPolicy::none()
        .initial_delay(Duration::from_millis(50))
        .jitter(false)
}

/// The length of a stream (0 when it does not exist).
pub(super) async fn length(h: &ChannelHarness, stream: &str) -> Result<u64> {
    Ok(h.channel.info(stream).await?.length)
}
