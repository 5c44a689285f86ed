//! One member of a consumer group: a Kafka consumer subscribed to a topic,
//! and what it has delivered and not yet had acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::tracker::Tracker;

pub(crate) struct Member {
    pub(crate) consumer: StreamConsumer<MemberContext>,
    pub(crate) topic: String,
}

impl Member {
    pub(crate) fn tracker(&self) -> &Mutex<Tracker> {
        &self.consumer.context().tracker
    }

    /// Stores the offsets that acknowledgements moved, for librdkafka to
    /// commit (every commit interval, on unassignment and on leaving).
    pub(crate) fn store(&self) -> rdkafka::error::KafkaResult<()> {
        let commits = self.tracker().lock().expect("tracker").take_commits();
        store(&self.consumer, &self.topic, &commits)
    }

    /// Stores what may be committed and commits everything stored, waiting
    /// for the broker (on leaving).
    pub(crate) fn commit_sync(&self) -> rdkafka::error::KafkaResult<()> {
        self.store()?;
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit.
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => Ok(()),
            other => other,
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

pub(crate) fn offsets(
    topic: &str,
    commits: &[(i32, i64)],
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for &(partition, offset) in commits {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
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
            // Entries in progress on these partitions are finished and
            // acknowledged (by other threads) before the partitions go, so
            // that the next owner does not handle them again; a handler
            // slower than the drain time sees its entries redelivered.
            let deadline = Instant::now() + self.drain;
            while self
                .tracker
                .lock()
                .expect("tracker")
                .pending_in(&partitions)
                > 0
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
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
            if assigned.count() > 0 {
                self.primed.store(false, Ordering::SeqCst);
                self.joined.store(true, Ordering::SeqCst);
            }
        }
    }
}
