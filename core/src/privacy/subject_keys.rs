//! What a key vault holds for one data subject: its data keys, and whether
//! (and when) it was erased.

use super::data_key::{DataKey, KeyId};

/// A data subject's entry in a [`KeyVault`](super::KeyVault): the keys that
/// open its sealed segments and its erasure tombstone, if it was erased.
///
/// A reader tells the two ways a key can be absent apart by the tombstone:
/// a segment whose key is gone and whose subject has a tombstone is
/// **erased** (left out, decoded as `None` or the default); a segment whose
/// key is gone and whose subject has none was **lost** (an eviction, a
/// failover before replication, a restored backup) and is never taken for
/// an erasure: the message is not readable yet
/// ([`Error::DataKeyMissing`](crate::Error::DataKeyMissing)).
#[derive(Clone, Debug, Default)]
pub struct SubjectKeys {
    keys: Vec<DataKey>,
    erased_at_ms: Option<u64>,
}

impl SubjectKeys {
    /// The keys of a subject and the time of its latest erasure (ms since
    /// the Unix epoch), if it was erased.
    pub fn new(keys: Vec<DataKey>, erased_at_ms: Option<u64>) -> Self {
        Self { keys, erased_at_ms }
    }

    /// A subject the vault holds nothing of: no key, no tombstone.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// Its keys (several when producers made them at the same moment, or
    /// after an erasure).
    pub fn keys(&self) -> &[DataKey] {
        &self.keys
    }

    /// The key with this id.
    pub fn key(&self, id: KeyId) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.id() == id)
    }

    /// When it was last erased (ms since the Unix epoch): its tombstone.
    pub fn erased_at_ms(&self) -> Option<u64> {
        self.erased_at_ms
    }

    /// Whether it has a tombstone.
    pub fn is_erased(&self) -> bool {
        self.erased_at_ms.is_some()
    }
}
