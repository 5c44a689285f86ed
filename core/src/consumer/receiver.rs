use std::sync::Arc;

use super::source::Source;
use super::Message;
use crate::channel::EntryId;
use crate::{Error, Result};

/// Fetches one message, with its payload, by entry id; from
/// [`super::ConsumerBuilder::receiver`].
#[derive(Clone, Debug)]
pub struct Receiver {
    source: Arc<Source>,
}

impl Receiver {
    pub(crate) fn new(source: Arc<Source>) -> Self {
        Self { source }
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
        let Some(found) = found else {
            return Ok(None);
        };
        let metadata = found.body.map_err(|m| Error::MalformedMetadata {
            reason: format!("entry {} of {}: {}", found.id, source.stream(), m.reason),
        })?;
        let message = source
            .load(vec![(found.id, metadata)])
            .await?
            .pop()
            .expect("one message per entry")?;
        Ok(Some(message))
    }
}
