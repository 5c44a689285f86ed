//! The 32-byte secrets of personal-data protection (the master key, the
//! subject key, a data key): held in memory that is wiped on drop, read from
//! hex, never shown.

use std::fmt;

use zeroize::Zeroizing;

use crate::config::MASK;
use crate::hex::decode_hex;
use crate::{Error, Result};

/// 32 secret bytes, wiped from memory when dropped.
#[derive(Clone)]
pub(crate) struct Key32(Zeroizing<[u8; 32]>);

impl Key32 {
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// 32 bytes from the operating system's random source.
    pub(crate) fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(bytes.as_mut());
        Self(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads 64 hex digits. `what` names the secret in the error, which
    /// never holds the text itself.
    pub(crate) fn from_hex(what: &str, text: &str) -> Result<Self> {
        let text = text.trim();
        let invalid = |reason: String| Error::InvalidSecret {
            what: what.to_owned(),
            reason,
        };
        if text.len() != 64 {
            return Err(invalid(format!(
                "expected 64 hex digits (32 bytes, e.g. from `openssl rand -hex 32`), found {} \
                 characters",
                text.chars().count()
            )));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        decode_hex(text, bytes.as_mut()).ok_or_else(|| {
            invalid("expected hex digits only (0-9, a-f), found another character".to_owned())
        })?;
        Ok(Self(bytes))
    }

    /// Reads the secret from an environment variable (64 hex digits).
    pub(crate) fn from_env(what: &str, variable: &str) -> Result<Self> {
        let what = format!("{what} ({variable})");
        match std::env::var(variable) {
            // The text is wiped once read; the variable itself is the
            // process environment's.
            Ok(text) => Self::from_hex(&what, &Zeroizing::new(text)),
            Err(std::env::VarError::NotPresent) => Err(Error::InvalidSecret {
                what,
                reason: "the variable is not set; set it to 64 hex digits (e.g. from `openssl \
                         rand -hex 32`), kept in your secret manager"
                    .to_owned(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidSecret {
                what,
                reason: "the variable is not valid UTF-8; expected 64 hex digits".to_owned(),
            }),
        }
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Fills `out` from the operating system's random source.
pub(crate) fn fill_random(out: &mut [u8]) {
    // The OS random source failing is not something a caller can recover
    // from: a key made without it would not be secret.
    getrandom::fill(out).expect("the operating system's random source is available");
}

/// The nonces of one message's sealed segments: 12 random bytes drawn from
/// the operating system once per message, the segment's number mixed into
/// the last 4. Nothing is kept between messages, so two processes that
/// share a past (a `fork()`, a virtual machine snapshot restored twice)
/// never seal with the same nonces: each draws its own. A nonce only needs
/// to be unique under one data key, and every data key belongs to one
/// subject: random 96-bit nonces stay far from GCM's limits.
pub(crate) struct Nonces {
    base: [u8; 12],
    next: u32,
}

impl Nonces {
    /// Fresh nonces for one message.
    pub(crate) fn for_message() -> Self {
        let mut base = [0u8; 12];
        fill_random(&mut base);
        Self { base, next: 0 }
    }

    /// The next segment's nonce.
    pub(crate) fn next(&mut self) -> [u8; 12] {
        let mut nonce = self.base;
        let mixed = u32::from_le_bytes(nonce[8..].try_into().expect("4 bytes")) ^ self.next;
        nonce[8..].copy_from_slice(&mixed.to_le_bytes());
        self.next += 1;
        nonce
    }
}

/// `Display` (16 lower-case hex digits), `Debug` (`Name(digits)`) and
/// `FromStr` of an 8-byte id (`$what` names it in the parse error).
macro_rules! hex_id {
    ($id:ident, $what:literal) => {
        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::hex::encode_hex(&self.0))
            }
        }

        impl std::fmt::Debug for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({self})", stringify!($id))
            }
        }

        impl std::str::FromStr for $id {
            type Err = $crate::Error;

            /// Reads the 16 hex digits of `Display`.
            fn from_str(text: &str) -> $crate::Result<Self> {
                let mut bytes = [0u8; 8];
                $crate::hex::decode_hex(text, &mut bytes).ok_or_else(|| {
                    $crate::Error::KeyVault {
                        reason: format!("{text:?} is not a {}; expected 16 hex digits", $what),
                    }
                })?;
                Ok(Self(bytes))
            }
        }
    };
}
pub(crate) use hex_id;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::encode_hex;

    #[test]
    fn hex_round_trips_and_bad_text_is_refused_without_echo() {
        let key = Key32::random();
        let text = encode_hex(key.bytes());
        assert_eq!(Key32::from_hex("k", &text).unwrap().bytes(), key.bytes());
        assert_eq!(
            Key32::from_hex("k", &text.to_uppercase()).unwrap().bytes(),
            key.bytes()
        );
        let short = Key32::from_hex("master key", "abcd")
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("master key") && short.contains("64 hex digits"),
            "{short}"
        );
        assert!(short.contains("found 4 characters"), "{short}");
        let secret_looking = format!("{}zz", &text[..62]);
        let bad = Key32::from_hex("k", &secret_looking)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("hex digits only"), "{bad}");
        assert!(
            !bad.contains(&text[..62]),
            "the error must not echo the secret: {bad}"
        );
        assert_eq!(format!("{key:?}"), MASK);
    }

    #[test]
    fn nonces_differ_within_a_message_and_between_messages() {
        let mut one = Nonces::for_message();
        let (a, b) = (one.next(), one.next());
        assert_ne!(a, b);
        assert_eq!(a[..8], b[..8]);
        assert_ne!(Nonces::for_message().next(), a);
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(Key32::random().bytes(), Key32::random().bytes());
    }
}
