//! Replay: a stream's history as an async `Stream` of messages, page by
//! page, with no consumer group.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use futures_util::StreamExt;

use super::source::Source;
use crate::channel::{EntryId, StreamPosition};
use crate::contract::{ContractEvent, Recorded};
use crate::endpoint::{sealed::Sealed, EndpointBuilder, Paging, Reading};
use crate::interceptor::ConsumerInterceptor;
use crate::message::Message;
use crate::{Error, Result};

/// Reads a stream's history without a group: the event-sourcing rebuild
/// path. Built by [`Replay::builder`], it gives the messages
/// ([`ReplayBuilder::messages`]) or the typed events of a contract
/// ([`ReplayBuilder::events`]) as an async `Stream`.
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::{Producer, Replay, StreamPosition};
/// use futures_util::StreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let producer = Producer::builder().channel(channel.clone()).store(store.clone()).uri("orders").build()?;
/// for amount in [5u32, 7] {
///     producer.message("placed").segment("amount", &amount)?.send().await?;
/// }
/// let mut history = Replay::builder()
///     .channel(channel)
///     .store(store)
///     .uri("orders")
///     .from(StreamPosition::Start)
///     .messages()?;
/// let mut total = 0;
/// while let Some(message) = history.next().await {
///     total += message?.segment::<u32>("amount")?;
/// }
/// assert_eq!(total, 12);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Replay;

impl Replay {
    /// Starts a builder: from the start of the stream to its end as it is
    /// when reached, 256 entries per read.
    pub fn builder() -> ReplayBuilder {
        ReplayBuilder::with_role(Replaying {
            interceptors: Vec::new(),
            from: StreamPosition::Start,
            to: None,
            page_size: 256,
        })
    }
}

/// Builds a replay: the setters every builder shares ([`EndpointBuilder`]),
/// those of every reader, the page size, where it starts and ends.
pub type ReplayBuilder = EndpointBuilder<Replaying>;

/// The options of a replay; see [`ReplayBuilder`].
pub struct Replaying {
    interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    from: StreamPosition,
    to: Option<EntryId>,
    page_size: usize,
}

impl Sealed for Replaying {}

impl Reading for Replaying {
    fn interceptors_mut(&mut self) -> &mut Vec<Arc<dyn ConsumerInterceptor>> {
        &mut self.interceptors
    }
}

impl Paging for Replaying {
    fn page_size_mut(&mut self) -> &mut usize {
        &mut self.page_size
    }
}

impl fmt::Debug for Replaying {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replaying")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder<Replaying> {
    /// Where the replay starts (default: the start of the stream).
    pub fn from(mut self, position: StreamPosition) -> Self {
        self.role.from = position;
        self
    }

    /// The last entry it reads (default: none, the end of the stream as it
    /// is when reached).
    pub fn to(mut self, entry: EntryId) -> Self {
        self.role.to = Some(entry);
        self
    }

    /// The messages, in stream order. Entries that cannot be read come as
    /// errors in the stream.
    pub fn messages(mut self) -> Result<MessageStream> {
        let source = Arc::new(Source::resolve(&mut self, "replay")?);
        let Replaying {
            from,
            to,
            page_size,
            ..
        } = self.role;
        Ok(stream(source, from, to, page_size))
    }

    /// The typed events of contract `E` (`ShipmentTrackingEvent`, ...), in
    /// stream order. Operations the contract does not have are left out;
    /// [`Self::messages`] shows everything.
    pub fn events<E: ContractEvent>(self) -> Result<EventStream<E>> {
        Ok(events(self.messages()?))
    }
}

/// The messages of a replay, in stream order.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Message>> + Send + 'static>>;

/// The typed events of a replay, in stream order.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<Recorded<E>>> + Send + 'static>>;

/// Turns a message stream into the events of contract `E`, leaving out
/// operations `E` does not have.
fn events<E: ContractEvent>(messages: MessageStream) -> EventStream<E> {
    Box::pin(messages.filter_map(|message| async move {
        match message.and_then(Recorded::<E>::from_message) {
            Ok(Some(recorded)) => Some(Ok(recorded)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }))
}

struct State {
    source: Arc<Source>,
    position: Option<StreamPosition>,
    to: Option<EntryId>,
    page: usize,
    buffered: VecDeque<Result<Message>>,
}

fn stream(
    source: Arc<Source>,
    from: StreamPosition,
    to: Option<EntryId>,
    page: usize,
) -> MessageStream {
    let state = State {
        source,
        position: Some(from),
        to,
        page: page.max(1),
        buffered: VecDeque::new(),
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(item) = state.buffered.pop_front() {
                    return Some((item, state));
                }
                let position = state.position.take()?;
                match next_page(&state, &position).await {
                    Ok((items, last)) => {
                        if let Some(last) = last {
                            state.position = Some(StreamPosition::After(last));
                        }
                        state.buffered.extend(items);
                    }
                    Err(e) => return Some((Err(e), state)),
                }
            }
        },
    ))
}

/// One page: the messages, and the last entry id read (none at the end).
async fn next_page(
    state: &State,
    position: &StreamPosition,
) -> Result<(Vec<Result<Message>>, Option<EntryId>)> {
    let source = &state.source;
    let entries = source
        .retry
        .run("replaying", || {
            source
                .channel
                .read_range(source.stream(), position, state.to.as_ref(), state.page)
        })
        .await?;
    let Some(last) = entries.last().map(|e| e.id.clone()) else {
        return Ok((Vec::new(), None));
    };
    let mut out: Vec<Option<Result<Message>>> = Vec::with_capacity(entries.len());
    let mut readable = Vec::new();
    for entry in entries {
        match entry.body {
            Ok(metadata) => {
                readable.push((entry.id, metadata));
                out.push(None);
            }
            Err(malformed) => out.push(Some(Err(Error::MalformedMetadata {
                reason: format!(
                    "entry {} of {}: {}",
                    entry.id,
                    source.stream(),
                    malformed.reason
                ),
            }))),
        }
    }
    let mut loaded = source.load(readable).await?.into_iter();
    let items = out
        .into_iter()
        .map(|slot| match slot {
            Some(err) => err,
            None => loaded
                .next()
                .expect("one loaded message per readable entry")
                .map_err(Error::from),
        })
        .collect();
    Ok((items, Some(last)))
}
