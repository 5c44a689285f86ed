//! The reading side's cache of vault answers: each subject's keys as read,
//! trusted for a bounded time from when the read began, never refilled by
//! a read that an erasure overtook, and read again ahead of its expiry
//! while batches ask for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::subject::{BySubject, SubjectHash};
use super::subject_keys::SubjectKeys;

pub(crate) struct ReaderCache {
    answers: Mutex<BySubject<SubjectHash, Answer>>,
    /// Counts erasures: a read that began before one does not fill the
    /// cache.
    erasures: AtomicU64,
    ttl: Duration,
    capacity: usize,
}

struct Answer {
    /// When the read that gave it began.
    at: Instant,
    keys: SubjectKeys,
    /// A read ahead of its expiry was asked for.
    refreshing: bool,
}

/// What a batch finds in the cache: each subject's answer if it is young
/// enough, and the subjects whose answers are past half their time (each
/// said once: read them again in the background, [`ReaderCache::fill`]).
pub(crate) struct Found {
    pub(crate) answers: Vec<Option<SubjectKeys>>,
    pub(crate) due: Vec<SubjectHash>,
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

    /// The cached answer of each subject, if it is young enough, and which
    /// are due to be read again.
    pub(crate) fn cached(&self, subjects: &[SubjectHash]) -> Found {
        if self.ttl.is_zero() {
            return Found {
                answers: vec![None; subjects.len()],
                due: Vec::new(),
            };
        }
        let now = Instant::now();
        let mut due = Vec::new();
        let mut cached = self.answers.lock().expect("reader cache lock");
        let answers = subjects
            .iter()
            .map(|subject| {
                let answer = cached.get_mut(subject)?;
                let age = now.duration_since(answer.at);
                if age >= self.ttl {
                    return None;
                }
                if !answer.refreshing && age >= self.ttl / 2 {
                    answer.refreshing = true;
                    due.push(*subject);
                }
                Some(answer.keys.clone())
            })
            .collect();
        Found { answers, due }
    }

    /// A read ahead failed: the next batch that finds these subjects due
    /// asks again.
    pub(crate) fn read_ahead_failed(&self, subjects: &[SubjectHash]) {
        let mut cached = self.answers.lock().expect("reader cache lock");
        for subject in subjects {
            if let Some(answer) = cached.get_mut(subject) {
                answer.refreshing = false;
            }
        }
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
            // Perhaps one of these subjects was erased: the next batch
            // reads them itself.
            for subject in subjects {
                if let Some(answer) = cached.get_mut(subject) {
                    answer.refreshing = false;
                }
            }
            return;
        }
        if cached.len() + subjects.len() > self.capacity {
            cached.clear();
        }
        for (subject, keys) in subjects.iter().zip(answers) {
            // A newer answer stays.
            if cached.get(subject).is_some_and(|a| a.at > start.at) {
                continue;
            }
            let answer = Answer {
                at: start.at,
                keys: keys.clone(),
                refreshing: false,
            };
            cached.insert(*subject, answer);
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
