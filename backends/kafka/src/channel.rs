//! [`KafkaStreamChannel`]: one topic per stream, Kafka consumer groups.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_backbone_core::{
    ChannelCapabilities, Delivery, Entry, EntryId, GroupInfo, GroupStart, Metadata, Ordering,
    Result, StreamChannel, StreamInfo, StreamPosition,
};
use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::entry::{self, position};
use crate::error::{backend, protocol};
use crate::member::{offsets, Member, MemberContext};
use crate::topic::topic_of;
use crate::tracker::Tracker;

/// A [`StreamChannel`] on Kafka: each stream is a topic (see
/// [`topic_of`](crate::topic_of)), created on first use with the configured
/// partitions and replication.
///
/// * append: the record value is the encoded metadata, headers carry the
///   message id, operation, `traceparent` and correlation id in plain text,
///   and a `partition-key` message header becomes the record key;
/// * consumer groups are Kafka groups, one per stream (the Kafka group id
///   is `{topic}/{group}`, see [`group_id`]); an acknowledgement moves the
///   group's offset up to the lowest entry still pending, never past it
///   (at-least-once, also with concurrency > 1), and the member commits it
///   every [commit interval](KafkaConfig::commit_interval), when it loses
///   partitions and when it leaves;
/// * no claiming of another member's pending entries: when a member goes
///   away, a rebalance gives its partitions to the others, which resume from
///   the committed offset;
/// * replay and get-by-id read without a group (an entry id is
///   `partition:offset`); with several partitions a replay gives partition
///   0, then 1, and so on, each in order (the order per key).
///
/// Pending counts and the groups listed by [`StreamChannel::info`] are those
/// of the members in this process; the length and the lag come from the
/// broker.
#[derive(Clone)]
pub struct KafkaStreamChannel {
    inner: Arc<Inner>,
}

/// (topic, group)
type GroupKey = (String, String);

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// A group-less consumer for metadata, replay and lookups (blocking
    /// calls, made on the blocking pool one at a time).
    reader: Arc<Mutex<BaseConsumer>>,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    /// Members by (topic, group, consumer name).
    members: Mutex<HashMap<(String, String, String), Arc<Member>>>,
    /// Groups used through this channel, by topic.
    groups: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Entries that members of this process left unacknowledged when they
    /// left, by (topic, group): pending until redelivered and acknowledged.
    orphans: Mutex<HashMap<GroupKey, BTreeSet<(i32, i64)>>>,
}

impl KafkaStreamChannel {
    /// Creates the clients (no connection is made until first use).
    pub fn new(config: KafkaConfig) -> crate::Result<Self> {
        // Defaults that a setting of the user's overrides.
        let producer: FutureProducer = config
            .client_config(&[("enable.idempotence", "true")])
            .create()
            .map_err(crate::Error::Client)?;
        let admin: AdminClient<DefaultClientContext> = config
            .client_config(&[])
            .create()
            .map_err(crate::Error::Client)?;
        let reader: BaseConsumer = config
            .client_config(&[
                ("enable.auto.commit", "false"),
                ("allow.auto.create.topics", "false"),
                ("group.id", "event-backbone-reader"),
            ])
            .create()
            .map_err(crate::Error::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                reader: Arc::new(Mutex::new(reader)),
                topics: Mutex::new(HashSet::new()),
                members: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                orphans: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Creates the clients and checks that a broker answers (within the
    /// request timeout), so that a wrong address fails here, clearly.
    pub async fn connect(config: KafkaConfig) -> Result<Self> {
        let channel = Self::new(config)?;
        channel
            .with_reader(|reader, config| {
                // One topic's metadata, not all of them: cheap on a busy cluster.
                reader
                    .fetch_metadata(Some("event-backbone.probe"), config.timeout)
                    .map(|_| ())
                    .map_err(|e| {
                        backend(
                            format!("connecting to the Kafka brokers {}", config.brokers),
                            e,
                        )
                    })
            })
            .await?;
        Ok(channel)
    }

    /// From `KAFKA_EVENT_SOURCE_BROKERS` (no connection is made until first
    /// use).
    pub fn from_env() -> crate::Result<Self> {
        Self::new(KafkaConfig::from_env()?)
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// Creates the topic if it does not exist.
    async fn ensure_topic(&self, topic: &str) -> Result<()> {
        if self.inner.topics.lock().expect("topics").contains(topic) {
            return Ok(());
        }
        let c = &self.inner.config;
        let new = NewTopic::new(topic, c.partitions, TopicReplication::Fixed(c.replication));
        let options = AdminOptions::new().operation_timeout(Some(c.timeout));
        let action = || format!("creating topic {topic:?}");
        let results = self
            .inner
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| backend(action(), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(backend(action(), KafkaError::AdminOp(code))),
            }
        }
        self.inner
            .topics
            .lock()
            .expect("topics")
            .insert(topic.to_owned());
        Ok(())
    }

    /// Runs a blocking call on the group-less reader.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer, &KafkaConfig) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let reader = inner.reader.lock().expect("reader");
            f(&reader, &inner.config)
        })
        .await
        .map_err(|e| protocol("reading without a group", e.to_string()))?
    }

    fn remember_group(&self, topic: &str, group: &str) -> bool {
        self.inner
            .groups
            .lock()
            .expect("groups")
            .entry(topic.to_owned())
            .or_default()
            .insert(group.to_owned())
    }

    fn member(&self, topic: &str, group: &str, consumer: &str) -> Result<Arc<Member>> {
        let key = (topic.to_owned(), group.to_owned(), consumer.to_owned());
        let mut members = self.inner.members.lock().expect("members");
        if let Some(m) = members.get(&key) {
            return Ok(m.clone());
        }
        // A shorter fetch wait than librdkafka's 500 ms, for latency. The
        // session timeout stays librdkafka's (45 s): a shorter one makes a
        // member that waits on a slow fetch lose its partitions and read
        // them again from the committed offset, over and over.
        let every = self.inner.config.commit_interval.as_millis().max(1);
        let mut c = self.inner.config.client_config(&[
            ("fetch.wait.max.ms", "100"),
            ("auto.commit.interval.ms", &every.to_string()),
        ]);
        // Acknowledgements store offsets; librdkafka commits what is stored.
        c.set("group.id", group_id(topic, group))
            .set("client.id", consumer)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false");
        let context = MemberContext {
            tracker: Mutex::new(Tracker::default()),
            topic: topic.to_owned(),
            joined: AtomicBool::new(false),
            primed: AtomicBool::new(false),
            drain: self.inner.config.rebalance_drain,
        };
        let action = || format!("joining group {group:?} on topic {topic:?} as {consumer:?}");
        let kafka: StreamConsumer<MemberContext> = c
            .create_with_context(context)
            .map_err(|e| backend(action(), e))?;
        kafka
            .subscribe(&[topic])
            .map_err(|e| backend(action(), e))?;
        let member = Arc::new(Member {
            consumer: kafka,
            topic: topic.to_owned(),
        });
        members.insert(key, member.clone());
        Ok(member)
    }

    /// The partitions assigned to `member` that hold entries it has not
    /// delivered: after what it delivered, else after the group's committed
    /// offset, else after their start.
    async fn partitions_waiting(&self, member: &Arc<Member>, group: &str) -> Result<BTreeSet<i32>> {
        let member = member.clone();
        let group = group.to_owned();
        self.with_reader(move |reader, config| {
            let topic = member.topic.clone();
            let action = || format!("reading the offsets of group {group:?} on {topic:?}");
            let assigned = member
                .consumer
                .assignment()
                .map_err(|e| backend(action(), e))?;
            let ps: Vec<i32> = assigned
                .elements_for_topic(&topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            if ps.is_empty() {
                return Ok(BTreeSet::new());
            }
            let marks = watermarks(reader, config, &topic, &ps)?;
            let committed = committed_map(
                &member
                    .consumer
                    .committed(config.timeout)
                    .map_err(|e| backend(action(), e))?,
                &topic,
            );
            let tracker = member.tracker().lock().expect("tracker");
            Ok(marks
                .iter()
                .filter(|&&(p, low, high)| {
                    let from = tracker
                        .delivered_end(p)
                        .or_else(|| committed.get(&p).copied())
                        .unwrap_or(low)
                        .max(low);
                    from < high
                })
                .map(|&(p, ..)| p)
                .collect())
        })
        .await
    }

    /// Forgets left-behind entries that are delivered or acknowledged again.
    fn adopt(&self, topic: &str, group: &str, entries: &[(i32, i64)]) {
        let mut orphans = self.inner.orphans.lock().expect("orphans");
        if let Some(set) = orphans.get_mut(&(topic.to_owned(), group.to_owned())) {
            for e in entries {
                set.remove(e);
            }
        }
    }

    fn orphaned(&self, topic: &str, group: &str) -> u64 {
        self.inner
            .orphans
            .lock()
            .expect("orphans")
            .get(&(topic.to_owned(), group.to_owned()))
            .map_or(0, |s| s.len() as u64)
    }

    fn members_of(&self, topic: &str, group: &str) -> Vec<Arc<Member>> {
        self.inner
            .members
            .lock()
            .expect("members")
            .iter()
            .filter(|((t, g, _), _)| t == topic && g == group)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

impl fmt::Debug for KafkaStreamChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaStreamChannel")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Partitions of a topic, `None` if it does not exist.
fn partitions(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
) -> Result<Option<Vec<i32>>> {
    let metadata = reader
        .fetch_metadata(Some(topic), config.timeout)
        .map_err(|e| backend(format!("reading the metadata of topic {topic:?}"), e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None => {}
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(None),
        Some(e) => {
            return Err(backend(
                format!("reading the metadata of topic {topic:?}"),
                KafkaError::MetadataFetch(e.into()),
            ))
        }
    }
    if t.partitions().is_empty() {
        return Ok(None);
    }
    let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ps.sort_unstable();
    Ok(Some(ps))
}

/// (low, high) watermarks of each partition.
fn watermarks(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64, i64)>> {
    partitions
        .iter()
        .map(
            |&p| match reader.fetch_watermarks(topic, p, config.timeout) {
                Ok((low, high)) => Ok((p, low, high)),
                // A topic created a moment ago, not yet known to every client:
                // it is empty.
                Err(e)
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::UnknownPartition
                                | RDKafkaErrorCode::UnknownTopicOrPartition
                        )
                    ) =>
                {
                    Ok((p, 0, 0))
                }
                Err(e) => Err(backend(format!("reading the offsets of {topic:?}/{p}"), e)),
            },
        )
        .collect()
}

/// The first offset at or after `ms` in each partition (the high watermark
/// where there is none).
fn offsets_at(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    marks: &[(i32, i64, i64)],
    ms: u64,
) -> Result<HashMap<i32, i64>> {
    let mut query = TopicPartitionList::new();
    for &(p, _, _) in marks {
        query
            .add_partition_offset(topic, p, Offset::Offset(ms as i64))
            .map_err(|e| backend("preparing a time lookup", e))?;
    }
    let found = reader
        .offsets_for_times(query, config.timeout)
        .map_err(|e| backend(format!("finding offsets by time in {topic:?}"), e))?;
    let mut out = HashMap::new();
    for &(p, _, high) in marks {
        let offset = found
            .find_partition(topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(high);
        out.insert(p, offset);
    }
    Ok(out)
}

/// Reads, without a group, the records of each partition from its start
/// offset up to (excluding) its end offset; at most `limit` per partition.
fn read_partitions(
    reader: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    bounds: &[(i32, i64, i64)],
    limit: usize,
) -> Result<Vec<(i64, i32, i64, Entry)>> {
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<i32, (i64, usize)> = HashMap::new();
    for &(p, start, end) in bounds {
        if start < end && limit > 0 {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| backend("preparing a replay", e))?;
            remaining.insert(p, (end, limit));
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    let action = || format!("replaying topic {topic:?}");
    reader
        .assign(&assignment)
        .map_err(|e| backend(action(), e))?;
    let deadline = Instant::now() + config.timeout;
    let result = (|| {
        while !remaining.is_empty() {
            if Instant::now() > deadline {
                return Err(protocol(
                    action(),
                    format!(
                        "timed out after {:?} with partitions unread",
                        config.timeout
                    ),
                ));
            }
            let Some(polled) = reader.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = polled.map_err(|e| backend(action(), e))?;
            let (p, o) = (m.partition(), m.offset());
            let Some((end, left)) = remaining.get_mut(&p) else {
                continue;
            };
            if o < *end {
                let ts = m.timestamp().to_millis().unwrap_or(0);
                out.push((ts, p, o, entry::entry(&m)));
                *left -= 1;
            }
            if o + 1 >= *end || *left == 0 {
                remaining.remove(&p);
            }
        }
        Ok(())
    })();
    let _ = reader.unassign();
    result.map(|()| out)
}

#[async_trait]
impl StreamChannel for KafkaStreamChannel {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    fn capabilities(&self) -> ChannelCapabilities {
        let ordering = if self.inner.config.partitions > 1 {
            Ordering::PerKey
        } else {
            Ordering::Stream
        };
        ChannelCapabilities::all()
            .with_claim(false)
            .with_ordering(ordering)
            .with_parallel_members(self.inner.config.partitions > 1)
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        let topic = topic_of(stream)?;
        self.ensure_topic(&topic).await?;
        let records: Vec<entry::Record> = batch.iter().map(entry::record).collect();
        let timeout = self.inner.config.timeout;
        let sends = records.iter().map(|r| {
            let mut record = FutureRecord::to(&topic)
                .payload(&r.value)
                .headers(r.headers.clone());
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            self.inner.producer.send(record, timeout)
        });
        let delivered = futures_util::future::join_all(sends).await;
        delivered
            .into_iter()
            .map(|d| match d {
                Ok(d) => Ok(entry::entry_id(d.partition, d.offset)),
                Err((e, _)) => Err(backend(format!("appending to topic {topic:?}"), e)),
            })
            .collect()
    }

    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        let topic = topic_of(stream)?;
        self.ensure_topic(&topic).await?;
        let new_here = self.remember_group(&topic, group);
        if start == GroupStart::Beginning || !new_here {
            // Members start from the earliest entry when the group has no
            // committed offset; an existing group keeps its offsets.
            return Ok(());
        }
        // From latest: commit the current end of every partition, unless the
        // group already has offsets (then it exists and is left alone).
        let group = group.to_owned();
        self.with_reader(move |reader, config| {
            let action = || format!("starting group {group:?} at the end of topic {topic:?}");
            let Some(ps) = partitions(reader, config, &topic)? else {
                return Ok(());
            };
            let marks = watermarks(reader, config, &topic, &ps)?;
            let committer = group_client(config, &topic, &group)?;
            if !committed_in(&committer, config, &topic, &group, &marks)?.is_empty() {
                return Ok(());
            }
            let ends: Vec<(i32, i64)> = marks.iter().map(|&(p, _, high)| (p, high)).collect();
            let tpl = offsets(&topic, &ends).map_err(|e| backend(action(), e))?;
            committer
                .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
                .map_err(|e| backend(action(), e))
        })
        .await
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let topic = topic_of(stream)?;
        self.ensure_topic(&topic).await?;
        self.remember_group(&topic, group);
        let member = self.member(&topic, group, consumer)?;
        let action = || format!("reading topic {topic:?} in group {group:?}");
        let mut out = Vec::new();
        let deliver = |m: &rdkafka::message::BorrowedMessage<'_>, out: &mut Vec<Delivery>| {
            member
                .tracker()
                .lock()
                .expect("tracker")
                .delivered(m.partition(), m.offset());
            out.push(Delivery {
                entry: entry::entry(m),
                delivery_count: 1,
            });
        };
        if count == 0 {
            return Ok(out);
        }
        // Joining the group is not part of the wait for entries.
        let join_deadline = Instant::now() + self.inner.config.join_timeout;
        while !member.joined() && Instant::now() < join_deadline {
            match tokio::time::timeout(Duration::from_millis(50), member.consumer.recv()).await {
                Ok(Ok(m)) => {
                    deliver(&m, &mut out);
                    break;
                }
                Ok(Err(e)) => return Err(backend(action(), e)),
                Err(_) => {}
            }
        }
        if member.joined() && !member.primed() {
            // A member fetches its offsets before its first entries, partition
            // by partition: wait (not counted in the block) until every
            // partition with entries to read has delivered, while the batch
            // has room.
            let waiting = self.partitions_waiting(&member, group).await?;
            let mut seen: BTreeSet<i32> = out
                .iter()
                .filter_map(|d| position(&d.entry.id).ok())
                .map(|(p, _)| p)
                .collect();
            let deadline = tokio::time::Instant::now() + self.inner.config.join_timeout;
            while out.len() < count && !waiting.is_subset(&seen) {
                match tokio::time::timeout_at(deadline, member.consumer.recv()).await {
                    Ok(Ok(m)) => {
                        seen.insert(m.partition());
                        deliver(&m, &mut out);
                    }
                    Ok(Err(e)) => return Err(backend(action(), e)),
                    Err(_) => break,
                }
            }
            if waiting.is_subset(&seen) {
                member
                    .consumer
                    .context()
                    .primed
                    .store(true, AtomicOrdering::SeqCst);
            }
        }
        if out.is_empty() {
            match tokio::time::timeout(block, member.consumer.recv()).await {
                Ok(Ok(m)) => deliver(&m, &mut out),
                Ok(Err(e)) => return Err(backend(action(), e)),
                Err(_) => return Ok(out),
            }
        }
        while out.len() < count {
            match member.consumer.recv().now_or_never() {
                Some(Ok(m)) => deliver(&m, &mut out),
                Some(Err(e)) => {
                    tracing::warn!(topic, group, error = %e, "read error after a partial batch");
                    break;
                }
                None => break,
            }
        }
        let delivered: Vec<(i32, i64)> = out
            .iter()
            .filter_map(|d| position(&d.entry.id).ok())
            .collect();
        self.adopt(&topic, group, &delivered);
        Ok(out)
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        let topic = topic_of(stream)?;
        let positions: Vec<(i32, i64)> = ids.iter().map(position).collect::<Result<_>>()?;
        self.adopt(&topic, group, &positions);
        for member in self.members_of(&topic, group) {
            let acked = {
                let mut tracker = member.tracker().lock().expect("tracker");
                positions
                    .iter()
                    .filter(|&&(p, o)| tracker.ack(p, o))
                    .count()
            };
            if acked > 0 {
                // Fails only for a partition this member has just lost: its
                // next owner gets those entries again (at-least-once).
                if let Err(e) = member.store() {
                    tracing::warn!(topic, group, error = %e,
                        "storing acknowledged offsets failed; those entries will be redelivered");
                }
            }
        }
        Ok(())
    }

    async fn leave_group(&self, stream: &str, group: &str, consumer: &str) -> Result<()> {
        let topic = topic_of(stream)?;
        let key = (topic.clone(), group.to_owned(), consumer.to_owned());
        let Some(member) = self.inner.members.lock().expect("members").remove(&key) else {
            return Ok(());
        };
        let left = member.tracker().lock().expect("tracker").pending_entries();
        if !left.is_empty() {
            self.inner
                .orphans
                .lock()
                .expect("orphans")
                .entry((topic.clone(), group.to_owned()))
                .or_default()
                .extend(left);
        }
        // Committing and closing wait for the broker: off the async threads.
        tokio::task::spawn_blocking(move || {
            let committed = member.commit_sync();
            drop(member);
            committed
        })
        .await
        .map_err(|e| protocol("leaving the group", e.to_string()))?
        .map_err(|e| {
            backend(
                format!("committing offsets of group {group:?} on {topic:?}"),
                e,
            )
        })
    }

    async fn claim_stale(
        &self,
        _stream: &str,
        _group: &str,
        _consumer: &str,
        _min_idle: Duration,
        _count: usize,
    ) -> Result<Vec<Delivery>> {
        // A rebalance hands a departed member's partitions to the others.
        Ok(Vec::new())
    }

    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let topic = topic_of(stream)?;
        let from = match from {
            StreamPosition::From(id) => From::Entry(position(id)?, false),
            StreamPosition::After(id) => From::Entry(position(id)?, true),
            StreamPosition::Start => From::Start,
            StreamPosition::Time(ms) => From::Time(*ms),
        };
        let to = to.map(position).transpose()?;
        self.with_reader(move |reader, config| {
            let Some(ps) = partitions(reader, config, &topic)? else {
                return Ok(Vec::new());
            };
            let marks = watermarks(reader, config, &topic, &ps)?;
            let starts: HashMap<i32, i64> = match from {
                From::Start => marks.iter().map(|&(p, low, _)| (p, low)).collect(),
                From::Time(ms) => offsets_at(reader, config, &topic, &marks, ms)?,
                From::Entry((p, o), after) => {
                    // Replay order is (partition, offset): earlier partitions
                    // are done, later ones start from their beginning.
                    let first = if after { o + 1 } else { o };
                    marks
                        .iter()
                        .map(|&(q, low, high)| {
                            let start = match q.cmp(&p) {
                                std::cmp::Ordering::Less => high,
                                std::cmp::Ordering::Greater => low,
                                std::cmp::Ordering::Equal => first,
                            };
                            (q, start)
                        })
                        .collect()
                }
            };
            let bounds: Vec<(i32, i64, i64)> = marks
                .iter()
                .filter_map(|&(p, low, high)| {
                    let start = starts.get(&p)?.max(&low);
                    let end = match to {
                        Some((tp, to_o)) if tp == p => high.min(to_o + 1),
                        Some((tp, _)) if p > tp => *start,
                        _ => high,
                    };
                    Some((p, *start, end))
                })
                .collect();
            let mut read = read_partitions(reader, config, &topic, &bounds, count)?;
            if let From::Time(ms) = from {
                // Whatever the broker's time index says, nothing earlier.
                read.retain(|(ts, ..)| *ts >= ms as i64);
            }
            read.sort_by_key(|(_, p, o, _)| (*p, *o));
            read.truncate(count);
            Ok(read.into_iter().map(|(.., e)| e).collect())
        })
        .await
    }

    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        let topic = topic_of(stream)?;
        let (p, o) = position(id)?;
        self.with_reader(move |reader, config| {
            let Some(ps) = partitions(reader, config, &topic)? else {
                return Ok(None);
            };
            if !ps.contains(&p) {
                return Ok(None);
            }
            let marks = watermarks(reader, config, &topic, &[p])?;
            let (_, low, high) = marks[0];
            if o < low || o >= high {
                return Ok(None);
            }
            let found = read_partitions(reader, config, &topic, &[(p, o, o + 1)], 1)?;
            Ok(found
                .into_iter()
                .find(|(_, fp, fo, _)| *fp == p && *fo == o)
                .map(|(.., e)| e))
        })
        .await
    }

    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        let topic = topic_of(stream)?;
        let groups: Vec<String> = self
            .inner
            .groups
            .lock()
            .expect("groups")
            .get(&topic)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default();
        let members: Vec<(String, Vec<Arc<Member>>, u64)> = groups
            .iter()
            .map(|g| {
                (
                    g.clone(),
                    self.members_of(&topic, g),
                    self.orphaned(&topic, g),
                )
            })
            .collect();
        self.with_reader(move |reader, config| {
            let Some(ps) = partitions(reader, config, &topic)? else {
                return Ok(StreamInfo::default());
            };
            let marks = watermarks(reader, config, &topic, &ps)?;
            let length = marks
                .iter()
                .map(|&(_, low, high)| (high - low).max(0) as u64)
                .sum();
            let mut infos = Vec::new();
            for (group, members, orphaned) in members {
                let pending = orphaned
                    + members
                        .iter()
                        .map(|m| m.tracker().lock().expect("tracker").pending())
                        .sum::<u64>();
                let committed = committed_offsets(config, &topic, &group, &marks)?;
                let mut lag = 0u64;
                for &(p, low, high) in &marks {
                    let delivered = members
                        .iter()
                        .filter_map(|m| m.tracker().lock().expect("tracker").delivered_end(p))
                        .max();
                    let position = delivered
                        .or_else(|| committed.get(&p).copied())
                        .unwrap_or(low);
                    lag += (high - position).max(0) as u64;
                }
                infos.push(GroupInfo {
                    name: group,
                    pending,
                    lag: Some(lag),
                    consumers: members.len() as u64,
                });
            }
            Ok(StreamInfo {
                length,
                groups: infos,
            })
        })
        .await
    }
}

/// The Kafka group id of a group of a stream: `{topic}/{group}`. A Kafka
/// group spans the whole cluster; naming it after the topic too makes it a
/// group of one stream, as everywhere else, so that members of the same
/// group name on other streams never take part in its rebalances.
pub fn group_id(topic: &str, group: &str) -> String {
    format!("{topic}/{group}")
}

#[derive(Clone, Copy)]
enum From {
    Start,
    Time(u64),
    Entry((i32, i64), bool),
}

/// A client of a group (not a member: it never joins), to read and set the
/// group's offsets.
fn group_client(config: &KafkaConfig, topic: &str, group: &str) -> Result<BaseConsumer> {
    let mut c = config.client_config(&[]);
    c.set("group.id", group_id(topic, group))
        .set("enable.auto.commit", "false");
    c.create().map_err(|e| {
        backend(
            format!("reading the offsets of group {group:?} on {topic:?}"),
            e,
        )
    })
}

/// The committed offset of a group on each partition that has one.
fn committed_offsets(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    marks: &[(i32, i64, i64)],
) -> Result<HashMap<i32, i64>> {
    let client = group_client(config, topic, group)?;
    committed_in(&client, config, topic, group, marks)
}

fn committed_in(
    client: &BaseConsumer,
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    marks: &[(i32, i64, i64)],
) -> Result<HashMap<i32, i64>> {
    let mut query = TopicPartitionList::new();
    for &(p, _, _) in marks {
        query.add_partition(topic, p);
    }
    let committed = client
        .committed_offsets(query, config.timeout)
        .map_err(|e| {
            backend(
                format!("reading the offsets of group {group:?} on {topic:?}"),
                e,
            )
        })?;
    Ok(committed_map(&committed, topic))
}

/// The partitions of `topic` in a list that have an offset, with it.
fn committed_map(list: &TopicPartitionList, topic: &str) -> HashMap<i32, i64> {
    list.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

impl Member {
    pub(crate) fn joined(&self) -> bool {
        self.consumer.context().joined.load(AtomicOrdering::SeqCst)
    }

    pub(crate) fn primed(&self) -> bool {
        self.consumer.context().primed.load(AtomicOrdering::SeqCst)
    }
}
