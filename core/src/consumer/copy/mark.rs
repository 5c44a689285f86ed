//! The mark a copy keeps in the target's store: how far it went, its newest
//! copy, and, while a page is being appended, where to look for that page's
//! copies.

use bytes::Bytes;

use crate::channel::EntryId;
use crate::envelope::MessageId;
use crate::store::{text_field, Fields};

/// The last source entry whose copy is known appended.
const FIELD_AFTER: &str = "after";
/// The original message id of that entry (a source made anew, whose ids
/// start over, holds another message there).
const FIELD_AFTER_ID: &str = "after-id";
/// `1` while a run that looks through the whole target goes on: the next
/// run does so too, its position being no resume point.
const FIELD_RESCAN: &str = "rescan";
/// `1` while a page is being appended.
const FIELD_IN_FLIGHT: &str = "in-flight";
/// The target's newest entry before that page (empty: look from the
/// target's start).
const FIELD_TARGET_AFTER: &str = "target-after";
/// The newest copy's entry in the target.
const FIELD_LAST_COPY: &str = "last-copy";
/// The newest copy's message id (a mark whose target does not hold it is
/// another target's).
const FIELD_LAST_COPY_ID: &str = "last-copy-id";

/// How far a copy went.
#[derive(Clone, Default)]
pub(super) struct Mark {
    pub(super) after: Option<EntryId>,
    pub(super) after_id: Option<MessageId>,
    pub(super) in_flight: bool,
    pub(super) rescan: bool,
    pub(super) target_after: Option<EntryId>,
    pub(super) last_copy: Option<(EntryId, MessageId)>,
}

impl From<Fields> for Mark {
    fn from(fields: Fields) -> Self {
        let text = |name: &str| text_field(&fields, name);
        let last_copy_id = text(FIELD_LAST_COPY_ID).and_then(|t| t.parse().ok());
        Self {
            after: text(FIELD_AFTER).map(EntryId::new),
            after_id: text(FIELD_AFTER_ID).and_then(|t| t.parse().ok()),
            in_flight: text(FIELD_IN_FLIGHT).is_some(),
            rescan: text(FIELD_RESCAN).is_some(),
            target_after: text(FIELD_TARGET_AFTER).map(EntryId::new),
            last_copy: text(FIELD_LAST_COPY).map(EntryId::new).zip(last_copy_id),
        }
    }
}

impl Mark {
    /// Whether there is a mark at all.
    pub(super) fn is_none(&self) -> bool {
        self.after.is_none() && !self.in_flight && !self.rescan && self.last_copy.is_none()
    }

    /// The whole mark as fields: every one, empty ones too (a store's write
    /// keeps the fields it is not given).
    pub(super) fn fields(&self) -> Fields {
        let text = |value: Option<String>| Bytes::from(value.unwrap_or_default());
        let entry = |entry: &Option<EntryId>| text(entry.as_ref().map(ToString::to_string));
        let flag = |on: bool| Bytes::from_static(if on { b"1" } else { b"" });
        let mut fields = Fields::new();
        fields.insert(FIELD_AFTER.to_owned(), entry(&self.after));
        fields.insert(
            FIELD_AFTER_ID.to_owned(),
            text(self.after_id.map(|id| id.to_string())),
        );
        fields.insert(FIELD_IN_FLIGHT.to_owned(), flag(self.in_flight));
        fields.insert(FIELD_RESCAN.to_owned(), flag(self.rescan));
        fields.insert(FIELD_TARGET_AFTER.to_owned(), entry(&self.target_after));
        let (copy, id) = match &self.last_copy {
            Some((copy, id)) => (Some(copy.to_string()), Some(id.to_string())),
            None => (None, None),
        };
        fields.insert(FIELD_LAST_COPY.to_owned(), text(copy));
        fields.insert(FIELD_LAST_COPY_ID.to_owned(), text(id));
        fields
    }
}
