//! What a group member has been given and not yet acknowledged, per
//! partition, and how far the group's committed offset may move.
//!
//! Kafka keeps one committed offset per partition: everything before it
//! counts as done. With several messages in flight (concurrency > 1) they are
//! acknowledged out of order, so the offset committed is the lowest one still
//! pending, never past it: a crash then redelivers what was not handled
//! (and, at worst, a few that were: at-least-once).

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    partitions: HashMap<i32, Partition>,
    /// Delivery counts read from the counts topic, per partition assigned
    /// (see `counts.rs`): a partition is here once they are loaded.
    counted: HashMap<i32, HashMap<i64, u32>>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Delivered, not acknowledged, with their delivery counts.
    pending: BTreeMap<i64, u32>,
    /// One past the highest offset delivered.
    delivered_end: i64,
    /// The offset last taken to be committed (the next one the group would
    /// read), if this member took one on this partition.
    committed: Option<i64>,
}

impl Partition {
    /// The offset the group may commit now.
    fn commit_point(&self) -> i64 {
        self.pending
            .first_key_value()
            .map_or(self.delivered_end, |(&o, _)| o)
    }
}

impl Tracker {
    /// The partitions among these whose delivery counts are not loaded.
    pub(crate) fn uncounted(&self, partitions: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let mut out: Vec<i32> = partitions
            .into_iter()
            .filter(|p| !self.counted.contains_key(p))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Takes the delivery counts loaded for some partitions.
    pub(crate) fn load_counts(&mut self, counts: HashMap<i32, HashMap<i64, u32>>) {
        for (p, c) in counts {
            self.counted.entry(p).or_default().extend(c);
        }
    }

    /// Records a delivery; returns its delivery count (one more than the
    /// count recorded before, if any).
    pub(crate) fn delivered(&mut self, partition: i32, offset: i64) -> u32 {
        let before = self
            .counted
            .get(&partition)
            .and_then(|c| c.get(&offset))
            .copied()
            .unwrap_or(0);
        let p = self.partitions.entry(partition).or_default();
        let count = before.saturating_add(1);
        p.pending.insert(offset, count);
        p.delivered_end = p.delivered_end.max(offset + 1);
        count
    }

    /// The delivery count of a pending entry, if it is pending here.
    pub(crate) fn pending_count(&self, partition: i32, offset: i64) -> Option<u32> {
        self.partitions
            .get(&partition)?
            .pending
            .get(&offset)
            .copied()
    }

    /// Sets the delivery count of a pending entry (a redelivery, once
    /// recorded); false if it is not pending here any more.
    pub(crate) fn redelivered(&mut self, partition: i32, offset: i64, count: u32) -> bool {
        let Some(c) = self
            .partitions
            .get_mut(&partition)
            .and_then(|p| p.pending.get_mut(&offset))
        else {
            return false;
        };
        *c = count;
        self.counted
            .entry(partition)
            .or_default()
            .insert(offset, count);
        true
    }

    /// Acknowledges a delivery; false if it was not pending here.
    pub(crate) fn ack(&mut self, partition: i32, offset: i64) -> bool {
        if let Some(c) = self.counted.get_mut(&partition) {
            c.remove(&offset);
        }
        self.partitions
            .get_mut(&partition)
            .is_some_and(|p| p.pending.remove(&offset).is_some())
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
            self.counted.remove(&p);
        }
    }

    /// The (partition, offset) of every entry delivered and not acknowledged.
    pub(crate) fn pending_entries(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .flat_map(|(&p, state)| state.pending.keys().map(move |&o| (p, o)))
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

    #[test]
    fn counts_go_on_from_those_loaded_and_leave_with_the_partition() {
        let mut t = Tracker::default();
        assert_eq!(t.uncounted([0, 1, 0]), [0, 1]);
        t.load_counts(HashMap::from([
            (0, HashMap::from([(5, 2)])),
            (1, HashMap::new()),
        ]));
        assert!(t.uncounted([0, 1]).is_empty());
        assert_eq!(t.delivered(0, 5), 3, "two deliveries recorded before");
        assert_eq!(t.delivered(0, 6), 1);
        assert!(t.redelivered(0, 6, 2));
        assert_eq!(t.pending_count(0, 6), Some(2));
        assert!(!t.redelivered(0, 7, 2), "not pending");
        t.revoke([0]);
        assert_eq!(t.pending_count(0, 5), None);
        assert_eq!(t.uncounted([0]), [0], "reloaded on the next assignment");
    }
}
