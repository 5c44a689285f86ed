//! The sealing side of a [`StoreKeyVault`](super::StoreKeyVault): the cache
//! of sealing keys, and the reads of the vault that fill it and keep it
//! fresh.
//!
//! Every read runs in one background task per vault, at most one read at a
//! time: the subjects missed while a read is out (sends waiting for a key,
//! and keys in use that are past half their time in the cache) are read
//! together by the next one, in one round trip. A send only waits for its
//! own subject's answer, so a send that is never polled again holds up no
//! other; and a subject in use has its key read again before the cached
//! copy expires, so its sends never wait for the vault.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::data_key::DataKey;
use super::key_cache::{Asking, KeyCache};
use super::records::Records;
use super::subject::{BySubject, SubjectHash};
use crate::{Error, Result};

/// Most subjects read together.
const MAX_SUBJECTS: usize = 512;

/// How long one read of the vault may take before its batch fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct SealingKeys {
    records: Arc<Records>,
    cache: KeyCache,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    asks: Vec<(SubjectHash, Ask)>,
    /// The read task is running: it takes what is asked.
    reading: bool,
}

/// Who waits for a subject's key.
enum Ask {
    /// A send whose key was not in the cache.
    Send(oneshot::Sender<Result<DataKey>>),
    /// The cache, for a key in use (a read ahead of its expiry): the key
    /// is trusted from `began`, unless subjects were forgotten since
    /// `forgets` was counted.
    Cache { began: Instant, forgets: u64 },
}

impl SealingKeys {
    pub(super) fn new(records: Arc<Records>, cache: KeyCache) -> Self {
        Self {
            records,
            cache,
            queue: Mutex::new(Queue::default()),
        }
    }

    /// The key to seal `subject`'s data with: the cached one, or one read
    /// (or made) by the read task.
    pub(super) async fn key(self: &Arc<Self>, subject: &SubjectHash) -> Result<DataKey> {
        let asking = || -> Asking {
            let (keys, subject) = (self.clone(), *subject);
            Box::pin(async move {
                let (answer, answered) = oneshot::channel();
                keys.ask(subject, Ask::Send(answer))?;
                answered.await.unwrap_or_else(|_| {
                    Err(Error::KeyVault {
                        reason: "the vault's read task ended before it answered (the runtime \
                                 is shutting down, or it panicked): send again"
                            .to_owned(),
                    })
                })
            })
        };
        self.cache.get_or_make(subject, asking).await
    }

    /// The cached key of `subject`, without waiting; a key past half its
    /// time is read again in the background.
    pub(super) fn cached(self: &Arc<Self>, subject: &SubjectHash) -> Option<DataKey> {
        let cached = self.cache.get(subject)?;
        if cached.refresh_due {
            if tokio::runtime::Handle::try_current().is_ok() {
                let ask = Ask::Cache {
                    began: Instant::now(),
                    forgets: self.cache.forgets(),
                };
                // Cannot fail: there is a runtime.
                let _ = self.ask(*subject, ask);
            } else {
                // No runtime to read in: the next send asks again.
                self.cache.read_ahead_failed(subject);
            }
        }
        Some(cached.key)
    }

    /// Forgets an erased subject's key.
    pub(super) fn forget(&self, subject: &SubjectHash) {
        self.cache.forget(subject);
    }

    /// Queues `ask`, and starts the read task if it is not running.
    fn ask(self: &Arc<Self>, subject: SubjectHash, ask: Ask) -> Result<()> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Error::KeyVault {
                reason: "a data key is read in a background task: seal inside a Tokio runtime"
                    .to_owned(),
            });
        };
        let start = {
            let mut queue = self.queue.lock().expect("sealing queue lock");
            queue.asks.push((subject, ask));
            !std::mem::replace(&mut queue.reading, true)
        };
        if start {
            // Made before the task: should the task be dropped before it
            // runs (a runtime shutting down), the guard still lets go.
            let running = Running {
                keys: self.clone(),
                ended: false,
            };
            runtime.spawn(read_all(running));
        }
        Ok(())
    }

    /// One read of the vault for `subjects`, bounded in time: a store that
    /// never answers fails the batch (transient) instead of holding every
    /// later miss.
    async fn read(&self, subjects: &[SubjectHash]) -> Result<Vec<Result<DataKey>>> {
        match tokio::time::timeout(READ_TIMEOUT, self.records.make_sealing_keys(subjects)).await {
            Ok(keys) => keys,
            Err(_) => Err(Error::Backend {
                backend: self.records.store.backend(),
                action: format!("reading the key vault for {} subjects", subjects.len()),
                message: format!("no answer within {READ_TIMEOUT:?}"),
                transient: true,
                source: None,
            }),
        }
    }
}

/// Reads what is asked, a batch at a time, until nothing is.
async fn read_all(mut running: Running) {
    let this = running.keys.clone();
    loop {
        // The sends polled with the first let it take them all.
        tokio::task::yield_now().await;
        let Some(batch) = this.next_batch() else {
            running.ended = true;
            return;
        };
        let subjects: Vec<SubjectHash> = batch.iter().map(|(s, _)| *s).collect();
        match this.read(&subjects).await {
            Ok(keys) if keys.len() == subjects.len() => {
                for ((subject, asks), key) in batch.into_iter().zip(keys) {
                    this.answer(&subject, asks, key);
                }
            }
            Ok(keys) => {
                let e = Error::KeyVault {
                    reason: format!(
                        "the vault answered {} keys for {} subjects",
                        keys.len(),
                        subjects.len()
                    ),
                };
                for (subject, asks) in batch {
                    this.answer(&subject, asks, Err(e.copied()));
                }
            }
            Err(e) => {
                for (subject, asks) in batch {
                    this.answer(&subject, asks, Err(e.copied()));
                }
            }
        }
    }
}

impl SealingKeys {
    /// Up to [`MAX_SUBJECTS`] subjects asked for, each with all who asked;
    /// `None` (and the task ends) when nothing is asked.
    fn next_batch(&self) -> Option<Vec<(SubjectHash, Vec<Ask>)>> {
        let mut queue = self.queue.lock().expect("sealing queue lock");
        if queue.asks.is_empty() {
            queue.reading = false;
            return None;
        }
        let mut batch: Vec<(SubjectHash, Vec<Ask>)> = Vec::new();
        let mut index: BySubject<SubjectHash, usize> = BySubject::default();
        let mut left = Vec::new();
        for (subject, ask) in queue.asks.drain(..) {
            match index.get(&subject) {
                Some(&i) => batch[i].1.push(ask),
                None if batch.len() < MAX_SUBJECTS => {
                    index.insert(subject, batch.len());
                    batch.push((subject, vec![ask]));
                }
                None => left.push((subject, ask)),
            }
        }
        queue.asks = left;
        Some(batch)
    }

    fn answer(&self, subject: &SubjectHash, asks: Vec<Ask>, key: Result<DataKey>) {
        for ask in asks {
            match (ask, &key) {
                (Ask::Send(answer), Ok(key)) => {
                    let _ = answer.send(Ok(key.clone()));
                }
                (Ask::Send(answer), Err(e)) => {
                    let _ = answer.send(Err(e.copied()));
                }
                (Ask::Cache { began, forgets }, Ok(key)) => {
                    self.cache.install(subject, key.clone(), began, forgets);
                }
                (Ask::Cache { .. }, Err(e)) => {
                    tracing::debug!(
                        subject = %subject,
                        error = %e,
                        "reading a sealing key ahead of its expiry failed; the next send asks again"
                    );
                    self.cache.read_ahead_failed(subject);
                }
            }
        }
    }
}

/// While the read task runs. Should it end any other way than by finding
/// nothing asked (a panic, the runtime shutting down), what is asked is
/// dropped (each waiting send gets an error, not a wait without end) and
/// the next ask starts a new task.
struct Running {
    keys: Arc<SealingKeys>,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let asks = {
            let mut queue = self
                .keys
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.reading = false;
            std::mem::take(&mut queue.asks)
        };
        for (subject, ask) in asks {
            if let Ask::Cache { .. } = ask {
                self.keys.cache.read_ahead_failed(&subject);
            }
        }
    }
}
