//! The SQLite backend's errors, and how sqlx errors become core errors.

use event_backbone_core::Error as CoreError;

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or opening the SQLite backend.
/// Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be used.
    #[error("invalid SQLite address {address:?}: {reason}")]
    InvalidAddress {
        /// The address.
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

    /// The file could not be opened or made, or its tables made.
    #[error("cannot open the SQLite database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
    },
}

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Open { .. } => CoreError::transient(BACKEND, "opening", e),
            _ => CoreError::permanent(BACKEND, "configuring", e),
        }
    }
}

/// A sqlx error as a core error: transient when the database is busy or
/// locked (another writer), the pool timed out, or the disk is full.
pub(crate) fn backend(action: impl Into<String>, e: sqlx::Error) -> CoreError {
    let transient = match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            // SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_FULL (13) and their
            // extended codes.
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6 | 13)),
        _ => false,
    };
    if transient {
        CoreError::transient(BACKEND, action, e)
    } else {
        CoreError::permanent(BACKEND, action, e)
    }
}
