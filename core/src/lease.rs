//! [`Lease`]: whether a group member still owns an entry it was given.
//!
//! On Kafka a member owns its partitions, not single entries, and a
//! rebalance may take a partition away while the member still holds
//! entries of it (queued behind their key, waiting for a redelivery). The
//! channel gives every delivery of a partition that partition's lease and
//! revokes it when the partition goes: the consumer then drops the entries
//! it has not started (it checks once a message has a handler slot, just
//! before it starts), for the new owner, and the channel waits (a short,
//! bounded time) for those it has started, until their acknowledgement is
//! written, so that no entry is handled by two members at once.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ownership of delivered entries, revocable by the channel. Cheap to
/// clone; clones share the state. [`Lease::default`] is never revoked and
/// costs nothing.
///
/// ```
/// use event_backbone_core::Lease;
/// let lease = Lease::revocable();
/// let running = lease.enter().expect("not revoked yet");
/// lease.revoke();
/// assert!(lease.enter().is_none(), "nothing starts under a revoked lease");
/// assert_eq!(lease.active(), 1, "what started goes on");
/// drop(running);
/// assert_eq!(lease.active(), 0);
/// ```
#[derive(Clone, Default)]
pub struct Lease(Option<Arc<State>>);

struct State {
    revoked: AtomicBool,
    active: AtomicUsize,
}

impl Lease {
    /// A lease that the channel can revoke (unlike [`Lease::default`]).
    pub fn revocable() -> Self {
        Self(Some(Arc::new(State {
            revoked: AtomicBool::new(false),
            active: AtomicUsize::new(0),
        })))
    }

    /// Takes the entries away: nothing new starts under the lease.
    pub fn revoke(&self) {
        if let Some(state) = &self.0 {
            state.revoked.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the lease is revoked.
    pub fn is_revoked(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.revoked.load(Ordering::SeqCst))
    }

    /// Starts work on an entry under the lease: `None` if it is revoked.
    /// The work counts as [active](Self::active) until the guard is
    /// dropped (the consumer drops it once the entry's acknowledgement has
    /// reached the channel, or when it lets the entry wait).
    pub fn enter(&self) -> Option<LeaseGuard> {
        let Some(state) = &self.0 else {
            return Some(LeaseGuard(None));
        };
        // Count first, then look: a revocation that the check misses sees
        // the count, and waits for it.
        state.active.fetch_add(1, Ordering::SeqCst);
        if state.revoked.load(Ordering::SeqCst) {
            state.active.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(LeaseGuard(Some(state.clone())))
    }

    /// Entries started under the lease and not yet released.
    pub fn active(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |s| s.active.load(Ordering::SeqCst))
    }

    /// Blocks the thread until nothing is active under the lease or
    /// `timeout` has passed; true if nothing is. For a channel that
    /// revoked the lease and must not let the entries go while they run.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.active() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Lease(permanent)"),
            Some(_) => f
                .debug_struct("Lease")
                .field("revoked", &self.is_revoked())
                .field("active", &self.active())
                .finish(),
        }
    }
}

/// Work under a [`Lease`]; dropping it ends the work.
#[must_use = "dropping the guard ends the work at once"]
pub struct LeaseGuard(Option<Arc<State>>);

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(state) = &self.0 {
            state.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseGuard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permanent_lease_is_never_revoked() {
        let lease = Lease::default();
        lease.revoke();
        assert!(!lease.is_revoked());
        let _guard = lease.enter().expect("always");
        assert_eq!(lease.active(), 0, "a permanent lease counts nothing");
    }

    #[test]
    fn waiting_ends_when_the_work_ends() {
        let lease = Lease::revocable();
        let guard = lease.enter().unwrap();
        lease.revoke();
        assert!(!lease.wait_idle(Duration::from_millis(10)));
        let waiter = {
            let lease = lease.clone();
            std::thread::spawn(move || lease.wait_idle(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(guard);
        assert!(waiter.join().unwrap());
    }
}
