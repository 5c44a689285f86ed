//! `eb tail`: a stream's entries, one line each, from a position, and with
//! `--follow` those that come after.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_backbone::{Metadata, Replay, StreamPosition};
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
    let channel = connect::channel(connection).await?;
    let store = if tail.payload {
        connect::store(connection).await?
    } else {
        None
    };
    let mut position = position(&tail.from)?;
    let mut left = tail.limit.unwrap_or(usize::MAX);
    let wanted = |m: &Metadata| tail.operation.as_deref().is_none_or(|op| m.operation == op);
    while left > 0 {
        let mut last = None;
        match &store {
            None => {
                let entries = channel
                    .read_range(address.stream_key(), &position, None, PAGE)
                    .await?;
                for entry in entries {
                    last = Some(entry.id.clone());
                    match &entry.body {
                        Ok(metadata) if !wanted(metadata) => continue,
                        Ok(metadata) => {
                            writeln!(out, "{}", render::entry_line(&entry.id, metadata))?
                        }
                        Err(malformed) => {
                            writeln!(out, "{}  unreadable: {}", entry.id, malformed.reason)?
                        }
                    }
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                }
            }
            Some(store) => {
                let mut replay = Replay::builder()
                    .channel(channel.clone())
                    .store(store.clone())
                    .uri(address.uri());
                if let Some(environment) = address.environment() {
                    replay = replay.environment(environment);
                }
                let mut messages = replay.page_size(PAGE).from(position.clone()).messages()?;
                while let Some(message) = messages.next().await {
                    let message = match message {
                        Ok(message) => message,
                        Err(e @ event_backbone::Error::Backend { .. }) => return Err(e.into()),
                        Err(e) => {
                            writeln!(out, "unreadable: {e}")?;
                            continue;
                        }
                    };
                    last = Some(message.entry_id().clone());
                    if !wanted(message.metadata()) {
                        continue;
                    }
                    writeln!(
                        out,
                        "{}",
                        render::entry_line(message.entry_id(), message.metadata())
                    )?;
                    for line in render::payload_lines(&message) {
                        writeln!(out, "{line}")?;
                    }
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        out.flush()?;
        match last {
            Some(id) => position = StreamPosition::After(id),
            None if tail.follow => tokio::time::sleep(FOLLOW_EVERY).await,
            None => break,
        }
    }
    Ok(())
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
