//! The dead-letter stream `{stream}:dead-letter`: where a consumer puts what
//! it cannot handle, with the reason and the original ids, before it
//! acknowledges the original. The payload stays in the store (the dead
//! letter points at the same keys), so nothing is lost.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::address::{dead_letter_key, StreamAddress};
use crate::channel::{EntryId, StreamChannel};
use crate::clock::now_ms;
use crate::envelope::{MessageId, Metadata, Origin, SegmentClass, SegmentLocation, SegmentRef};
use crate::privacy::sealed_text::{holds_personal_data, seal_text};
use crate::privacy::{PersonalData, SEALED_REASON_HEADER};
use crate::retry::RetryPolicy;
use crate::Result;

/// Header: why the message was dead-lettered.
pub const HEADER_DEAD_LETTER_REASON: &str = "dead-letter.reason";
/// Header: the entry id in the original stream.
pub const HEADER_DEAD_LETTER_ENTRY: &str = "dead-letter.entry-id";
/// Header: the original stream key.
pub const HEADER_DEAD_LETTER_STREAM: &str = "dead-letter.stream";
/// Header: the consumer group that gave up.
pub const HEADER_DEAD_LETTER_GROUP: &str = "dead-letter.group";
/// Header: how many deliveries were tried.
pub const HEADER_DEAD_LETTER_DELIVERIES: &str = "dead-letter.deliveries";
/// Operation of a dead letter made from an unreadable entry.
pub const MALFORMED_OPERATION: &str = "dead-letter.malformed-entry";
/// Inline segment holding the raw bytes of an unreadable entry.
pub const RAW_SEGMENT: &str = "raw";

/// Why a message is dead-lettered: a summary that never quotes the
/// message's data, and the text of the error, which may.
pub(crate) struct Reason {
    pub(crate) summary: String,
    pub(crate) detail: Option<String>,
}

impl Reason {
    /// A reason made by the library from names and counts only.
    pub(crate) fn plain(text: impl Into<String>) -> Self {
        Self {
            summary: text.into(),
            detail: None,
        }
    }

    /// A summary, and an error's text that may quote the message's data.
    pub(crate) fn with_detail(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            detail: Some(detail.into()),
        }
    }

    /// The reason of an error that kept the payload from loading.
    pub(crate) fn of_error(error: &crate::Error) -> Self {
        if error.may_quote_data() {
            Self::with_detail(
                format!("the payload cannot be read (error type {})", error.kind()),
                error.to_string(),
            )
        } else {
            Self::plain(error.to_string())
        }
    }

    /// The reason as the dead letter keeps it: in clear, unless the
    /// message holds personal data, in which case the error's text is
    /// sealed with its subject's key (the second value, for header
    /// [`SEALED_REASON_HEADER`]) or, without a key at hand, left out.
    pub(crate) async fn kept_for(
        self,
        metadata: &Metadata,
        personal: Option<&PersonalData>,
    ) -> (String, Option<String>) {
        let Some(detail) = self.detail else {
            return (self.summary, None);
        };
        if !holds_personal_data(metadata) {
            return (format!("{}: {detail}", self.summary), None);
        }
        let sealed = match personal {
            Some(personal) => seal_text(personal, metadata, &detail).await,
            None => None,
        };
        match sealed {
            Some(sealed) => (
                format!(
                    "{} (the message holds personal data: the error's text is sealed with its \
                     data subject's key in header {SEALED_REASON_HEADER})",
                    self.summary
                ),
                Some(sealed),
            ),
            None => (
                format!(
                    "{} (the message holds personal data and no data subject's key is at hand \
                     to seal the error's text with: it is not kept)",
                    self.summary
                ),
                None,
            ),
        }
    }
}

pub(crate) struct DeadLetters<'a> {
    pub(crate) channel: &'a dyn StreamChannel,
    pub(crate) address: &'a StreamAddress,
    pub(crate) group: &'a str,
    pub(crate) retry: &'a RetryPolicy,
}

impl DeadLetters<'_> {
    /// Appends a copy of a readable message with the reason (and the
    /// sealed reason, for a message with personal data).
    pub(crate) async fn message(
        &self,
        original: &Metadata,
        entry: &EntryId,
        deliveries: u32,
        reason: &str,
        sealed_reason: Option<&str>,
    ) -> Result<EntryId> {
        let mut copy = original.clone();
        // The copy gets its own id: pin the payload keys of the original.
        copy.pin_locations();
        // A copy of a copy names the first message: sealed segments are
        // bound to its id.
        copy.origin = Origin::Copy {
            original: original.original_id(),
        };
        copy.message_id = MessageId::new();
        self.stamp(&mut copy.headers, entry, deliveries, reason);
        match sealed_reason {
            Some(sealed) => copy
                .headers
                .insert(SEALED_REASON_HEADER.to_owned(), sealed.to_owned()),
            // A copy of a dead letter does not keep the first one's.
            None => copy.headers.remove(SEALED_REASON_HEADER),
        };
        self.append(copy).await
    }

    /// Appends an unreadable entry: its raw bytes inline, with the reason.
    pub(crate) async fn malformed(
        &self,
        entry: &EntryId,
        raw: Bytes,
        deliveries: u32,
        reason: &str,
    ) -> Result<EntryId> {
        let mut headers = BTreeMap::new();
        self.stamp(&mut headers, entry, deliveries, reason);
        let metadata = Metadata {
            message_id: MessageId::new(),
            operation: MALFORMED_OPERATION.to_owned(),
            version: 0,
            uri: self.address.uri().to_owned(),
            environment: self.address.environment().map(str::to_owned),
            produced_at_ms: now_ms(),
            origin: Origin::Original,
            content_type: "application/octet-stream".to_owned(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            headers,
            segments: vec![SegmentRef {
                name: RAW_SEGMENT.to_owned(),
                class: SegmentClass::NORMAL,
                location: SegmentLocation::Inline(raw),
            }],
            subject: None,
        };
        self.append(metadata).await
    }

    fn stamp(
        &self,
        headers: &mut BTreeMap<String, String>,
        entry: &EntryId,
        deliveries: u32,
        reason: &str,
    ) {
        headers.insert(HEADER_DEAD_LETTER_REASON.into(), reason.to_owned());
        headers.insert(HEADER_DEAD_LETTER_ENTRY.into(), entry.to_string());
        headers.insert(
            HEADER_DEAD_LETTER_STREAM.into(),
            self.address.stream_key().to_owned(),
        );
        headers.insert(HEADER_DEAD_LETTER_GROUP.into(), self.group.to_owned());
        headers.insert(HEADER_DEAD_LETTER_DELIVERIES.into(), deliveries.to_string());
    }

    async fn append(&self, metadata: Metadata) -> Result<EntryId> {
        let stream = dead_letter_key(self.address.stream_key());
        tracing::warn!(
            stream = self.address.stream_key(),
            group = self.group,
            reason = metadata
                .headers
                .get(HEADER_DEAD_LETTER_REASON)
                .map(String::as_str),
            "dead-lettering a message"
        );
        self.retry
            .run("appending to the dead-letter stream", || {
                self.channel.append(&stream, &metadata)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::StreamChannel;
    use crate::channel::StreamPosition;
    use crate::memory::MemoryChannel;

    fn message(origin: Origin) -> Metadata {
        Metadata {
            message_id: MessageId::new(),
            operation: "opened".into(),
            version: 0,
            uri: "accounts".into(),
            environment: None,
            produced_at_ms: 1,
            origin,
            content_type: "application/postcard".into(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            headers: BTreeMap::new(),
            segments: Vec::new(),
            subject: None,
        }
    }

    /// A dead letter names the first message as its original, also when
    /// it is made from a copy: sealed segments are bound to that id.
    #[tokio::test]
    async fn a_dead_letter_of_a_copy_names_the_first_message() {
        let channel = MemoryChannel::new();
        let address = StreamAddress::new(None, "accounts").unwrap();
        let retry = RetryPolicy::none();
        let dead_letters = DeadLetters {
            channel: &channel,
            address: &address,
            group: "g",
            retry: &retry,
        };
        let first = message(Origin::Original);
        let copy = message(Origin::Copy {
            original: first.message_id,
        });
        let entry = EntryId::new("1");
        dead_letters
            .message(&first, &entry, 1, "r", None)
            .await
            .unwrap();
        dead_letters
            .message(&copy, &entry, 1, "r", None)
            .await
            .unwrap();
        let written = channel
            .read_range(&address.dead_letter_key(), &StreamPosition::Start, None, 10)
            .await
            .unwrap();
        for (entry, from) in written.iter().zip([&first, &copy]) {
            let metadata = entry.body.as_ref().unwrap();
            assert_eq!(
                metadata.origin,
                Origin::Copy {
                    original: first.message_id
                }
            );
            assert_ne!(metadata.message_id, from.message_id);
            assert_eq!(metadata.original_id(), first.message_id);
        }
    }
}
