//! A message read back from a stream: its entry id, metadata and payload.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::channel::EntryId;
use crate::codec::Codec;
use crate::envelope::{MessageId, Metadata, Segments};
use crate::{Error, Result};

/// A message read back: its entry id, metadata and payload.
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) entry_id: EntryId,
    pub(crate) metadata: Metadata,
    pub(crate) segments: Segments,
    /// Sealed segments this reader could not open (it has no key vault).
    pub(crate) sealed: Vec<String>,
}

impl Message {
    /// Assembles a message (used by backends and tests).
    pub fn new(entry_id: EntryId, metadata: Metadata, segments: Segments) -> Self {
        Self {
            entry_id,
            metadata,
            segments,
            sealed: Vec::new(),
        }
    }

    /// The entry id in the stream.
    pub fn entry_id(&self) -> &EntryId {
        &self.entry_id
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The message id.
    pub fn message_id(&self) -> MessageId {
        self.metadata.message_id
    }

    /// The operation name.
    pub fn operation(&self) -> &str {
        &self.metadata.operation
    }

    /// The operation version.
    pub fn version(&self) -> u32 {
        self.metadata.version
    }

    /// The payload segments.
    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    /// The raw bytes of one segment.
    pub fn raw_segment(&self, name: &str) -> Option<&Bytes> {
        self.segments.bytes(name)
    }

    /// Segments the index names but the message does not carry: data of
    /// its own class (e.g. `personal`) whose payload key expired or was
    /// deleted, or whose data subject was erased
    /// ([`crate::privacy`]).
    pub fn erased_segments(&self) -> Vec<&str> {
        self.metadata
            .segments
            .iter()
            .filter(|s| self.segments.get(&s.name).is_none() && !self.is_sealed(&s.name))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Sealed segments this reader could not open because it has no key
    /// vault (`.personal_data(...)` on its builder). Reading one is
    /// [`Error::Sealed`].
    pub fn sealed_segments(&self) -> Vec<&str> {
        self.sealed.iter().map(String::as_str).collect()
    }

    fn is_sealed(&self, name: &str) -> bool {
        self.sealed.iter().any(|s| s == name)
    }

    fn sealed_error(&self, name: &str) -> Error {
        Error::Sealed {
            segment: name.to_owned(),
            message_id: self.metadata.message_id.to_string(),
        }
    }

    /// Decodes a segment that may have been erased: `None` when the index
    /// names it and its data is gone (expired, deleted, subject erased).
    /// Unlike [`Message::optional_segment`], a segment the index does not
    /// name is an error, and so is one sealed for a reader without a key
    /// vault. Typed contracts decode `#[personal]` parameters with it.
    pub fn erasable_segment<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        if self.segments.get(name).is_some() {
            return self.optional_segment(name);
        }
        if self.is_sealed(name) {
            return Err(self.sealed_error(name));
        }
        if self.metadata.segment(name).is_some() {
            return Ok(None);
        }
        Err(self.missing(name))
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingSegment {
            segment: name.to_owned(),
            operation: self.metadata.operation.clone(),
            message_id: self.metadata.message_id.to_string(),
            available: self.segments.names().map(str::to_owned).collect(),
        }
    }

    /// The codec the message was written with.
    pub fn codec(&self) -> Result<Codec> {
        Codec::from_content_type(&self.metadata.content_type)
    }

    /// Decodes one segment; a missing segment is an error naming the
    /// message and the segments it has.
    pub fn segment<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.optional_segment(name)?
            .ok_or_else(|| self.missing(name))
    }

    /// Decodes one segment, `None` if the message has no segment of that
    /// name (a sealed one this reader cannot open is [`Error::Sealed`]).
    pub fn optional_segment<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(bytes) = self.segments.bytes(name) else {
            if self.is_sealed(name) {
                return Err(self.sealed_error(name));
            }
            return Ok(None);
        };
        self.codec()?
            .decode_segment(
                name,
                &self.metadata.operation,
                &self.metadata.message_id.to_string(),
                bytes,
            )
            .map(Some)
    }
}
