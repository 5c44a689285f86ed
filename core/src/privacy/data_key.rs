//! Data keys: one per data subject (or a few, when producers made them at
//! the same moment), each with an id that sealed segments name.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;

use super::secret::{fill_random, Key32};

/// The id of a [`DataKey`]: 8 random bytes, written in every segment it
/// sealed, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// An id from its bytes.
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }
}

super::secret::hex_id!(KeyId, "data key id");

/// The key that seals one data subject's personal segments (AES-256-GCM).
/// Wiped from memory when dropped; `Debug` shows its id only. Clones share
/// the key schedule, made once.
#[derive(Clone)]
pub struct DataKey {
    id: KeyId,
    key: Key32,
    cipher: Arc<Aes256Gcm>,
}

impl DataKey {
    /// A new random key with a new random id.
    pub fn generate() -> Self {
        let mut id = [0u8; 8];
        fill_random(&mut id);
        Self::with(KeyId(id), Key32::random())
    }

    /// A key from its id and bytes (a custom vault that unwrapped it).
    pub fn new(id: KeyId, bytes: [u8; 32]) -> Self {
        Self::with(id, Key32::new(bytes))
    }

    fn with(id: KeyId, key: Key32) -> Self {
        let cipher = Arc::new(Aes256Gcm::new_from_slice(key.bytes()).expect("a 32-byte key"));
        Self { id, key, cipher }
    }

    /// The cipher, its key schedule made once.
    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key's bytes: for a custom vault to wrap, never for a log.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.key.bytes()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("key", &self.key)
            .finish()
    }
}
