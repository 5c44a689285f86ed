//! `eb streams`: the streams there are, with their length and groups.

use std::io::Write;

use crate::args::Connection;
use crate::connect;
use crate::error::Result;
use crate::render;

/// Lists the channel's streams.
pub async fn run(connection: &Connection, json: bool, out: &mut impl Write) -> Result<()> {
    let channel = connect::channel(connection).await?;
    let mut rows = Vec::new();
    for stream in channel.streams().await? {
        let info = channel.info(&stream).await?;
        let groups: Vec<String> = info.groups.iter().map(|g| g.name.clone()).collect();
        rows.push((stream, info.length, groups));
    }
    if json {
        let rows: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(stream, length, groups)| {
                serde_json::json!({"stream": stream, "length": length, "groups": groups})
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    let mut table = render::table(&["stream", "length", "groups"]);
    for (stream, length, groups) in rows {
        table.add_row([
            render::clean(&stream),
            length.to_string(),
            render::clean(&groups.join(", ")),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
