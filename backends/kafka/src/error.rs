//! The Kafka backend's errors, and how client errors become core errors.

use event_backbone_core::Error as CoreError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::BACKEND;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring or connecting the Kafka backend.
/// Failures of individual operations are reported as
/// [`event_backbone_core::Error`] (transient or permanent), like every
/// backend's; this error converts into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker list or URL cannot be used.
    #[error("invalid Kafka address {address:?}: {reason}")]
    InvalidAddress {
        /// What was given, with any password masked.
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

    /// No broker answered within the request timeout.
    #[error("cannot connect to the Kafka brokers {address}: {source}")]
    Connect {
        /// The broker list.
        address: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },

    /// A setting cannot be used.
    #[error("invalid Kafka setting {name:?}: {reason}")]
    InvalidSetting {
        /// The setting (librdkafka property or event-backbone option).
        name: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// librdkafka refused the configuration.
    #[error("librdkafka refused the configuration: {0}")]
    Client(#[source] KafkaError),
}

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Connect { .. } => CoreError::transient(BACKEND, "connecting", e),
            _ => CoreError::permanent(BACKEND, "configuring", e),
        }
    }
}

/// A client error as a core error, transient when a retry may help
/// (broker unreachable, leader moving, coordinator loading, timeouts).
pub(crate) fn backend(action: impl Into<String>, e: KafkaError) -> CoreError {
    if is_transient(&e) {
        CoreError::transient(BACKEND, action, e)
    } else {
        CoreError::permanent(BACKEND, action, e)
    }
}

fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::MessageTimedOut
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::QueueFull
                | C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::CoordinatorLoadInProgress
                | C::RebalanceInProgress
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::Resolve
                | C::TimedOutQueue
                | C::UnknownTopicOrPartition
        ),
        None => false,
    }
}

/// A reply of an unexpected shape, or a precondition that does not hold.
pub(crate) fn protocol(action: impl Into<String>, what: impl Into<String>) -> CoreError {
    CoreError::permanent(BACKEND, action, what.into())
}
