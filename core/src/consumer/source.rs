//! What every reader shares: the channel, the stores, the stream and the
//! consumer interceptors; and the loading of payloads for a batch of
//! entries, one `get_many` per store.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::address::StreamAddress;
use crate::channel::{EntryId, StreamChannel};
use crate::envelope::{Metadata, SegmentClass, SegmentLocation, Segments};
use crate::interceptor::ConsumerInterceptor;
use crate::retry::RetryPolicy;
use crate::store::Fields;
use crate::store_set::StoreSet;
use crate::{Error, Result};

use super::Message;

pub(crate) struct Source {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stores: StoreSet,
    pub(crate) address: StreamAddress,
    pub(crate) interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("stream", &self.address.stream_key())
            .field("channel", &self.channel.backend())
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl Source {
    pub(crate) fn stream(&self) -> &str {
        self.address.stream_key()
    }

    /// Loads the payloads of a batch. The outer error is a store failure
    /// (after retries): nothing of the batch could be loaded. An inner error
    /// concerns one message (missing payload, unknown store, interceptor).
    pub(crate) async fn load(
        &self,
        entries: Vec<(EntryId, Metadata)>,
    ) -> Result<Vec<Result<Message, LoadFailure>>> {
        // Distinct keys to fetch, per store, and where each landed.
        let mut wanted: Vec<Vec<String>> = vec![Vec::new(); self.stores.len()];
        // Per store: key -> position in `wanted`.
        let mut index: Vec<HashMap<String, usize>> = vec![HashMap::new(); self.stores.len()];
        for (_, metadata) in &entries {
            for segment in &metadata.segments {
                if let SegmentLocation::Stored { store, key } = &segment.location {
                    if let Some(idx) = self.stores.resolve(store) {
                        if !index[idx].contains_key(key) {
                            index[idx].insert(key.clone(), wanted[idx].len());
                            wanted[idx].push(key.clone());
                        }
                    }
                }
            }
        }
        let fetches = wanted.iter().enumerate().map(|(idx, keys)| async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let store = self.stores.store(idx);
            self.retry
                .run("fetching payloads", || store.get_many(&keys))
                .await
        });
        let fetched: Vec<Vec<Option<Fields>>> = futures_util::future::try_join_all(fetches).await?;

        let mut out = Vec::with_capacity(entries.len());
        for (entry_id, metadata) in entries {
            let assembled = assemble(&metadata, |store, key| {
                let idx = self.stores.resolve(store)?;
                Some(
                    index[idx]
                        .get(key)
                        .and_then(|pos| fetched[idx][*pos].as_ref()),
                )
            });
            let message = match assembled {
                Ok(segments) => self.intercept(entry_id, metadata, segments).await,
                Err(error) => Err(LoadFailure {
                    entry_id,
                    metadata,
                    error,
                }),
            };
            out.push(message);
        }
        Ok(out)
    }

    async fn intercept(
        &self,
        entry_id: EntryId,
        metadata: Metadata,
        mut segments: Segments,
    ) -> Result<Message, LoadFailure> {
        for interceptor in &self.interceptors {
            if let Err(source) = interceptor.on_receive(&metadata, &mut segments).await {
                return Err(LoadFailure {
                    entry_id,
                    metadata,
                    error: Error::Interceptor {
                        interceptor: interceptor.name().to_owned(),
                        source,
                    },
                });
            }
        }
        Ok(Message::new(entry_id, metadata, segments))
    }
}

/// A message whose payload could not be assembled.
#[derive(Debug)]
pub(crate) struct LoadFailure {
    pub(crate) entry_id: EntryId,
    pub(crate) metadata: Metadata,
    pub(crate) error: Error,
}

impl From<LoadFailure> for Error {
    fn from(failure: LoadFailure) -> Self {
        failure.error
    }
}

fn assemble<'a>(
    metadata: &Metadata,
    // None: no such store; Some(None): no such key.
    lookup: impl Fn(&str, &str) -> Option<Option<&'a Fields>>,
) -> Result<Segments> {
    let mut segments = Segments::new();
    for segment in &metadata.segments {
        let data = match &segment.location {
            SegmentLocation::Inline(bytes) => bytes.clone(),
            SegmentLocation::Stored { store, key } => {
                let found = lookup(store, key).ok_or_else(|| Error::UnknownStore {
                    segment: segment.name.clone(),
                    store: store.clone(),
                })?;
                let Some(fields) = found else {
                    if segment.class != SegmentClass::NORMAL {
                        // Erased (or expired) data of its own class: the
                        // message stays readable without it.
                        continue;
                    }
                    return Err(Error::MissingPayload {
                        store: store.clone(),
                        key: key.clone(),
                    });
                };
                fields
                    .get(&segment.name)
                    .cloned()
                    .ok_or_else(|| Error::MissingField {
                        store: store.clone(),
                        key: key.clone(),
                        field: segment.name.clone(),
                    })?
            }
        };
        segments.insert_classed(segment.name.clone(), segment.class.clone(), data);
    }
    Ok(segments)
}
