//! The standard keys of a message, built from its environment, uri,
//! operation, version, segment class and message id. They are public
//! through [`crate::address`], whose docs have their table.

use super::{MessageId, SegmentClass};

/// Suffix of the dead-letter stream of a stream.
pub const DEAD_LETTER_SUFFIX: &str = "dead-letter";

/// The payload key of one segment class of one message in a stream:
/// `{stream}:{operation}:v{version}:{class}:{message-id}`.
pub fn payload_key(
    stream_key: &str,
    operation: &str,
    version: u32,
    class: &SegmentClass,
    message_id: &MessageId,
) -> String {
    key_of(None, stream_key, operation, version, class, message_id)
}

/// `[{environment}:]{uri}:{operation}:v{version}:{class}:{message-id}`,
/// built in one allocation of the right size.
pub(crate) fn key_of(
    environment: Option<&str>,
    uri: &str,
    operation: &str,
    version: u32,
    class: &SegmentClass,
    message_id: &MessageId,
) -> String {
    use std::fmt::Write;
    // ":v" + up to 10 digits + 4 separators + 36 for the id
    let len = environment.map_or(0, |e| e.len() + 1)
        + uri.len()
        + operation.len()
        + class.as_str().len()
        + 52;
    let mut key = String::with_capacity(len);
    if let Some(env) = environment {
        key.push_str(env);
        key.push(':');
    }
    key.push_str(uri);
    key.push(':');
    key.push_str(operation);
    // Writing into a String cannot fail.
    let _ = write!(key, ":v{version}:{}:{message_id}", class.as_str());
    key
}

/// The stream key of an environment and a uri (not validated).
pub fn stream_key(environment: Option<&str>, uri: &str) -> String {
    match environment {
        Some(env) => format!("{env}:{uri}"),
        None => uri.to_owned(),
    }
}

/// The dead-letter stream key of a stream key.
pub fn dead_letter_key(stream_key: &str) -> String {
    format!("{stream_key}:{DEAD_LETTER_SUFFIX}")
}
