//! The task that turns concurrent sends into batches: all payload writes of
//! a batch (`put_many` per store), then all its entries (`append_many`).

use std::sync::{Arc, Weak};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, Span};

use crate::channel::{EntryId, StreamChannel};
use crate::envelope::Metadata;
use crate::retry::RetryPolicy;
use crate::store::{KeyValueStore, PutItem};
use crate::store_set::StoreSet;
use crate::telemetry::instruments::ProducerMetrics;
use crate::telemetry::spans;
use crate::{Error, Result};

/// What batches are written to: one stream on a channel, with the stores
/// its payloads go to.
pub(crate) struct Destination {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stores: StoreSet,
    pub(crate) stream: Arc<str>,
    /// The name of the stream's `send` spans.
    pub(crate) send_span: Box<str>,
    pub(crate) retry: RetryPolicy,
    /// Most messages per batch.
    pub(crate) max_batch: usize,
    pub(crate) metrics: ProducerMetrics,
}

pub(crate) struct Prepared {
    pub(crate) metadata: Metadata,
    /// (store index, write)
    pub(crate) puts: Vec<(usize, PutItem)>,
}

pub(crate) struct Job {
    pub(crate) job: Prepared,
    pub(crate) reply: oneshot::Sender<Result<EntryId>>,
    /// The `send` span of the message, which the batch's span follows.
    pub(crate) span: Span,
}

/// Batches written at once: while one waits for the server, the next is
/// built and sent, so the producer's work overlaps the round trip. Each
/// sender has at most one message in flight, so its order is kept.
const MAX_IN_FLIGHT: usize = 2;

pub(crate) async fn run(destination: Weak<Destination>, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    // Only a weak reference is held while waiting: the task ends when the
    // last producer is dropped and the queue is drained.
    while let Some(max) = destination.upgrade().map(|d| d.max_batch) {
        tokio::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            received = queue.recv_many(&mut jobs, max), if open && in_flight.len() < MAX_IN_FLIGHT => {
                if received == 0 {
                    open = false;
                    continue;
                }
                let Some(destination) = destination.upgrade() else {
                    break;
                };
                let batch = std::mem::take(&mut jobs);
                in_flight.push(async move { flush(&destination, batch).await });
            }
            else => break,
        }
    }
    while in_flight.next().await.is_some() {}
}

async fn flush(destination: &Destination, jobs: Vec<Job>) {
    let stream = &*destination.stream;
    let sends = jobs.iter().map(|job| &job.span);
    let span = spans::send_batch(destination.channel.backend(), stream, sends);
    destination.metrics.batch(jobs.len());
    let mut per_store: Vec<Vec<PutItem>> = vec![Vec::new(); destination.stores.len()];
    let mut metadata = Vec::with_capacity(jobs.len());
    let mut replies = Vec::with_capacity(jobs.len());
    for Job { job, reply, .. } in jobs {
        for (idx, item) in job.puts {
            per_store[idx].push(item);
        }
        metadata.push(job.metadata);
        replies.push(reply);
    }

    let payloads: Vec<(&dyn KeyValueStore, Vec<PutItem>)> = per_store
        .into_iter()
        .enumerate()
        .filter(|(_, items)| !items.is_empty())
        .map(|(idx, items)| (destination.stores.store(idx).as_ref(), items))
        .collect();
    let appended = destination
        .retry
        .run("storing payloads and appending to the stream", || {
            destination
                .channel
                .store_and_append(stream, &payloads, &metadata)
        })
        .instrument(span.clone())
        .await;
    if let Err(e) = &appended {
        spans::fail(&span, e.kind());
    }
    match appended {
        Ok(ids) if ids.len() == replies.len() => {
            for (reply, id) in replies.into_iter().zip(ids) {
                let _ = reply.send(Ok(id));
            }
        }
        Ok(ids) => {
            let cause = Arc::new(Error::permanent(
                destination.channel.backend(),
                format!("appending to stream {stream:?}"),
                format!(
                    "append_many returned {} ids for {} entries",
                    ids.len(),
                    replies.len()
                ),
            ));
            fail_all(stream, replies, cause);
        }
        Err(Error::PartlyAppended {
            appended, source, ..
        }) => {
            // Every payload is stored; what is left is to append the
            // entries that were not, by themselves.
            let ids = append_rest(destination, &metadata, appended, *source).await;
            for (reply, id) in replies.into_iter().zip(ids) {
                let _ = reply.send(id.map_err(|cause| Error::Send {
                    stream: stream.to_owned(),
                    source: cause,
                }));
            }
        }
        Err(e) => fail_all(stream, replies, Arc::new(e)),
    }
}

/// Appends the entries of a batch that a partial append left out, with the
/// producer's retry, until every one is appended or the failure is
/// permanent or the attempts are used up: per entry, its id or the cause.
async fn append_rest(
    destination: &Destination,
    metadata: &[Metadata],
    mut ids: Vec<Option<EntryId>>,
    mut cause: Error,
) -> Vec<Result<EntryId, Arc<Error>>> {
    let stream = &*destination.stream;
    let retry = &destination.retry;
    let mut attempt = 1;
    while cause.is_transient() && attempt < retry.max_attempts() {
        attempt += 1;
        let rest: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].is_none()).collect();
        let delay = retry.delay_before(attempt);
        tracing::warn!(stream, error = %cause, left = rest.len(), ?delay,
            "some entries of a batch were not appended; appending them again");
        tokio::time::sleep(delay).await;
        let batch: Vec<Metadata> = rest.iter().map(|&i| metadata[i].clone()).collect();
        match destination.channel.append_many(stream, &batch).await {
            Ok(got) if got.len() == rest.len() => {
                for (i, id) in rest.into_iter().zip(got) {
                    ids[i] = Some(id);
                }
                break;
            }
            Ok(got) => {
                cause = Error::permanent(
                    destination.channel.backend(),
                    format!("appending to stream {stream:?}"),
                    format!(
                        "append_many returned {} ids for {} entries",
                        got.len(),
                        rest.len()
                    ),
                );
            }
            Err(Error::PartlyAppended {
                appended, source, ..
            }) => {
                for (i, id) in rest.into_iter().zip(appended) {
                    ids[i] = id;
                }
                cause = *source;
            }
            Err(e) => cause = e,
        }
    }
    let cause = Arc::new(cause);
    let failed = ids.iter().filter(|id| id.is_none()).count();
    if failed > 0 {
        tracing::error!(stream, error = %cause, failed, batch = ids.len(), "send failed");
    }
    ids.into_iter()
        .map(|id| id.ok_or_else(|| cause.clone()))
        .collect()
}

fn fail_all(stream: &str, replies: Vec<oneshot::Sender<Result<EntryId>>>, cause: Arc<Error>) {
    tracing::error!(stream, error = %cause, batch = replies.len(), "send failed");
    for reply in replies {
        let _ = reply.send(Err(Error::Send {
            stream: stream.to_owned(),
            source: cause.clone(),
        }));
    }
}
