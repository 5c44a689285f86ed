//! Hex text of bytes: ids, hashes and sealed bytes in headers and records.

/// Lower-case hex of `bytes`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends the lower-case hex of `bytes` to `out`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// Decodes `text` (2 digits per byte, either case) into `out`; `None` if
/// its length or a digit is wrong.
pub(crate) fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    let text = text.as_bytes();
    if text.len() != out.len() * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_a_wrong_length_or_digit_is_refused() {
        let text = encode_hex(&[0x00, 0xab, 0x7f]);
        assert_eq!(text, "00ab7f");
        let mut out = [0u8; 3];
        assert!(decode_hex("00AB7f", &mut out).is_some());
        assert_eq!(out, [0x00, 0xab, 0x7f]);
        assert!(decode_hex("00ab7", &mut out).is_none());
        assert!(decode_hex("00ab7g", &mut out).is_none());
    }
}
