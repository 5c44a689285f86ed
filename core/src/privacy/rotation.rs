//! Master-key rotation: the progress of rewrapping a vault's data keys
//! under a new master key, and the index of subjects it walks.

/// How many index records a [`StoreKeyVault`](super::StoreKeyVault) spreads
/// its subjects over (by the first 3 hex digits of the hash), so that no
/// record grows past a store's value limit (10 million subjects: about
/// 2,500 per record).
pub(crate) const INDEX_BUCKETS: u32 = 4096;

/// The index bucket of a subject hash written as hex.
pub(crate) fn bucket_of(subject_hex: &str) -> &str {
    &subject_hex[..3]
}

/// The name of index bucket `n`.
pub(crate) fn bucket_name(n: u32) -> String {
    format!("{n:03x}")
}

/// The progress of
/// [`StoreKeyVault::rotate_master_key`](super::StoreKeyVault::rotate_master_key),
/// reported as it goes and returned at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// Index buckets walked so far.
    pub buckets_done: u32,
    /// Index buckets in all.
    pub buckets: u32,
    /// Subjects whose records were read.
    pub subjects: u64,
    /// Data keys rewrapped under the current master key.
    pub rewrapped: u64,
    /// Data keys that were wrapped by it already.
    pub current: u64,
    /// Records of erased subjects found brought back by a racing rewrap,
    /// and deleted again.
    pub deleted_again: u64,
}

impl Rotation {
    /// Whether every bucket was walked: every key the vault holds is now
    /// wrapped by the current master key, and the previous ones can be
    /// retired.
    pub fn is_complete(&self) -> bool {
        self.buckets_done == self.buckets
    }
}
