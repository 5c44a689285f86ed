//! The entries a consumer holds: read and not yet settled (queued behind
//! their key, running, waiting for a redelivery or for the store). On a
//! channel with claim, the consumer keeps their idle time short
//! ([`StreamChannel::touch`](crate::StreamChannel::touch)), so that no
//! member claims them, and skips a delivery of an entry it already holds
//! (its own claim or its own pending list giving it back), so that no entry
//! is handled twice at once. Entries the touch reports taken by another
//! member are dropped before they run.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use crate::channel::EntryId;

/// What the consumer holds; shared by the loop, the message tasks, the
/// ack task and the keep-alive task. Disabled (free) on channels without
/// claim, where no other member can take an entry from a live one.
#[derive(Clone)]
pub(crate) struct Held(Option<Arc<Mutex<State>>>);

#[derive(Default)]
struct State {
    ids: HashSet<EntryId, Fnv>,
    /// Held entries another member has now: dropped before they run.
    /// Almost always empty, so that asking costs no lookup.
    lost: HashSet<EntryId, Fnv>,
}

/// FNV-1a: entry ids are short strings the server made, so a keyed hash
/// (SipHash, against flooding) is not needed, and this one is several times
/// cheaper per message.
type Fnv = BuildHasherDefault<FnvHasher>;

#[derive(Default)]
struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Held {
    pub(crate) fn new(enabled: bool) -> Self {
        Self(enabled.then(Arc::default))
    }

    fn state(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        self.0
            .as_ref()
            .map(|state| state.lock().expect("held entries"))
    }

    /// Takes an entry in hand; false if it is already held (then a lost
    /// one counts as regained: this consumer has it again).
    pub(crate) fn take(&self, id: &EntryId) -> bool {
        let Some(mut state) = self.state() else {
            return true;
        };
        if state.ids.insert(id.clone()) {
            return true;
        }
        if !state.lost.is_empty() {
            state.lost.remove(id);
        }
        false
    }

    /// Lets go of an entry (settled, left pending, or dropped).
    pub(crate) fn release(&self, id: &EntryId) {
        if let Some(mut state) = self.state() {
            state.ids.remove(id);
            if !state.lost.is_empty() {
                state.lost.remove(id);
            }
        }
    }

    /// Whether another member took the entry.
    pub(crate) fn is_lost(&self, id: &EntryId) -> bool {
        self.state()
            .is_some_and(|state| !state.lost.is_empty() && state.lost.contains(id))
    }

    /// Marks entries as taken by another member.
    pub(crate) fn lose(&self, ids: &[EntryId]) {
        if let Some(mut state) = self.state() {
            for id in ids {
                if state.ids.contains(id) {
                    state.lost.insert(id.clone());
                }
            }
        }
    }

    /// Whether nothing is held: nothing a read of this consumer's own
    /// pending entries would give again (`None`: not tracked, on a channel
    /// without claim).
    pub(crate) fn is_empty(&self) -> Option<bool> {
        self.state().map(|state| state.ids.is_empty())
    }

    /// Every entry held and not lost.
    pub(crate) fn ids(&self) -> Vec<EntryId> {
        self.state().map_or_else(Vec::new, |state| {
            state
                .ids
                .iter()
                .filter(|id| !state.lost.contains(*id))
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_taken_once_until_released() {
        let held = Held::new(true);
        let id = EntryId::new("1");
        assert!(held.take(&id));
        assert!(!held.take(&id), "a second delivery of a held entry");
        held.lose(std::slice::from_ref(&id));
        assert!(held.is_lost(&id));
        assert!(held.ids().is_empty(), "a lost entry is not touched");
        assert!(!held.take(&id), "given back: held again, not twice");
        assert!(!held.is_lost(&id));
        held.release(&id);
        assert!(held.take(&id));
    }

    #[test]
    fn disabled_it_holds_nothing() {
        let held = Held::new(false);
        let id = EntryId::new("1");
        assert!(held.take(&id) && held.take(&id));
        assert!(held.ids().is_empty() && !held.is_lost(&id));
    }
}
