//! The consumer-lag sampler: every interval, the group's lag and pending
//! count from `StreamChannel::info`, into two gauges.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::instruments::LagGauges;
use crate::channel::StreamChannel;

/// What the sampler reads and where it writes.
pub(crate) struct LagSampler {
    channel: Arc<dyn StreamChannel>,
    stream: String,
    group: String,
    every: Duration,
    gauges: LagGauges,
}

impl LagSampler {
    pub(crate) fn new(
        channel: Arc<dyn StreamChannel>,
        stream: String,
        group: String,
        every: Duration,
    ) -> Self {
        let gauges = LagGauges::new(channel.backend(), &stream, &group);
        Self {
            channel,
            stream,
            group,
            every,
            gauges,
        }
    }

    /// Samples until `stop`, then once more (a consumer that stops caught
    /// up reports it).
    pub(crate) async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => self.sample().await,
                _ = stop.cancelled() => break,
            }
        }
        self.sample().await;
    }

    async fn sample(&self) {
        let metrics = &self.gauges;
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
