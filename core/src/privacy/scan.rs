//! Finding a subject's messages in a stream: a read of the whole stream
//! that compares the subject hash in each entry's metadata.

use super::subject::{SubjectHash, SUBJECT_HEADER};
use crate::channel::{EntryId, StreamPosition};
use crate::consumer::source::Source;
use crate::envelope::Metadata;
use crate::Result;

/// The entries of `subject` in the source's stream, in stream order.
pub(crate) async fn subject_entries(
    source: &Source,
    subject: &SubjectHash,
    page: usize,
) -> Result<Vec<(EntryId, Metadata)>> {
    let wanted = subject.to_string();
    let mut found = Vec::new();
    let mut position = StreamPosition::Start;
    loop {
        let entries = source
            .retry
            .run("reading the stream for a data subject", || {
                source
                    .channel
                    .read_range(source.stream(), &position, None, page.max(1))
            })
            .await?;
        let Some(last) = entries.last().map(|e| e.id.clone()) else {
            return Ok(found);
        };
        for entry in entries {
            match entry.body {
                Ok(metadata) if metadata.headers.get(SUBJECT_HEADER) == Some(&wanted) => {
                    found.push((entry.id, metadata));
                }
                Ok(_) => {}
                Err(malformed) => tracing::warn!(
                    stream = source.stream(),
                    entry = %entry.id,
                    reason = %malformed.reason,
                    "an unreadable entry is skipped in a search by data subject"
                ),
            }
        }
        position = StreamPosition::After(last);
    }
}
