//! The PostgreSQL backend's errors, and how sqlx errors become core errors.

use event_backbone_core::Error as CoreError;

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or connecting the PostgreSQL
/// backend. Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be used.
    #[error("invalid PostgreSQL address {address:?}: {reason}")]
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

    /// A schema or table name the backend does not use.
    #[error(
        "invalid PostgreSQL {what} name {name:?}: expected lower-case letters, digits and _, \
         not starting with a digit, at most 40 bytes"
    )]
    InvalidName {
        /// `schema` or `table`.
        what: &'static str,
        /// The name.
        name: String,
    },

    /// The server could not be reached, refused the credentials or did not
    /// answer.
    #[error("cannot connect to PostgreSQL at {address}: {source}")]
    Connect {
        /// The address, with any password masked.
        address: String,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
    },

    /// The backend's tables could not be made (the user may not create a
    /// schema or tables: make them with a user that may, once).
    #[error("cannot make the tables of schema {schema:?} at {address}: {source}")]
    Schema {
        /// The schema.
        schema: String,
        /// The address, with any password masked.
        address: String,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
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

/// Whether a SQLSTATE is worth a retry: connection failures (class 08),
/// serialization failures and deadlocks (40001, 40P01), too many
/// connections or out of resources (class 53), an administrator's
/// shutdown or a server starting (class 57), a lock not available (55P03).
pub(crate) fn is_transient_state(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "40001" | "40P01" | "55P03")
}

/// A sqlx error as a core error, transient when a retry may help.
pub(crate) fn backend(action: impl Into<String>, e: sqlx::Error) -> CoreError {
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_transient_state(&c)),
        _ => false,
    };
    if transient {
        CoreError::transient(BACKEND, action, e)
    } else {
        CoreError::permanent(BACKEND, action, e)
    }
}

/// A reply of an unexpected shape.
pub(crate) fn protocol(action: impl Into<String>, what: impl Into<String>) -> CoreError {
    CoreError::permanent(BACKEND, action, what.into())
}
