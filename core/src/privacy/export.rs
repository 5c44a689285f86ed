//! Export (GDPR article 15, right of access): every personal segment of one
//! data subject in a stream, opened.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::subject::SubjectHash;
use crate::channel::EntryId;
use crate::codec::Codec;
use crate::envelope::{MessageId, Segments};
use crate::{Error, Result};

/// What a stream holds about one data subject: from
/// [`SubjectRequestsBuilder::export`](crate::SubjectRequestsBuilder::export).
#[derive(Clone, Debug)]
pub struct SubjectExport {
    pub(crate) subject: Option<SubjectHash>,
    pub(crate) streams: Vec<String>,
    pub(crate) messages: Vec<ExportedMessage>,
    pub(crate) unreadable: Vec<UnreadableMessage>,
}

impl SubjectExport {
    /// The subject's hash (`None` when the export named no subject).
    pub fn subject(&self) -> Option<SubjectHash> {
        self.subject
    }

    /// The streams read.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The subject's messages, in stream order (after [`Self::merge`], by
    /// production time).
    pub fn messages(&self) -> &[ExportedMessage] {
        &self.messages
    }

    /// The messages, owned.
    pub fn into_messages(self) -> Vec<ExportedMessage> {
        self.messages
    }

    /// The subject's messages whose personal data could not be read, each
    /// with the reason (an unreadable payload, a lost data key, an entry
    /// that names keys its stream does not hold): an export is complete
    /// only when this is empty.
    pub fn unreadable(&self) -> &[UnreadableMessage] {
        &self.unreadable
    }

    /// One export of several streams: the messages of both, ordered by
    /// production time.
    pub fn merge(mut self, other: SubjectExport) -> SubjectExport {
        self.streams.extend(other.streams);
        self.messages.extend(other.messages);
        self.unreadable.extend(other.unreadable);
        self.messages
            .sort_by_key(|m| (m.produced_at_ms, m.message_id.to_string()));
        self.subject = self.subject.or(other.subject);
        self
    }
}

/// A message of a [`SubjectExport`] whose personal data could not be read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UnreadableMessage {
    /// The stream it is in.
    pub stream: String,
    /// Its entry id there.
    pub entry_id: EntryId,
    /// The message id.
    pub message_id: MessageId,
    /// The operation.
    pub operation: String,
    /// When it was produced, in milliseconds since the Unix epoch.
    pub produced_at_ms: u64,
    /// Why it could not be read.
    pub reason: String,
}

/// One message of a [`SubjectExport`]: its identity, time and personal
/// segments (every class but `normal`), opened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExportedMessage {
    /// The stream it is in.
    pub stream: String,
    /// Its entry id there.
    pub entry_id: EntryId,
    /// The message id.
    pub message_id: MessageId,
    /// The operation.
    pub operation: String,
    /// The operation version.
    pub version: u32,
    /// When it was produced, in milliseconds since the Unix epoch.
    pub produced_at_ms: u64,
    /// The content type of the segments' encoding.
    pub content_type: String,
    /// The personal segments that are still there.
    pub segments: Segments,
    /// Personal segments that are gone (expired or deleted).
    pub erased: Vec<String>,
}

impl ExportedMessage {
    /// Decodes one personal segment.
    pub fn segment<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self
            .raw_segment(name)
            .ok_or_else(|| Error::MissingSegment {
                segment: name.to_owned(),
                operation: self.operation.clone(),
                message_id: self.message_id.to_string(),
                available: self.segments.names().map(str::to_owned).collect(),
            })?;
        Codec::from_content_type(&self.content_type)?.decode_segment(
            name,
            &self.operation,
            &self.message_id.to_string(),
            bytes,
        )
    }

    /// The bytes of one personal segment.
    pub fn raw_segment(&self, name: &str) -> Option<&Bytes> {
        self.segments.bytes(name)
    }
}
