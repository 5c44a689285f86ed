//! A message before it is sent, as the producer's targets take it.

use std::collections::BTreeMap;

use crate::envelope::{Origin, Segments};
use crate::privacy::Subject;

/// A message before it is sent: operation, version, segments and the
/// optional metadata a sender may set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutgoingMessage {
    /// The operation (event) name.
    pub operation: String,
    /// The operation version.
    pub version: u32,
    /// The payload.
    pub segments: Segments,
    /// Original, or a copy of another message.
    pub origin: Origin,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// Free headers.
    pub headers: BTreeMap<String, String>,
    /// The data subject its personal data belongs to (hashed into the
    /// metadata, never written as is; see [`crate::privacy`]).
    pub subject: Option<Subject>,
}

impl OutgoingMessage {
    /// A message for `operation`, version 0, with no segments.
    pub fn new(operation: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            version: 0,
            segments: Segments::new(),
            origin: Origin::Original,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            headers: BTreeMap::new(),
            subject: None,
        }
    }
}
