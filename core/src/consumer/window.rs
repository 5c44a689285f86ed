//! How much a consumer reads ahead: every message read and not yet settled
//! takes a slot, and reading waits for one.
//!
//! The window has `size` slots for messages on their way (loading, queued
//! behind their key, running) and as many spare slots. One key may take at
//! most `key_cap` slots of the window; its messages read beyond that take
//! spare slots, and so does a message while it waits out its redelivery
//! backoff (when a spare slot is free). So a key whose first message keeps
//! failing, with a long queue behind it, holds a quarter of the window and
//! the spare slots, and the consumer goes on reading past it to the other
//! keys; only a queue longer than the spare slots stops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub(crate) struct Window {
    size: usize,
    spare: usize,
    key_cap: usize,
    state: Mutex<State>,
    /// Signalled when a slot frees; only the reading loop waits.
    freed: Notify,
}

#[derive(Default)]
struct State {
    used: usize,
    spare_used: usize,
    /// Window slots taken, per key.
    keys: HashMap<String, usize>,
}

/// A message's place in the window; dropping it frees the place.
pub(crate) struct Slot {
    window: Arc<Window>,
    /// The key whose share of the window it takes, if in the window.
    key: Option<String>,
    spare: bool,
}

impl Window {
    /// `size` slots (at least 1), as many spare ones, and at most
    /// `key_cap` of the window for one key.
    pub(crate) fn new(size: usize, key_cap: usize) -> Arc<Self> {
        let size = size.max(1);
        Arc::new(Self {
            size,
            spare: size,
            key_cap: key_cap.clamp(1, size),
            state: Mutex::new(State::default()),
            freed: Notify::new(),
        })
    }

    /// A slot for a message of `key` (none: unordered), waiting for one.
    pub(crate) async fn admit(self: &Arc<Self>, key: Option<&str>) -> Slot {
        loop {
            if let Some(slot) = self.try_admit(key) {
                return slot;
            }
            self.freed.notified().await;
        }
    }

    fn try_admit(self: &Arc<Self>, key: Option<&str>) -> Option<Slot> {
        let mut state = self.state.lock().expect("window");
        let taken = key.map_or(0, |k| state.keys.get(k).copied().unwrap_or(0));
        if taken < self.key_cap {
            if state.used >= self.size {
                return None;
            }
            state.used += 1;
            if let Some(k) = key {
                *state.keys.entry(k.to_owned()).or_default() += 1;
            }
            return Some(Slot {
                window: self.clone(),
                key: key.map(str::to_owned),
                spare: false,
            });
        }
        if state.spare_used >= self.spare {
            return None;
        }
        state.spare_used += 1;
        Some(Slot {
            window: self.clone(),
            key: None,
            spare: true,
        })
    }

    fn free_window_slot(&self, state: &mut State, key: Option<&str>) {
        state.used -= 1;
        if let Some(k) = key {
            if let Some(n) = state.keys.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    state.keys.remove(k);
                }
            }
        }
    }
}

impl Slot {
    /// Moves to a spare slot, if one is free, leaving the window to others
    /// (a message that waits out its backoff).
    pub(crate) fn step_aside(&mut self) {
        if self.spare {
            return;
        }
        let window = self.window.clone();
        let mut state = window.state.lock().expect("window");
        if state.spare_used >= window.spare {
            return;
        }
        state.spare_used += 1;
        window.free_window_slot(&mut state, self.key.as_deref());
        drop(state);
        self.key = None;
        self.spare = true;
        window.freed.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let window = self.window.clone();
        {
            let mut state = window.state.lock().expect("window");
            if self.spare {
                state.spare_used -= 1;
            } else {
                window.free_window_slot(&mut state, self.key.as_deref());
            }
        }
        window.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admitted(window: &Arc<Window>, key: Option<&str>) -> Option<Slot> {
        window.try_admit(key)
    }

    #[test]
    fn one_key_takes_its_share_then_spare_slots() {
        let window = Window::new(4, 2);
        let a1 = admitted(&window, Some("a")).unwrap();
        let a2 = admitted(&window, Some("a")).unwrap();
        assert!(!a1.spare && !a2.spare);
        let a3 = admitted(&window, Some("a")).expect("over its share: a spare slot");
        assert!(a3.spare);
        let b = admitted(&window, Some("b")).expect("other keys still get in");
        assert!(!b.spare);
        let _rest: Vec<Slot> = (0..3)
            .map(|_| admitted(&window, Some("a")).unwrap())
            .collect();
        assert!(
            admitted(&window, Some("a")).is_none(),
            "spare slots used up"
        );
        let last = admitted(&window, None).expect("one window slot left");
        assert!(admitted(&window, None).is_none(), "window full");
        drop(b);
        assert!(admitted(&window, Some("c")).is_some());
        drop(last);
    }

    #[test]
    fn a_waiting_message_leaves_its_window_slot() {
        let window = Window::new(1, 1);
        let mut first = admitted(&window, Some("a")).unwrap();
        assert!(admitted(&window, Some("b")).is_none());
        first.step_aside();
        let second = admitted(&window, Some("b")).expect("the window slot was freed");
        drop(first);
        assert!(
            admitted(&window, Some("a")).is_none(),
            "a key under its share waits for the window, not for a spare slot"
        );
        drop(second);
        assert!(admitted(&window, Some("a")).is_some_and(|s| !s.spare));
    }

    #[tokio::test]
    async fn admission_waits_for_a_freed_slot() {
        let window = Window::new(1, 1);
        let first = window.admit(None).await;
        let waiting = {
            let window = window.clone();
            tokio::spawn(async move { window.admit(None).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("admitted once a slot freed")
            .unwrap();
    }
}
