//! The DynamoDB backend's errors, and how SDK errors become core errors.

use std::fmt;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use event_backbone_core::Error as CoreError;

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or connecting the DynamoDB backend.
/// Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL or endpoint that cannot be used.
    #[error("invalid DynamoDB address {address:?}: {reason}")]
    InvalidAddress {
        /// The address.
        address: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// A table name DynamoDB does not accept.
    #[error("invalid DynamoDB table name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is expected.
        reason: &'static str,
    },

    /// The AWS chain found no credentials (none in the environment, no
    /// profile, no instance role), or could not load those it found.
    #[error(
        "{what} for DynamoDB at {address}: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (any values for DynamoDB Local), or AWS_PROFILE ({reason})"
    )]
    NoCredentials {
        /// Where the requests would go.
        address: String,
        /// `no AWS credentials found`, or `AWS credentials could not be
        /// loaded` (an expired session, a role refused).
        what: &'static str,
        /// The chain's own error, without its causes.
        reason: String,
    },

    /// The endpoint could not be reached, or refused the credentials.
    #[error("cannot connect to DynamoDB at {address}: {message}")]
    Connect {
        /// Where the requests went.
        address: String,
        /// The SDK's error, with its causes.
        message: String,
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

/// Service error codes a retry may get past: throttling, capacity, a
/// server-side failure, a transaction in the way.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// Whether an SDK error is worth a retry: no answer (dispatch, timeout, a
/// response that could not be read), a 5xx, or one of the codes above.
pub(crate) fn is_transient<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => s.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c)),
        _ => false,
    }
}

/// The service error code, if the server answered with one.
pub(crate) fn code<E, R>(e: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// An SDK error as a core error, transient when a retry may help. The
/// message holds the service's code and message, and the causes.
pub(crate) fn backend<E, R>(action: impl Into<String>, e: SdkError<E, R>) -> CoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let message = DisplayErrorContext(&e).to_string();
    if is_transient(&e) {
        CoreError::transient(BACKEND, action, message)
    } else {
        CoreError::permanent(BACKEND, action, message)
    }
}

/// A reply of an unexpected shape, or data this crate did not write.
pub(crate) fn protocol(action: impl Into<String>, what: impl Into<String>) -> CoreError {
    CoreError::permanent(BACKEND, action, what.into())
}
