//! The sealing side's cache of data keys: bounded in size and in age, asked
//! for once per subject however many sends wait at the same moment (each
//! waiting send drives the same answer, so one that is never polled again
//! holds up none of the others), and read again ahead of its expiry while
//! sends use it (so that a subject in use never has its sends wait for the
//! vault).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::data_key::DataKey;
use super::subject::{BySubject, SubjectHash};
use crate::{Error, Result};

/// What a cache miss asks the vault: a future of the key, run by whichever
/// waiting send polls it.
pub(crate) type Asking = BoxFuture<'static, Result<DataKey>>;

/// An answer that every waiting send can poll and clone.
type Answer = Shared<BoxFuture<'static, std::result::Result<DataKey, Arc<Error>>>>;

pub(crate) struct KeyCache {
    state: Mutex<State>,
    /// Counts forgotten subjects: a key made while one was forgotten is
    /// made again if its slot is gone.
    forgets: std::sync::atomic::AtomicU64,
    capacity: usize,
    ttl: Duration,
}

#[derive(Default)]
struct State {
    slots: BySubject<SubjectHash, Slot>,
    /// Insertion order, oldest first: (subject, generation of its slot).
    order: VecDeque<(SubjectHash, u64)>,
    next_generation: u64,
}

/// A slot's key: known, or asked for.
enum SlotKey {
    Ready(DataKey),
    Asked(Answer),
}

struct Slot {
    key: SlotKey,
    /// When the vault read that gave the key began: the key is trusted for
    /// the TTL from then.
    made: Instant,
    generation: u64,
    /// A read ahead of the expiry was asked for.
    refreshing: bool,
}

/// A cached key, and whether it is due to be read again (past half its
/// time in the cache; said once per key).
pub(crate) struct Cached {
    pub(crate) key: DataKey,
    pub(crate) refresh_due: bool,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            forgets: std::sync::atomic::AtomicU64::new(0),
            capacity,
            ttl,
        }
    }

    /// The cached key of `subject`, or the one `ask` gives (asked once for
    /// all callers waiting on this subject, each of which drives the same
    /// answer; a failure is not cached). A key asked for while the subject
    /// was forgotten (erased) is not returned: it is asked for again, after
    /// the erasure.
    pub(crate) async fn get_or_make(
        &self,
        subject: &SubjectHash,
        ask: impl Fn() -> Asking,
    ) -> Result<DataKey> {
        if self.capacity == 0 || self.ttl.is_zero() {
            return ask().await;
        }
        loop {
            let forgets = self.forgets();
            let (answer, generation) = match self.slot(subject, &ask) {
                Ok(key) => return Ok(key),
                Err(asked) => asked,
            };
            match answer.await {
                Ok(key) => {
                    let held = self.settle(subject, generation, Some(&key));
                    // Asked again only when an erasure took the slot away: a
                    // slot replaced because it aged or was evicted keeps its
                    // key.
                    if self.forgets() == forgets || held {
                        return Ok(key);
                    }
                }
                Err(e) => {
                    self.settle(subject, generation, None);
                    return Err(e.copied());
                }
            }
        }
    }

    /// Puts the answer of generation `generation` in its slot (`None`: it
    /// failed, the slot goes); whether the slot was still that one (it was
    /// not forgotten).
    fn settle(&self, subject: &SubjectHash, generation: u64, key: Option<&DataKey>) -> bool {
        let mut state = self.state.lock().expect("key cache lock");
        let Some(slot) = state.slots.get_mut(subject) else {
            return false;
        };
        if slot.generation != generation {
            return false;
        }
        match key {
            Some(key) => slot.key = SlotKey::Ready(key.clone()),
            None => {
                state.slots.remove(subject);
            }
        }
        true
    }

    /// The cached key of `subject`, if it is made and not too old; due for
    /// a read ahead of its expiry once past half its TTL (told once).
    pub(crate) fn get(&self, subject: &SubjectHash) -> Option<Cached> {
        let mut state = self.state.lock().expect("key cache lock");
        let slot = state.slots.get_mut(subject)?;
        let age = slot.made.elapsed();
        if age >= self.ttl {
            return None;
        }
        let SlotKey::Ready(key) = &slot.key else {
            return None;
        };
        let key = key.clone();
        let refresh_due = !slot.refreshing && age >= self.ttl / 2;
        slot.refreshing |= refresh_due;
        Some(Cached { key, refresh_due })
    }

    /// How many subjects were forgotten so far: taken when a read ahead
    /// begins, for [`install`](Self::install).
    pub(crate) fn forgets(&self) -> u64 {
        self.forgets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Puts the key of a read ahead (after [`get`](Self::get) said one was
    /// due) in the subject's slot, trusted from `began`, when the read
    /// began; unless a subject was forgotten (erased) since `forgets` was
    /// counted, or a newer read already filled the slot.
    pub(crate) fn install(
        &self,
        subject: &SubjectHash,
        key: DataKey,
        began: Instant,
        forgets: u64,
    ) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let mut state = self.state.lock().expect("key cache lock");
        if self.forgets() != forgets {
            // Perhaps this subject's erasure: the next send reads the vault.
            if let Some(slot) = state.slots.get_mut(subject) {
                slot.refreshing = false;
            }
            return;
        }
        if state
            .slots
            .get(subject)
            .is_some_and(|slot| slot.made >= began)
        {
            return;
        }
        self.insert(&mut state, subject, SlotKey::Ready(key), began);
    }

    /// A read ahead failed: the next send that finds the key due asks
    /// again.
    pub(crate) fn read_ahead_failed(&self, subject: &SubjectHash) {
        if let Some(slot) = self
            .state
            .lock()
            .expect("key cache lock")
            .slots
            .get_mut(subject)
        {
            slot.refreshing = false;
        }
    }

    /// The key if it is known, else the answer to wait for (asked now if
    /// the subject has no young slot) and its slot's generation.
    fn slot(
        &self,
        subject: &SubjectHash,
        ask: impl Fn() -> Asking,
    ) -> Result<DataKey, (Answer, u64)> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("key cache lock");
        if let Some(slot) = state.slots.get(subject) {
            if now.duration_since(slot.made) < self.ttl {
                return match &slot.key {
                    SlotKey::Ready(key) => Ok(key.clone()),
                    SlotKey::Asked(answer) => Err((answer.clone(), slot.generation)),
                };
            }
        }
        // Not polled here (under the lock): the first waiter runs it.
        let answer: Answer = ask().map(|key| key.map_err(Arc::new)).boxed().shared();
        let generation = self.insert(&mut state, subject, SlotKey::Asked(answer.clone()), now);
        Err((answer, generation))
    }

    /// Puts `key` in `subject`'s slot (a new generation), evicting the
    /// oldest slots beyond the capacity.
    fn insert(&self, state: &mut State, subject: &SubjectHash, key: SlotKey, made: Instant) -> u64 {
        if !state.slots.contains_key(subject) {
            self.make_room(state);
        }
        let generation = state.next_generation;
        state.next_generation += 1;
        state.slots.insert(
            *subject,
            Slot {
                key,
                made,
                generation,
                refreshing: false,
            },
        );
        state.order.push_back((*subject, generation));
        // Replaced slots leave stale entries in `order`; keep it bounded.
        if state.order.len() > self.capacity.saturating_mul(2) {
            let slots = &state.slots;
            let live: VecDeque<(SubjectHash, u64)> = state
                .order
                .iter()
                .filter(|(s, g)| slots.get(s).is_some_and(|slot| slot.generation == *g))
                .copied()
                .collect();
            state.order = live;
        }
        generation
    }

    /// Evicts the oldest slots until one more fits.
    fn make_room(&self, state: &mut State) {
        while state.slots.len() >= self.capacity {
            let Some((oldest, generation)) = state.order.pop_front() else {
                break;
            };
            if state
                .slots
                .get(&oldest)
                .is_some_and(|s| s.generation == generation)
            {
                state.slots.remove(&oldest);
            }
        }
    }

    /// Forgets a subject's key (it was erased).
    pub(crate) fn forget(&self, subject: &SubjectHash) {
        self.forgets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.state
            .lock()
            .expect("key cache lock")
            .slots
            .remove(subject);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::privacy::SubjectKey;

    #[tokio::test]
    async fn a_key_is_made_once_for_concurrent_callers_and_the_cache_is_bounded() {
        let cache = Arc::new(KeyCache::new(3, Duration::from_secs(60)));
        let subjects = SubjectKey::generate();
        let made = Arc::new(AtomicUsize::new(0));
        let ann = subjects.hash("ann");
        let calls = (0..20).map(|_| {
            let (cache, made) = (cache.clone(), made.clone());
            async move {
                cache
                    .get_or_make(&ann, || {
                        let made = made.clone();
                        Box::pin(async move {
                            made.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok(DataKey::generate())
                        })
                    })
                    .await
                    .unwrap()
                    .id()
            }
        });
        let ids = futures_util::future::join_all(calls).await;
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert!(ids.iter().all(|id| *id == ids[0]));

        for name in ["b", "c", "d", "e"] {
            let s = subjects.hash(name);
            cache
                .get_or_make(&s, || -> Asking {
                    Box::pin(async { Ok(DataKey::generate()) })
                })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 3);
        // Ann was the oldest: evicted, she gets a key made anew.
        let fresh = || -> Asking { Box::pin(async { Ok(DataKey::generate()) }) };
        let remade = cache.get_or_make(&ann, fresh).await.unwrap();
        assert_ne!(remade.id(), ids[0]);
        assert_eq!(
            cache.get_or_make(&ann, fresh).await.unwrap().id(),
            remade.id()
        );
        cache.forget(&ann);
        let again = cache.get_or_make(&ann, fresh).await.unwrap();
        assert_ne!(again.id(), remade.id());
    }

    #[tokio::test]
    async fn entries_expire_and_failures_are_not_kept() {
        let cache = KeyCache::new(10, Duration::from_millis(30));
        let ann = SubjectKey::generate().hash("ann");
        let failed = cache
            .get_or_make(&ann, || {
                Box::pin(async {
                    Err(crate::Error::KeyVault {
                        reason: "down".into(),
                    })
                })
            })
            .await;
        assert!(failed.is_err());
        let first = cache
            .get_or_make(&ann, || -> Asking {
                Box::pin(async { Ok(DataKey::generate()) })
            })
            .await
            .unwrap();
        let cached = cache
            .get_or_make(&ann, || -> Asking {
                Box::pin(async { Ok(DataKey::generate()) })
            })
            .await
            .unwrap();
        assert_eq!(first.id(), cached.id());
        tokio::time::sleep(Duration::from_millis(40)).await;
        let later = cache
            .get_or_make(&ann, || -> Asking {
                Box::pin(async { Ok(DataKey::generate()) })
            })
            .await
            .unwrap();
        assert_ne!(first.id(), later.id());
    }

    /// A make slower than the cache's TTL returns its key: only an
    /// erasure (a forgotten subject) makes it make the key again.
    #[tokio::test]
    async fn a_slow_make_is_not_made_again_for_an_aged_slot() {
        let cache = Arc::new(KeyCache::new(10, Duration::from_millis(5)));
        let ann = SubjectKey::generate().hash("ann");
        let made = Arc::new(AtomicUsize::new(0));
        let make = || -> Asking {
            let made = made.clone();
            Box::pin(async move {
                made.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(DataKey::generate())
            })
        };
        let again = {
            let cache = cache.clone();
            async move {
                loop {
                    // Another send that finds the slot aged makes it anew.
                    tokio::time::sleep(Duration::from_millis(6)).await;
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        let slow = || -> Asking {
                            Box::pin(async {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Ok(DataKey::generate())
                            })
                        };
                        let _ = cache.get_or_make(&ann, slow).await;
                    });
                }
            }
        };
        let first = tokio::select! {
            key = tokio::time::timeout(Duration::from_secs(2), cache.get_or_make(&ann, make)) => key,
            _ = again => unreachable!(),
        };
        assert!(first.is_ok(), "the make never returned");
    }

    /// Past half its TTL a key is due for a read ahead (said once); the
    /// key read replaces it and is trusted from when the read began.
    #[tokio::test]
    async fn a_key_in_use_is_read_again_before_it_expires() {
        let ttl = Duration::from_millis(200);
        let cache = KeyCache::new(10, ttl);
        let ann = SubjectKey::generate().hash("ann");
        let first = cache
            .get_or_make(&ann, || -> Asking {
                Box::pin(async { Ok(DataKey::generate()) })
            })
            .await
            .unwrap();
        let young = cache.get(&ann).unwrap();
        assert!(!young.refresh_due, "due before half its TTL");
        assert_eq!(young.key.id(), first.id());
        tokio::time::sleep(ttl / 2).await;
        let due = cache.get(&ann).unwrap();
        assert!(due.refresh_due, "not due past half its TTL");
        assert!(!cache.get(&ann).unwrap().refresh_due, "said twice");
        let (began, forgets) = (Instant::now(), cache.forgets());
        let second = DataKey::generate();
        let id = second.id();
        cache.install(&ann, second, began, forgets);
        // Past the first key's expiry, the read ahead's key is there.
        tokio::time::sleep(ttl / 2 + Duration::from_millis(20)).await;
        let later = cache.get(&ann).expect("the read ahead renewed the key");
        assert_eq!(later.key.id(), id);
        // A read that began before the slot was filled does not replace it.
        cache.install(&ann, DataKey::generate(), began, forgets);
        assert_eq!(cache.get(&ann).unwrap().key.id(), id);
    }

    #[tokio::test]
    async fn a_read_ahead_that_fails_is_asked_again_and_one_racing_an_erasure_is_dropped() {
        let ttl = Duration::from_millis(100);
        let cache = KeyCache::new(10, ttl);
        let ann = SubjectKey::generate().hash("ann");
        cache
            .get_or_make(&ann, || -> Asking {
                Box::pin(async { Ok(DataKey::generate()) })
            })
            .await
            .unwrap();
        tokio::time::sleep(ttl / 2).await;
        assert!(cache.get(&ann).unwrap().refresh_due);
        cache.read_ahead_failed(&ann);
        assert!(cache.get(&ann).unwrap().refresh_due, "not asked again");
        // Another subject is erased while the read is out: its key is not
        // trusted, but the next send asks again.
        let (began, forgets) = (Instant::now(), cache.forgets());
        cache.forget(&SubjectKey::generate().hash("bob"));
        let kept = cache.get(&ann).unwrap().key.id();
        cache.install(&ann, DataKey::generate(), began, forgets);
        let after = cache.get(&ann).unwrap();
        assert_eq!(after.key.id(), kept);
        assert!(after.refresh_due, "a dropped read ahead is not asked again");
        // The subject itself is erased while the read is out: its key stays
        // out.
        let (began, forgets) = (Instant::now(), cache.forgets());
        cache.forget(&ann);
        cache.install(&ann, DataKey::generate(), began, forgets);
        assert!(
            cache.get(&ann).is_none(),
            "a read overtaken by an erasure filled the cache"
        );
    }
}
