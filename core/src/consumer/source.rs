//! What every reader shares: the channel, the stores, the stream and the
//! consumer interceptors; and the loading of payloads for a batch of
//! entries, one `get_many` per store.

use std::fmt;
use std::sync::Arc;

use crate::address::StreamAddress;
use crate::channel::{EntryId, StreamChannel};
use crate::endpoint::{EndpointBuilder, Reading, Resolved};
use crate::envelope::{Metadata, SegmentClass, SegmentLocation, SegmentRef, Segments};
use crate::interceptor::ConsumerInterceptor;
use crate::privacy::opening::BatchSubjects;
use crate::privacy::PersonalData;
use crate::retry::RetryPolicy;
use crate::store::Fields;
use crate::store_set::StoreSet;
use crate::{Error, Result};

use crate::message::Message;

pub(crate) struct Source {
    pub(crate) channel: Arc<dyn StreamChannel>,
    pub(crate) stores: StoreSet,
    pub(crate) address: StreamAddress,
    pub(crate) interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) personal: Option<PersonalData>,
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
    /// What a reading builder was given, checked: the source it reads
    /// through. `what` (`consumer`, `replay`, ...) goes into errors.
    pub(crate) fn resolve<R: Reading>(
        builder: &mut EndpointBuilder<R>,
        what: &'static str,
    ) -> Result<Self> {
        let Resolved {
            channel,
            stores,
            address,
            personal,
            retry,
        } = builder.endpoint.resolve(what)?;
        Ok(Self {
            channel,
            stores,
            address,
            interceptors: std::mem::take(builder.role.interceptors_mut()),
            retry,
            personal,
        })
    }

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
        self.load_batch(entries)
            .await
            .map_err(|failed| failed.error)
    }

    /// [`Self::load`], giving the entries back when the batch as a whole
    /// could not be loaded, for the consumer to try them again or one by
    /// one.
    pub(crate) async fn load_batch(
        &self,
        entries: Vec<(EntryId, Metadata)>,
    ) -> Result<Vec<Result<Message, LoadFailure>>, BatchFailure> {
        // The data keys of the batch's subjects, read while the payloads
        // are fetched.
        let mut subjects = BatchSubjects::of(entries.iter().map(|(_, m)| m));
        let fetched = futures_util::future::try_join(
            self.fetch(&entries),
            subjects.keys(self.personal.as_ref(), &self.retry),
        )
        .await;
        let (assembled, mut keys) = match fetched {
            Ok(fetched) => fetched,
            Err(error) => return Err(BatchFailure { error, entries }),
        };
        // A key the vault's answer does not have may be newer than its
        // cache: those subjects are read again, fresh.
        if let Some(personal) = &self.personal {
            let refreshed = subjects
                .refresh_unknown_keys(personal, &self.retry, &assembled, &mut keys)
                .await;
            if let Err(error) = refreshed {
                return Err(BatchFailure { error, entries });
            }
        }
        let keys = self
            .personal
            .as_ref()
            .map(|p| (keys.as_slice(), p.vault().backend()));

        let mut out = Vec::with_capacity(entries.len());
        for (i, ((entry_id, metadata), segments)) in entries.into_iter().zip(assembled).enumerate()
        {
            let opened = segments.and_then(|mut segments| {
                let sealed = subjects.open(i, &metadata, &mut segments, keys)?;
                Ok((segments, sealed))
            });
            let message = match opened {
                Ok((segments, sealed)) => {
                    self.intercept(entry_id, metadata, segments, sealed).await
                }
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

    /// The segments of a batch as the stores hold them (sealed ones still
    /// sealed), one `get_many` per store. The outer error is a store
    /// failure (after retries); an inner one concerns one entry (an entry
    /// that names keys its stream does not hold, a missing payload, an
    /// unknown store).
    pub(crate) async fn fetch(
        &self,
        entries: &[(EntryId, Metadata)],
    ) -> Result<Vec<Result<Segments>>> {
        // The keys to fetch, per store, and where each stored segment of
        // each entry finds its fields among them.
        let mut wanted: Vec<Vec<String>> = vec![Vec::new(); self.stores.len()];
        // An entry that names what its stream does not hold fetches
        // nothing.
        let mut untrusted: Vec<Option<Error>> = entries
            .iter()
            .map(|(_, m)| super::trust::check(self.stream(), m).err())
            .collect();
        let places: Vec<Vec<Place>> = entries
            .iter()
            .zip(&untrusted)
            .map(|((_, m), refused)| match refused {
                None => self.places(m, &mut wanted),
                Some(_) => Vec::new(),
            })
            .collect();
        let fetches = wanted.iter().enumerate().map(|(idx, keys)| async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let store = self.stores.store(idx);
            let rows = self
                .retry
                .run("fetching payloads", || store.get_many(&keys))
                .await?;
            if rows.len() != keys.len() {
                // A store that breaks the contract: no row can be matched
                // to its key.
                return Err(Error::permanent(
                    store.backend(),
                    format!(
                        "fetching {} payload keys from store {:?}",
                        keys.len(),
                        self.stores.name_of(idx)
                    ),
                    format!(
                        "get_many returned {} rows for {} keys: a store must return one \
                         row per key, in order",
                        rows.len(),
                        keys.len()
                    ),
                ));
            }
            Ok(rows)
        });
        let mut fetched = futures_util::future::try_join_all(fetches).await?;
        Ok(entries
            .iter()
            .zip(&places)
            .zip(untrusted.iter_mut())
            .map(|(((_, metadata), places), refused)| match refused.take() {
                None => assemble(metadata, places, &mut fetched),
                Some(error) => Err(error),
            })
            .collect())
    }

    /// Where each stored segment of a message is, adding the keys to fetch
    /// to `wanted`: one key per class for standard locations (made once per
    /// message), one per distinct pinned key.
    fn places(&self, metadata: &Metadata, wanted: &mut [Vec<String>]) -> Vec<Place> {
        let mut places: Vec<Place> = Vec::with_capacity(metadata.segments.len());
        for (i, segment) in metadata.segments.iter().enumerate() {
            let same_key = |p: &&Place| {
                let other = &metadata.segments[p.segment];
                match (&other.location, &segment.location) {
                    (SegmentLocation::Standard, SegmentLocation::Standard) => {
                        other.class == segment.class
                    }
                    (
                        SegmentLocation::Stored { store: s1, key: k1 },
                        SegmentLocation::Stored { store: s2, key: k2 },
                    ) => s1 == s2 && k1 == k2,
                    _ => false,
                }
            };
            let store_name = match &segment.location {
                SegmentLocation::Inline(_) => continue,
                SegmentLocation::Standard => segment.class.as_str(),
                SegmentLocation::Stored { store, .. } => store.as_str(),
            };
            let place = match places.iter().find(same_key) {
                Some(known) => Place {
                    segment: i,
                    ..*known
                },
                None => {
                    let store = self.stores.resolve(store_name);
                    let slot = match store {
                        Some(idx) => {
                            let key = match &segment.location {
                                SegmentLocation::Stored { key, .. } => key.clone(),
                                _ => metadata.standard_payload_key(&segment.class),
                            };
                            wanted[idx].push(key);
                            wanted[idx].len() - 1
                        }
                        None => 0,
                    };
                    Place {
                        segment: i,
                        store,
                        slot,
                    }
                }
            };
            places.push(place);
        }
        places
    }

    async fn intercept(
        &self,
        entry_id: EntryId,
        metadata: Metadata,
        mut segments: Segments,
        sealed: Vec<String>,
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
        let mut message = Message::new(entry_id, metadata, segments);
        message.sealed = sealed;
        Ok(message)
    }
}

/// A batch whose payloads could not be loaded at all (a store or the key
/// vault failed, after retries), with its entries.
pub(crate) struct BatchFailure {
    pub(crate) error: Error,
    pub(crate) entries: Vec<(EntryId, Metadata)>,
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
#[derive(Clone, Copy)]
struct Place {
    /// Its index in the segment index.
    segment: usize,
    /// The store, if this reader has one for it.
    store: Option<usize>,
    /// The position of its key among the keys fetched from that store.
    slot: usize,
}

/// The logical store name and the key of a stored segment, for errors.
fn names_of(metadata: &Metadata, segment: &SegmentRef) -> (String, String) {
    match &segment.location {
        SegmentLocation::Stored { store, key } => (store.clone(), key.clone()),
        _ => (
            segment.class.as_str().to_owned(),
            metadata.standard_payload_key(&segment.class),
        ),
    }
}

/// The segments of one message; each segment's bytes are taken out of the
/// fetched fields (a key is fetched for one message only).
fn assemble(
    metadata: &Metadata,
    places: &[Place],
    fetched: &mut [Vec<Option<Fields>>],
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
                let Some(store) = place.store else {
                    let (store, _) = names_of(metadata, segment);
                    return Err(Error::UnknownStore {
                        segment: segment.name.clone(),
                        store,
                    });
                };
                let Some(fields) = fetched[store][place.slot].as_mut() else {
                    if segment.class != SegmentClass::NORMAL {
                        // Erased (or expired) data of its own class: the
                        // message stays readable without it.
                        continue;
                    }
                    let (store, key) = names_of(metadata, segment);
                    return Err(Error::MissingPayload { store, key });
                };
                fields.remove(&segment.name).ok_or_else(|| {
                    let (store, key) = names_of(metadata, segment);
                    Error::MissingField {
                        store,
                        key,
                        field: segment.name.clone(),
                    }
                })?
            }
        };
        segments.insert_classed(segment.name.clone(), segment.class.clone(), data);
    }
    Ok(segments)
}
