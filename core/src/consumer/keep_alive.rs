//! Keeping held entries this consumer's: on a channel with claim, every
//! `interval` the consumer touches the entries it holds
//! ([`StreamChannel::touch`](crate::StreamChannel::touch)), so that their
//! idle time never reaches any member's claim idle, however long they wait
//! behind their key or for a redelivery. Entries the channel reports as
//! taken by another member are marked lost and dropped before they run.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::held::Held;
use super::source::Source;

pub(crate) struct KeepAlive {
    pub(crate) source: Arc<Source>,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) held: Held,
    pub(crate) interval: Duration,
}

impl KeepAlive {
    pub(crate) async fn run(self, stop: CancellationToken) {
        let stream = self.source.stream();
        let channel = self.source.channel.as_ref();
        let mut wait = self.interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            wait = self.interval;
            let ids = self.held.ids();
            if ids.is_empty() {
                continue;
            }
            match channel
                .touch(stream, &self.group, &self.consumer, &ids)
                .await
            {
                Ok(lost) if lost.is_empty() => {}
                Ok(lost) => {
                    tracing::warn!(
                        stream,
                        group = self.group,
                        consumer = self.consumer,
                        count = lost.len(),
                        "entries this consumer held were taken by another member; \
                         those not yet running are dropped"
                    );
                    self.held.lose(&lost);
                }
                Err(e) => {
                    // Soon: two missed touches in a row and a member may
                    // claim what this one is working on.
                    wait = self.interval / 4;
                    tracing::warn!(
                        stream, group = self.group, error = %e, retry_in = ?wait,
                        "touching the entries in hand failed; trying again"
                    )
                }
            }
        }
    }
}
