use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ack::{self, AckTarget};
use super::context::ConsumerContext;
use super::counters::Counters;
use super::handler::{handler_fn, Handler, HandlerError};
use super::handling::Handling;
use super::held::Held;
use super::keep_alive::KeepAlive;
use super::lifetime::ConsumerLifetime;
use super::options::{AckMode, ClaimPolicy, Fallback};
use super::receiver::Receiver;
use super::replay::{self, EventStream, MessageStream};
use super::runtime::Runtime;
use super::settle::Settler;
use super::source::Source;
use super::window::Window;
use crate::capabilities::Ordering as MessageOrder;
use crate::channel::{EntryId, GroupStart, StreamChannel, StreamPosition};
use crate::contract::ContractEvent;
use crate::endpoint::{Endpoint, Resolved};
use crate::envelope::SegmentClass;
use crate::interceptor::ConsumerInterceptor;
use crate::names::validate;
use crate::privacy::{AsSubject, Erasure, PersonalData, SubjectExport};
use crate::retry::RetryPolicy;
use crate::store::KeyValueStore;
use crate::store_set::DEFAULT_STORE;
use crate::telemetry::instruments::ConsumerMetrics;
use crate::telemetry::lag::LagSampler;
use crate::{Error, Result};

/// Builds a consumer (or a replay stream, or a receiver); from
/// [`super::Consumer::builder`].
///
/// # Consumer names and crash recovery
///
/// Every member of a group has a name, and the entries it has read but not
/// acknowledged are pending *under that name*. A consumer that restarts under
/// the same name first takes back its own pending entries, at once. With the
/// default name (unique per consumer instance) a restarted process is a new
/// member: what the old one left is recovered only by the stale-entry claim,
/// after [`ClaimPolicy::min_idle`], and dead names pile up in the group. So
/// give long-lived services a stable name (`.consumer_name("billing-1")`),
/// one per replica.
#[must_use = "a builder does nothing until .subscribe(), .replay() or .receiver()"]
pub struct ConsumerBuilder {
    endpoint: Endpoint,
    group: String,
    consumer_name: Option<String>,
    group_start: GroupStart,
    batch_size: usize,
    concurrency: usize,
    ordering: MessageOrder,
    block: Duration,
    ack_mode: AckMode,
    handler_retry: RetryPolicy,
    backend_retry: RetryPolicy,
    max_deliveries: u32,
    redelivery: RetryPolicy,
    claim: Option<ClaimPolicy>,
    stop_after: Option<u64>,
    stop_when_empty: bool,
    cancellation: Option<CancellationToken>,
    fallback: Fallback,
    interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    personal: Option<PersonalData>,
    lag_every: Option<Duration>,
}

impl Default for ConsumerBuilder {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::default(),
            group: "default".to_owned(),
            consumer_name: None,
            group_start: GroupStart::Beginning,
            batch_size: 64,
            concurrency: 16,
            ordering: MessageOrder::None,
            block: Duration::from_secs(1),
            ack_mode: AckMode::OnSuccess,
            handler_retry: RetryPolicy::exponential(3),
            backend_retry: RetryPolicy::default(),
            max_deliveries: 5,
            redelivery: default_redelivery(),
            claim: Some(ClaimPolicy::default()),
            stop_after: None,
            stop_when_empty: false,
            cancellation: None,
            fallback: Fallback::DeadLetter,
            interceptors: Vec::new(),
            personal: None,
            lag_every: None,
        }
    }
}

impl ConsumerBuilder {
    /// The stream channel (required).
    pub fn channel(mut self, channel: Arc<dyn StreamChannel>) -> Self {
        self.endpoint.channel = Some(channel);
        self
    }

    /// The default store, where payloads are fetched from.
    pub fn store(mut self, store: Arc<dyn KeyValueStore>) -> Self {
        self.endpoint.stores.insert(DEFAULT_STORE, store);
        self
    }

    /// The store holding segments of one class (as the producer routed them).
    pub fn class_store(mut self, class: SegmentClass, store: Arc<dyn KeyValueStore>) -> Self {
        self.endpoint.stores.insert(class.as_str(), store);
        self
    }

    /// The uri (required).
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.endpoint.uri = Some(uri.into());
        self
    }

    /// The environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.endpoint.environment = Some(environment.into());
        self
    }

    /// Reads the environment from a variable (unset or empty: none).
    pub fn environment_from_var(mut self, variable: impl Into<String>) -> Self {
        self.endpoint.environment_var = Some(variable.into());
        self
    }

    /// Reads the uri's dead-letter stream (`{stream}:dead-letter`) instead
    /// of the stream itself: to replay, export or re-handle what consumers
    /// gave up on.
    pub fn dead_letters(mut self) -> Self {
        self.endpoint.dead_letters = true;
        self
    }

    /// The consumer group (default `default`). Groups each see every
    /// message; members of one group share them.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// This member's name in the group (default: unique per consumer
    /// instance). See the type docs on why a stable name matters.
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.consumer_name = Some(name.into());
        self
    }

    /// Where a new group starts (default: the beginning of the stream).
    pub fn group_start(mut self, start: GroupStart) -> Self {
        self.group_start = start;
        self
    }

    /// Entries per read (default 64).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Handlers in flight at once (default 16). With 1, messages are handled
    /// one at a time in the order read, but a failed message waiting for its
    /// redelivery lets the next ones pass: for an order that holds across
    /// redeliveries, see [`Self::ordering`].
    pub fn concurrency(mut self, handlers: usize) -> Self {
        self.concurrency = handlers.max(1);
        self
    }

    /// The order the consumer keeps (default [`Ordering::None`](MessageOrder::None): up to
    /// [`Self::concurrency`] messages at once, in any order).
    ///
    /// * [`Ordering::PerKey`](MessageOrder::PerKey): messages with different partition keys
    ///   ([`MessageBuilder::partition_key`](crate::producer::MessageBuilder::partition_key))
    ///   are handled concurrently, those with the same key one at a time, in
    ///   the order read. A failed message holds back the later ones of its
    ///   key (only) until it is handled or dead-lettered. Messages without a
    ///   key are not ordered.
    /// * [`Ordering::Stream`](MessageOrder::Stream): one message at a time, in the order read,
    ///   a failed one holding back all the others.
    ///
    /// The order read is the channel's (see its capabilities: Kafka with
    /// several partitions orders per key). At most `concurrency + batch size`
    /// messages are read and not yet settled: many messages of one slow key
    /// fill that window and slow the others down.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
    /// use event_backbone_core::{Consumer, ConsumerContext, Ordering};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
    /// let consumer = Consumer::builder()
    ///     .channel(Arc::new(MemoryChannel::new()))
    ///     .store(Arc::new(MemoryStore::new()))
    ///     .uri("accounts")
    ///     .concurrency(64)
    ///     .ordering(Ordering::PerKey)
    ///     .stop_when_empty()
    ///     .subscribe_fn(|ctx: ConsumerContext| async move {
    ///         // One account's messages never run at the same time.
    ///         let _account = ctx.metadata().partition_key();
    ///         Ok(())
    ///     })?;
    /// consumer.completion().await?;
    /// # Ok(()) }
    /// ```
    pub fn ordering(mut self, ordering: MessageOrder) -> Self {
        self.ordering = ordering;
        self
    }

    /// How long a read waits for new entries (default 1 s).
    pub fn block(mut self, timeout: Duration) -> Self {
        self.block = timeout;
        self
    }

    /// When messages are acknowledged (default on success).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// Retries of a failing handler within one delivery (default 3 attempts,
    /// from 100 ms, with jitter).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.handler_retry = policy;
        self
    }

    /// Retries of transient channel and store failures (default 8 attempts,
    /// about 6 to 11 s).
    pub fn backend_retry(mut self, policy: RetryPolicy) -> Self {
        self.backend_retry = policy;
        self
    }

    /// Deliveries after which a failing message goes to the dead-letter
    /// stream (default 5, at least 1).
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.max_deliveries = deliveries.max(1);
        self
    }

    /// How long a failed message waits before it is delivered again, by
    /// delivery count: the delay before delivery `n` is
    /// `policy.delay_before(n)` (its attempts are not used: the
    /// [maximum deliveries](Self::max_deliveries) count). The default waits
    /// 1 s, doubling up to 10 s, with jitter. The message waits in this
    /// consumer's hands, beside its read-ahead window (other keys go on),
    /// and on a channel with claim its idle time is kept short meanwhile,
    /// so that no member claims it, however long the backoff.
    pub fn redelivery_backoff(mut self, policy: RetryPolicy) -> Self {
        self.redelivery = policy;
        self
    }

    /// Claiming of stale pending entries (default every 5 s, idle 30 s).
    pub fn claim(mut self, policy: ClaimPolicy) -> Self {
        self.claim = Some(policy);
        self
    }

    /// Never claim other members' entries.
    pub fn no_claim(mut self) -> Self {
        self.claim = None;
        self
    }

    /// Stop after receiving this many entries (they are all settled first).
    pub fn stop_after(mut self, messages: u64) -> Self {
        self.stop_after = Some(messages);
        self
    }

    /// Stop when a read finds nothing new and nothing is in flight.
    pub fn stop_when_empty(mut self) -> Self {
        self.stop_when_empty = true;
        self
    }

    /// Samples the group's lag and pending count from
    /// [`StreamChannel::info`] every `interval`, into the gauges
    /// [`CONSUMER_LAG`](crate::telemetry::names::CONSUMER_LAG) and
    /// [`CONSUMER_PENDING`](crate::telemetry::names::CONSUMER_PENDING) of
    /// the installed `metrics` recorder, and once more when the consumer
    /// stops. Off by default: each sample is a round trip (on Kafka, a
    /// metadata and an offsets request).
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use event_backbone_core::{memory::MemoryChannel, Consumer};
    /// let builder = Consumer::builder()
    ///     .channel(Arc::new(MemoryChannel::new()))
    ///     .uri("orders")
    ///     .group("billing")
    ///     .sample_lag_every(Duration::from_secs(15));
    /// ```
    pub fn sample_lag_every(mut self, interval: Duration) -> Self {
        self.lag_every = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Stop (gracefully) when this token is cancelled.
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancellation = Some(token);
        self
    }

    /// What to do with operations no handler knows (default dead-letter).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Adds an interceptor; they run in the order added, on the way in.
    pub fn interceptor(mut self, interceptor: Arc<dyn ConsumerInterceptor>) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// The key vault and subject key to open sealed personal segments
    /// with ([`crate::privacy`]). Without it, a sealed segment is left out
    /// of its message ([`Message::sealed_segments`](crate::Message::sealed_segments))
    /// and reading it is [`Error::Sealed`](crate::Error::Sealed).
    pub fn personal_data(mut self, personal: PersonalData) -> Self {
        self.personal = Some(personal);
        self
    }

    /// Everything the stream holds about one data subject (GDPR article 15,
    /// right of access): each of its messages with the segments of classes
    /// other than `normal`, opened, in stream order. Needs
    /// [`Self::personal_data`]. Reads the whole stream, comparing subject
    /// hashes in the metadata, and fetches payloads only for the subject's
    /// messages.
    pub async fn export_subject(mut self, subject: impl AsSubject) -> Result<SubjectExport> {
        let source = self.source()?;
        let personal = self.required_personal("export a subject")?;
        super::subject::export(&source, &personal, subject, self.batch_size).await
    }

    /// Erases a data subject (GDPR article 17) and deletes what it can find
    /// of its data in this stream: first the subject's data keys
    /// ([`PersonalData::erase_subject`], which alone makes every sealed copy
    /// unreadable), then, to free their space, the payload keys of its
    /// messages' segments of classes other than `normal`. Needs
    /// [`Self::personal_data`]. Idempotent.
    pub async fn erase_subject(mut self, subject: impl AsSubject) -> Result<Erasure> {
        let source = self.source()?;
        let personal = self.required_personal("erase a subject")?;
        super::subject::erase(&source, &personal, subject, self.batch_size).await
    }

    fn required_personal(&self, what: &str) -> Result<PersonalData> {
        self.personal.clone().ok_or_else(|| {
            Error::config(
                "consumer",
                format!("to {what}, give the personal-data settings: `.personal_data(...)`"),
            )
        })
    }

    fn source(&mut self) -> Result<Source> {
        let Resolved {
            channel,
            stores,
            address,
        } = self.endpoint.resolve("consumer")?;
        Ok(Source {
            channel,
            stores,
            address,
            interceptors: std::mem::take(&mut self.interceptors),
            retry: self.backend_retry.clone(),
            personal: self.personal.clone(),
        })
    }

    /// Starts consuming with `handler` (for several, see
    /// [`super::Handlers`]). Must be called within a Tokio runtime.
    pub fn subscribe(mut self, handler: impl Handler) -> Result<ConsumerLifetime> {
        let source = Arc::new(self.source()?);
        let group = validate("group", &self.group)?;
        let consumer = match &self.consumer_name {
            Some(name) => validate("consumer name", name)?,
            None => default_consumer_name(),
        };
        let stop = self
            .cancellation
            .as_ref()
            .map(CancellationToken::child_token)
            .unwrap_or_default();
        let claims = source.channel.capabilities().claim;
        let held = Held::new(claims);
        let (acker, ack_task) = ack::spawn(AckTarget {
            channel: source.channel.clone(),
            stream: source.stream().to_owned(),
            group: group.clone(),
            retry: self.backend_retry.clone(),
            held: held.clone(),
        });
        let stream = source.stream().to_owned();
        let system = source.channel.backend();
        let metrics = Arc::new(ConsumerMetrics::new(system, &stream, &group));
        let lag = self.lag_every.map(|every| {
            LagSampler::new(source.channel.clone(), stream.clone(), group.clone(), every)
        });
        let keep_alive = claims.then(|| KeepAlive {
            source: source.clone(),
            group: group.clone(),
            consumer: consumer.clone(),
            held: held.clone(),
            interval: keep_alive_interval(self.claim),
        });
        let settler = Arc::new(Settler {
            source,
            group: group.clone(),
            consumer,
            handling: Handling {
                handler: Arc::new(handler),
                fallback: self.fallback,
                retry: self.handler_retry,
            },
            ack_mode: self.ack_mode,
            max_deliveries: self.max_deliveries,
            redelivery: self.redelivery,
            counters: Counters::new(metrics),
            acker,
            stop: stop.clone(),
            held,
            permits: Semaphore::new(self.concurrency),
        });
        let runtime = Runtime {
            settler,
            group_start: self.group_start,
            batch_size: self.batch_size,
            ordering: self.ordering,
            block: self.block,
            // Only a channel that declares claim is asked to.
            claim: self.claim.filter(|_| claims),
            window: window_for(self.ordering, self.concurrency, self.batch_size),
            keep_alive,
            stop_after: self.stop_after,
            stop_when_empty: self.stop_when_empty,
            lag,
        };
        let task = tokio::spawn(runtime.run(ack_task));
        Ok(ConsumerLifetime::new(task, stop, stream, group))
    }

    /// Starts consuming with an async closure that takes the context by
    /// value and handles every operation.
    pub fn subscribe_fn<F, Fut>(self, f: F) -> Result<ConsumerLifetime>
    where
        F: Fn(ConsumerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.subscribe(handler_fn(f))
    }

    /// Reads the stream's history without a group, from `from` to the end as
    /// it is when reached: the event-sourcing rebuild path. Entries that
    /// cannot be read come as errors in the stream.
    pub fn replay(mut self, from: StreamPosition) -> Result<MessageStream> {
        let source = Arc::new(self.source()?);
        Ok(replay::stream(source, from, None, self.batch_size))
    }

    /// Like [`Self::replay`], up to and including entry `to`.
    pub fn replay_range(mut self, from: StreamPosition, to: EntryId) -> Result<MessageStream> {
        let source = Arc::new(self.source()?);
        Ok(replay::stream(source, from, Some(to), self.batch_size))
    }

    /// Reads the stream's history as the typed events of contract `E`
    /// (`ShipmentTrackingEvent`, ...), from `from`: the event-sourcing
    /// rebuild path. Operations the contract does not have are left out;
    /// use [`Self::replay`] to see everything.
    pub fn replay_events<E: ContractEvent>(self, from: StreamPosition) -> Result<EventStream<E>> {
        Ok(replay::events(self.replay(from)?))
    }

    /// A receiver that fetches single messages by entry id.
    pub fn receiver(mut self) -> Result<Receiver> {
        Ok(Receiver::new(Arc::new(self.source()?)))
    }
}

/// The window of a consumer: `concurrency` messages in hand when
/// unordered; with an order, `concurrency + batch size`, so that lanes read
/// ahead to other keys, one key taking at most a quarter of it.
fn window_for(ordering: MessageOrder, concurrency: usize, batch_size: usize) -> Arc<Window> {
    match ordering {
        MessageOrder::None => Window::new(concurrency, concurrency),
        MessageOrder::Stream => Window::new(concurrency + batch_size, concurrency + batch_size),
        MessageOrder::PerKey => {
            let size = concurrency + batch_size;
            Window::new(size, size / 4)
        }
    }
}

/// How often held entries are touched: three times per claim idle (the
/// default claim's when this consumer does not claim), so that no member
/// with the same policy claims them.
fn keep_alive_interval(claim: Option<ClaimPolicy>) -> Duration {
    let idle = claim.unwrap_or_default().min_idle;
    (idle / 3).max(Duration::from_millis(10))
}

/// 1 s, doubling up to 10 s, with jitter.
fn default_redelivery() -> RetryPolicy {
    RetryPolicy::exponential(1)
        .initial_delay(Duration::from_secs(1))
        .max_delay(Duration::from_secs(10))
}

fn default_consumer_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(|| fastrand::u32(..));
    format!(
        "consumer-{}-{:08x}-{}",
        std::process::id(),
        process,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("endpoint", &self.endpoint)
            .field("group", &self.group)
            .field("consumer_name", &self.consumer_name)
            .field("ack_mode", &self.ack_mode)
            .finish_non_exhaustive()
    }
}
