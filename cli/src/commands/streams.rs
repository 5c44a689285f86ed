//! `eb streams`: the streams there are, with their length and groups.

use std::io::Write;

use crate::args::Connection;
use crate::connect;
use crate::error::Result;
use crate::render;

/// Lists the channel's streams. A stream this channel cannot read (a Redis
/// stream in another number of partitions than the URL's) is listed with
/// why, not a failure of the whole list; a failure of the server is.
pub async fn run(connection: &Connection, json: bool, out: &mut impl Write) -> Result<()> {
    let channel = connect::channel(connection).await?;
    let mut rows = Vec::new();
    for stream in channel.streams().await? {
        let info = match channel.info(&stream).await {
            Ok(info) => Ok(info),
            Err(
                e @ event_backbone::Error::Backend {
                    transient: true, ..
                },
            ) => return Err(e.into()),
            Err(e) => Err(e.to_string()),
        };
        rows.push((stream, info));
    }
    if json {
        let rows: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(stream, info)| match info {
                Ok(info) => serde_json::json!({
                    "stream": stream,
                    "length": info.length,
                    "groups": info.groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
                }),
                Err(error) => serde_json::json!({"stream": stream, "error": error}),
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    let mut table = render::table(&["stream", "length", "groups"]);
    for (stream, info) in rows {
        let (length, groups) = match info {
            Ok(info) => (
                info.length.to_string(),
                info.groups
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Err(error) => ("?".to_owned(), format!("not readable here: {error}")),
        };
        table.add_row([render::clean(&stream), length, render::clean(&groups)]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
