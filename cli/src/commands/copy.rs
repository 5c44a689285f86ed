//! `eb copy`: a stream, metadata and payloads, into another stream, on the
//! same backends or others; resumable.

use std::io::Write;
use std::time::Duration;

use event_backbone::{open_channel, open_store, CopyTarget, StreamAddress, StreamCopy};

use crate::args::{self, Connection};
use crate::connect;
use crate::error::{Error, Result};
use crate::{progress, render};

/// Copies, and says what it did.
pub async fn run(connection: &Connection, copy: &args::Copy, out: &mut impl Write) -> Result<()> {
    let address = connect::stream(connection)?;
    if copy.from == "now" {
        return Err(Error::Usage(
            "--from now: a copy of nothing; start from start, an entry or t=MILLISECONDS".into(),
        ));
    }
    let from = super::tail::position(&copy.from)?;
    let target = StreamAddress::new(copy.to_environment.as_deref(), &copy.to_uri)?;
    let same_channel = match &copy.to_channel {
        None => true,
        Some(url) => connection.channel.as_deref() == Some(url.as_str()),
    };
    if same_channel && target.stream_key() == address.stream_key() {
        return Err(Error::OntoItself {
            stream: target.stream_key().to_owned(),
        });
    }
    let channel = connect::channel(connection).await?;
    let store = connect::store(connection)
        .await?
        .ok_or(Error::NoStore { command: "copy" })?;
    let to_channel = match &copy.to_channel {
        Some(url) => open_channel(url).await?,
        None => channel.clone(),
    };
    let to_store = match (&copy.to_store, &copy.to_channel) {
        (Some(url), _) => open_store(url).await?,
        (None, Some(url)) if connect::is_store_too(url) => open_store(url).await?,
        _ => store.clone(),
    };
    let (source_backend, target_backend) = (channel.backend(), to_channel.backend());
    let info = connect::existing(&channel, &address).await?;
    let bar = progress::bar(Some(info.length), "copying");
    let shown = bar.clone();
    let mut builder = connect::endpoint(StreamCopy::builder(), channel, store, &address, None)
        .from(from)
        .page_size(copy.page_size)
        .to(CopyTarget::new(to_channel, to_store, target.clone()))
        .on_progress(move |report| shown.set_position(report.read));
    if copy.restart {
        builder = builder.restart();
    }
    if let Some(seconds) = copy.payload_ttl {
        builder = builder.payload_ttl(Duration::from_secs(seconds));
    }
    let copied = builder.build()?.run().await;
    bar.finish_and_clear();
    let report = copied?;
    for note in report.ignored_mark.iter().chain(&report.warnings) {
        writeln!(out, "note: {}", render::clean(note))?;
    }
    if report.segments_not_found > 0 {
        writeln!(
            out,
            "note: {} stored segments were not found in the store (personal data erased or \
             expired, or kept in a store of their own class, which eb does not read) and are \
             missing in their copies too",
            report.segments_not_found
        )?;
    }
    if let Some(after) = &report.resumed_after {
        writeln!(
            out,
            "continued after entry {after}, where the last copy stopped"
        )?;
    }
    for not_copied in &report.not_copied {
        writeln!(
            out,
            "not copied: {}  {}",
            not_copied.entry,
            render::clean(&not_copied.reason)
        )?;
    }
    writeln!(
        out,
        "copied {} of {} entries read from {:?} ({}) to {:?} ({}){}",
        report.copied,
        report.read,
        address.stream_key(),
        source_backend,
        target.stream_key(),
        target_backend,
        match report.already_copied {
            0 => String::new(),
            n => format!(" ({n} found already copied)"),
        }
    )?;
    match report.not_copied.len() {
        0 => Ok(()),
        left => Err(Error::Incomplete {
            what: "copied",
            left,
        }),
    }
}
