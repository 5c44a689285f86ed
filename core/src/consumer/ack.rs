//! Acknowledgements go through one task per consumer that coalesces them
//! into batches (one `ack` call for all ids waiting). An acknowledgement
//! that fails (after the backend retries) is kept and tried again, with
//! those that come after it, until it is written or the consumer stops:
//! a handled message is not handled again because the channel was briefly
//! away. Only what is still unwritten when the consumer stops is delivered
//! again.
//!
//! An entry stays [held](super::held) until its acknowledgement is written
//! (so no member claims it meanwhile), and on a channel with leases the
//! work under its lease ends only then (so a partition is not handed over
//! between the handler's end and the acknowledgement).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::held::Held;
use crate::channel::{EntryId, StreamChannel};
use crate::lease::LeaseGuard;
use crate::retry::RetryPolicy;
use crate::telemetry::spans;

enum Command {
    Ack(EntryId, Option<LeaseGuard>),
    Finish,
}

/// Sends acknowledgements to the ack task.
#[derive(Clone, Debug)]
pub(crate) struct AckSender(mpsc::UnboundedSender<Command>);

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Ack(id, _) => write!(f, "Ack({id})"),
            Command::Finish => f.write_str("Finish"),
        }
    }
}

impl AckSender {
    /// Acknowledges an entry; `work` (under the entry's lease) ends once
    /// the acknowledgement is written.
    pub(crate) fn ack(&self, id: EntryId, work: Option<LeaseGuard>) {
        // After the consumer finished, a late manual ack has nowhere to go;
        // the entry stays pending and is delivered again.
        let _ = self.0.send(Command::Ack(id, work));
    }

    /// Writes what was sent before (one last try for what is kept) and
    /// ends the task.
    pub(crate) fn finish(&self) {
        let _ = self.0.send(Command::Finish);
    }
}

/// What the ack task writes to.
pub(crate) struct AckTarget {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) held: Held,
}

pub(crate) fn spawn(target: AckTarget) -> (AckSender, JoinHandle<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(target, rx));
    (AckSender(tx), task)
}

async fn run(target: AckTarget, mut rx: mpsc::UnboundedReceiver<Command>) -> u64 {
    let mut acked = 0u64;
    let mut commands = Vec::new();
    // Waiting to be written: the ids and the work that ends with them.
    let mut ids: Vec<EntryId> = Vec::new();
    let mut work: Vec<LeaseGuard> = Vec::new();
    // Failed rounds in a row: the wait before the next try grows.
    let mut failures = 0u32;
    let mut open = true;
    while open {
        let received = if failures == 0 {
            rx.recv_many(&mut commands, 1024).await
        } else {
            // Kept acknowledgements are tried again after a backoff, or
            // as soon as something new comes.
            let delay = target
                .retry
                .delay_before(failures.saturating_add(1).min(16));
            tokio::select! {
                n = rx.recv_many(&mut commands, 1024) => n,
                _ = tokio::time::sleep(delay) => usize::MAX,
            }
        };
        if received == 0 {
            break;
        }
        for command in commands.drain(..) {
            match command {
                Command::Ack(id, guard) => {
                    ids.push(id);
                    work.extend(guard);
                }
                Command::Finish => open = false,
            }
        }
        if !ids.is_empty() {
            if write(&target, &ids).await {
                acked += ids.len() as u64;
                for id in ids.drain(..) {
                    target.held.release(&id);
                }
                work.clear();
                failures = 0;
            } else {
                failures += 1;
            }
        }
    }
    if !ids.is_empty() {
        tracing::error!(
            stream = target.stream,
            group = target.group,
            count = ids.len(),
            "acknowledgements could not be written before the consumer stopped; \
             those entries will be delivered again"
        );
    }
    acked
}

/// One acknowledgement round; false if it failed (after the retries).
async fn write(target: &AckTarget, ids: &[EntryId]) -> bool {
    let (stream, group) = (&target.stream, &target.group);
    let span = spans::ack(target.channel.backend(), stream, group, ids.len());
    let result = target
        .retry
        .run("acknowledging", || target.channel.ack(stream, group, ids))
        .instrument(span.clone())
        .await;
    match result {
        Ok(()) => true,
        Err(e) => {
            spans::fail(&span, e.kind());
            tracing::error!(
                parent: &span, stream, group, error = %e, count = ids.len(),
                "acknowledgement failed; trying again"
            );
            false
        }
    }
}
