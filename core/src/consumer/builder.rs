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
use super::runtime::Runtime;
use super::settle::Settler;
use super::source::Source;
use super::window::Window;
use crate::capabilities::Ordering as MessageOrder;
use crate::channel::GroupStart;
use crate::endpoint::{sealed::Sealed, EndpointBuilder, Reading};
use crate::interceptor::ConsumerInterceptor;
use crate::names::validate;
use crate::retry::RetryPolicy;
use crate::telemetry::instruments::ConsumerMetrics;
use crate::telemetry::lag::LagSampler;
use crate::Result;

/// Builds a consumer: a member of a consumer group that handles the
/// stream's messages; from [`super::Consumer::builder`]. It has the
/// setters every builder shares ([`EndpointBuilder`]: channel, stores, uri,
/// ...), those of every reader (interceptors, the dead-letter stream) and
/// the group's options below. Replays, receivers and requests by data
/// subject have builders of their own
/// ([`Replay::builder`](crate::Replay::builder),
/// [`Receiver::builder`](crate::Receiver::builder),
/// [`SubjectRequests::builder`](crate::SubjectRequests::builder)).
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
pub type ConsumerBuilder = EndpointBuilder<Consuming>;

/// The options only a consumer in a group has; see [`ConsumerBuilder`].
pub struct Consuming {
    interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    group: String,
    consumer_name: Option<String>,
    group_start: GroupStart,
    batch_size: usize,
    concurrency: usize,
    ordering: MessageOrder,
    block: Duration,
    ack_mode: AckMode,
    handler_retry: RetryPolicy,
    max_deliveries: u32,
    redelivery: RetryPolicy,
    claim: Option<ClaimPolicy>,
    stop_after: Option<u64>,
    stop_when_empty: bool,
    cancellation: Option<CancellationToken>,
    fallback: Fallback,
    lag_every: Option<Duration>,
}

impl Sealed for Consuming {}

impl Reading for Consuming {
    fn interceptors_mut(&mut self) -> &mut Vec<Arc<dyn ConsumerInterceptor>> {
        &mut self.interceptors
    }
}

impl Default for Consuming {
    fn default() -> Self {
        Self {
            interceptors: Vec::new(),
            group: "default".to_owned(),
            consumer_name: None,
            group_start: GroupStart::Beginning,
            batch_size: 64,
            concurrency: 16,
            ordering: MessageOrder::None,
            block: Duration::from_secs(1),
            ack_mode: AckMode::OnSuccess,
            handler_retry: RetryPolicy::exponential(3),
            max_deliveries: 5,
            redelivery: default_redelivery(),
            claim: Some(ClaimPolicy::default()),
            stop_after: None,
            stop_when_empty: false,
            cancellation: None,
            fallback: Fallback::DeadLetter,
            lag_every: None,
        }
    }
}

impl EndpointBuilder<Consuming> {
    /// The consumer group (default `default`). Groups each see every
    /// message; members of one group share them.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.role.group = group.into();
        self
    }

    /// This member's name in the group (default: unique per consumer
    /// instance). See the type docs on why a stable name matters.
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.role.consumer_name = Some(name.into());
        self
    }

    /// Where a new group starts (default: the beginning of the stream).
    pub fn group_start(mut self, start: GroupStart) -> Self {
        self.role.group_start = start;
        self
    }

    /// Entries per read (default 64).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.role.batch_size = size.max(1);
        self
    }

    /// Handlers in flight at once (default 16). With 1, messages are handled
    /// one at a time in the order read, but a failed message waiting for its
    /// redelivery lets the next ones pass: for an order that holds across
    /// redeliveries, see [`Self::ordering`].
    pub fn concurrency(mut self, handlers: usize) -> Self {
        self.role.concurrency = handlers.max(1);
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
        self.role.ordering = ordering;
        self
    }

    /// How long a read waits for new entries (default 1 s).
    pub fn block(mut self, timeout: Duration) -> Self {
        self.role.block = timeout;
        self
    }

    /// When messages are acknowledged (default on success).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.role.ack_mode = mode;
        self
    }

    /// Retries of a failing handler within one delivery (default 3 attempts,
    /// from 100 ms, with jitter).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.role.handler_retry = policy;
        self
    }

    /// Deliveries after which a failing message goes to the dead-letter
    /// stream (default 5, at least 1).
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.role.max_deliveries = deliveries.max(1);
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
        self.role.redelivery = policy;
        self
    }

    /// Claiming of stale pending entries (default every 5 s, idle 30 s).
    pub fn claim(mut self, policy: ClaimPolicy) -> Self {
        self.role.claim = Some(policy);
        self
    }

    /// Never claim other members' entries.
    pub fn no_claim(mut self) -> Self {
        self.role.claim = None;
        self
    }

    /// Stop after receiving this many entries (they are all settled first).
    pub fn stop_after(mut self, messages: u64) -> Self {
        self.role.stop_after = Some(messages);
        self
    }

    /// Stop when a read finds nothing new and nothing is in flight.
    pub fn stop_when_empty(mut self) -> Self {
        self.role.stop_when_empty = true;
        self
    }

    /// Samples the group's lag and pending count from
    /// [`StreamChannel::info`](crate::StreamChannel::info) every `interval`, into the gauges
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
        self.role.lag_every = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Stop (gracefully) when this token is cancelled.
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.role.cancellation = Some(token);
        self
    }

    /// What to do with operations no handler knows (default dead-letter).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.role.fallback = fallback;
        self
    }

    /// Starts consuming with `handler` (for several, see
    /// [`super::Handlers`]). Must be called within a Tokio runtime.
    pub fn subscribe(mut self, handler: impl Handler) -> Result<ConsumerLifetime> {
        let source = Arc::new(Source::resolve(&mut self, "consumer")?);
        let group = validate("group", &self.role.group)?;
        let consumer = match &self.role.consumer_name {
            Some(name) => validate("consumer name", name)?,
            None => default_consumer_name(),
        };
        let stop = self
            .role
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
            retry: source.retry.clone(),
            held: held.clone(),
        });
        let stream = source.stream().to_owned();
        let system = source.channel.backend();
        let metrics = Arc::new(ConsumerMetrics::new(system, &stream, &group));
        let lag = self.role.lag_every.map(|every| {
            LagSampler::new(source.channel.clone(), stream.clone(), group.clone(), every)
        });
        let keep_alive = claims.then(|| KeepAlive {
            source: source.clone(),
            group: group.clone(),
            consumer: consumer.clone(),
            held: held.clone(),
            interval: keep_alive_interval(self.role.claim),
        });
        let process_span = crate::telemetry::spans::name("process", source.stream());
        let settler = Arc::new(Settler {
            source,
            group: group.clone(),
            process_span,
            consumer,
            handling: Handling {
                handler: Arc::new(handler),
                fallback: self.role.fallback,
                retry: self.role.handler_retry,
            },
            ack_mode: self.role.ack_mode,
            max_deliveries: self.role.max_deliveries,
            redelivery: self.role.redelivery,
            counters: Counters::new(metrics),
            acker,
            stop: stop.clone(),
            held,
            permits: Semaphore::new(self.role.concurrency),
        });
        let runtime = Runtime {
            settler,
            group_start: self.role.group_start,
            batch_size: self.role.batch_size,
            ordering: self.role.ordering,
            block: self.role.block,
            // Only a channel that declares claim is asked to.
            claim: self.role.claim.filter(|_| claims),
            window: window_for(
                self.role.ordering,
                self.role.concurrency,
                self.role.batch_size,
            ),
            keep_alive,
            stop_after: self.role.stop_after,
            stop_when_empty: self.role.stop_when_empty,
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

impl fmt::Debug for Consuming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consuming")
            .field("group", &self.group)
            .field("consumer_name", &self.consumer_name)
            .field("ack_mode", &self.ack_mode)
            .field("ordering", &self.ordering)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}
