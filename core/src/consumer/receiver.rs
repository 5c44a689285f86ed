use std::sync::Arc;
use std::time::Duration;

use super::source::Source;
use crate::channel::{Entry, EntryId, StreamPosition};
use crate::contract::{ContractEvent, Recorded};
use crate::envelope::MessageId;
use crate::message::Message;
use crate::{Error, Result};

/// Fetches one message, with its payload, by entry id or by message id; from
/// [`super::ConsumerBuilder::receiver`].
#[derive(Clone, Debug)]
pub struct Receiver {
    source: Arc<Source>,
    clock_skew: Duration,
}

impl Receiver {
    pub(crate) fn new(source: Arc<Source>) -> Self {
        Self {
            source,
            clock_skew: Duration::from_secs(60),
        }
    }

    /// How far apart the producers' and the channel's clocks may be, for
    /// [`Self::find`] (default 60 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The message with this message id; `None` if it is not in the stream.
    ///
    /// Message ids carry their creation time, so this replays only the
    /// stretch of the stream around that time (± the clock skew), page by
    /// page. An entry id ([`Self::get`]) is a direct lookup and cheaper.
    pub async fn find(&self, id: MessageId) -> Result<Option<Message>> {
        let source = &self.source;
        let at = id.timestamp_ms().ok_or_else(|| Error::InvalidName {
            what: "message id",
            value: id.to_string(),
            reason: "it carries no timestamp (expected a UUIDv7 message id)",
        })?;
        let skew = self.clock_skew.as_millis() as u64;
        let mut position = StreamPosition::Time(at.saturating_sub(skew));
        loop {
            let page = source
                .retry
                .run("searching for a message", || {
                    source
                        .channel
                        .read_range(source.stream(), &position, None, 256)
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                return Ok(None);
            };
            for entry in page {
                let Ok(metadata) = &entry.body else { continue };
                if metadata.message_id == id {
                    return self.load(entry).await.map(Some);
                }
                if metadata.produced_at_ms > at.saturating_add(2 * skew) {
                    return Ok(None);
                }
            }
            position = StreamPosition::After(last);
        }
    }

    /// The typed event at `entry`; `None` if the stream has no such entry.
    /// A message of an operation `E` does not have is an error.
    pub async fn get_event<E: ContractEvent>(
        &self,
        entry: &EntryId,
    ) -> Result<Option<Recorded<E>>> {
        match self.get(entry).await? {
            Some(message) => typed(message).map(Some),
            None => Ok(None),
        }
    }

    /// The typed event with this message id; see [`Self::find`].
    pub async fn find_event<E: ContractEvent>(&self, id: MessageId) -> Result<Option<Recorded<E>>> {
        match self.find(id).await? {
            Some(message) => typed(message).map(Some),
            None => Ok(None),
        }
    }

    async fn load(&self, entry: Entry) -> Result<Message> {
        let source = &self.source;
        let metadata = entry.body.map_err(|m| Error::MalformedMetadata {
            reason: format!("entry {} of {}: {}", entry.id, source.stream(), m.reason),
        })?;
        let message = source
            .load(vec![(entry.id, metadata)])
            .await?
            .pop()
            .expect("one message per entry")?;
        Ok(message)
    }

    /// The message at `entry`; `None` if the stream has no such entry.
    pub async fn get(&self, entry: &EntryId) -> Result<Option<Message>> {
        let source = &self.source;
        let found = source
            .retry
            .run("reading an entry", || {
                source.channel.get(source.stream(), entry)
            })
            .await?;
        match found {
            Some(entry) => self.load(entry).await.map(Some),
            None => Ok(None),
        }
    }
}

fn typed<E: ContractEvent>(message: Message) -> Result<Recorded<E>> {
    let (operation, version) = (message.operation().to_owned(), message.version());
    Recorded::from_message(message)?.ok_or(Error::NotInContract {
        contract: E::CONTRACT,
        operation,
        version,
    })
}
