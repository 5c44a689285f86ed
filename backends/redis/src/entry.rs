//! How an entry looks in a Redis stream, and how replies are read back.
//!
//! An entry has three fields: `message_id` and `operation` in plain text
//! (readable with `XRANGE` in `redis-cli`), and `metadata`, the encoded
//! metadata. Payloads are never in the stream.

use bytes::Bytes;
use event_backbone_core::envelope::{decode_metadata, encode_metadata_into};
use event_backbone_core::{Entry, EntryId, Error, MalformedEntry, Metadata, Result};
use redis::{RedisWrite, ToRedisArgs, Value};

use crate::error::protocol;
use crate::BACKEND;

/// Field with the message id, in plain text.
pub const FIELD_MESSAGE_ID: &str = "message_id";
/// Field with the operation name, in plain text.
pub const FIELD_OPERATION: &str = "operation";
/// Field with the encoded metadata.
pub const FIELD_METADATA: &str = "metadata";

/// Adds the fields of one entry to an `XADD`. The id and the metadata are
/// written straight into the command's buffer.
pub(crate) fn add_fields(cmd: &mut redis::Cmd, metadata: &Metadata) {
    cmd.arg(FIELD_MESSAGE_ID)
        .arg(MessageIdArg(metadata))
        .arg(FIELD_OPERATION)
        .arg(&metadata.operation)
        .arg(FIELD_METADATA)
        .arg(MetadataArg(metadata));
}

/// Bytes an `XADD` of this entry needs beyond the stream name, to size the
/// command once (the metadata is about the size of its strings plus a few
/// bytes per field).
pub(crate) fn fields_capacity(metadata: &Metadata) -> usize {
    let strings = metadata.operation.len()
        + metadata.uri.len()
        + metadata.content_type.len()
        + metadata.environment.as_ref().map_or(0, String::len)
        + metadata.correlation_id.as_ref().map_or(0, String::len)
        + metadata.causation_id.as_ref().map_or(0, String::len)
        + metadata.traceparent.as_ref().map_or(0, String::len)
        + metadata
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
        + metadata
            .segments
            .iter()
            .map(|s| s.name.len() + s.class.as_str().len() + 4)
            .sum::<usize>();
    // field names, the id in text, the operation again, fixed-size fields
    64 + 36 + metadata.operation.len() + strings + 48
}

struct MessageIdArg<'a>(&'a Metadata);

impl ToRedisArgs for MessageIdArg<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(self.0.message_id);
    }
}

struct MetadataArg<'a>(&'a Metadata);

/// Encoding buffers above this size are not kept for the next entry.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ToRedisArgs for MetadataArg<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        // Encoded into a per-thread buffer, then copied into the command:
        // no allocation per entry.
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                encode_metadata_into(self.0, &mut buffer);
                out.write_arg(&buffer);
                if buffer.capacity() > SCRATCH_KEPT {
                    *buffer = Vec::new();
                }
            }
            Err(_) => out.write_arg(&event_backbone_core::envelope::encode_metadata(self.0)),
        });
    }
}

/// Checks that an id has the form Redis gives stream entries.
pub(crate) fn check_id(id: &EntryId) -> Result<&str> {
    let s = id.as_str();
    if is_stream_id(s) {
        Ok(s)
    } else {
        Err(Error::InvalidEntryId {
            id: s.to_owned(),
            backend: BACKEND,
            expected: "a Redis stream id such as 1700000000000-0",
        })
    }
}

/// Whether `s` is a Redis stream id: `{ms}-{seq}`, both decimal.
pub(crate) fn is_stream_id(s: &str) -> bool {
    s.split_once('-')
        .is_some_and(|(ms, seq)| is_number(ms) && is_number(seq))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The text of a reply, taking its bytes (no copy).
pub(crate) fn into_text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Whether a reply is the text `expected` (no allocation).
pub(crate) fn is_text(v: &Value, expected: &str) -> bool {
    match v {
        Value::BulkString(b) => b == expected.as_bytes(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => s == expected,
        _ => false,
    }
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

/// The elements of an array (or of a set).
pub(crate) fn items(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// The value of field `name` among a reply's field/value pairs.
pub(crate) fn field<'a>(pairs: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| is_text(k, name)).map(|(_, v)| v)
}

/// Field/value pairs from a flat array or a map.
pub(crate) fn pairs(v: Value) -> Option<Vec<(Value, Value)>> {
    match v {
        Value::Map(pairs) => Some(pairs),
        Value::Array(flat) => {
            let mut out = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            Some(out)
        }
        _ => None,
    }
}

/// One `[id, [field, value, ...]]`; its id alone when the entry was
/// deleted (its fields are nil).
pub(crate) fn entry(v: Value, action: &str) -> Result<Result<Entry, EntryId>> {
    let mut parts = items(v).ok_or_else(|| protocol(action, "a stream entry is not an array"))?;
    if parts.len() != 2 {
        return Err(protocol(action, "a stream entry is not [id, fields]"));
    }
    let fields = parts.pop().expect("two parts");
    let id = parts.pop().and_then(into_text);
    let id = EntryId::new(id.ok_or_else(|| protocol(action, "a stream entry id is not text"))?);
    if matches!(fields, Value::Nil) {
        return Ok(Err(id));
    }
    let fields =
        pairs(fields).ok_or_else(|| protocol(action, "stream entry fields are not pairs"))?;
    let metadata = fields
        .into_iter()
        .find_map(|(k, v)| is_text(&k, FIELD_METADATA).then_some(v));
    let body = match metadata {
        Some(Value::BulkString(bytes)) => {
            let raw = Bytes::from(bytes);
            decode_metadata(&raw).map_err(|e| MalformedEntry::undecodable(&e, raw.clone()))
        }
        Some(other) => Err(MalformedEntry::new(
            format!("field {FIELD_METADATA:?} is not a string: {other:?}"),
            Bytes::new(),
        )),
        None => Err(MalformedEntry::new(
            format!("the entry has no {FIELD_METADATA:?} field"),
            Bytes::new(),
        )),
    };
    Ok(Ok(Entry { id, body }))
}

/// The entries of an `XRANGE` (or of one stream in an `XREADGROUP`).
pub(crate) fn entries(v: Value, action: &str) -> Result<Vec<Entry>> {
    match v {
        Value::Nil => Ok(Vec::new()),
        other => {
            let list = items(other).ok_or_else(|| protocol(action, "entries are not an array"))?;
            let mut out = Vec::with_capacity(list.len());
            let mut deleted = Vec::new();
            for item in list {
                match entry(item, action)? {
                    Ok(e) => out.push(e),
                    Err(id) => deleted.push(id),
                }
            }
            if !deleted.is_empty() {
                // A pending entry whose body is gone: trimmed or deleted
                // before the group handled it.
                tracing::warn!(
                    action, count = deleted.len(), ids = ?deleted,
                    "entries delivered to the group were deleted from the stream before they \
                     were handled (trimmed or XDEL'd): they are lost"
                );
            }
            Ok(out)
        }
    }
}

/// The entries of an `XREADGROUP` on one stream (nil on timeout; an array
/// or a map of stream -> entries).
pub(crate) fn read_reply(v: Value, action: &str) -> Result<Vec<Entry>> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(streams) => match streams.into_iter().next() {
            Some((_, entries_value)) => entries(entries_value, action),
            None => Ok(Vec::new()),
        },
        other => {
            let streams = items(other).ok_or_else(|| protocol(action, "reply is not an array"))?;
            let Some(first) = streams.into_iter().next() else {
                return Ok(Vec::new());
            };
            let mut pair = items(first)
                .ok_or_else(|| protocol(action, "stream reply is not [name, entries]"))?;
            let entries_value = pair
                .pop()
                .ok_or_else(|| protocol(action, "stream reply is empty"))?;
            entries(entries_value, action)
        }
    }
}
