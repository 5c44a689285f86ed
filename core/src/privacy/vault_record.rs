//! One data subject's record in a [`StoreKeyVault`](super::StoreKeyVault),
//! as read: its keys, opened, with the time each was made, and the time of
//! its latest erasure.

use super::data_key::DataKey;
use super::subject_keys::SubjectKeys;

/// One subject's record and tombstone, as read.
pub(crate) struct Record {
    /// Its keys, opened, with the time each was made.
    pub(crate) keys: Vec<(DataKey, u64)>,
    pub(crate) erased_at_ms: Option<u64>,
}

impl Record {
    /// The key to seal with: the newest made after the latest erasure.
    pub(crate) fn sealing_key(&self) -> Option<&DataKey> {
        let erased = self.erased_at_ms.unwrap_or(0);
        self.keys
            .iter()
            .filter(|(_, made)| self.erased_at_ms.is_none() || *made > erased)
            .max_by_key(|(key, made)| (*made, key.id()))
            .map(|(key, _)| key)
    }

    pub(crate) fn into_subject_keys(self) -> SubjectKeys {
        SubjectKeys::new(
            self.keys.into_iter().map(|(k, _)| k).collect(),
            self.erased_at_ms,
        )
    }
}
