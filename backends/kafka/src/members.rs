//! The members of this process, by stream, group and name; the groups used
//! through a channel; and the entries members left unacknowledged when
//! they left, which stay pending until redelivered.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use event_backbone_core::Result;

use crate::config::KafkaConfig;
use crate::member::Member;

/// (topic, group)
type GroupKey = (String, String);

/// Most left-behind entries remembered per group (for `info`'s pending
/// count only: the entries themselves are redelivered by Kafka).
const MAX_ORPHANS: usize = 100_000;

#[derive(Default)]
pub(crate) struct Members {
    /// Members by (topic, group, consumer name).
    members: Mutex<HashMap<(String, String, String), Arc<Member>>>,
    /// Groups used through this channel, by topic.
    groups: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Entries that members of this process left unacknowledged when they
    /// left, by (topic, group): pending until redelivered and acknowledged.
    orphans: Mutex<HashMap<GroupKey, BTreeSet<(i32, i64)>>>,
}

impl Members {
    /// Notes that `group` is used on `topic`; true the first time.
    pub(crate) fn remember_group(&self, topic: &str, group: &str) -> bool {
        self.groups
            .lock()
            .expect("groups")
            .entry(topic.to_owned())
            .or_default()
            .insert(group.to_owned())
    }

    /// The groups used on `topic`, by name.
    pub(crate) fn groups_of(&self, topic: &str) -> Vec<String> {
        self.groups
            .lock()
            .expect("groups")
            .get(topic)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The member `consumer` of `group` on `topic`, joining if it is new.
    pub(crate) fn member(
        &self,
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Arc<Member>> {
        let key = (topic.to_owned(), group.to_owned(), consumer.to_owned());
        let mut members = self.members.lock().expect("members");
        if let Some(m) = members.get(&key) {
            return Ok(m.clone());
        }
        let member = Arc::new(Member::join(config, topic, group, consumer)?);
        members.insert(key, member.clone());
        Ok(member)
    }

    /// The member `consumer` of `group` on `topic`, if it is in the group.
    pub(crate) fn find(&self, topic: &str, group: &str, consumer: &str) -> Option<Arc<Member>> {
        let key = (topic.to_owned(), group.to_owned(), consumer.to_owned());
        self.members.lock().expect("members").get(&key).cloned()
    }

    /// The members of `group` on `topic` in this process.
    pub(crate) fn of(&self, topic: &str, group: &str) -> Vec<Arc<Member>> {
        self.members
            .lock()
            .expect("members")
            .iter()
            .filter(|((t, g, _), _)| t == topic && g == group)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Removes a member that leaves; what it left unacknowledged stays
    /// pending for its group.
    pub(crate) fn leave(&self, topic: &str, group: &str, consumer: &str) -> Option<Arc<Member>> {
        let key = (topic.to_owned(), group.to_owned(), consumer.to_owned());
        let member = self.members.lock().expect("members").remove(&key)?;
        let left = member.tracker().lock().expect("tracker").pending_entries();
        if !left.is_empty() {
            let mut orphans = self.orphans.lock().expect("orphans");
            let set = orphans
                .entry((topic.to_owned(), group.to_owned()))
                .or_default();
            set.extend(left);
            // Bounded: the oldest go first (they are the likeliest to have
            // been handled by another member since).
            while set.len() > MAX_ORPHANS {
                set.pop_first();
            }
        }
        Some(member)
    }

    /// Forgets left-behind entries that are delivered or acknowledged again.
    pub(crate) fn adopt(&self, topic: &str, group: &str, entries: &[(i32, i64)]) {
        let mut orphans = self.orphans.lock().expect("orphans");
        if let Some(set) = orphans.get_mut(&(topic.to_owned(), group.to_owned())) {
            for e in entries {
                set.remove(e);
            }
        }
    }

    /// Forgets the left-behind entries of `group` that its committed
    /// offsets (partition -> next offset to read) have passed, and returns
    /// how many are left.
    pub(crate) fn prune_orphans(
        &self,
        topic: &str,
        group: &str,
        committed: &HashMap<i32, i64>,
    ) -> u64 {
        let mut orphans = self.orphans.lock().expect("orphans");
        let key = (topic.to_owned(), group.to_owned());
        let Some(set) = orphans.get_mut(&key) else {
            return 0;
        };
        set.retain(|(p, o)| committed.get(p).is_none_or(|c| o >= c));
        let left = set.len() as u64;
        if left == 0 {
            orphans.remove(&key);
        }
        left
    }
}
