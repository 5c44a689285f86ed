//! Personal data (GDPR articles 15 and 17): data subjects, crypto-shredding,
//! erasure and export.
//!
//! A message may name its **data subject**, the person its personal data
//! belongs to (`.subject(id)` on the message builder, `#[subject]` on a
//! contract parameter). The producer then:
//!
//! * writes the subject's keyed hash ([`SubjectHash`], HMAC-SHA-256 under
//!   the [`SubjectKey`]) into the metadata
//!   ([`Metadata::subject`](crate::Metadata::subject)), never the id;
//! * seals every segment whose class is not `normal` (`#[personal]` and any
//!   class of your own) with the subject's [`DataKey`]: AES-256-GCM,
//!   a nonce of its own per segment, associated data binding it to the
//!   subject, the message id and the segment name.
//!
//! Data keys live in a [`KeyVault`]: [`StoreKeyVault`] keeps them on any
//! [`KeyValueStore`], wrapped by the application's [`MasterKey`] (rotated
//! with [`StoreKeyVault::rotate_master_key`]). **Erasing** a subject writes
//! its tombstone and deletes its keys: from then on every sealed segment of
//! that person is unreadable wherever its bytes are. A reader shows such a
//! message without them
//! ([`Message::erased_segments`](crate::Message::erased_segments)), and
//! typed contracts decode it with `None` or the type's default for the
//! erased parameters, so a replay rebuilds everyone else's state exactly.
//! A key that is gone *without* a tombstone was lost, not erased
//! ([`Error::DataKeyMissing`](crate::Error::DataKeyMissing)): never read
//! as erased. Backups of the vault's store hold the keys they held: keep
//! the vault on a store of its own with short-lived backups, or implement
//! [`KeyVault`] on a KMS.
//!
//! After an erasure, a message sent for the same subject gets a new key:
//! erasure forgets what was, it does not forbid what comes (a person may
//! come back). [`KeyVault::erase`] returns only once producers and readers
//! in every process with the same settings read the subject anew
//! ([`StoreKeyVault::cache_ttl`], [`StoreKeyVault::reader_cache_ttl`]).
//!
//! Dead letters of messages with sealed segments keep the error's text
//! sealed with the subject's key ([`SEALED_REASON_HEADER`],
//! [`PersonalData::open_dead_letter_reason`]); logs keep only its kind.
//!
//! Personal segments of a message that names **no subject** are stored as
//! before, unsealed, under a key of their own class: they can be expired
//! (`payload_ttl`) or deleted, but not shredded.
//! [`PersonalData::require_subject`] makes such a send an error.
//!
//! ```
//! use std::sync::Arc;
//! use event_backbone_core::memory::{MemoryChannel, MemoryStore};
//! use event_backbone_core::privacy::{MasterKey, PersonalData, SubjectKey};
//! use event_backbone_core::{Producer, Replay, SubjectRequests};
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
//! let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
//! let personal = PersonalData::on_store(store.clone(), MasterKey::generate(), SubjectKey::generate());
//! let producer = Producer::builder()
//!     .channel(channel.clone())
//!     .store(store.clone())
//!     .personal_data(personal.clone())
//!     .uri("users")
//!     .build()?;
//! for user in ["ann", "bob"] {
//!     producer
//!         .message("registered")
//!         .subject(user)
//!         .segment("plan", "pro")?
//!         .personal("email", &format!("{user}@example.com"))?
//!         .send()
//!         .await?;
//! }
//! assert!(personal.erase_subject("ann").await?);
//!
//! let messages: Vec<_> = Replay::builder().channel(channel.clone()).store(store.clone())
//!     .personal_data(personal.clone()).uri("users").messages()?.collect().await;
//! let (ann, bob) = (messages[0].as_ref().unwrap(), messages[1].as_ref().unwrap());
//! assert_eq!(ann.erased_segments(), ["email"]);
//! assert_eq!(ann.segment::<String>("plan")?, "pro");
//! assert_eq!(bob.segment::<String>("email")?, "bob@example.com");
//!
//! let export = SubjectRequests::builder().channel(channel).store(store)
//!     .personal_data(personal).uri("users").export("bob").await?;
//! assert_eq!(export.messages().len(), 1);
//! assert_eq!(export.messages()[0].segment::<String>("email")?, "bob@example.com");
//! # Ok(()) }
//! ```

mod data_key;
mod erasure;
mod export;
mod key_cache;
mod master_key;
pub(crate) mod opening;
mod reader_cache;
mod records;
mod rotation;
mod seal;
pub(crate) mod sealed_text;
pub(crate) mod sealing;
mod sealing_keys;
mod secret;
mod store_vault;
mod subject;
mod subject_keys;
mod unwrap_cache;
mod vault;
mod vault_index;
mod vault_record;

pub use crate::envelope::{SubjectHash, SUBJECT_HEADER};
pub use data_key::{DataKey, KeyId};
pub use erasure::Erasure;
pub use export::{ExportedMessage, SubjectExport, UnreadableMessage};
pub use master_key::{MasterKey, MasterKeyId};
pub use rotation::Rotation;
pub use seal::{open_segment, seal_segment, sealing_key_id, SEAL_OVERHEAD};
pub use sealed_text::SEALED_REASON_HEADER;
pub use store_vault::{StoreKeyVault, DEFAULT_VAULT_PREFIX};
pub use subject::{AsSubject, SubjectKey};
pub use subject_keys::SubjectKeys;
pub use vault::KeyVault;

use std::fmt;
use std::sync::Arc;

use crate::store::KeyValueStore;
use crate::Result;

/// A data subject's id as a message carries it on its way to the
/// producer, which hashes it. `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// The subject named by `id`, `None` if it names none (`None::<T>`).
    pub fn new(id: impl AsSubject) -> Option<Self> {
        id.subject_id().map(|s| Self(s.into_owned()))
    }

    /// The id itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subject(***)")
    }
}

/// What producers and consumers need to protect personal data: the
/// [`KeyVault`] of data keys and the [`SubjectKey`] subjects are hashed
/// with. Give the same settings to every producer, consumer, eraser and
/// exporter of a system (`.personal_data(...)` on their builders).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct PersonalData {
    vault: Arc<dyn KeyVault>,
    subjects: Arc<SubjectKey>,
    require_subject: bool,
}

impl PersonalData {
    /// Settings with a vault of your own.
    pub fn new(vault: Arc<dyn KeyVault>, subject_key: SubjectKey) -> Self {
        Self {
            vault,
            subjects: Arc::new(subject_key),
            require_subject: false,
        }
    }

    /// Settings with a [`StoreKeyVault`] on `store`.
    pub fn on_store(
        store: Arc<dyn KeyValueStore>,
        master_key: MasterKey,
        subject_key: SubjectKey,
    ) -> Self {
        Self::new(Arc::new(StoreKeyVault::new(store, master_key)), subject_key)
    }

    /// Settings with a [`StoreKeyVault`] on `store`, the keys read from
    /// [`MasterKey::ENV`] and [`SubjectKey::ENV`] (64 hex digits each).
    pub fn from_env(store: Arc<dyn KeyValueStore>) -> Result<Self> {
        Ok(Self::on_store(
            store,
            MasterKey::from_env()?,
            SubjectKey::from_env()?,
        ))
    }

    /// Producers refuse a message with personal data (a segment of a class
    /// other than `normal`) that names no subject
    /// ([`Error::MissingSubject`](crate::Error::MissingSubject)).
    pub fn require_subject(mut self) -> Self {
        self.require_subject = true;
        self
    }

    /// Whether [`PersonalData::require_subject`] is set.
    pub fn requires_subject(&self) -> bool {
        self.require_subject
    }

    /// The keyed hash of a subject id, as messages carry it.
    pub fn subject_hash(&self, subject: &str) -> SubjectHash {
        self.subjects.hash(subject)
    }

    /// The vault.
    pub fn vault(&self) -> &Arc<dyn KeyVault> {
        &self.vault
    }

    /// Erases a subject: deletes its data keys, so that every segment
    /// sealed with them is unreadable from now on, everywhere. Returns
    /// whether it had a key. Idempotent, and safe while producers and
    /// consumers run. To also delete the payload keys it can find (and
    /// free their space), use
    /// [`SubjectRequestsBuilder::erase`](crate::SubjectRequestsBuilder::erase).
    pub async fn erase_subject(&self, subject: impl AsSubject) -> Result<bool> {
        let Some(id) = subject.subject_id() else {
            return Ok(false);
        };
        let hash = self.subject_hash(&id);
        tracing::info!(subject = %hash, "erasing a data subject's keys");
        self.vault.erase(&hash).await
    }
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalData")
            .field("vault", &self.vault)
            .field("subject_key", &self.subjects)
            .field("require_subject", &self.require_subject)
            .finish()
    }
}
