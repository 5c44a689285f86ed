//! The vault against a store that holds reads back, counts them or fails
//! them: erasures racing reads and makes, reads gathered and ahead.

use std::sync::Mutex as StdMutex;

use tokio::sync::{oneshot, Notify};

use super::*;
use crate::memory::MemoryStore;
use crate::privacy::SubjectKey;
use crate::store::PutItem;
use crate::StoreCapabilities;

/// A store whose next `get_many`, once armed, reads the records and
/// then waits until released: an erasure can run while a read that
/// began before it is in flight.
#[derive(Debug)]
struct Gated {
    inner: MemoryStore,
    armed: StdMutex<Option<oneshot::Sender<()>>>,
    release: Notify,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            armed: StdMutex::new(None),
            release: Notify::new(),
        })
    }

    /// Holds the next read; the receiver fires once it has read.
    fn arm(&self) -> oneshot::Receiver<()> {
        let (read, has_read) = oneshot::channel();
        *self.armed.lock().unwrap() = Some(read);
        has_read
    }
}

#[async_trait]
impl KeyValueStore for Gated {
    fn backend(&self) -> &'static str {
        "gated"
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        self.inner.put_many(items).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        let found = self.inner.get_many(keys).await?;
        let armed = self.armed.lock().unwrap().take();
        if let Some(has_read) = armed {
            let released = self.release.notified();
            let _ = has_read.send(());
            released.await;
        }
        Ok(found)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
}

fn vault(store: &Arc<Gated>, master: &MasterKey) -> Arc<StoreKeyVault> {
    Arc::new(
        StoreKeyVault::new(store.clone(), master.clone())
            .cache_ttl(Duration::from_millis(50))
            .reader_cache_ttl(Duration::from_secs(3600)),
    )
}

/// A key read ahead of its expiry follows the vault: after an erasure
/// by another process, the read ahead finds the tombstone and the
/// sends after it seal with a new key, without waiting for the vault.
#[tokio::test]
async fn a_read_ahead_finds_an_erasure_made_elsewhere() {
    let store = Gated::new();
    let master = MasterKey::generate();
    let ttl = Duration::from_millis(400);
    let producer = StoreKeyVault::new(store.clone(), master.clone()).cache_ttl(ttl);
    let elsewhere = StoreKeyVault::new(store.clone(), master)
        .cache_ttl(Duration::ZERO)
        .reader_cache_ttl(Duration::ZERO);
    let ann = SubjectKey::generate().hash("ann");
    let first = producer.sealing_key(&ann).await.unwrap();
    assert!(elsewhere.erase(&ann).await.unwrap());
    tokio::time::sleep(ttl / 2 + Duration::from_millis(20)).await;
    // Still within its time (which the erasure waits out elsewhere):
    // sealed with at once, and read again in the background.
    let due = producer.cached_sealing_key(&ann).unwrap();
    assert_eq!(due.id(), first.id());
    let deadline = std::time::Instant::now() + ttl / 4;
    let after = loop {
        let key = producer.cached_sealing_key(&ann).expect("a key at hand");
        if key.id() != first.id() {
            break key;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read ahead did not replace the erased key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let opened = &elsewhere.fresh_opening_keys(&[ann]).await.unwrap()[0];
    assert!(
        opened.key(after.id()).is_some(),
        "the new key is not stored"
    );
}

/// A store that counts its reads and fails them on demand.
#[derive(Debug, Default)]
struct Counted {
    inner: MemoryStore,
    reads: std::sync::atomic::AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
    failing_puts: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl KeyValueStore for Counted {
    fn backend(&self) -> &'static str {
        "counted"
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        if self.failing_puts.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::Error::Backend {
                backend: "counted",
                action: "writing".into(),
                message: "full".into(),
                transient: false,
                source: None,
            });
        }
        self.inner.put_many(items).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        use std::sync::atomic::Ordering;
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(crate::Error::Backend {
                backend: "counted",
                action: "reading".into(),
                message: "down".into(),
                transient: true,
                source: None,
            });
        }
        self.inner.get_many(keys).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
}

/// The keys missed at one moment are read (and made) in a few reads,
/// one at a time; a send that is never polled again holds up no other.
#[tokio::test]
async fn misses_of_one_moment_are_read_together_and_a_parked_send_holds_up_none() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(Counted::default());
    let vault = StoreKeyVault::new(store.clone(), MasterKey::generate());
    let subjects = SubjectKey::generate();
    let hashes: Vec<SubjectHash> = (0..1200).map(|i| subjects.hash(&i.to_string())).collect();
    let keys = futures_util::future::join_all(
        hashes
            .iter()
            .flat_map(|h| [h, h])
            .map(|h| vault.sealing_key(h)),
    )
    .await;
    let keys: Vec<DataKey> = keys.into_iter().map(Result::unwrap).collect();
    for pair in keys.chunks(2) {
        assert_eq!(pair[0].id(), pair[1].id(), "two keys for one subject");
    }
    // One read per subject without gathering; with it, a read takes
    // what the sends polled before it asked (Tokio's budget lets a
    // task poll some hundred before it yields).
    let reads = store.reads.load(Ordering::SeqCst);
    assert!(reads <= 40, "{reads} reads for 1,200 subjects");
    let opened = vault.fresh_opening_keys(&hashes).await.unwrap();
    for (subject_keys, key) in opened.iter().zip(keys.iter().step_by(2)) {
        assert!(subject_keys.key(key.id()).is_some(), "a key was not stored");
    }

    let (parked_subject, other) = (subjects.hash("parked"), subjects.hash("other"));
    let mut parked = Box::pin(vault.sealing_key(&parked_subject));
    assert!(futures_util::poll!(&mut parked).is_pending());
    // Neither another subject's send nor one of its own subject waits
    // for the send polled once and then kept.
    for subject in [other, parked_subject] {
        let answered =
            tokio::time::timeout(Duration::from_secs(2), vault.sealing_key(&subject)).await;
        assert!(answered.expect("held up by a send never polled").is_ok());
    }
    assert!(parked.await.is_ok());
}

/// The keys a batch finds past half their time are read again in the
/// background: the batches after find them at hand, past the first
/// answer's expiry, without reading the vault.
#[tokio::test]
async fn readers_read_their_keys_again_before_they_expire() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(Counted::default());
    let ttl = Duration::from_millis(300);
    let vault = StoreKeyVault::new(store.clone(), MasterKey::generate()).reader_cache_ttl(ttl);
    let ann = SubjectKey::generate().hash("ann");
    let key = vault.sealing_key(&ann).await.unwrap();
    let first = std::time::Instant::now();
    assert!(vault.opening_keys(&[ann]).await.unwrap()[0]
        .key(key.id())
        .is_some());
    tokio::time::sleep(ttl / 2 + Duration::from_millis(20)).await;
    let reads = store.reads.load(Ordering::SeqCst);
    // At hand, and read again in the background.
    assert!(vault.opening_keys(&[ann]).await.unwrap()[0]
        .key(key.id())
        .is_some());
    let deadline = std::time::Instant::now() + Duration::from_millis(100);
    while store.reads.load(Ordering::SeqCst) == reads {
        assert!(std::time::Instant::now() < deadline, "no read ahead");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(
        (first + ttl + Duration::from_millis(20))
            .saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let reads = store.reads.load(Ordering::SeqCst);
    assert!(vault.opening_keys(&[ann]).await.unwrap()[0]
        .key(key.id())
        .is_some());
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        reads,
        "the batch after the first answer's expiry read the vault"
    );
}

/// A key whose write failed is never handed out: the send fails with
/// the store's error, and the next one makes a key again.
#[tokio::test]
async fn a_key_not_stored_is_not_sealed_with() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(Counted::default());
    let vault = StoreKeyVault::new(store.clone(), MasterKey::generate());
    let ann = SubjectKey::generate().hash("ann");
    store.failing_puts.store(true, Ordering::SeqCst);
    let err = vault.sealing_key(&ann).await.unwrap_err();
    assert!(
        err.to_string().contains("full") && !err.is_transient(),
        "{err}"
    );
    store.failing_puts.store(false, Ordering::SeqCst);
    let key = vault.sealing_key(&ann).await.unwrap();
    let stored = &vault.fresh_opening_keys(&[ann]).await.unwrap()[0];
    assert_eq!(stored.keys().len(), 1);
    assert!(stored.key(key.id()).is_some());
}

/// A vault that never answers fails the send in bounded time (a
/// transient error), and holds up none of the sends after it.
#[tokio::test(start_paused = true)]
async fn a_vault_that_never_answers_fails_the_send_in_time() {
    let store = Gated::new();
    let vault = vault(&store, &MasterKey::generate());
    let ann = SubjectKey::generate().hash("ann");
    let _held = store.arm();
    let err = vault.sealing_key(&ann).await.unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("no answer"),
        "{err}"
    );
    assert!(vault.sealing_key(&ann).await.is_ok());
}

/// A failed read fails the sends that waited for it, each with the
/// store's error (still transient); the next send reads again.
#[tokio::test]
async fn a_failed_read_fails_its_sends_and_the_next_reads_again() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(Counted::default());
    let vault = StoreKeyVault::new(store.clone(), MasterKey::generate());
    let subjects = SubjectKey::generate();
    let hashes: Vec<SubjectHash> = (0..10).map(|i| subjects.hash(&i.to_string())).collect();
    store.failing.store(true, Ordering::SeqCst);
    let failed = futures_util::future::join_all(hashes.iter().map(|h| vault.sealing_key(h))).await;
    for e in failed {
        let e = e.unwrap_err();
        assert!(e.is_transient() && e.to_string().contains("down"), "{e}");
    }
    store.failing.store(false, Ordering::SeqCst);
    assert!(vault.sealing_key(&hashes[0]).await.is_ok());
}

/// A reader's read that began before an erasure and ends after it does
/// not put the erased keys into the readers' cache. (Tokio's clock is
/// paused: the erasure's wait passes at once, the cache's does not.)
#[tokio::test(start_paused = true)]
async fn a_read_racing_an_erasure_does_not_refill_the_cache() {
    let store = Gated::new();
    let vault = vault(&store, &MasterKey::generate());
    let ann = SubjectKey::generate().hash("ann");
    let key = vault.sealing_key(&ann).await.unwrap();
    let has_read = store.arm();
    let reading = tokio::spawn({
        let vault = vault.clone();
        async move { vault.fresh_opening_keys(&[ann]).await.unwrap() }
    });
    has_read.await.unwrap();
    assert!(vault.erase(&ann).await.unwrap());
    store.release.notify_one();
    // Begun before the erasure: it may still see the key.
    let raced = reading.await.unwrap();
    assert!(raced[0].key(key.id()).is_some());
    // Asked after the erasure returned: erased, not from the cache.
    let after = vault.opening_keys(&[ann]).await.unwrap();
    assert!(
        after[0].keys().is_empty(),
        "the erased key came back from the cache: {:?}",
        after[0]
    );
}

/// A sealing key being made when an erasure begins is not handed out
/// once the erasure returned: the call made it again, after the
/// tombstone, and readers open it.
#[tokio::test(start_paused = true)]
async fn a_key_made_across_an_erasure_is_made_again() {
    let store = Gated::new();
    let master = MasterKey::generate();
    // The erasure waits 1 s here, within the vault's read timeout: the
    // read held across it is answered, not timed out.
    let producer = Arc::new(
        StoreKeyVault::new(store.clone(), master.clone())
            .cache_ttl(Duration::from_millis(50))
            .reader_cache_ttl(Duration::from_secs(1)),
    );
    let ann = SubjectKey::generate().hash("ann");
    let erased = vault(&store, &master).sealing_key(&ann).await.unwrap();
    let has_read = store.arm();
    let sealing = tokio::spawn({
        let producer = producer.clone();
        async move { producer.sealing_key(&ann).await.unwrap() }
    });
    has_read.await.unwrap();
    assert!(producer.erase(&ann).await.unwrap());
    store.release.notify_one();
    let key = sealing.await.unwrap();
    assert_ne!(
        key.id(),
        erased.id(),
        "a send finishing after the erasure sealed with the erased key"
    );
    let readable = vault(&store, &master)
        .fresh_opening_keys(&[ann])
        .await
        .unwrap();
    assert!(readable[0].key(key.id()).is_some(), "{:?}", readable[0]);
    assert!(readable[0].key(erased.id()).is_none());
}

/// Between the tombstone and the delete, a producer reading the record
/// does not take a key older than the tombstone.
#[tokio::test]
async fn a_key_older_than_the_tombstone_is_not_sealed_with() {
    let store = Gated::new();
    let master = MasterKey::generate();
    let ann = SubjectKey::generate().hash("ann");
    let first = vault(&store, &master);
    let old = first.sealing_key(&ann).await.unwrap();
    // The tombstone written, the record still there without the
    // erasure's time (an erasure that failed half-way, or keys a
    // rewrap brought back).
    let mut tombstone = Fields::new();
    tombstone.insert(ERASED_AT.to_owned(), now_ms().to_string().into());
    store
        .put(&first.tombstone_key(&ann), &tombstone, None)
        .await
        .unwrap();
    let fresh = vault(&store, &master).sealing_key(&ann).await.unwrap();
    assert_ne!(fresh.id(), old.id());
    let keys = vault(&store, &master).opening_keys(&[ann]).await.unwrap();
    assert_eq!(keys[0].keys().len(), 2, "the old key opens until deleted");
    // Every producer agrees on the new key.
    let again = vault(&store, &master).sealing_key(&ann).await.unwrap();
    assert_eq!(again.id(), fresh.id());
}

/// A rotation that finds a subject erased while its keys were
/// rewrapped deletes the keys made before the tombstone and keeps those
/// made after it (the subject came back).
#[tokio::test]
async fn a_rotation_keeps_keys_made_after_the_tombstone() {
    let store = Gated::new();
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let ann = SubjectKey::generate().hash("ann");
    let before = vault(&store, &old).sealing_key(&ann).await.unwrap();
    // An erasure whose delete did not happen: the tombstone alone.
    let tombstone_at = now_ms();
    let mut tombstone = Fields::new();
    tombstone.insert(ERASED_AT.to_owned(), tombstone_at.to_string().into());
    let first = vault(&store, &old);
    for key in [first.tombstone_key(&ann), first.record_key(&ann)] {
        store.put(&key, &tombstone, None).await.unwrap();
    }
    // The subject comes back: a key made after the tombstone.
    let after = vault(&store, &old).sealing_key(&ann).await.unwrap();
    assert_ne!(after.id(), before.id());
    let rotated = StoreKeyVault::new(store.clone(), new.clone()).previous_master_key(old);
    let done = rotated.rotate_master_key(|_| {}).await.unwrap();
    assert_eq!(done.deleted_again, 1, "{done:?}");
    let keys = StoreKeyVault::new(store.clone(), new)
        .fresh_opening_keys(&[ann])
        .await
        .unwrap();
    assert!(keys[0].key(before.id()).is_none(), "an erased key is back");
    assert!(
        keys[0].key(after.id()).is_some(),
        "the key made after the erasure was deleted with the others"
    );
}
