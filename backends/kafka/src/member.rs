//! One member of a consumer group: a Kafka consumer subscribed to a topic,
//! and what it has delivered and not yet had acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
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

    /// Commits what may be committed, without waiting for the broker.
    pub(crate) fn commit(&self) -> rdkafka::error::KafkaResult<()> {
        let commits = self.tracker().lock().expect("tracker").take_commits();
        if commits.is_empty() {
            return Ok(());
        }
        let tpl = offsets(&self.topic, &commits)?;
        self.consumer.commit(&tpl, CommitMode::Async)
    }

    /// Commits what may be committed and waits for the broker (on leaving).
    pub(crate) fn commit_sync(&self) -> rdkafka::error::KafkaResult<()> {
        let commits = self.tracker().lock().expect("tracker").take_commits();
        if commits.is_empty() {
            return Ok(());
        }
        self.consumer
            .commit(&offsets(&self.topic, &commits)?, CommitMode::Sync)
    }
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
            let commits = self.tracker.lock().expect("tracker").take_commits();
            if !commits.is_empty() {
                match offsets(&self.topic, &commits) {
                    Ok(tpl) => {
                        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                            tracing::warn!(topic = self.topic, error = %e,
                                "commit before a rebalance failed; those entries will be redelivered");
                        }
                    }
                    Err(e) => tracing::warn!(topic = self.topic, error = %e, "bad commit offsets"),
                }
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
