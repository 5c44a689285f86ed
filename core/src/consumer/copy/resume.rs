//! What a target already holds of a source: its copies, each by the source
//! entry it was copied from and the original message id (an entry id alone
//! is not enough: a source made anew gives its ids out again).

use std::collections::HashMap;
use std::sync::Arc;

use super::report::{HEADER_COPIED_FROM_ENTRY, HEADER_COPIED_FROM_STREAM};
use crate::channel::{EntryId, StreamChannel, StreamPosition};
use crate::envelope::{MessageId, Metadata};
use crate::retry::RetryPolicy;
use crate::Result;

/// Source entry id -> the original message id of its copy.
pub(super) type Copied = HashMap<String, MessageId>;

/// Where to look for copies, and of which source.
pub(super) struct Target<'a> {
    pub(super) channel: &'a Arc<dyn StreamChannel>,
    pub(super) stream: &'a str,
    pub(super) source: &'a str,
    pub(super) page_size: usize,
    pub(super) retry: &'a RetryPolicy,
}

impl Target<'_> {
    /// The copies of the source the target holds after `after` (from its
    /// start without it).
    pub(super) async fn copied_after(&self, after: Option<&EntryId>) -> Result<Copied> {
        let mut position = match after {
            Some(entry) => StreamPosition::After(entry.clone()),
            None => StreamPosition::Start,
        };
        let mut found = Copied::new();
        loop {
            let page = self
                .retry
                .run("looking for what the target holds", || {
                    self.channel
                        .read_range(self.stream, &position, None, self.page_size)
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                return Ok(found);
            };
            for metadata in page.into_iter().filter_map(|e| e.body.ok()) {
                if let Some(entry) = self.copy_from(&metadata) {
                    found.insert(entry.to_owned(), metadata.original_id());
                }
            }
            position = StreamPosition::After(last);
        }
    }

    /// The source entry a message of the target is a copy of, if it is a
    /// copy of this source.
    fn copy_from<'m>(&self, metadata: &'m Metadata) -> Option<&'m str> {
        let header = |name: &str| metadata.headers.get(name).map(String::as_str);
        (header(HEADER_COPIED_FROM_STREAM) == Some(self.source))
            .then(|| header(HEADER_COPIED_FROM_ENTRY))
            .flatten()
    }
}
