//! What a group member has been given and not yet acknowledged, per
//! partition, and how far the group's committed offset may move.
//!
//! Kafka keeps one committed offset per partition: everything before it
//! counts as done. With several messages in flight (concurrency > 1) they are
//! acknowledged out of order, so the offset committed is the lowest one still
//! pending, never past it: a crash then redelivers what was not handled
//! (and, at worst, a few that were: at-least-once).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use event_backbone_core::Lease;

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    partitions: HashMap<i32, Partition>,
    /// Delivery counts read from the counts topic, per partition assigned
    /// (see `counts.rs`): a partition is here once they are loaded.
    counted: HashMap<i32, HashMap<i64, u32>>,
    /// The partitions assigned to the member, each with the lease of its
    /// deliveries: revoked when the partition goes.
    assigned: HashMap<i32, Lease>,
    /// Offsets whose delivery count is in the counts topic, per partition:
    /// their records are deleted (tombstones) once committed past.
    recorded: HashMap<i32, BTreeSet<i64>>,
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
            self.recorded.entry(p).or_default().extend(c.keys());
            self.counted.entry(p).or_default().extend(c);
        }
    }

    /// Partitions given to the member: their deliveries get a new lease.
    pub(crate) fn assign(&mut self, partitions: impl IntoIterator<Item = i32>) {
        for p in partitions {
            self.assigned.entry(p).or_insert_with(Lease::revocable);
        }
    }

    /// The lease of a partition, if it is assigned.
    pub(crate) fn lease_of(&self, partition: i32) -> Option<Lease> {
        self.assigned.get(&partition).cloned()
    }

    /// The leases of these partitions (those assigned).
    pub(crate) fn leases(&self, partitions: &[i32]) -> Vec<Lease> {
        partitions
            .iter()
            .filter_map(|p| self.assigned.get(p).cloned())
            .collect()
    }

    /// Records a delivery; returns its delivery count (one more than the
    /// count recorded before, if any) and the partition's lease. `None`
    /// for a partition the member does not hold (a record received before
    /// its partition was revoked): it is not delivered, its next owner
    /// reads it.
    pub(crate) fn delivered(&mut self, partition: i32, offset: i64) -> Option<(u32, Lease)> {
        let lease = self.assigned.get(&partition)?.clone();
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
        Some((count, lease))
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
        self.recorded.entry(partition).or_default().insert(offset);
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

    /// The recorded delivery counts that commits at these points make
    /// obsolete: (partition, offset) below each point; forgotten here.
    pub(crate) fn settled_counts(&mut self, commits: &[(i32, i64)]) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for &(p, point) in commits {
            if let Some(offsets) = self.recorded.get_mut(&p) {
                let kept = offsets.split_off(&point);
                out.extend(offsets.iter().map(|&o| (p, o)));
                *offsets = kept;
            }
        }
        out
    }

    /// Forgets partitions taken away by a rebalance (their leases are
    /// revoked): their pending entries are redelivered to whoever gets the
    /// partition.
    pub(crate) fn revoke(&mut self, partitions: impl IntoIterator<Item = i32>) {
        for p in partitions {
            if let Some(lease) = self.assigned.remove(&p) {
                lease.revoke();
            }
            self.partitions.remove(&p);
            self.counted.remove(&p);
            self.recorded.remove(&p);
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

    fn count(t: &mut Tracker, p: i32, o: i64) -> u32 {
        t.delivered(p, o).expect("assigned").0
    }

    #[test]
    fn commits_never_pass_an_unacknowledged_offset() {
        let mut t = Tracker::default();
        t.assign([0]);
        for o in 10..15 {
            count(&mut t, 0, o);
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
        t.assign([0, 1]);
        count(&mut t, 0, 0);
        count(&mut t, 1, 7);
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
    fn a_record_of_a_partition_not_held_is_not_delivered() {
        let mut t = Tracker::default();
        assert!(t.delivered(0, 1).is_none(), "never assigned");
        t.assign([0]);
        let (_, lease) = t.delivered(0, 1).unwrap();
        t.revoke([0]);
        assert!(
            lease.is_revoked(),
            "the deliveries of a revoked partition lose their lease"
        );
        assert!(
            t.delivered(0, 2).is_none(),
            "received before the revocation, counted after it"
        );
        assert!(t.lease_of(0).is_none(), "nothing is assigned");
        t.assign([0]);
        let (_, again) = t.delivered(0, 2).unwrap();
        assert!(!again.is_revoked(), "a new assignment, a new lease");
        let received_under = t.lease_of(0).unwrap();
        t.revoke([0]);
        t.assign([0]);
        assert!(
            received_under.is_revoked(),
            "a record received before a revocation carries the revoked lease"
        );
        assert!(!t.lease_of(0).unwrap().is_revoked());
    }

    #[test]
    fn counts_go_on_from_those_loaded_and_leave_with_the_partition() {
        let mut t = Tracker::default();
        t.assign([0, 1]);
        assert_eq!(t.uncounted([0, 1, 0]), [0, 1]);
        t.load_counts(HashMap::from([
            (0, HashMap::from([(5, 2)])),
            (1, HashMap::new()),
        ]));
        assert!(t.uncounted([0, 1]).is_empty());
        assert_eq!(count(&mut t, 0, 5), 3, "two deliveries recorded before");
        assert_eq!(count(&mut t, 0, 6), 1);
        assert!(t.redelivered(0, 6, 2));
        assert_eq!(t.pending_count(0, 6), Some(2));
        assert!(!t.redelivered(0, 7, 2), "not pending");
        t.revoke([0]);
        assert_eq!(t.pending_count(0, 5), None);
        assert_eq!(t.uncounted([0]), [0], "reloaded on the next assignment");
    }

    #[test]
    fn recorded_counts_are_settled_once_committed_past() {
        let mut t = Tracker::default();
        t.assign([0]);
        t.load_counts(HashMap::from([(0, HashMap::from([(3, 1)]))]));
        for o in 3..8 {
            count(&mut t, 0, o);
        }
        assert!(t.redelivered(0, 6, 2));
        assert!(t.ack(0, 3) && t.ack(0, 4));
        let commits = t.take_commits();
        assert_eq!(commits, [(0, 5)]);
        assert_eq!(t.settled_counts(&commits), [(0, 3)]);
        assert!(t.ack(0, 5) && t.ack(0, 6) && t.ack(0, 7));
        let commits = t.take_commits();
        assert_eq!(t.settled_counts(&commits), [(0, 6)]);
        assert!(t.settled_counts(&commits).is_empty(), "once");
    }
}
