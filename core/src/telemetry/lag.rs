//! The consumer-lag sampler: every interval, the group's lag and pending
//! count from `StreamChannel::info`, into two gauges.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::instruments::ConsumerMetrics;
use crate::channel::StreamChannel;

/// What the sampler reads and where it writes.
pub(crate) struct LagSampler {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) every: Duration,
}

impl LagSampler {
    /// Samples until `stop`, then once more (a consumer that stops caught
    /// up reports it).
    pub(crate) async fn run(self, metrics: Arc<ConsumerMetrics>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => self.sample(&metrics).await,
                _ = stop.cancelled() => break,
            }
        }
        self.sample(&metrics).await;
    }

    async fn sample(&self, metrics: &ConsumerMetrics) {
        match self.channel.info(&self.stream).await {
            Ok(info) => match info.group(&self.group) {
                Some(group) => {
                    if let Some(lag) = group.lag {
                        metrics.lag.set(lag as f64);
                    }
                    metrics.pending.set(group.pending as f64);
                }
                None => tracing::debug!(
                    stream = self.stream,
                    group = self.group,
                    "lag not sampled: the group does not exist yet"
                ),
            },
            Err(e) => tracing::warn!(
                stream = self.stream, group = self.group, error = %e,
                "consumer lag could not be sampled"
            ),
        }
    }
}
