//! `eb tail`: a stream's entries, one line each, from a position, and with
//! `--follow` those that come after.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_backbone::privacy::PersonalData;
use event_backbone::{
    EntryId, KeyValueStore, Message, Metadata, Replay, RetryPolicy, StreamAddress, StreamChannel,
    StreamPosition,
};
use futures_util::StreamExt;

use crate::args::{Connection, Tail};
use crate::connect;
use crate::error::{Error, Result};
use crate::render;

/// Entries read per round trip.
const PAGE: usize = 256;
/// How long `--follow` waits before it asks again at the end of the stream.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);

/// `start`, `now`, `t=MILLISECONDS` or an entry id.
pub fn position(given: &str) -> Result<StreamPosition> {
    Ok(match given {
        "start" => StreamPosition::Start,
        "now" => StreamPosition::Time(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        ),
        _ => match given.strip_prefix("t=") {
            Some(ms) => StreamPosition::Time(ms.parse().map_err(|_| Error::BadPosition {
                given: given.to_owned(),
            })?),
            None if !given.is_empty() && !given.contains(char::is_whitespace) => {
                StreamPosition::From(event_backbone::EntryId::new(given))
            }
            None => {
                return Err(Error::BadPosition {
                    given: given.to_owned(),
                })
            }
        },
    })
}

/// Prints the entries.
pub async fn run(connection: &Connection, tail: &Tail, out: &mut impl Write) -> Result<()> {
    let address = connect::stream(connection)?;
    let mut from = position(&tail.from)?;
    let channel = connect::channel(connection).await?;
    let store = if tail.payload {
        Some(connect::store(connection).await?.ok_or(Error::NoStore {
            command: "tail --payload",
        })?)
    } else {
        None
    };
    let personal = match &store {
        Some(store) => connect::personal_data(connection, store, false)?,
        None => None,
    };
    let stream = address.stream_key();
    let info = channel.info(stream).await?;
    // Across partitions pages go partition after partition: what comes
    // later to an earlier partition, or before a time in a later one,
    // would be missed or shown.
    let several = info.partitions > 1;
    // Kafka's pages go partition after partition: a time would hold for
    // the first page only. A Redis stream in partitions pages by id.
    let timed = tail.from.starts_with("t=") && channel.backend() == "kafka";
    if several && (tail.follow || timed) {
        return Err(Error::Unordered {
            stream: stream.to_owned(),
            partitions: info.partitions,
        });
    }
    if tail.from == "now" {
        // After the newest entry by the channel's own ids, not this
        // machine's clock.
        from = match info.last {
            Some(last) => StreamPosition::After(last),
            None if info.length == 0 => StreamPosition::Start,
            // No newest entry known (partitions): this machine's time.
            None => from,
        };
    }
    // Reads are retried as the library retries them; a follow waits out
    // longer outages the same way, page after page.
    let retry = RetryPolicy::default();
    let mut position = from;
    let mut left = tail.limit.unwrap_or(usize::MAX);
    let wanted = |m: &Metadata| tail.operation.as_deref().is_none_or(|op| m.operation == op);
    while left > 0 {
        let page = retry
            .run("reading the stream", || {
                channel.read_range(stream, &position, None, PAGE)
            })
            .await?;
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            if !tail.follow {
                break;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            continue;
        };
        let payloads = match &store {
            Some(store) => {
                let (first, last) = (first.id.clone(), last.id.clone());
                load(&channel, store, personal.as_ref(), &address, first, last).await?
            }
            None => Payloads::default(),
        };
        // Errors that name no message of the page (a key vault down) once.
        for error in payloads.unnamed(&page) {
            writeln!(out, "payloads not read: {}", render::clean(error))?;
        }
        position = StreamPosition::After(last.id.clone());
        for entry in &page {
            let metadata = match &entry.body {
                Ok(metadata) if !wanted(metadata) => continue,
                Ok(metadata) => metadata,
                Err(malformed) => {
                    let reason = render::clean(&malformed.reason);
                    writeln!(out, "{}  unreadable: {reason}", entry.id)?;
                    continue;
                }
            };
            writeln!(out, "{}", render::entry_line(&entry.id, metadata))?;
            if store.is_some() {
                match payloads.loaded.get(&entry.id) {
                    Some(message) => {
                        for line in render::payload_lines(message) {
                            writeln!(out, "{line}")?;
                        }
                    }
                    None => writeln!(out, "    payload not read: {}", payloads.why_not(metadata))?,
                }
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// The payloads of one page, by entry id, and why those not there are not.
#[derive(Default)]
struct Payloads {
    loaded: HashMap<EntryId, Message>,
    errors: Vec<String>,
}

impl Payloads {
    /// Why the payload of this message was not read: the error that names
    /// its message id (in a payload key), if one does.
    fn why_not(&self, metadata: &Metadata) -> String {
        let message_id = metadata.message_id.to_string();
        match self.errors.iter().find(|e| e.contains(&message_id)) {
            Some(error) => render::clean(error),
            None => "see the error above".to_owned(),
        }
    }

    /// The errors that name no message of the page, nor an unreadable
    /// entry of it (shown on its own line).
    fn unnamed<'a>(
        &'a self,
        page: &'a [event_backbone::Entry],
    ) -> impl Iterator<Item = &'a String> {
        self.errors.iter().filter(move |e| {
            !page.iter().any(|entry| match &entry.body {
                Ok(m) => e.contains(&m.message_id.to_string()),
                Err(_) => e.contains(&format!("entry {} of", entry.id)),
            })
        })
    }
}

/// Loads the payloads of the entries from `first` to `last` (one page) with
/// the library's replay, which checks that each entry belongs to the stream
/// and opens what it can. A failure of the channel or store fails the
/// command; a message that cannot be read is shown as such.
async fn load(
    channel: &Arc<dyn StreamChannel>,
    store: &Arc<dyn KeyValueStore>,
    personal: Option<&PersonalData>,
    address: &StreamAddress,
    first: EntryId,
    last: EntryId,
) -> Result<Payloads> {
    let mut messages = connect::endpoint(
        Replay::builder(),
        channel.clone(),
        store.clone(),
        address,
        personal,
    )
    .page_size(PAGE)
    .from(StreamPosition::From(first))
    .to(last)
    .messages()?;
    let mut payloads = Payloads::default();
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => {
                payloads.loaded.insert(message.entry_id().clone(), message);
            }
            Err(e @ event_backbone::Error::Backend { .. }) => return Err(e.into()),
            Err(e) => payloads.errors.push(e.to_string()),
        }
    }
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_named_timed_or_entry_ids() {
        assert_eq!(position("start").unwrap(), StreamPosition::Start);
        assert!(
            matches!(position("now").unwrap(), StreamPosition::Time(t) if t > 1_700_000_000_000)
        );
        assert_eq!(position("t=42").unwrap(), StreamPosition::Time(42));
        assert_eq!(
            position("1-0").unwrap(),
            StreamPosition::From(event_backbone::EntryId::new("1-0"))
        );
        let e = position("t=soon").unwrap_err().to_string();
        assert!(
            e.contains("t=soon") && e.contains("expected start, now"),
            "{e}"
        );
    }
}
