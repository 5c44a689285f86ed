//! The MongoDB backend's errors, and how driver errors become core errors.

use event_backbone_core::Error as CoreError;
use mongodb::error::ErrorKind;

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or connecting the MongoDB backend.
/// Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string cannot be used.
    #[error("invalid MongoDB address {address:?}: {reason}")]
    InvalidAddress {
        /// The address, with any password masked.
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

    /// A database or collection name MongoDB does not accept.
    #[error("invalid MongoDB {what} name {name:?}: {reason}")]
    InvalidName {
        /// `database` or `collection`.
        what: &'static str,
        /// The name.
        name: String,
        /// What is expected.
        reason: &'static str,
    },

    /// The server could not be reached, refused the credentials or did not
    /// answer `ping`.
    #[error("cannot connect to MongoDB at {address}: {source}")]
    Connect {
        /// The address, with any password masked.
        address: String,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
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

/// Server error codes a retry may get past: the network, a primary that
/// steps down or is not there yet, timeouts, write conflicts and the
/// duplicate key two concurrent upserts of one new key can meet.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    112,   // WriteConflict
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11000, // DuplicateKey (an upsert race)
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Whether a server error code is worth a retry.
pub(crate) fn is_transient_code(code: i32) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// A driver error as a core error, transient when a retry may help.
pub(crate) fn backend(action: impl Into<String>, e: mongodb::error::Error) -> CoreError {
    let transient = e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
        || match e.kind.as_ref() {
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. } => true,
            ErrorKind::Command(c) => is_transient_code(c.code),
            _ => false,
        };
    if transient {
        CoreError::transient(BACKEND, action, e)
    } else {
        CoreError::permanent(BACKEND, action, e)
    }
}

/// A reply of an unexpected shape, or a write the server refused.
pub(crate) fn protocol(action: impl Into<String>, what: impl Into<String>) -> CoreError {
    CoreError::permanent(BACKEND, action, what.into())
}
