//! The one error type of the core crate.

use std::sync::Arc;

/// A boxed error from user code (handlers, interceptors) or a backend client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the core [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in event-backbone.
///
/// Each message names the stream, key, field or value involved, so that a log
/// line alone tells what to fix. [`Error::is_transient`] tells a retryable
/// failure (a connection dropped, a server restarting) from a permanent one (a
/// bad name, undecodable bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A uri, environment, group, operation, consumer name or segment class
    /// that cannot be used in a key.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which kind of name: `uri`, `environment`, `group`, ...
        what: &'static str,
        /// The value that was refused.
        value: String,
        /// What is wrong with it and what is expected.
        reason: &'static str,
    },

    /// A builder was asked to build without a required part, or with parts
    /// that do not fit together.
    #[error("cannot build {what}: {reason}")]
    Config {
        /// What was being built (`producer`, `consumer`, ...).
        what: &'static str,
        /// What is missing or wrong, and how to fix it.
        reason: String,
    },

    /// Encoded metadata that cannot be decoded (truncated, garbage, or from
    /// an unknown format version).
    #[error("malformed metadata: {reason}")]
    MalformedMetadata {
        /// What the decoder found.
        reason: String,
    },

    /// Encoded metadata of a format version this build does not read: a
    /// newer producer wrote it. A consumer leaves such an entry pending
    /// for a consumer that reads it (after an upgrade), rather than
    /// dead-lettering it.
    #[error(
        "format version {version} is not supported (this build reads version {supported}): \
         a newer producer wrote it; upgrade this consumer to read it"
    )]
    UnsupportedWireVersion {
        /// The version found.
        version: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// A value that the codec cannot encode.
    #[error("cannot encode segment {segment:?} with {codec}: {reason}")]
    Encode {
        /// The segment (parameter) name.
        segment: String,
        /// The codec's content type.
        codec: &'static str,
        /// The serializer's message.
        reason: String,
    },

    /// Segment bytes that do not decode into the requested type.
    #[error(transparent)]
    Decode(Box<DecodeError>),

    /// A message does not carry a segment of that name.
    #[error(
        "segment {segment:?} is missing from message {message_id} (operation {operation:?}); \
         it has: {available:?}"
    )]
    MissingSegment {
        /// The segment that was asked for.
        segment: String,
        /// The operation of the message.
        operation: String,
        /// The message id.
        message_id: String,
        /// The segments the message does have.
        available: Vec<String>,
    },

    /// The metadata points at a payload key that the store does not hold
    /// (erased, expired, or never written).
    #[error("payload key {key:?} is missing from store {store:?}")]
    MissingPayload {
        /// The logical store name from the segment index.
        store: String,
        /// The payload key.
        key: String,
    },

    /// The payload key exists but lacks a field the segment index names.
    #[error("payload key {key:?} in store {store:?} has no field {field:?}")]
    MissingField {
        /// The logical store name from the segment index.
        store: String,
        /// The payload key.
        key: String,
        /// The missing field (segment name).
        field: String,
    },

    /// The metadata names a store that this consumer was not given.
    #[error(
        "segment {segment:?} lives in store {store:?}, which this consumer does not have: \
         add it with `.class_store({store:?}, ...)` or give a default `.store(...)`"
    )]
    UnknownStore {
        /// The segment name.
        segment: String,
        /// The logical store name.
        store: String,
    },

    /// The content type in the metadata names a codec this build does not have.
    #[error("unknown codec {content_type:?} (enable the matching feature, e.g. `json`)")]
    UnknownCodec {
        /// The content type found.
        content_type: String,
    },

    /// A message whose operation the typed contract does not have.
    #[error("operation {operation:?} version {version} is not part of contract {contract}")]
    NotInContract {
        /// The contract.
        contract: &'static str,
        /// The operation found.
        operation: String,
        /// Its version.
        version: u32,
    },

    /// A value larger than the store accepts
    /// ([`crate::StoreCapabilities::max_value_bytes`]). It is refused whole,
    /// never truncated, and nothing of its batch is written.
    #[error(
        "{backend} cannot store field {field:?} of key {key:?}: {size} bytes is more than \
         its limit of {limit} bytes; make the value smaller, or split it over several segments"
    )]
    ValueTooLarge {
        /// The store's backend.
        backend: &'static str,
        /// The key.
        key: String,
        /// The field (segment name).
        field: String,
        /// The value's size in bytes.
        size: usize,
        /// The largest value the store accepts, in bytes.
        limit: usize,
    },

    /// An entry id in a form this channel does not use.
    #[error("invalid entry id {id:?} for {backend}: expected {expected}")]
    InvalidEntryId {
        /// The id that was given.
        id: String,
        /// The backend that refused it.
        backend: &'static str,
        /// The form expected.
        expected: &'static str,
    },

    /// An operation on a consumer group that does not exist.
    #[error(
        "consumer group {group:?} does not exist on stream {stream:?}; call ensure_group first"
    )]
    NoSuchGroup {
        /// The stream key.
        stream: String,
        /// The group name.
        group: String,
    },

    /// A failure of a backend (server, network, driver).
    #[error("{backend} failed while {action}: {message}")]
    Backend {
        /// The backend (`redis`, `memory`, ...).
        backend: &'static str,
        /// What was being done, naming the stream or key.
        action: String,
        /// The driver's message.
        message: String,
        /// Whether retrying may succeed.
        transient: bool,
        /// The driver's error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A producer or consumer interceptor refused or failed.
    #[error("interceptor {interceptor:?} failed: {source}")]
    Interceptor {
        /// The interceptor's name.
        interceptor: String,
        /// Its error.
        #[source]
        source: BoxError,
    },

    /// A handler returned an error.
    #[error("handler failed on operation {operation:?} (message {message_id}): {source}")]
    Handler {
        /// The operation handled.
        operation: String,
        /// The message id.
        message_id: String,
        /// The handler's error.
        #[source]
        source: BoxError,
    },

    /// Sending a batch to a stream failed; every message of the batch gets
    /// this error, sharing the cause.
    #[error("sending to stream {stream:?} failed: {source}")]
    Send {
        /// The stream key.
        stream: String,
        /// The cause, shared by the batch.
        #[source]
        source: Arc<Error>,
    },

    /// An append of several entries of which some were appended and some
    /// not (a channel that appends to several partitions at once). The
    /// producer answers the appended ones and tries only the others again
    /// (when `source` is transient), so that nothing is appended twice; the
    /// error itself is not transient, since repeating the whole call would
    /// append the first ones again.
    #[error(
        "appending to stream {stream:?}: {} of {} entries appended, the others failed: {source}",
        appended.iter().flatten().count(),
        appended.len()
    )]
    PartlyAppended {
        /// The stream key.
        stream: String,
        /// Per entry of the batch, in order: its id if it was appended.
        appended: Vec<Option<crate::entry_id::EntryId>>,
        /// Why the others failed.
        #[source]
        source: Box<Error>,
    },

    /// The producer's sending task is gone (the runtime shut down).
    #[error("the producer for stream {stream:?} is closed")]
    Closed {
        /// The stream key.
        stream: String,
    },

    /// A master key or subject key that cannot be read (the error never
    /// holds the text).
    #[error("invalid {what}: {reason}")]
    InvalidSecret {
        /// Which secret, and the variable it came from.
        what: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// The key vault holds something it cannot use: a wrapped key that
    /// does not open with this master key, a record of another kind.
    #[error("key vault: {reason}")]
    KeyVault {
        /// What was found, and what to check.
        reason: String,
    },

    /// A message names a data subject, but the producer has no key vault to
    /// seal its personal segments with.
    #[error(
        "message {operation:?} names a data subject, but the producer has no key vault to \
         seal its personal data with: add `.personal_data(...)` to the producer builder"
    )]
    SubjectWithoutVault {
        /// The operation of the message.
        operation: String,
    },

    /// A message has personal data but names no data subject, and the
    /// producer's personal-data settings require one.
    #[error(
        "segment {segment:?} of message {operation:?} is personal data (class {class:?}) but \
         the message names no data subject: call `.subject(...)` on it (or mark a parameter \
         `#[subject]`), or leave out `.require_subject()`"
    )]
    MissingSubject {
        /// The operation of the message.
        operation: String,
        /// The first personal segment.
        segment: String,
        /// Its class.
        class: String,
    },

    /// A segment of a class other than `normal` that no store of the
    /// producer takes: inline, it would stay in the append-only stream for
    /// good, where no expiry or erasure reaches it. Nothing was sent.
    #[error(
        "segment {segment:?} of message {operation:?} is of class {class:?}, and the producer \
         has no store for it: it would go inline into the append-only stream, where it can \
         never be expired or erased. Give the producer a store (`.store(...)`, or \
         `.class_store(...)` for that class)"
    )]
    PersonalDataInline {
        /// The operation of the message.
        operation: String,
        /// The segment.
        segment: String,
        /// Its class.
        class: String,
    },

    /// A header only the producer may set was set by hand.
    #[error(
        "header {header:?} is set by the producer (from `.subject(...)`); do not set it \
         yourself (message {operation:?})"
    )]
    ReservedHeader {
        /// The header.
        header: &'static str,
        /// The operation of the message.
        operation: String,
    },

    /// A segment sealed with its data subject's key, read by a consumer
    /// without a key vault.
    #[error(
        "segment {segment:?} of message {message_id} is sealed with the key of its data \
         subject, and this reader has no key vault: add `.personal_data(...)` to the \
         consumer builder"
    )]
    Sealed {
        /// The segment name.
        segment: String,
        /// The message id.
        message_id: String,
    },

    /// A sealed segment that does not open with its subject's key: moved
    /// from another message or altered.
    #[error("segment {segment:?} of message {message_id} cannot be opened: {reason}")]
    Unsealable {
        /// The segment name.
        segment: String,
        /// The message id.
        message_id: String,
        /// Why it does not open.
        reason: String,
    },

    /// An entry a reader does not trust: produced to another stream, with
    /// a name that is not a valid name, or pinning a key that is not one of
    /// its stream's payload keys (a vault record, another stream's
    /// payload). Dead-lettered, never read.
    #[error(
        "entry of message {message_id} in stream {stream:?} is not read: {reason}. A reader \
         reads only its own stream's payload keys; the entry was not written by a producer of \
         this stream, or was altered"
    )]
    UntrustedEntry {
        /// The stream read.
        stream: String,
        /// The message id.
        message_id: String,
        /// What is wrong.
        reason: String,
    },

    /// A sealed segment whose data key the vault does not hold, for a
    /// subject that was never erased: the key was lost or has not
    /// replicated yet. Never taken for an erasure: consumers leave the
    /// message for redelivery and dead-letter it after `max_deliveries`.
    #[error(
        "segment {segment:?} of message {message_id} is sealed with data key {key_id} of \
         subject {subject}, which the key vault ({vault}) does not hold, and the subject has \
         no erasure tombstone: the key was lost (an eviction, a failover before replication, \
         a restored backup) or has not replicated yet. The message is not taken for erased; \
         restore the vault record {key_id} of the subject to read it"
    )]
    DataKeyMissing {
        /// The segment name.
        segment: String,
        /// The message id.
        message_id: String,
        /// The subject's hash.
        subject: String,
        /// The id of the missing key.
        key_id: String,
        /// The vault's backend.
        vault: &'static str,
    },

    /// A dead letter that cannot be put back on its stream.
    #[error("dead letter {entry} of {stream:?} cannot be redriven: {reason}")]
    NotRedrivable {
        /// The dead-letter stream's key.
        stream: String,
        /// The dead letter's entry id.
        entry: String,
        /// Why, and what to do instead.
        reason: String,
    },

    /// A consumer's task ended abnormally (it panicked or was aborted).
    #[error("consumer of stream {stream:?} (group {group:?}) ended abnormally: {reason}")]
    ConsumerAborted {
        /// The stream key.
        stream: String,
        /// The group.
        group: String,
        /// What happened.
        reason: String,
    },
}

/// Marks an error from user code (an interceptor) as transient: retrying
/// the same message later may succeed (a key service that is down, a rate
/// limit). A consumer keeps such a message and tries it again, rather than
/// dead-lettering it.
///
/// ```
/// use event_backbone_core::{Error, Transient};
/// let failed = Error::Interceptor {
///     interceptor: "decrypt".into(),
///     source: Transient::new("the key service is unreachable").into(),
/// };
/// assert!(failed.is_transient());
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Transient(BoxError);

impl Transient {
    /// Wraps `error`.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }

    /// The error it wraps.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

/// Whether an error from user code says that retrying may help: a
/// [`Transient`], or a transient [`Error`].
fn transient_source(source: &BoxError) -> bool {
    source.downcast_ref::<Transient>().is_some()
        || source
            .downcast_ref::<Error>()
            .is_some_and(Error::is_transient)
}

/// Details of [`Error::Decode`]: segment bytes that do not decode into the
/// requested type.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot decode segment {segment:?} of operation {operation:?} (message {message_id}) \
     as {expected} with {codec}: {reason}"
)]
pub struct DecodeError {
    /// The segment (parameter) name.
    pub segment: String,
    /// The operation of the message.
    pub operation: String,
    /// The message id.
    pub message_id: String,
    /// The Rust type that was expected.
    pub expected: &'static str,
    /// The codec's content type.
    pub codec: &'static str,
    /// The deserializer's message.
    pub reason: String,
}

impl Error {
    /// A short, stable name of what failed (`backend`, `missing_payload`,
    /// `closed`, ...): the `error.type` of spans and metrics. A send
    /// failure names its cause.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "invalid_name",
            Error::Config { .. } => "config",
            Error::MalformedMetadata { .. } => "malformed_metadata",
            Error::UnsupportedWireVersion { .. } => "unsupported_wire_version",
            Error::Encode { .. } => "encode",
            Error::Decode(_) => "decode",
            Error::MissingSegment { .. } => "missing_segment",
            Error::MissingPayload { .. } => "missing_payload",
            Error::MissingField { .. } => "missing_field",
            Error::UnknownStore { .. } => "unknown_store",
            Error::UnknownCodec { .. } => "unknown_codec",
            Error::NotInContract { .. } => "not_in_contract",
            Error::ValueTooLarge { .. } => "value_too_large",
            Error::InvalidEntryId { .. } => "invalid_entry_id",
            Error::NoSuchGroup { .. } => "no_such_group",
            Error::Backend { .. } => "backend",
            Error::Interceptor { .. } => "interceptor",
            Error::Handler { .. } => "handler",
            Error::Send { source, .. } => source.kind(),
            Error::PartlyAppended { source, .. } => source.kind(),
            Error::Closed { .. } => "closed",
            Error::InvalidSecret { .. } => "invalid_secret",
            Error::KeyVault { .. } => "key_vault",
            Error::SubjectWithoutVault { .. } => "subject_without_vault",
            Error::MissingSubject { .. } => "missing_subject",
            Error::PersonalDataInline { .. } => "personal_data_inline",
            Error::ReservedHeader { .. } => "reserved_header",
            Error::Sealed { .. } => "sealed",
            Error::Unsealable { .. } => "unsealable",
            Error::DataKeyMissing { .. } => "data_key_missing",
            Error::UntrustedEntry { .. } => "untrusted_entry",
            Error::ConsumerAborted { .. } => "consumer_aborted",
            Error::NotRedrivable { .. } => "not_redrivable",
        }
    }

    /// Whether retrying the same call may succeed (a connection problem, a
    /// server restart, a timeout), as opposed to a permanent failure.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend { transient, .. } => *transient,
            Error::Send { source, .. } => source.is_transient(),
            // The call as a whole must not be repeated: the producer tries
            // the entries not appended again, by themselves.
            Error::PartlyAppended { .. } => false,
            Error::Interceptor { source, .. } => transient_source(source),
            Error::DataKeyMissing { .. } => true,
            _ => false,
        }
    }

    /// Whether the error's text may quote a message's data: a codec's or
    /// an interceptor's error. Consumers keep such text out of logs and
    /// clear dead-letter reasons of messages with personal data.
    pub fn may_quote_data(&self) -> bool {
        matches!(
            self,
            Error::Decode(_) | Error::Encode { .. } | Error::Interceptor { .. }
        )
    }

    /// Whether the message may become readable, but not by waiting alone:
    /// a consumer counts these attempts as deliveries and dead-letters the
    /// message after `max_deliveries` ([`Error::DataKeyMissing`]).
    pub fn is_not_readable_yet(&self) -> bool {
        matches!(self, Error::DataKeyMissing { .. })
    }

    /// An error for each of the callers that shared one failed read or write:
    /// the same text, kind and transience.
    pub(crate) fn copied(&self) -> Error {
        match self {
            Error::Backend {
                backend,
                action,
                message,
                transient,
                ..
            } => Error::Backend {
                backend,
                action: action.clone(),
                message: message.clone(),
                transient: *transient,
                source: None,
            },
            Error::KeyVault { reason } => Error::KeyVault {
                reason: reason.clone(),
            },
            other => Error::Backend {
                backend: "key vault",
                action: "reading the vault".to_owned(),
                message: other.to_string(),
                transient: other.is_transient(),
                source: None,
            },
        }
    }

    /// A transient backend failure: retrying may succeed.
    pub fn transient(
        backend: &'static str,
        action: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::backend(backend, action.into(), source.into(), true)
    }

    /// A permanent backend failure: retrying will not help.
    pub fn permanent(
        backend: &'static str,
        action: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::backend(backend, action.into(), source.into(), false)
    }

    fn backend(backend: &'static str, action: String, source: BoxError, transient: bool) -> Self {
        Error::Backend {
            backend,
            action,
            message: source.to_string(),
            transient,
            source: Some(source),
        }
    }

    pub(crate) fn config(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            what,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_is_told_apart_from_permanent() {
        let t = Error::transient(
            "redis",
            "appending to stream \"orders\"",
            "connection reset",
        );
        let p = Error::permanent("redis", "appending to stream \"orders\"", "WRONGTYPE");
        assert!(t.is_transient());
        assert!(!p.is_transient());
        assert!(t.to_string().contains("\"orders\""), "{t}");
        let shared = Error::Send {
            stream: "orders".into(),
            source: Arc::new(t),
        };
        assert!(shared.is_transient());
        assert_eq!(shared.kind(), "backend");
        assert_eq!(
            Error::Closed {
                stream: "orders".into()
            }
            .kind(),
            "closed"
        );
    }
}
