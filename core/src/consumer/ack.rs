//! Acknowledgements go through one task per consumer that coalesces them
//! into batches (one `ack` call for all ids waiting).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::channel::{EntryId, StreamChannel};
use crate::retry::RetryPolicy;
use crate::telemetry::spans;

enum Command {
    Ack(EntryId),
    /// Answer once everything sent before is acknowledged.
    Flush(tokio::sync::oneshot::Sender<()>),
    Finish,
}

/// Sends acknowledgements to the ack task.
#[derive(Clone, Debug)]
pub(crate) struct AckSender(mpsc::UnboundedSender<Command>);

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Ack(id) => write!(f, "Ack({id})"),
            Command::Flush(_) => f.write_str("Flush"),
            Command::Finish => f.write_str("Finish"),
        }
    }
}

impl AckSender {
    pub(crate) fn ack(&self, id: EntryId) {
        // After the consumer finished, a late manual ack has nowhere to go;
        // the entry stays pending and is delivered again.
        let _ = self.0.send(Command::Ack(id));
    }

    /// Waits until every acknowledgement sent before is written (or has
    /// failed for good).
    pub(crate) async fn flush(&self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        if self.0.send(Command::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    /// Flushes what was sent before and ends the task.
    pub(crate) fn finish(&self) {
        let _ = self.0.send(Command::Finish);
    }
}

pub(crate) fn spawn(
    channel: Arc<dyn StreamChannel>,
    stream: String,
    group: String,
    retry: RetryPolicy,
) -> (AckSender, JoinHandle<u64>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut acked = 0u64;
        let mut commands = Vec::new();
        let mut ids = Vec::new();
        loop {
            if rx.recv_many(&mut commands, 1024).await == 0 {
                break;
            }
            let mut finish = false;
            let mut flushed = Vec::new();
            for command in commands.drain(..) {
                match command {
                    Command::Ack(id) => ids.push(id),
                    Command::Flush(done) => flushed.push(done),
                    Command::Finish => finish = true,
                }
            }
            if !ids.is_empty() {
                let span = spans::ack(channel.backend(), &stream, &group, ids.len());
                let result = retry
                    .run("acknowledging", || channel.ack(&stream, &group, &ids))
                    .instrument(span.clone())
                    .await;
                match result {
                    Ok(()) => acked += ids.len() as u64,
                    Err(e) => {
                        spans::fail(&span, e.kind());
                        tracing::error!(
                            parent: &span, stream, group, error = %e, count = ids.len(),
                            "acknowledgement failed; the entries will be delivered again"
                        )
                    }
                }
                ids.clear();
            }
            for done in flushed {
                let _ = done.send(());
            }
            if finish {
                break;
            }
        }
        acked
    });
    (AckSender(tx), task)
}
