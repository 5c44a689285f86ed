//! `BatchWriteItem` and `BatchGetItem` with DynamoDB's limits: chunks of
//! 25 writes and 100 keys, sent concurrently, and what the server left
//! unprocessed (throttling, the 16 MB answer) sent again with exponential
//! backoff and jitter until done or the deadline.

use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use event_backbone_core::{Error as CoreError, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::error::{backend, protocol};
use crate::item::{string, Item, KEY, SORT};
use crate::BACKEND;

/// Writes in one `BatchWriteItem`: DynamoDB's limit.
pub const WRITES_PER_BATCH: usize = 25;
/// Keys in one `BatchGetItem`: DynamoDB's limit.
pub const KEYS_PER_BATCH: usize = 100;

/// How a batch call talks to its table.
pub(crate) struct Batch<'a> {
    pub(crate) client: &'a Client,
    pub(crate) table: &'a str,
    pub(crate) concurrency: usize,
    pub(crate) deadline: Duration,
    pub(crate) consistent: bool,
}

/// One write of a batch.
pub(crate) enum Write {
    Put(Item),
    Delete(Item),
}

impl Batch<'_> {
    /// Writes everything, 25 to a request, `concurrency` requests at once.
    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<()> {
        let requests: Vec<WriteRequest> = writes
            .into_iter()
            .map(|w| match w {
                Write::Put(item) => PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build()),
                Write::Delete(key) => DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build()),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| protocol(self.action("writing"), e.to_string()))?;
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(WRITES_PER_BATCH)
            .map(<[_]>::to_vec)
            .collect();
        stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await
    }

    async fn write_chunk(&self, mut left: Vec<WriteRequest>) -> Result<()> {
        let mut backoff = Backoff::new(self.deadline);
        loop {
            let sent = left.len();
            let answer = self
                .client
                .batch_write_item()
                .request_items(self.table, left.clone())
                .send()
                .await
                .map_err(|e| backend(self.action("writing"), e))?;
            left = answer
                .unprocessed_items
                .and_then(|mut m| m.remove(self.table))
                .unwrap_or_default();
            if left.is_empty() {
                return Ok(());
            }
            if !backoff.wait(left.len() < sent).await {
                let first = left
                    .first()
                    .and_then(|w| {
                        w.put_request
                            .as_ref()
                            .map(|p| p.item())
                            .or(w.delete_request.as_ref().map(|d| d.key()))
                    })
                    .and_then(|i| string(i, KEY))
                    .unwrap_or_default()
                    .to_owned();
                return Err(CoreError::transient(
                    BACKEND,
                    self.action("writing"),
                    format!(
                        "{} writes (the first for key {first:?}) were still unprocessed after {:?} \
                         of retries: the table is throttled; retry later or raise its capacity",
                        left.len(),
                        self.deadline
                    ),
                ));
            }
        }
    }

    /// Reads the items with these primary keys (no duplicates), `chunk` to
    /// a request (at most 100; fewer when items are large, to stay under
    /// the 16 MB answer), `concurrency` requests at once. Items that do not
    /// exist are not in the answer; the order is not the keys'.
    pub(crate) async fn get(&self, keys: Vec<Item>, chunk: usize) -> Result<Vec<Item>> {
        let chunks: Vec<Vec<Item>> = keys
            .chunks(chunk.clamp(1, KEYS_PER_BATCH))
            .map(<[_]>::to_vec)
            .collect();
        let answers: Vec<Vec<Item>> = stream::iter(chunks)
            .map(|chunk| self.get_chunk(chunk))
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(answers.into_iter().flatten().collect())
    }

    async fn get_chunk(&self, mut left: Vec<Item>) -> Result<Vec<Item>> {
        let mut backoff = Backoff::new(self.deadline);
        let mut found = Vec::new();
        loop {
            let sent = left.len();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(left))
                .consistent_read(self.consistent)
                .build()
                .map_err(|e| protocol(self.action("reading"), e.to_string()))?;
            let mut answer = self
                .client
                .batch_get_item()
                .request_items(self.table, request)
                .send()
                .await
                .map_err(|e| backend(self.action("reading"), e))?;
            if let Some(items) = answer.responses.as_mut().and_then(|r| r.remove(self.table)) {
                found.extend(items);
            }
            left = answer
                .unprocessed_keys
                .and_then(|mut m| m.remove(self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if left.is_empty() {
                return Ok(found);
            }
            if !backoff.wait(left.len() < sent).await {
                let first = left
                    .first()
                    .and_then(|k| string(k, KEY))
                    .unwrap_or_default()
                    .to_owned();
                let sort = left
                    .first()
                    .and_then(|k| string(k, SORT))
                    .unwrap_or_default()
                    .to_owned();
                return Err(CoreError::transient(
                    BACKEND,
                    self.action("reading"),
                    format!(
                        "{} keys (the first {first:?}, {sort}) were still unprocessed after {:?} \
                         of retries: the table is throttled; retry later or raise its capacity",
                        left.len(),
                        self.deadline
                    ),
                ));
            }
        }
    }

    fn action(&self, what: &str) -> String {
        format!("{what} a batch in table {:?}", self.table)
    }
}

/// Exponential backoff with full jitter, from 25 ms to 1 s, until a
/// deadline; no wait after a round that made progress (the 16 MB answer
/// limit, not throttling).
struct Backoff {
    attempt: u32,
    until: Instant,
}

impl Backoff {
    fn new(deadline: Duration) -> Self {
        Self {
            attempt: 0,
            until: Instant::now() + deadline,
        }
    }

    /// Waits before the next round; false when the deadline has passed.
    async fn wait(&mut self, progressed: bool) -> bool {
        if Instant::now() >= self.until {
            return false;
        }
        if progressed {
            self.attempt = 0;
            return true;
        }
        let cap = Duration::from_millis(25 << self.attempt.min(6)).min(Duration::from_secs(1));
        self.attempt += 1;
        let wait = cap.mul_f64(fastrand::f64());
        tokio::time::sleep_until((Instant::now() + wait).min(self.until)).await;
        true
    }
}
