//! Erasure (GDPR article 17): the subject's keys first, then what can be
//! found of its payloads.

/// What [`SubjectRequestsBuilder::erase`](crate::SubjectRequestsBuilder::erase)
/// did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Erasure {
    /// Whether the subject had a data key (false when erased before).
    pub key_erased: bool,
    /// The subject's messages found in the stream.
    pub messages: u64,
    /// Payload keys deleted (personal classes of those messages).
    pub payload_keys_deleted: u64,
}
