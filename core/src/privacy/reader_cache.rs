//! The reading side's cache of vault answers: each subject's keys as read,
//! trusted for a bounded time, never refilled by a read that an erasure
//! overtook.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::subject::{BySubject, SubjectHash};
use super::subject_keys::SubjectKeys;

pub(crate) struct ReaderCache {
    answers: Mutex<BySubject<SubjectHash, (Instant, SubjectKeys)>>,
    /// Counts erasures: a read that began before one does not fill the
    /// cache.
    erasures: AtomicU64,
    ttl: Duration,
    capacity: usize,
}

/// Where a read began: its time and the erasures counted then.
pub(crate) struct ReadStart {
    at: Instant,
    erasures: u64,
}

impl ReaderCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            answers: Mutex::new(BySubject::default()),
            erasures: AtomicU64::new(0),
            ttl,
            capacity,
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached answer of each subject, if it is young enough.
    pub(crate) fn cached(&self, subjects: &[SubjectHash]) -> Vec<Option<SubjectKeys>> {
        if self.ttl.is_zero() {
            return vec![None; subjects.len()];
        }
        let now = Instant::now();
        let answers = self.answers.lock().expect("reader cache lock");
        subjects
            .iter()
            .map(|subject| {
                answers
                    .get(subject)
                    .filter(|(at, _)| now.duration_since(*at) < self.ttl)
                    .map(|(_, keys)| keys.clone())
            })
            .collect()
    }

    /// Taken before a read of the vault.
    pub(crate) fn start(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            erasures: self.erasures.load(Ordering::SeqCst),
        }
    }

    /// Keeps the answers of a read begun at `start`, aged from then,
    /// unless an erasure came in between.
    pub(crate) fn fill(&self, start: ReadStart, subjects: &[SubjectHash], answers: &[SubjectKeys]) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut cached = self.answers.lock().expect("reader cache lock");
        if self.erasures.load(Ordering::SeqCst) != start.erasures {
            return;
        }
        if cached.len() + subjects.len() > self.capacity {
            cached.clear();
        }
        for (subject, keys) in subjects.iter().zip(answers) {
            cached.insert(*subject, (start.at, keys.clone()));
        }
    }

    /// Forgets an erased subject, and keeps reads under way out.
    pub(crate) fn erased(&self, subject: &SubjectHash) {
        self.erasures.fetch_add(1, Ordering::SeqCst);
        self.answers
            .lock()
            .expect("reader cache lock")
            .remove(subject);
    }
}
