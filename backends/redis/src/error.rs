//! The Redis backend's errors, and how driver errors become core errors.

use event_backbone_core::Error as CoreError;

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or connecting the Redis backend.
/// Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URL cannot be used.
    #[error("invalid Redis address {address:?}: {reason}")]
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

    /// The server could not be reached, refused the connection or did not
    /// answer.
    #[error("cannot connect to Redis at {address}: {source}")]
    Connect {
        /// The address, with any password masked.
        address: String,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
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

/// A driver error as a core error, transient when a retry may help
/// (connection lost or refused, timeout, server loading or busy; on a
/// cluster a redirection, a slot without a master or a node not reached
/// yet, as during a failover; a read unblocked because its master became a
/// replica; too few replicas for `min-replicas-to-write`).
pub(crate) fn backend(action: impl Into<String>, e: redis::RedisError) -> CoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
        // A WAIT that reached a node turned replica by a failover (the
        // slot map not yet refreshed): the batch goes again, to its master.
        || e.detail().is_some_and(|d| d.contains("cannot be used with replica instances"))
        || matches!(
            e.code(),
            Some(
                "LOADING"
                    | "BUSY"
                    | "TRYAGAIN"
                    | "MASTERDOWN"
                    | "CLUSTERDOWN"
                    | "READONLY"
                    | "NOREPLICAS"
                    | "UNBLOCKED"
            )
        );
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
