//! `eb get ENTRY`: one message, its metadata and its payload.

use std::io::Write;

use event_backbone::{EntryId, Replay, StreamPosition};
use futures_util::StreamExt;

use crate::args::Connection;
use crate::connect;
use crate::error::{Error, Result};
use crate::render;

/// Prints one message.
pub async fn run(connection: &Connection, entry: &str, out: &mut impl Write) -> Result<()> {
    let address = connect::stream(connection)?;
    let channel = connect::channel(connection).await?;
    let id = EntryId::new(entry);
    let no_such = || Error::NoSuchEntry {
        stream: address.stream_key().to_owned(),
        entry: entry.to_owned(),
    };
    let found = channel
        .get(address.stream_key(), &id)
        .await?
        .ok_or_else(no_such)?;
    let metadata = match found.body {
        Ok(metadata) => metadata,
        Err(malformed) => {
            writeln!(
                out,
                "{id}  unreadable: {}",
                render::clean(&malformed.reason)
            )?;
            return Ok(());
        }
    };
    writeln!(out, "entry         {id}")?;
    writeln!(out, "message id    {}", metadata.message_id)?;
    writeln!(
        out,
        "operation     {} v{}",
        render::clean(&metadata.operation),
        metadata.version
    )?;
    writeln!(
        out,
        "produced at   {}",
        render::utc_time(metadata.produced_at_ms)
    )?;
    writeln!(
        out,
        "content type  {}",
        render::clean(&metadata.content_type)
    )?;
    for (name, value) in [
        ("correlation", &metadata.correlation_id),
        ("causation", &metadata.causation_id),
    ] {
        if let Some(value) = value {
            writeln!(out, "{name:<14}{}", render::clean(value))?;
        }
    }
    if metadata.subject.is_some() {
        writeln!(out, "data subject  yes (personal segments sealed)")?;
    }
    for (name, value) in &metadata.headers {
        writeln!(
            out,
            "header        {}: {}",
            render::clean(name),
            render::clean(value)
        )?;
    }
    let Some(store) = connect::store(connection).await? else {
        let names: Vec<&str> = metadata.segments.iter().map(|s| s.name.as_str()).collect();
        writeln!(
            out,
            "segments      {} (pass --store URL for their values)",
            names.join(", ")
        )?;
        return Ok(());
    };
    let personal = connect::personal_data(connection, &store, false)?;
    let mut messages = connect::endpoint(
        Replay::builder(),
        channel,
        store,
        &address,
        personal.as_ref(),
    )
    .from(StreamPosition::From(id.clone()))
    .to(id)
    .messages()?;
    let message = messages.next().await.ok_or_else(no_such)??;
    writeln!(out, "segments")?;
    for line in render::payload_lines(&message) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
