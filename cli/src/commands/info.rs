//! `eb info`: one stream's length, first and last entry, groups and dead
//! letters.

use std::io::Write;

use event_backbone::StreamPosition;

use crate::args::Connection;
use crate::connect;
use crate::error::{Error, Result};
use crate::render;

/// Shows one stream.
pub async fn run(
    connection: &Connection,
    json: bool,
    groups: &[String],
    out: &mut impl Write,
) -> Result<()> {
    let address = connect::stream(connection)?;
    let channel = connect::channel(connection).await?;
    let stream = address.stream_key();
    let mut info = channel.info(stream).await?;
    for group in groups {
        if info.group(group).is_some() {
            continue;
        }
        let found = channel.group_info(stream, group).await?;
        info.groups.push(found.ok_or_else(|| Error::NoSuchGroup {
            stream: stream.to_owned(),
            group: group.clone(),
        })?);
    }
    let first = if info.length == 0 {
        None
    } else {
        channel
            .read_range(stream, &StreamPosition::Start, None, 1)
            .await?
            .into_iter()
            .next()
            .map(|e| e.id)
    };
    let dead_letters = channel.info(&address.dead_letter_key()).await?.length;
    let shown = |id: &Option<event_backbone::EntryId>| id.as_ref().map(|i| i.to_string());
    if json {
        let groups: Vec<serde_json::Value> = info
            .groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "name": g.name, "pending": g.pending, "lag": g.lag, "consumers": g.consumers
                })
            })
            .collect();
        let value = serde_json::json!({
            "stream": stream,
            "length": info.length,
            "first": shown(&first),
            "last": shown(&info.last),
            "groups": groups,
            "dead_letters": dead_letters,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let unknown = || "-".to_owned();
    writeln!(out, "stream        {stream}")?;
    writeln!(out, "length        {}", info.length)?;
    writeln!(
        out,
        "first entry   {}",
        shown(&first).unwrap_or_else(unknown)
    )?;
    writeln!(
        out,
        "last entry    {}",
        shown(&info.last).unwrap_or_else(unknown)
    )?;
    writeln!(out, "dead letters  {dead_letters}")?;
    if info.groups.is_empty() {
        writeln!(out, "groups        none")?;
        return Ok(());
    }
    let mut table = render::table(&["group", "pending", "lag", "consumers"]);
    for g in &info.groups {
        table.add_row([
            g.name.clone(),
            g.pending.to_string(),
            g.lag.map_or_else(unknown, |l| l.to_string()),
            g.consumers.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
