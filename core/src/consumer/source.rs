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
        // Where every stored segment is, per entry: (segment, store, key).
        let places: Vec<Vec<Place>> = entries.iter().map(|(_, m)| self.places(m)).collect();
        // Distinct keys to fetch, per store, and where each landed.
        let mut wanted: Vec<Vec<String>> = vec![Vec::new(); self.stores.len()];
        let mut index: Vec<HashMap<String, usize>> = vec![HashMap::new(); self.stores.len()];
        for place in places.iter().flatten() {
            if let Some(idx) = place.store {
                if !index[idx].contains_key(&place.key) {
                    index[idx].insert(place.key.clone(), wanted[idx].len());
                    wanted[idx].push(place.key.clone());
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
        for ((entry_id, metadata), places) in entries.into_iter().zip(places) {
            let assembled = assemble(&metadata, &places, |store, key| {
                index[store]
                    .get(key)
                    .and_then(|pos| fetched[store][*pos].as_ref())
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

    /// Where each stored segment of a message is; standard keys are made
    /// once per class.
    fn places(&self, metadata: &Metadata) -> Vec<Place> {
        let mut places: Vec<Place> = Vec::with_capacity(metadata.segments.len());
        for (i, segment) in metadata.segments.iter().enumerate() {
            let (store_name, key) = match &segment.location {
                SegmentLocation::Inline(_) => continue,
                SegmentLocation::Standard => {
                    let known = places.iter().find(|p| {
                        p.standard && metadata.segments[p.segment].class == segment.class
                    });
                    match known {
                        Some(p) => (p.store_name.clone(), p.key.clone()),
                        None => (
                            segment.class.as_str().to_owned(),
                            metadata.standard_payload_key(&segment.class),
                        ),
                    }
                }
                SegmentLocation::Stored { store, key } => (store.clone(), key.clone()),
            };
            places.push(Place {
                segment: i,
                store: self.stores.resolve(&store_name),
                standard: matches!(segment.location, SegmentLocation::Standard),
                store_name,
                key,
            });
        }
        places
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

/// Where one stored segment is.
struct Place {
    /// Its index in the segment index.
    segment: usize,
    /// The store, if this reader has one for it.
    store: Option<usize>,
    standard: bool,
    store_name: String,
    key: String,
}

fn assemble<'a>(
    metadata: &Metadata,
    places: &[Place],
    lookup: impl Fn(usize, &str) -> Option<&'a Fields>,
) -> Result<Segments> {
    let mut segments = Segments::new();
    let mut places = places.iter().peekable();
    for (i, segment) in metadata.segments.iter().enumerate() {
        let data = match &segment.location {
            SegmentLocation::Inline(bytes) => bytes.clone(),
            _ => {
                let place = places
                    .next_if(|p| p.segment == i)
                    .expect("one place per stored segment");
                let store = place.store.ok_or_else(|| Error::UnknownStore {
                    segment: segment.name.clone(),
                    store: place.store_name.clone(),
                })?;
                let Some(fields) = lookup(store, &place.key) else {
                    if segment.class != SegmentClass::NORMAL {
                        // Erased (or expired) data of its own class: the
                        // message stays readable without it.
                        continue;
                    }
                    return Err(Error::MissingPayload {
                        store: place.store_name.clone(),
                        key: place.key.clone(),
                    });
                };
                fields
                    .get(&segment.name)
                    .cloned()
                    .ok_or_else(|| Error::MissingField {
                        store: place.store_name.clone(),
                        key: place.key.clone(),
                        field: segment.name.clone(),
                    })?
            }
        };
        segments.insert_classed(segment.name.clone(), segment.class.clone(), data);
    }
    Ok(segments)
}
