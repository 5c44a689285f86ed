//! The Couchbase backend's errors, and how SDK errors become core errors.

use couchbase::error::ErrorKind;
use event_backbone_core::Error as CoreError;

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or connecting the Couchbase
/// backend. Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string cannot be used.
    #[error("invalid Couchbase address {address:?}: {reason}")]
    InvalidAddress {
        /// The address, without any credentials.
        address: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// A required environment variable is not set.
    #[error("environment variable {name} is not set: set it to {expected}")]
    MissingVariable {
        /// The variable.
        name: &'static str,
        /// What it should hold.
        expected: &'static str,
    },

    /// No bucket was configured.
    #[error("no Couchbase bucket configured: call CouchbaseConfig::bucket (or set COUCHBASE_EVENT_SOURCE_BUCKET)")]
    NoBucket,

    /// The server could not be reached, refused the credentials, or does
    /// not have the bucket or collection.
    #[error("cannot connect to Couchbase at {address} ({keyspace}): {reason}")]
    Connect {
        /// The connection string.
        address: String,
        /// `bucket.scope.collection`.
        keyspace: String,
        /// What went wrong.
        reason: String,
    },
}

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Connect { .. } => CoreError::transient(BACKEND, "connecting", e),
            _ => CoreError::permanent(BACKEND, "configuring", e),
        }
    }
}

/// Whether a retry may get past an SDK error: timeouts, temporary
/// failures, a locked document, a service or rate limit in the way, and
/// what the SDK reports as "other" (a dispatch, connection or I/O failure,
/// a cancelled request).
pub(crate) fn is_transient(e: &couchbase::error::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ServerTimeout
            | ErrorKind::TemporaryFailure
            | ErrorKind::RequestCanceled
            | ErrorKind::DocumentLocked
            | ErrorKind::ServiceNotAvailable(_)
            | ErrorKind::RateLimitedFailure
            | ErrorKind::InternalServerFailure
            | ErrorKind::OtherFailure(_)
    )
}

/// An SDK error as a core error, transient when a retry may help.
pub(crate) fn backend(action: impl Into<String>, e: couchbase::error::Error) -> CoreError {
    if is_transient(&e) {
        CoreError::transient(BACKEND, action, e)
    } else {
        CoreError::permanent(BACKEND, action, e)
    }
}
