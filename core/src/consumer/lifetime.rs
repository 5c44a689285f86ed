use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// What a consumer did, returned when it completes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Entries received (new, own pending and claimed).
    pub received: u64,
    /// Messages handled (or acknowledged by the `Ack` fallback).
    pub handled: u64,
    /// Deliveries whose handler failed after its retries.
    pub failed: u64,
    /// Messages sent to the dead-letter stream.
    pub dead_lettered: u64,
    /// Entries claimed from other members (or from itself) after idling.
    pub claimed: u64,
    /// Failed messages delivered again by this consumer after the
    /// redelivery backoff.
    pub redelivered: u64,
}

/// A running subscription; from [`super::ConsumerBuilder::subscribe`].
///
/// Dropping it detaches the consumer, which then runs until a stop
/// condition or its cancellation token ends it.
#[must_use = "dropping the lifetime detaches the consumer; await completion() or shutdown()"]
#[derive(Debug)]
pub struct ConsumerLifetime {
    task: JoinHandle<Result<ConsumerStats>>,
    stop: CancellationToken,
    stream: String,
    group: String,
}

impl ConsumerLifetime {
    pub(crate) fn new(
        task: JoinHandle<Result<ConsumerStats>>,
        stop: CancellationToken,
        stream: String,
        group: String,
    ) -> Self {
        Self {
            task,
            stop,
            stream,
            group,
        }
    }

    /// Waits until the consumer stops by itself (stop after N, stop when
    /// empty, cancellation, or a permanent error).
    pub async fn completion(self) -> Result<ConsumerStats> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::ConsumerAborted {
                stream: self.stream,
                group: self.group,
                reason: e.to_string(),
            }),
        }
    }

    /// Stops fetching, lets the messages in flight finish and be
    /// acknowledged, then returns.
    pub async fn shutdown(self) -> Result<ConsumerStats> {
        self.stop.cancel();
        self.completion().await
    }

    /// Asks the consumer to stop, without waiting.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the consumer has completed.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The stream key consumed.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }
}
