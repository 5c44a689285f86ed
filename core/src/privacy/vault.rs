//! The [`KeyVault`] trait: where data keys live, one or a few per data
//! subject.

use std::fmt;

use async_trait::async_trait;

use super::data_key::DataKey;
use super::subject::SubjectHash;
use super::subject_keys::SubjectKeys;
use crate::Result;

/// Holds the data keys of data subjects. Erasing a subject's keys makes
/// every segment sealed with them unreadable, wherever its bytes are
/// (crypto-shredding).
///
/// [`StoreKeyVault`](super::StoreKeyVault) keeps them on any
/// [`KeyValueStore`](crate::KeyValueStore), wrapped by a
/// [`MasterKey`](super::MasterKey); implement the trait yourself to keep
/// them in a KMS or an HSM. The contract:
///
/// * [`sealing_key`](Self::sealing_key) returns a key that is stored (or
///   will open what it seals) before it returns; two callers at the same
///   moment may each make one, and both must stay readable through
///   [`opening_keys`](Self::opening_keys). It never returns a key older
///   than the subject's latest erasure.
/// * [`opening_keys`](Self::opening_keys) answers for a whole batch in as
///   few round trips as the vault allows. It may answer from a cache for a
///   bounded time, and may leave out the subjects' erasure tombstones.
///   [`fresh_opening_keys`](Self::fresh_opening_keys) may do neither: a
///   reader asks it whenever a sealed segment names a key the first answer
///   lacked, and takes the missing key for erased only when that answer
///   has a tombstone ([`SubjectKeys`]).
/// * [`erase`](Self::erase) writes the tombstone, then deletes the keys,
///   and returns only once no producer or reader of the system can still
///   use them from a cache: a message sent after it returned is never
///   sealed with an erased key. Idempotent, and safe while others seal and
///   open.
///
/// A vault of your own: here one that keeps its keys on a store of its
/// own (not the payload store, so that the payloads' backups hold no key)
/// through a [`StoreKeyVault`](super::StoreKeyVault), and writes an audit
/// line for each erasure. A vault on a KMS has the same shape: wrap the
/// data keys with the KMS instead of a master key.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use event_backbone_core::memory::MemoryStore;
/// use event_backbone_core::privacy::{
///     DataKey, KeyVault, MasterKey, PersonalData, StoreKeyVault, SubjectHash, SubjectKey,
///     SubjectKeys,
/// };
///
/// #[derive(Debug)]
/// struct AuditedVault {
///     keys: StoreKeyVault,
/// }
///
/// #[async_trait]
/// impl KeyVault for AuditedVault {
///     fn backend(&self) -> &'static str {
///         "audited"
///     }
///     async fn sealing_key(&self, subject: &SubjectHash) -> event_backbone_core::Result<DataKey> {
///         self.keys.sealing_key(subject).await
///     }
///     async fn opening_keys(
///         &self,
///         subjects: &[SubjectHash],
///     ) -> event_backbone_core::Result<Vec<SubjectKeys>> {
///         self.keys.opening_keys(subjects).await
///     }
///     async fn fresh_opening_keys(
///         &self,
///         subjects: &[SubjectHash],
///     ) -> event_backbone_core::Result<Vec<SubjectKeys>> {
///         self.keys.fresh_opening_keys(subjects).await
///     }
///     async fn erase(&self, subject: &SubjectHash) -> event_backbone_core::Result<bool> {
///         let erased = self.keys.erase(subject).await?;
///         eprintln!("audit: subject {subject} erased (had a key: {erased})");
///         Ok(erased)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// // The payloads go to one store, the keys to another, backed up apart.
/// let vault_store = Arc::new(MemoryStore::new());
/// let vault = AuditedVault { keys: StoreKeyVault::new(vault_store.clone(), MasterKey::generate()) };
/// let personal = PersonalData::new(Arc::new(vault), SubjectKey::generate());
/// let ann = personal.subject_hash("ann");
/// let key = personal.vault().sealing_key(&ann).await?;
/// assert!(personal.erase_subject("ann").await?);
/// let after = personal.vault().fresh_opening_keys(&[ann]).await?;
/// assert!(after[0].key(key.id()).is_none() && after[0].is_erased());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait KeyVault: Send + Sync + fmt::Debug + 'static {
    /// A short name for errors and logs.
    fn backend(&self) -> &'static str;

    /// The key to seal new personal data of `subject` with: one it has, or
    /// a new one, stored before this returns.
    async fn sealing_key(&self, subject: &SubjectHash) -> Result<DataKey>;

    /// The sealing key if the vault has it at hand, without waiting: the
    /// producer's fast path. The default is `None` (always ask
    /// [`sealing_key`](Self::sealing_key)). A vault may read a key in use
    /// again in the background from here, before its cached copy expires,
    /// so that the subject's sends never wait
    /// ([`StoreKeyVault`](super::StoreKeyVault) does).
    fn cached_sealing_key(&self, _subject: &SubjectHash) -> Option<DataKey> {
        None
    }

    /// Every key of each subject, in the order asked (with its tombstone,
    /// if the vault has it at hand).
    async fn opening_keys(&self, subjects: &[SubjectHash]) -> Result<Vec<SubjectKeys>>;

    /// Like [`opening_keys`](Self::opening_keys), read from the vault
    /// itself, not from a cache, with each subject's tombstone: what a
    /// reader decides "erased" or "lost" on.
    async fn fresh_opening_keys(&self, subjects: &[SubjectHash]) -> Result<Vec<SubjectKeys>>;

    /// Writes `subject`'s tombstone and deletes every key of it; returns
    /// whether it had one.
    async fn erase(&self, subject: &SubjectHash) -> Result<bool>;
}
