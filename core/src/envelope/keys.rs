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
    key.push_str(":v");
    push_decimal(&mut key, version);
    key.push(':');
    key.push_str(class.as_str());
    key.push(':');
    message_id.push_to(&mut key);
    key
}

/// Appends `n` in decimal (what `write!` does, without the formatter).
fn push_decimal(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_format_would_write() {
        let id = MessageId::new();
        for version in [0, 7, 10, 99, 4_000_000_000, u32::MAX] {
            for environment in [None, Some("prod")] {
                let class = SegmentClass::PERSONAL;
                let expected = match environment {
                    Some(e) => format!("{e}:orders:placed:v{version}:personal:{id}"),
                    None => format!("orders:placed:v{version}:personal:{id}"),
                };
                assert_eq!(
                    key_of(environment, "orders", "placed", version, &class, &id),
                    expected
                );
            }
        }
    }
}
