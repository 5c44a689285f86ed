//! What a group member has been given and not yet acknowledged, per
//! partition, and how far the group's committed offset may move.
//!
//! Kafka keeps one committed offset per partition: everything before it
//! counts as done. With several messages in flight (concurrency > 1) they are
//! acknowledged out of order, so the offset committed is the lowest one still
//! pending, never past it: a crash then redelivers what was not handled
//! (and, at worst, a few that were: at-least-once).

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Delivered, not acknowledged.
    pending: BTreeSet<i64>,
    /// One past the highest offset delivered.
    delivered_end: i64,
    /// The offset last taken to be committed (the next one the group would
    /// read), if this member took one on this partition.
    committed: Option<i64>,
}

impl Partition {
    /// The offset the group may commit now.
    fn commit_point(&self) -> i64 {
        self.pending.first().copied().unwrap_or(self.delivered_end)
    }
}

impl Tracker {
    /// Records a delivery.
    pub(crate) fn delivered(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.pending.insert(offset);
        p.delivered_end = p.delivered_end.max(offset + 1);
    }

    /// Acknowledges a delivery; false if it was not pending here.
    pub(crate) fn ack(&mut self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get_mut(&partition)
            .is_some_and(|p| p.pending.remove(&offset))
    }

    /// The offsets to commit now (partition, offset), where the commit
    /// point moved past what was taken before; marks them taken.
    pub(crate) fn take_commits(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (&partition, p) in &mut self.partitions {
            let point = p.commit_point();
            if point > 0 && p.committed.is_none_or(|c| point > c) {
                p.committed = Some(point);
                out.push((partition, point));
            }
        }
        out.sort_unstable();
        out
    }

    /// Forgets partitions taken away by a rebalance: their pending entries
    /// are redelivered to whoever gets the partition.
    pub(crate) fn revoke(&mut self, partitions: impl IntoIterator<Item = i32>) {
        for p in partitions {
            self.partitions.remove(&p);
        }
    }

    /// The (partition, offset) of every entry delivered and not acknowledged.
    pub(crate) fn pending_entries(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .flat_map(|(&p, state)| state.pending.iter().map(move |&o| (p, o)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Delivered and not acknowledged, in these partitions.
    pub(crate) fn pending_in(&self, partitions: &[i32]) -> u64 {
        partitions
            .iter()
            .filter_map(|p| self.partitions.get(p))
            .map(|p| p.pending.len() as u64)
            .sum()
    }

    /// Delivered and not acknowledged, in all partitions.
    pub(crate) fn pending(&self) -> u64 {
        self.partitions
            .values()
            .map(|p| p.pending.len() as u64)
            .sum()
    }

    /// One past the highest offset delivered on a partition, if any.
    pub(crate) fn delivered_end(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition).map(|p| p.delivered_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_never_pass_an_unacknowledged_offset() {
        let mut t = Tracker::default();
        for o in 10..15 {
            t.delivered(0, o);
        }
        assert!(t.ack(0, 11) && t.ack(0, 12));
        // 10 is still pending: the commit stays at 10 (the next to read).
        assert_eq!(t.take_commits(), [(0, 10)]);
        assert!(t.ack(0, 10));
        assert_eq!(t.take_commits(), [(0, 13)]);
        assert_eq!(t.pending(), 2);
        assert!(!t.ack(0, 10), "acknowledged twice");
        assert!(t.ack(0, 14) && t.ack(0, 13));
        assert_eq!(t.take_commits(), [(0, 15)]);
        assert_eq!(t.take_commits(), [], "nothing new to commit");
    }

    #[test]
    fn partitions_are_independent_and_revocation_forgets() {
        let mut t = Tracker::default();
        t.delivered(0, 0);
        t.delivered(1, 7);
        assert!(t.ack(1, 7));
        assert_eq!(t.take_commits(), [(1, 8)]);
        t.revoke([0]);
        assert_eq!(t.pending(), 0);
        assert!(
            !t.ack(0, 0),
            "a revoked partition's entry is not ours any more"
        );
        assert_eq!(t.delivered_end(1), Some(8));
    }
}
