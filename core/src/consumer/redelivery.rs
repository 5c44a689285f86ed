//! A message's way to settlement: the handler runs (taking a concurrency
//! permit), and when it fails the message is delivered again in place,
//! after the redelivery backoff, with the count the channel recorded, until
//! it is handled or dead-lettered.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::dispatch::{Dispatcher, Settled};
use crate::message::Message;

/// Handles `message` until it is settled. Between deliveries it holds no
/// concurrency permit: a message waiting for its backoff does not keep
/// others from running.
pub(crate) async fn settle(
    dispatcher: Arc<Dispatcher>,
    permits: Arc<Semaphore>,
    mut message: Message,
    mut delivery_count: u32,
) {
    let d = dispatcher.as_ref();
    loop {
        let settled = {
            let _permit = permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let span = d.process_span(&message, delivery_count);
            d.process(message, delivery_count, &span).await
        };
        let Settled::Redeliver(failed) = settled else {
            return;
        };
        let delay = d.redelivery.delay_before(delivery_count.saturating_add(1));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // Stopping: it stays pending, for the next start.
            _ = d.stop.cancelled() => return,
        }
        let source = &d.source;
        let counted = source
            .retry
            .run("counting a redelivery", || {
                source.channel.redeliver(
                    source.stream(),
                    &d.group,
                    &d.consumer,
                    failed.entry_id(),
                    delivery_count,
                )
            })
            .await;
        match counted {
            Ok(Some(count)) => {
                d.counters.redelivered();
                delivery_count = count;
                message = *failed;
            }
            Ok(None) => {
                tracing::debug!(
                    stream = source.stream(), entry = %failed.entry_id(),
                    "no longer pending here; another member has it"
                );
                return;
            }
            Err(e) => {
                tracing::error!(
                    stream = source.stream(), entry = %failed.entry_id(), error = %e,
                    "a redelivery could not be counted; the entry stays pending"
                );
                return;
            }
        }
    }
}
