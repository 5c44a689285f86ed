//! `eb info`: one stream's length, first and last entry, groups and dead
//! letters.

use std::io::Write;

use event_backbone::{GroupInfo, MemberInfo, StreamPosition};

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
    // Groups the channel does not list, found by name: Kafka knows only
    // their committed offsets, not their pending entries nor members.
    let mut by_name = Vec::new();
    for group in groups {
        if info.group(group).is_some() {
            continue;
        }
        let found = channel.group_info(stream, group).await?;
        info.groups.push(found.ok_or_else(|| Error::NoSuchGroup {
            stream: stream.to_owned(),
            group: group.clone(),
        })?);
        by_name.push(group.as_str());
    }
    let outside = |g: &GroupInfo| by_name.contains(&g.name.as_str());
    // The first entry, where one order runs through the stream (not across
    // Kafka's partitions, where the first of one is not the oldest).
    let ordered = info.partitions <= 1;
    let first = if info.length == 0 || !ordered {
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
    // Each group's members, where the channel says.
    let mut members = Vec::with_capacity(info.groups.len());
    for g in &info.groups {
        members.push(channel.group_members(stream, &g.name).await?);
    }
    let shown = |id: &Option<event_backbone::EntryId>| id.as_ref().map(|i| i.to_string());
    if json {
        let groups: Vec<serde_json::Value> = info
            .groups
            .iter()
            .zip(&members)
            .map(|(g, members)| {
                let known = |n: u64| (!outside(g)).then_some(n);
                let members = members.as_ref().map(|members| {
                    members
                        .iter()
                        .map(|m| {
                            serde_json::json!({
                                "name": m.name,
                                "pending": m.pending,
                                "idle_ms": m.idle_ms,
                            })
                        })
                        .collect::<Vec<_>>()
                });
                serde_json::json!({
                    "name": g.name,
                    "pending": known(g.pending),
                    "lag": g.lag,
                    "consumers": known(g.consumers),
                    "members": members,
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
    writeln!(out, "stream        {}", render::clean(stream))?;
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
        if info.length == 0 {
            writeln!(
                out,
                "groups        none (no entry and no group: are --uri and --environment right?)"
            )?;
        } else if channel.backend() == "kafka" {
            writeln!(
                out,
                "groups        none with a member here (Kafka lists no others: name them with --group)"
            )?;
        } else {
            writeln!(out, "groups        none")?;
        }
        return Ok(());
    }
    let mut table = render::table(&["group", "pending", "lag", "consumers"]);
    for g in &info.groups {
        let known = |n: u64| {
            if outside(g) {
                unknown()
            } else {
                n.to_string()
            }
        };
        table.add_row([
            render::clean(&g.name),
            known(g.pending),
            g.lag.map_or_else(unknown, |l| l.to_string()),
            known(g.consumers),
        ]);
    }
    writeln!(out, "{table}")?;
    let known: Vec<(&GroupInfo, &MemberInfo)> = info
        .groups
        .iter()
        .zip(&members)
        .flat_map(|(g, members)| members.iter().flatten().map(move |m| (g, m)))
        .collect();
    if !known.is_empty() {
        writeln!(out, "consumers")?;
        for (g, m) in known {
            writeln!(
                out,
                "  {} {}  pending {}  idle {}",
                render::clean(&g.name),
                render::clean(&m.name),
                m.pending,
                m.idle_ms.map_or_else(unknown, render::duration)
            )?;
        }
    }
    Ok(())
}
