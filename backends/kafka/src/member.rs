//! One member of a consumer group: a Kafka consumer subscribed to a topic,
//! and what it has delivered and not yet had acknowledged.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use event_backbone_core::{Entry, Lease, Result};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::config::KafkaConfig;
use crate::error::backend;
use crate::group::{committed_map, group_id, offsets};
use crate::reader::watermarks;
use crate::tracker::Tracker;

/// A record a member received: (partition, offset, entry, the lease its
/// partition had when it came; `None` if the partition had none).
pub(crate) type Received = (i32, i64, Entry, Option<Lease>);

pub(crate) struct Member {
    pub(crate) consumer: StreamConsumer<MemberContext>,
    pub(crate) topic: String,
}

impl Member {
    /// Joins `group` on `topic` as `consumer` (the assignment comes with
    /// the first reads).
    pub(crate) fn join(
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Self> {
        // A shorter fetch wait than librdkafka's 500 ms, for latency. The
        // session timeout stays librdkafka's (45 s): a shorter one makes a
        // member that waits on a slow fetch lose its partitions and read
        // them again from the committed offset, over and over.
        let every = config.commit_interval.as_millis().max(1);
        let mut c = config.client_config(&[
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
            drain: config.rebalance_drain,
            held: Mutex::new(Vec::new()),
        };
        let action = || format!("joining group {group:?} on topic {topic:?} as {consumer:?}");
        let kafka: StreamConsumer<MemberContext> = c
            .create_with_context(context)
            .map_err(|e| backend(action(), e))?;
        kafka
            .subscribe(&[topic])
            .map_err(|e| backend(action(), e))?;
        Ok(Self {
            consumer: kafka,
            topic: topic.to_owned(),
        })
    }

    pub(crate) fn tracker(&self) -> &Mutex<Tracker> {
        &self.consumer.context().tracker
    }

    /// The lease of a partition now, to go with a record just received:
    /// records fetched before a revocation carry the revoked one.
    pub(crate) fn lease_of(&self, partition: i32) -> Option<Lease> {
        self.tracker().lock().expect("tracker").lease_of(partition)
    }

    /// Keeps received entries for the next read.
    pub(crate) fn hold(&self, entries: Vec<Received>) {
        self.consumer
            .context()
            .held
            .lock()
            .expect("held")
            .extend(entries);
    }

    /// The entries kept for this read, if any.
    pub(crate) fn take_held(&self) -> Vec<Received> {
        std::mem::take(&mut *self.consumer.context().held.lock().expect("held"))
    }

    /// Whether the member has had a partition assignment yet.
    pub(crate) fn joined(&self) -> bool {
        self.consumer.context().joined.load(Ordering::SeqCst)
    }

    /// Whether every partition assigned last has delivered, or had nothing
    /// to deliver.
    pub(crate) fn primed(&self) -> bool {
        self.consumer.context().primed.load(Ordering::SeqCst)
    }

    /// Marks the member primed: reads stop waiting for first fetches.
    pub(crate) fn prime(&self) {
        self.consumer.context().primed.store(true, Ordering::SeqCst);
    }

    /// The partitions assigned to this member that hold entries it has not
    /// delivered: after what it delivered, else after the group's committed
    /// offset, else after their start. Blocks.
    pub(crate) fn partitions_waiting(
        &self,
        reader: &BaseConsumer,
        config: &KafkaConfig,
        group: &str,
    ) -> Result<BTreeSet<i32>> {
        let topic = &self.topic;
        let action = || format!("reading the offsets of group {group:?} on {topic:?}");
        let assigned = self
            .consumer
            .assignment()
            .map_err(|e| backend(action(), e))?;
        let ps: Vec<i32> = assigned
            .elements_for_topic(topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        if ps.is_empty() {
            return Ok(BTreeSet::new());
        }
        let marks = watermarks(reader, config, topic, &ps)?;
        let committed = committed_map(
            &self
                .consumer
                .committed(config.timeout)
                .map_err(|e| backend(action(), e))?,
            topic,
        );
        let tracker = self.tracker().lock().expect("tracker");
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
    }

    /// Stores the offsets that acknowledgements moved, for librdkafka to
    /// commit (every commit interval, on unassignment and on leaving).
    /// Returns the entries whose recorded delivery counts are obsolete now
    /// (the commit passed them).
    pub(crate) fn store(&self) -> rdkafka::error::KafkaResult<Vec<(i32, i64)>> {
        let mut tracker = self.tracker().lock().expect("tracker");
        let commits = tracker.take_commits();
        store(&self.consumer, &self.topic, &commits)?;
        Ok(tracker.settled_counts(&commits))
    }

    /// Stores what may be committed and commits everything stored, waiting
    /// for the broker (on leaving). Returns the obsolete delivery counts.
    pub(crate) fn commit_sync(&self) -> rdkafka::error::KafkaResult<Vec<(i32, i64)>> {
        let settled = self.store()?;
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit.
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => Ok(settled),
            Err(e) => Err(e),
            Ok(()) => Ok(settled),
        }
    }
}

fn store<C: Consumer<MemberContext>>(
    consumer: &C,
    topic: &str,
    commits: &[(i32, i64)],
) -> rdkafka::error::KafkaResult<()> {
    if commits.is_empty() {
        return Ok(());
    }
    consumer.store_offsets(&offsets(topic, commits)?)
}

/// Commits before partitions are taken away, then forgets them.
pub(crate) struct MemberContext {
    pub(crate) tracker: Mutex<Tracker>,
    pub(crate) topic: String,
    /// Whether the member has had a partition assignment yet.
    pub(crate) joined: AtomicBool,
    /// Whether every partition assigned last has delivered, or had nothing
    /// to deliver: until then a read waits for their first fetches.
    pub(crate) primed: AtomicBool,
    /// How long a revocation waits for entries in progress to be
    /// acknowledged before it lets the partitions go.
    pub(crate) drain: Duration,
    /// Entries received whose delivery counts could not be read yet: the
    /// next read delivers them (partition, offset, entry).
    pub(crate) held: Mutex<Vec<Received>>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let partitions: Vec<i32> = revoked
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            tracing::debug!(topic = self.topic, ?partitions, "partitions revoked");
            // From now on nothing of these partitions starts here: entries
            // received and not started (queued behind their key, waiting
            // for a redelivery, not yet delivered) are dropped, for the
            // next owner.
            let leases = self.tracker.lock().expect("tracker").leases(&partitions);
            for lease in &leases {
                lease.revoke();
            }
            self.held
                .lock()
                .expect("held")
                .retain(|(p, ..)| !partitions.contains(p));
            // Entries started are finished and acknowledged (by other
            // threads) before the partitions go, so that the next owner
            // does not handle them again; a handler slower than the drain
            // time sees its entries redelivered.
            //
            // librdkafka calls this from the poll inside `recv`, on the
            // thread of the task that reads: a Tokio worker. The wait tells
            // the runtime so (`block_in_place`), which moves the worker's
            // other tasks (the handlers whose acks are awaited among them)
            // to another thread. A current-thread runtime has no other
            // thread: there the wait would only stall the handlers, so the
            // partitions go at once and those entries are redelivered.
            let wait = || {
                let deadline = Instant::now() + self.drain;
                for lease in &leases {
                    lease.wait_idle(deadline.saturating_duration_since(Instant::now()));
                }
            };
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => {
                    tracing::debug!(topic = self.topic,
                        "partitions revoked on a current-thread runtime: not waiting for entries in progress");
                }
                Ok(_) => tokio::task::block_in_place(wait),
                Err(_) => wait(),
            }
            // librdkafka commits what is stored when it takes the
            // partitions away.
            let commits = self.tracker.lock().expect("tracker").take_commits();
            if let Err(e) = store(consumer, &self.topic, &commits) {
                tracing::warn!(topic = self.topic, error = %e,
                    "storing offsets before a rebalance failed; those entries will be redelivered");
            }
            self.tracker.lock().expect("tracker").revoke(partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let partitions: Vec<i32> = assigned
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            tracing::debug!(topic = self.topic, ?partitions, "partitions assigned");
            self.tracker.lock().expect("tracker").assign(partitions);
            if assigned.count() > 0 {
                self.primed.store(false, Ordering::SeqCst);
                self.joined.store(true, Ordering::SeqCst);
            }
        }
    }
}
