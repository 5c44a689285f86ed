use std::sync::Arc;
use std::time::Duration;

use super::source::Source;
use crate::channel::{Entry, EntryId, StreamChannel, StreamPosition};
use crate::contract::{ContractEvent, Recorded};
use crate::endpoint::{sealed::Sealed, EndpointBuilder, Reading};
use crate::envelope::MessageId;
use crate::interceptor::ConsumerInterceptor;
use crate::message::Message;
use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// Fetches one message, with its payload, by entry id or by message id;
/// built by [`Receiver::builder`].
///
/// ```
/// use std::sync::Arc;
/// use event_backbone_core::memory::{MemoryChannel, MemoryStore};
/// use event_backbone_core::{Producer, Receiver};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone_core::Result<()> {
/// let (channel, store) = (Arc::new(MemoryChannel::new()), Arc::new(MemoryStore::new()));
/// let producer = Producer::builder().channel(channel.clone()).store(store.clone()).uri("orders").build()?;
/// let receipt = producer.message("placed").segment("amount", &12u32)?.send().await?;
/// let receiver = Receiver::builder().channel(channel).store(store).uri("orders").build()?;
/// let message = receiver.get(receipt.entry_id()).await?.expect("it is there");
/// assert_eq!(message.segment::<u32>("amount")?, 12);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Receiver {
    source: Arc<Source>,
    clock_skew: Duration,
}

/// Builds a [`Receiver`]: the setters every builder shares
/// ([`EndpointBuilder`]) and those of every reader; no options of its own.
pub type ReceiverBuilder = EndpointBuilder<Receiving>;

/// The options of a receiver: only what every reader has.
#[derive(Default)]
pub struct Receiving {
    interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
}

impl Sealed for Receiving {}

impl Reading for Receiving {
    fn interceptors_mut(&mut self) -> &mut Vec<Arc<dyn ConsumerInterceptor>> {
        &mut self.interceptors
    }
}

impl std::fmt::Debug for Receiving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiving")
            .field("interceptors", &self.interceptors.len())
            .finish()
    }
}

impl EndpointBuilder<Receiving> {
    /// The receiver, refusing a missing channel or uri and bad names.
    pub fn build(mut self) -> Result<Receiver> {
        Ok(Receiver {
            source: Arc::new(Source::resolve(&mut self, "receiver")?),
            clock_skew: Duration::from_secs(60),
        })
    }
}

impl Receiver {
    /// Starts a builder.
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder::with_role(Receiving::default())
    }

    /// How far apart the producers' and the channel's clocks may be, for
    /// [`Self::find`] (default 60 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The message with this message id; `None` if it is not in the stream.
    ///
    /// Message ids carry their creation time, so this replays the stream
    /// from that time less the clock skew, page by page, and where one
    /// order runs through the stream no further than twice the skew past
    /// it; across partitions it reads on to the end. An entry id ([`Self::get`]) is a direct lookup and cheaper.
    pub async fn find(&self, id: MessageId) -> Result<Option<Message>> {
        let source = &self.source;
        let found = find_entry(
            source.channel.as_ref(),
            &source.retry,
            source.stream(),
            id,
            self.clock_skew,
        )
        .await?;
        match found {
            Some(entry) => self.load(entry).await.map(Some),
            None => Ok(None),
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

/// The entry of the message with this id in `stream`, read without its
/// payload; `None` if it is not there. Message ids carry their creation
/// time: the stream is read from `skew` before it, page by page, and, where
/// one order runs through it, no further than the first entry produced
/// `2 × skew` after it. Across partitions (whose pages go partition after
/// partition) it reads on to the end.
pub(crate) async fn find_entry(
    channel: &dyn StreamChannel,
    retry: &RetryPolicy,
    stream: &str,
    id: MessageId,
    skew: Duration,
) -> Result<Option<Entry>> {
    let at = id.timestamp_ms().ok_or_else(|| Error::InvalidName {
        what: "message id",
        value: id.to_string(),
        reason: "it carries no timestamp (expected a UUIDv7 message id)",
    })?;
    let skew = skew.as_millis() as u64;
    let ordered = retry
        .run("reading the stream's info", || channel.info(stream))
        .await?
        .partitions
        <= 1;
    let mut position = StreamPosition::Time(at.saturating_sub(skew));
    loop {
        let page = retry
            .run("searching for a message", || {
                channel.read_range(stream, &position, None, 256)
            })
            .await?;
        let Some(last) = page.last().map(|e| e.id.clone()) else {
            return Ok(None);
        };
        for entry in page {
            let Ok(metadata) = &entry.body else { continue };
            if metadata.message_id == id {
                return Ok(Some(entry));
            }
            if ordered && metadata.produced_at_ms > at.saturating_add(2 * skew) {
                return Ok(None);
            }
        }
        position = StreamPosition::After(last);
    }
}
