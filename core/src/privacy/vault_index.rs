//! The index of subjects a [`StoreKeyVault`](super::StoreKeyVault) keeps
//! for master-key rotation: 4,096 records `{prefix}.index:{3 hex digits}`,
//! each listing the subject hashes that start with those digits (one field
//! each), written when a subject's first key is made. No store needs a
//! scan.

/// How many index records the subjects are spread over (10 million
/// subjects: about 2,500 per record, under every store's value limit).
pub(crate) const INDEX_BUCKETS: u32 = 4096;

/// The index bucket of a subject hash written as hex.
pub(crate) fn bucket_of(subject_hex: &str) -> &str {
    &subject_hex[..3]
}

/// The name of index bucket `n`.
pub(crate) fn bucket_name(n: u32) -> String {
    format!("{n:03x}")
}
