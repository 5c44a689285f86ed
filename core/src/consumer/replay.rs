//! Replay: a stream's history as an async `Stream` of messages, page by
//! page, with no consumer group.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use futures_util::StreamExt;

use super::source::Source;
use crate::channel::{EntryId, StreamPosition};
use crate::contract::{ContractEvent, Recorded};
use crate::message::Message;
use crate::{Error, Result};

/// The messages of a replay, in stream order.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Message>> + Send + 'static>>;

/// The typed events of a replay, in stream order.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<Recorded<E>>> + Send + 'static>>;

/// Turns a message stream into the events of contract `E`, leaving out
/// operations `E` does not have.
pub(crate) fn events<E: ContractEvent>(messages: MessageStream) -> EventStream<E> {
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

pub(crate) fn stream(
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
