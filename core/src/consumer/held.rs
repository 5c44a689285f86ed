//! The entries a consumer holds: read and not yet settled (queued behind
//! their key, running, waiting for a redelivery or for the store). On a
//! channel with claim, the consumer keeps their idle time short
//! ([`StreamChannel::touch`](crate::StreamChannel::touch)), so that no
//! member claims them, and skips a delivery of an entry it already holds
//! (its own claim or its own pending list giving it back), so that no entry
//! is handled twice at once. Entries the touch reports taken by another
//! member are dropped before they run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::channel::EntryId;

/// What the consumer holds; shared by the loop, the message tasks and the
/// keep-alive task. Disabled (free) on channels without claim, where no
/// other member can take an entry from a live one.
#[derive(Clone)]
pub(crate) struct Held(Option<Arc<Mutex<HashMap<EntryId, Hold>>>>);

#[derive(Clone, Copy, Default)]
struct Hold {
    /// Another member has it now: drop it before it runs.
    lost: bool,
}

impl Held {
    pub(crate) fn new(enabled: bool) -> Self {
        Self(enabled.then(Arc::default))
    }

    /// Takes an entry in hand; false if it is already held (then a lost
    /// one counts as regained: this consumer has it again).
    pub(crate) fn take(&self, id: &EntryId) -> bool {
        let Some(map) = &self.0 else {
            return true;
        };
        let mut map = map.lock().expect("held entries");
        match map.get_mut(id) {
            Some(hold) => {
                hold.lost = false;
                false
            }
            None => {
                map.insert(id.clone(), Hold::default());
                true
            }
        }
    }

    /// Lets go of an entry (settled, left pending, or dropped).
    pub(crate) fn release(&self, id: &EntryId) {
        if let Some(map) = &self.0 {
            map.lock().expect("held entries").remove(id);
        }
    }

    /// Whether another member took the entry.
    pub(crate) fn is_lost(&self, id: &EntryId) -> bool {
        self.0.as_ref().is_some_and(|map| {
            map.lock()
                .expect("held entries")
                .get(id)
                .is_some_and(|h| h.lost)
        })
    }

    /// Marks entries as taken by another member.
    pub(crate) fn lose(&self, ids: &[EntryId]) {
        if let Some(map) = &self.0 {
            let mut map = map.lock().expect("held entries");
            for id in ids {
                if let Some(hold) = map.get_mut(id) {
                    hold.lost = true;
                }
            }
        }
    }

    /// Every entry held and not lost.
    pub(crate) fn ids(&self) -> Vec<EntryId> {
        self.0.as_ref().map_or_else(Vec::new, |map| {
            map.lock()
                .expect("held entries")
                .iter()
                .filter(|(_, h)| !h.lost)
                .map(|(id, _)| id.clone())
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
