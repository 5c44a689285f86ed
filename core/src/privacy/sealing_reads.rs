//! The sealing side's reads of the vault, gathered: the subjects whose keys
//! sends miss at one moment are read (and their first keys made) together,
//! in one round trip, rather than one read per subject.
//!
//! Without it, a cache that expires for 1,000 subjects at once makes 1,000
//! reads, and the sends waiting on them reach the producer's batcher a few
//! at a time, in small batches.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::data_key::DataKey;
use super::subject::{BySubject, SubjectHash};
use crate::{Error, Result};

/// Most subjects read together.
const MAX_SUBJECTS: usize = 512;

pub(crate) struct SealingReads {
    /// The read that subjects still join: not started yet.
    open: Mutex<Option<Arc<Read>>>,
}

/// One gathered read: its subjects, and its answer once read.
struct Read {
    subjects: Mutex<Joined>,
    answer: OnceCell<Answer>,
}

#[derive(Default)]
struct Joined {
    subjects: Vec<SubjectHash>,
    /// The same subjects, to find one at once.
    seen: BySubject<SubjectHash, ()>,
    /// Started: nobody joins any more.
    closed: bool,
}

/// Each subject's key (or why it has none), or why the read failed: shared
/// by all who waited.
type Answer = std::result::Result<BySubject<SubjectHash, Shared<DataKey>>, Arc<Error>>;
type Shared<T> = std::result::Result<T, Arc<Error>>;

impl SealingReads {
    pub(crate) fn new() -> Self {
        Self {
            open: Mutex::new(None),
        }
    }

    /// The key of `subject` from a read shared with the other subjects
    /// missed at this moment. `read` gets the subjects (each once) and
    /// answers with each one's key (or why it has none) in the same order;
    /// it runs once per read, in the first caller to wait (in another if
    /// that one is dropped).
    pub(crate) async fn key<F, Fut>(&self, subject: &SubjectHash, read: F) -> Result<DataKey>
    where
        F: FnOnce(Vec<SubjectHash>) -> Fut,
        Fut: Future<Output = Result<Vec<Result<DataKey>>>>,
    {
        let joined = self.join(subject);
        let answer = joined
            .answer
            .get_or_init(|| async {
                // Let the sends polled at this moment join before it starts.
                tokio::task::yield_now().await;
                let subjects = self.close(&joined);
                match read(subjects.clone()).await {
                    Ok(keys) => Ok(subjects
                        .into_iter()
                        .zip(keys.into_iter().map(|k| k.map_err(Arc::new)))
                        .collect()),
                    Err(e) => Err(Arc::new(e)),
                }
            })
            .await;
        match answer {
            Ok(keys) => match keys
                .get(subject)
                .expect("a read answers for each of its subjects")
            {
                Ok(key) => Ok(key.clone()),
                Err(e) => Err(copy_of(e)),
            },
            Err(e) => Err(copy_of(e)),
        }
    }

    /// The open read, with `subject` in it (a new one when there is none
    /// or it is full).
    fn join(&self, subject: &SubjectHash) -> Arc<Read> {
        let mut open = self.open.lock().expect("sealing reads lock");
        if let Some(read) = open.as_ref() {
            let mut joined = read.subjects.lock().expect("sealing read lock");
            if !joined.closed {
                if joined.seen.contains_key(subject) {
                    return read.clone();
                }
                if joined.subjects.len() < MAX_SUBJECTS {
                    joined.subjects.push(*subject);
                    joined.seen.insert(*subject, ());
                    return read.clone();
                }
            }
        }
        let read = Arc::new(Read {
            subjects: Mutex::new(Joined {
                subjects: vec![*subject],
                seen: std::iter::once((*subject, ())).collect(),
                closed: false,
            }),
            answer: OnceCell::new(),
        });
        *open = Some(read.clone());
        read
    }

    /// Starts `read`: no subject joins it any more. Its subjects.
    fn close(&self, read: &Arc<Read>) -> Vec<SubjectHash> {
        let mut open = self.open.lock().expect("sealing reads lock");
        if open.as_ref().is_some_and(|o| Arc::ptr_eq(o, read)) {
            *open = None;
        }
        let mut joined = read.subjects.lock().expect("sealing read lock");
        joined.closed = true;
        joined.subjects.clone()
    }
}

/// The error of a shared read, for each send that waited on it.
fn copy_of(e: &Error) -> Error {
    match e {
        Error::Backend {
            backend,
            action,
            message,
            transient,
            ..
        } => Error::Backend {
            backend,
            action: action.clone(),
            message: message.clone(),
            transient: *transient,
            source: None,
        },
        other => Error::KeyVault {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::privacy::SubjectKey;

    #[tokio::test]
    async fn subjects_missed_at_one_moment_are_read_together() {
        let reads = SealingReads::new();
        let made = AtomicUsize::new(0);
        let subjects = SubjectKey::generate();
        let hashes: Vec<SubjectHash> = (0..1200).map(|i| subjects.hash(&i.to_string())).collect();
        // Two sends for each subject, one after the other.
        let asks = hashes.iter().flat_map(|h| [h, h]).map(|h| {
            reads.key(h, |subjects: Vec<SubjectHash>| {
                made.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::task::yield_now().await;
                    let mut seen = subjects.clone();
                    seen.sort_by_key(|s| *s.as_bytes());
                    seen.dedup();
                    assert_eq!(seen.len(), subjects.len(), "a subject read twice");
                    Ok(subjects.iter().map(|_| Ok(DataKey::generate())).collect())
                }
            })
        });
        let keys = futures_util::future::join_all(asks).await;
        // 1,200 subjects, at most 512 a read.
        assert_eq!(made.load(Ordering::SeqCst), 3);
        let keys: Vec<DataKey> = keys.into_iter().map(|k| k.unwrap()).collect();
        for pair in keys.chunks(2) {
            assert_eq!(pair[0].id(), pair[1].id());
        }
        assert_ne!(keys[0].id(), keys[2].id());
    }

    #[tokio::test]
    async fn a_failed_read_fails_every_send_that_waited_once_and_the_next_reads_again() {
        let reads = SealingReads::new();
        let made = AtomicUsize::new(0);
        let subjects = SubjectKey::generate();
        let hashes: Vec<SubjectHash> = (0..10).map(|i| subjects.hash(&i.to_string())).collect();
        let failing = |_: Vec<SubjectHash>| {
            made.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Error::Backend {
                    backend: "test",
                    action: "reading the vault".into(),
                    message: "down".into(),
                    transient: true,
                    source: None,
                })
            }
        };
        let failed =
            futures_util::future::join_all(hashes.iter().map(|h| reads.key(h, failing))).await;
        assert_eq!(
            made.load(Ordering::SeqCst),
            1,
            "one read, however many waited"
        );
        for e in failed {
            let e = e.unwrap_err();
            assert!(e.is_transient(), "{e}");
            assert!(e.to_string().contains("down"), "{e}");
        }
        let key = reads
            .key(&hashes[0], |s: Vec<SubjectHash>| async move {
                Ok(s.iter().map(|_| Ok(DataKey::generate())).collect())
            })
            .await;
        assert!(key.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_first_waiter_hands_the_read_to_the_next() {
        let reads = Arc::new(SealingReads::new());
        let ann = SubjectKey::generate().hash("ann");
        let slow = |s: Vec<SubjectHash>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(s.iter().map(|_| Ok(DataKey::generate())).collect())
        };
        let first = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.key(&ann, slow).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.key(&ann, slow).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        first.abort();
        let key = tokio::time::timeout(std::time::Duration::from_secs(2), second)
            .await
            .expect("the second waiter read on")
            .unwrap();
        assert!(key.is_ok());
    }
}
