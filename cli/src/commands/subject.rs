//! `eb erase` and `eb export`: the requests of a data subject (GDPR
//! articles 17 and 15) over one or several streams, through the library's
//! `SubjectRequests`. The subject's id is never printed: the export names
//! it by its keyed hash, as the streams do.

use std::io::Write;
use std::path::Path;

use event_backbone::privacy::{ExportedMessage, SubjectExport, UnreadableMessage};
use std::sync::Arc;

use event_backbone::privacy::PersonalData;
use event_backbone::{
    KeyValueStore, StreamAddress, StreamChannel, SubjectRequests, SubjectRequestsBuilder,
};
use serde_json::{json, Value};

use crate::args::Connection;
use crate::connect;
use crate::error::{Error, Result};
use crate::{progress, render};

/// Erases the subject from every stream named, saying what each held.
pub async fn erase(connection: &Connection, subject: &str, out: &mut impl Write) -> Result<()> {
    let subject = &read_subject(subject)?;
    let requests = Requests::open(connection, "erase").await?;
    let bar = progress::bar(Some(requests.addresses.len() as u64), "erasing");
    let mut key_erased = false;
    for address in &requests.addresses {
        let erasure = requests.on(address).erase(subject).await?;
        key_erased |= erasure.key_erased;
        bar.inc(1);
        bar.suspend(|| {
            writeln!(
                out,
                "{}: {} messages of the subject, {} payload keys deleted",
                render::clean(address.stream_key()),
                erasure.messages,
                erasure.payload_keys_deleted
            )
        })?;
    }
    bar.finish_and_clear();
    let keys = if key_erased {
        "erased: nothing sealed for the subject opens any more, in any stream or copy"
    } else {
        "none found (erased before, or the subject never had personal data)"
    };
    writeln!(out, "data keys: {keys}")?;
    Ok(())
}

/// The subject's id: as given, or for `-` the first line of the standard
/// input.
fn read_subject(given: &str) -> Result<String> {
    if given != "-" {
        return Ok(given.to_owned());
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let id = line.trim_end_matches(['\n', '\r']);
    if id.is_empty() {
        return Err(Error::Usage(
            "--subject -: the standard input holds no id (one line expected)".into(),
        ));
    }
    Ok(id.to_owned())
}

/// What erase and export work with: the streams named (each checked to
/// exist before anything is done: a mistyped --uri would otherwise find
/// nothing of the subject), the channel, the store and the vault.
struct Requests {
    addresses: Vec<StreamAddress>,
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    personal: PersonalData,
}

impl Requests {
    async fn open(connection: &Connection, command: &'static str) -> Result<Self> {
        let addresses = connect::streams(connection)?;
        let channel = connect::channel(connection).await?;
        for address in &addresses {
            connect::existing(&channel, address).await?;
        }
        let store = connect::store(connection)
            .await?
            .ok_or(Error::NoStore { command })?;
        let personal = connect::personal_data(connection, &store, true)?.expect("always read");
        Ok(Self {
            addresses,
            channel,
            store,
            personal,
        })
    }

    /// The library's requests on one of the streams.
    fn on(&self, address: &StreamAddress) -> SubjectRequestsBuilder {
        connect::endpoint(
            SubjectRequests::builder(),
            self.channel.clone(),
            self.store.clone(),
            address,
            Some(&self.personal),
        )
    }
}

/// Exports what every stream named holds about the subject, as JSON, to
/// `to` or the standard output.
pub async fn export(
    connection: &Connection,
    subject: &str,
    to: Option<&Path>,
    out: &mut impl Write,
) -> Result<()> {
    let subject = &read_subject(subject)?;
    let requests = Requests::open(connection, "export").await?;
    let bar = progress::bar(Some(requests.addresses.len() as u64), "exporting");
    let mut export: Option<SubjectExport> = None;
    for address in &requests.addresses {
        let found = requests.on(address).export(subject).await?;
        bar.inc(1);
        export = Some(match export {
            Some(export) => export.merge(found),
            None => found,
        });
    }
    bar.finish_and_clear();
    let export = export.expect("at least one stream");
    let document = serde_json::to_string_pretty(&document(&export)).expect("JSON values");
    match to {
        None => writeln!(out, "{document}")?,
        Some(path) => {
            write_private(path, &document).map_err(|source| Error::File {
                path: path.display().to_string(),
                source,
            })?;
            writeln!(
                out,
                "exported {} ({} unreadable) from {} to {}",
                render::count(export.messages().len(), "message"),
                export.unreadable().len(),
                render::count(export.streams().len(), "stream"),
                render::clean(&path.display().to_string())
            )?;
        }
    }
    Ok(())
}

/// The export as a JSON document: the subject's hash, the streams read,
/// each message with its personal segments, and those that could not be
/// read.
fn document(export: &SubjectExport) -> Value {
    json!({
        "subject_hash": export.subject().map(|h| h.to_string()),
        "streams": export.streams(),
        "messages": export.messages().iter().map(message).collect::<Vec<_>>(),
        "unreadable": export.unreadable().iter().map(unreadable).collect::<Vec<_>>(),
    })
}

fn message(message: &ExportedMessage) -> Value {
    let json = message.content_type.contains("json");
    let segments: serde_json::Map<String, Value> = message
        .segments
        .iter()
        .map(|(name, segment)| (name.to_owned(), segment_value(&segment.data, json)))
        .collect();
    json!({
        "stream": message.stream,
        "entry": message.entry_id.to_string(),
        "message_id": message.message_id.to_string(),
        "operation": message.operation,
        "version": message.version,
        "produced_at": render::utc_time(message.produced_at_ms),
        "content_type": message.content_type,
        "segments": segments,
        "erased": message.erased,
    })
}

fn unreadable(message: &UnreadableMessage) -> Value {
    json!({
        "stream": message.stream,
        "entry": message.entry_id.to_string(),
        "message_id": message.message_id.to_string(),
        "operation": message.operation,
        "produced_at": render::utc_time(message.produced_at_ms),
        "reason": message.reason,
    })
}

/// A segment's value: itself when the codec is JSON and it parses, else
/// its bytes in hex (postcard is not self-describing).
fn segment_value(bytes: &[u8], json: bool) -> Value {
    render::json_of(bytes, json)
        .unwrap_or_else(|| json!({ "bytes": bytes.len(), "hex": render::hex(bytes) }))
}

/// Writes personal data to a file only its owner can read (on Unix).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    // A new file only: an existing one would keep its permissions, and a
    // link there would be followed.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
