//! [`KafkaStreamChannel`]: one topic per stream, Kafka consumer groups.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_backbone_core::{
    ChannelCapabilities, Delivery, Entry, EntryId, Error, GroupInfo, GroupStart, Metadata,
    Ordering, Result, StreamChannel, StreamInfo, StreamPosition,
};
use futures_util::FutureExt;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;

use crate::config::KafkaConfig;
use crate::connection::Kafka;
use crate::counts::{self, delivery_counts_topic};
use crate::entry::{self, position};
use crate::error::{backend, protocol};
use crate::group::{committed_offsets, start_at_end};
use crate::member::{Member, Received};
use crate::members::Members;
use crate::reader::{lookup, partitions, replay, watermarks, ReplayStart};
use crate::topic::{topic_of, topics};
use crate::BACKEND;

/// A [`StreamChannel`] on Kafka: each stream is a topic (see
/// [`topic_of`](crate::topic_of)), created on first use with the configured
/// partitions and replication.
///
/// * append: the record value is the encoded metadata, headers carry the
///   message id, operation, `traceparent` and correlation id in plain text,
///   and a `partition-key` message header becomes the record key;
/// * consumer groups are Kafka groups, one per stream (the Kafka group id
///   is `{topic}/{group}`, see [`group_id`](crate::group_id)); an acknowledgement moves the
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
///
/// ```no_run
/// use std::sync::Arc;
/// use event_backbone_core::{memory::MemoryStore, Producer};
/// use event_backbone_kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let kafka = Kafka::connect(KafkaConfig::from_env()?.partitions(6)).await?;
/// let producer = Producer::builder()
///     .channel(Arc::new(KafkaStreamChannel::new(&kafka)))
///     .store(Arc::new(MemoryStore::new()))
///     .uri("orders")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KafkaStreamChannel {
    inner: Arc<Inner>,
}

struct Inner {
    kafka: Kafka,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    /// The members of this process, and the groups used through it.
    members: Members,
    /// The partitions of the delivery-counts topics, by topic: read once,
    /// not at every redelivery.
    counts_partitions: Mutex<HashMap<String, i32>>,
}

impl KafkaStreamChannel {
    /// A channel on this connection.
    pub fn new(kafka: &Kafka) -> Self {
        Self {
            inner: Arc::new(Inner {
                kafka: kafka.clone(),
                topics: Mutex::new(HashSet::new()),
                members: Members::default(),
                counts_partitions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The connection.
    pub fn kafka(&self) -> &Kafka {
        &self.inner.kafka
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        self.inner.kafka.config()
    }

    /// Loads the delivery counts of the partitions among `delivered` whose
    /// counts the member does not have yet (the first read after an
    /// assignment).
    async fn load_counts(
        &self,
        member: &Arc<Member>,
        topic: &str,
        group: &str,
        delivered: &[(i32, i64)],
    ) -> Result<()> {
        let uncounted = member
            .tracker()
            .lock()
            .expect("tracker")
            .uncounted(delivered.iter().map(|&(p, _)| p));
        if uncounted.is_empty() {
            return Ok(());
        }
        let (counts_topic, g) = (delivery_counts_topic(topic), group.to_owned());
        let counts = self
            .inner
            .kafka
            .with_reader(move |reader, config| {
                counts::load(reader, config, &counts_topic, &g, &uncounted)
            })
            .await?;
        member
            .tracker()
            .lock()
            .expect("tracker")
            .load_counts(counts);
        Ok(())
    }

    /// Receives up to `count` records for a read: joining and the first
    /// fetches of an assignment are not part of the wait of `block`. What it
    /// received is in `out`, also when it fails part-way.
    async fn receive(
        &self,
        member: &Arc<Member>,
        topic: &str,
        group: &str,
        count: usize,
        block: Duration,
        out: &mut Vec<Received>,
    ) -> Result<()> {
        let action = || format!("reading topic {topic:?} in group {group:?}");
        // Each record goes with the lease its partition has as it comes:
        // librdkafka runs a rebalance inside the call that receives, so a
        // record fetched before a revocation carries the revoked lease,
        // and one fetched after a new assignment the new one.
        let deliver = |m: &rdkafka::message::BorrowedMessage<'_>, out: &mut Vec<Received>| {
            let lease = member.lease_of(m.partition());
            out.push((m.partition(), m.offset(), entry::entry(m), lease));
        };
        // Joining the group is not part of the wait for entries.
        let join_deadline = Instant::now() + self.config().join_timeout;
        while !member.joined() && Instant::now() < join_deadline {
            match tokio::time::timeout(Duration::from_millis(50), member.consumer.recv()).await {
                Ok(Ok(m)) => {
                    deliver(&m, out);
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
            let waiting = {
                let (member, group) = (member.clone(), group.to_owned());
                self.inner
                    .kafka
                    .with_reader(move |reader, config| {
                        member.partitions_waiting(reader, config, &group)
                    })
                    .await?
            };
            let mut seen: BTreeSet<i32> = out.iter().map(|&(p, ..)| p).collect();
            let deadline = tokio::time::Instant::now() + self.config().join_timeout;
            while out.len() < count && !waiting.is_subset(&seen) {
                match tokio::time::timeout_at(deadline, member.consumer.recv()).await {
                    Ok(Ok(m)) => {
                        seen.insert(m.partition());
                        deliver(&m, out);
                    }
                    Ok(Err(e)) => return Err(backend(action(), e)),
                    Err(_) => break,
                }
            }
            if waiting.is_subset(&seen) {
                member.prime();
            }
        }
        if out.is_empty() {
            match tokio::time::timeout(block, member.consumer.recv()).await {
                Ok(Ok(m)) => deliver(&m, out),
                Ok(Err(e)) => return Err(backend(action(), e)),
                Err(_) => return Ok(()),
            }
        }
        while out.len() < count {
            match member.consumer.recv().now_or_never() {
                Some(Ok(m)) => deliver(&m, out),
                Some(Err(e)) => {
                    tracing::warn!(topic, group, error = %e, "read error after a partial batch");
                    break;
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Deletes the recorded delivery counts of entries committed past.
    async fn forget_counts(&self, topic: &str, group: &str, entries: &[(i32, i64)]) {
        if entries.is_empty() {
            return;
        }
        let counts_topic = delivery_counts_topic(topic);
        match self.counts_partitions(&counts_topic).await {
            Ok(n) => counts::forget(&self.inner.kafka, &counts_topic, n, group, entries).await,
            Err(e) => tracing::warn!(topic = counts_topic, error = %e,
                "deleting obsolete delivery counts failed; they stay until compacted away"),
        }
    }

    /// The partitions of a delivery-counts topic, which is created
    /// (compacted) if it does not exist; cached.
    async fn counts_partitions(&self, counts_topic: &str) -> Result<i32> {
        if let Some(&n) = self
            .inner
            .counts_partitions
            .lock()
            .expect("counts partitions")
            .get(counts_topic)
        {
            return Ok(n);
        }
        self.create_topic(counts_topic, &[("cleanup.policy", "compact")])
            .await?;
        let t = counts_topic.to_owned();
        let Some(ps) = self
            .inner
            .kafka
            .with_reader(move |reader, config| partitions(reader, config, &t))
            .await?
        else {
            // Created a moment ago, with the configured partitions, and not
            // in the metadata yet: ask again next time.
            return Ok(self.config().partitions);
        };
        let n = ps.len() as i32;
        self.inner
            .counts_partitions
            .lock()
            .expect("counts partitions")
            .insert(counts_topic.to_owned(), n);
        Ok(n)
    }

    /// Creates the topic if it does not exist.
    async fn ensure_topic(&self, topic: &str) -> Result<()> {
        self.create_topic(topic, &[]).await
    }

    /// Creates the topic, with these settings, if it does not exist.
    async fn create_topic(&self, topic: &str, settings: &[(&str, &str)]) -> Result<()> {
        if self.inner.topics.lock().expect("topics").contains(topic) {
            return Ok(());
        }
        let c = self.config();
        let mut new = NewTopic::new(topic, c.partitions, TopicReplication::Fixed(c.replication));
        for &(name, value) in settings {
            new = new.set(name, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(c.timeout));
        let action = || format!("creating topic {topic:?}");
        let results = self
            .inner
            .kafka
            .admin()
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
}

impl fmt::Debug for KafkaStreamChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaStreamChannel")
            .field("kafka", &self.inner.kafka)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl StreamChannel for KafkaStreamChannel {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> ChannelCapabilities {
        let ordering = if self.config().partitions > 1 {
            Ordering::PerKey
        } else {
            Ordering::Stream
        };
        ChannelCapabilities::all()
            .with_claim(false)
            .with_ordering(ordering)
            .with_parallel_members(self.config().partitions > 1)
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        let topic = topic_of(stream)?;
        self.ensure_topic(&topic).await?;
        let records: Vec<entry::Record> = batch.iter().map(entry::record).collect();
        let timeout = self.config().timeout;
        let delivered =
            crate::produce::send_records(self.inner.kafka.producer(), &topic, records, timeout)
                .await;
        let mut ids = Vec::with_capacity(delivered.len());
        let mut failure = None;
        for d in delivered {
            match d {
                Ok((partition, offset)) => ids.push(Some(entry::entry_id(partition, offset))),
                Err(e) => {
                    ids.push(None);
                    failure
                        .get_or_insert_with(|| backend(format!("appending to topic {topic:?}"), e));
                }
            }
        }
        match failure {
            None => Ok(ids.into_iter().flatten().collect()),
            // Records go to several partitions at once: some may be in.
            Some(source) if ids.iter().any(Option::is_some) => Err(Error::PartlyAppended {
                stream: stream.to_owned(),
                appended: ids,
                source: Box::new(source),
            }),
            Some(source) => Err(source),
        }
    }

    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        let topic = topic_of(stream)?;
        self.ensure_topic(&topic).await?;
        let new_here = self.inner.members.remember_group(&topic, group);
        if start == GroupStart::Beginning || !new_here {
            // Members start from the earliest entry when the group has no
            // committed offset; an existing group keeps its offsets.
            return Ok(());
        }
        // From latest: the current end of every partition.
        let group = group.to_owned();
        self.inner
            .kafka
            .with_reader(move |reader, config| start_at_end(reader, config, &topic, &group))
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
        self.inner.members.remember_group(&topic, group);
        let member = self
            .inner
            .members
            .member(self.config(), &topic, group, consumer)?;
        // What the member received: (partition, offset, entry). Counted
        // as delivered at the end, once the delivery counts of their
        // partitions are known; kept for the next read if that fails.
        let mut out: Vec<Received> = Vec::new();
        if count == 0 {
            return Ok(Vec::new());
        }
        out.extend(member.take_held());
        if out.is_empty() {
            let received = self
                .receive(&member, &topic, group, count, block, &mut out)
                .await;
            if let Err(e) = received {
                member.hold(out);
                return Err(e);
            }
            if out.is_empty() {
                return Ok(Vec::new());
            }
        }
        let delivered: Vec<(i32, i64)> = out.iter().map(|&(p, o, ..)| (p, o)).collect();
        if let Err(e) = self.load_counts(&member, &topic, group, &delivered).await {
            // Delivered with a wrong count, a poison message could go on
            // for ever: keep them for the next read.
            member.hold(out);
            return Err(e);
        }
        self.inner.members.adopt(&topic, group, &delivered);
        let mut tracker = member.tracker().lock().expect("tracker");
        let received = out.len();
        let deliveries: Vec<Delivery> = out
            .into_iter()
            .filter_map(|(p, o, entry, received_under)| {
                // Received under a lease revoked since (even if the
                // partition came back to this member): the partition's
                // fetch starts again from the committed offset.
                if received_under.is_none_or(|l| l.is_revoked()) {
                    return None;
                }
                let (count, lease) = tracker.delivered(p, o)?;
                Some(Delivery::new(entry, count).with_lease(lease))
            })
            .collect();
        if deliveries.len() < received {
            tracing::debug!(
                topic,
                group,
                dropped = received - deliveries.len(),
                "records of partitions revoked while they were received: left to the next owner"
            );
        }
        Ok(deliveries)
    }

    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        _delivered: u32,
    ) -> Result<Option<u32>> {
        let topic = topic_of(stream)?;
        let (p, o) = position(id)?;
        let Some(member) = self.inner.members.find(&topic, group, consumer) else {
            return Ok(None);
        };
        let Some(count) = member
            .tracker()
            .lock()
            .expect("tracker")
            .pending_count(p, o)
        else {
            // Its partition went to another member, which delivers it anew.
            return Ok(None);
        };
        let next = count.saturating_add(1);
        let counts_topic = delivery_counts_topic(&topic);
        let n = self.counts_partitions(&counts_topic).await?;
        counts::record(&self.inner.kafka, &counts_topic, n, group, (p, o), next).await?;
        let mut tracker = member.tracker().lock().expect("tracker");
        Ok(tracker.redelivered(p, o, next).then_some(next))
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        let topic = topic_of(stream)?;
        let positions: Vec<(i32, i64)> = ids.iter().map(position).collect::<Result<_>>()?;
        self.inner.members.adopt(&topic, group, &positions);
        let mut settled = Vec::new();
        for member in self.inner.members.of(&topic, group) {
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
                match member.store() {
                    Ok(obsolete) => settled.extend(obsolete),
                    Err(e) => tracing::warn!(topic, group, error = %e,
                        "storing acknowledged offsets failed; those entries will be redelivered"),
                }
            }
        }
        if !settled.is_empty() {
            // In the background: an acknowledgement does not wait for the
            // broker (a revocation waits for acknowledgements).
            let (channel, group) = (self.clone(), group.to_owned());
            tokio::spawn(async move { channel.forget_counts(&topic, &group, &settled).await });
        }
        Ok(())
    }

    async fn leave_group(&self, stream: &str, group: &str, consumer: &str) -> Result<()> {
        let topic = topic_of(stream)?;
        let Some(member) = self.inner.members.leave(&topic, group, consumer) else {
            return Ok(());
        };
        // Committing and closing wait for the broker: off the async threads.
        let settled = tokio::task::spawn_blocking(move || {
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
        })?;
        self.forget_counts(&topic, group, &settled).await;
        Ok(())
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
        let from = ReplayStart::of(from)?;
        let to = to.map(position).transpose()?;
        self.inner
            .kafka
            .with_reader(move |reader, config| replay(reader, config, &topic, from, to, count))
            .await
    }

    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        let topic = topic_of(stream)?;
        let at = position(id)?;
        self.inner
            .kafka
            .with_reader(move |reader, config| lookup(reader, config, &topic, at))
            .await
    }

    /// A group with a member in this process as [`Self::info`] shows it
    /// (`info` lists only those); any other by its committed offsets, read
    /// without joining it. Kafka tells no more of a group from outside:
    /// what its members read and did not commit yet counts in its lag, not
    /// in `pending`, and `consumers` is 0. `None` when the group has
    /// committed nothing.
    async fn group_info(&self, stream: &str, group: &str) -> Result<Option<GroupInfo>> {
        if let Some(known) = self.info(stream).await?.group(group) {
            return Ok(Some(known.clone()));
        }
        let topic = topic_of(stream)?;
        let group = group.to_owned();
        self.inner
            .kafka
            .with_reader(move |reader, config| {
                let Some(ps) = partitions(reader, config, &topic)? else {
                    return Ok(None);
                };
                let marks = watermarks(reader, config, &topic, &ps)?;
                let committed = committed_offsets(config, &topic, &group, &marks)?;
                if committed.is_empty() {
                    return Ok(None);
                }
                let lag = marks
                    .iter()
                    .map(|&(p, low, high)| {
                        let position = committed.get(&p).map_or(low, |&c| c.max(low));
                        (high - position).max(0) as u64
                    })
                    .sum();
                Ok(Some(GroupInfo {
                    name: group,
                    pending: 0,
                    lag: Some(lag),
                    consumers: 0,
                }))
            })
            .await
    }

    /// The topics (a stream key's topic is [`topic_of`] it): Kafka keeps
    /// no stream keys, and a topic name opens the same stream.
    async fn streams(&self) -> Result<Vec<String>> {
        self.inner.kafka.with_reader(topics).await
    }

    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        let topic = topic_of(stream)?;
        let members: Vec<(String, Vec<Arc<Member>>)> = self
            .inner
            .members
            .groups_of(&topic)
            .into_iter()
            .map(|g| {
                let of = self.inner.members.of(&topic, &g);
                (g, of)
            })
            .collect();
        let inner = self.inner.clone();
        self.inner
            .kafka
            .with_reader(move |reader, config| {
                let Some(ps) = partitions(reader, config, &topic)? else {
                    return Ok(StreamInfo::default());
                };
                let marks = watermarks(reader, config, &topic, &ps)?;
                let length = marks
                    .iter()
                    .map(|&(_, low, high)| (high - low).max(0) as u64)
                    .sum();
                let mut infos = Vec::new();
                for (group, members) in members {
                    let committed = committed_offsets(config, &topic, &group, &marks)?;
                    // What members that left did not acknowledge, less
                    // what the group has committed past since (handled by
                    // another member).
                    let orphaned = inner.members.prune_orphans(&topic, &group, &committed);
                    let pending = orphaned
                        + members
                            .iter()
                            .map(|m| m.tracker().lock().expect("tracker").pending())
                            .sum::<u64>();
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
                // The newest entry is known when one partition holds them
                // all; across partitions there is no one newest offset.
                let mut filled = marks.iter().filter(|&&(_, low, high)| high > low);
                let last = match (filled.next(), filled.next()) {
                    (Some(&(p, _, high)), None) => Some(entry::entry_id(p, high - 1)),
                    _ => None,
                };
                Ok(StreamInfo {
                    length,
                    last,
                    partitions: ps.len() as u32,
                    groups: infos,
                })
            })
            .await
    }
}
