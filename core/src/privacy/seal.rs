//! Sealed segments: a personal segment's bytes encrypted with its subject's
//! data key, bound to the message and the segment name.
//!
//! Layout: `0xEB`, the format byte `2`, the first 4 bytes of the subject
//! hash, the 8-byte key id, the 12-byte nonce, then the AES-256-GCM
//! ciphertext and its 16-byte tag. The associated data is a fixed prefix,
//! the subject hash, the message id (of the original message, for a copy),
//! the stream key the message was produced to and the segment name, so a
//! sealed segment moved into another message, stream, name or subject does
//! not open. The subject's 4 bytes tell a segment moved from another
//! subject (refused) from one whose key was erased (gone).
//!
//! Format `1` (no stream in the associated data) is still opened.

use aes_gcm::aead::{AeadInOut, Tag};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;

use super::data_key::{DataKey, KeyId};
use super::secret::Nonces;
use super::subject::SubjectHash;
use crate::envelope::MessageId;

const MAGIC: u8 = 0xEB;
/// The format written: the stream is bound.
const FORMAT: u8 = 2;
/// The first format, still opened: no stream in the associated data.
const FORMAT_V1: u8 = 1;
const HEADER: usize = 2 + 4 + 8 + 12;
/// Bytes a sealed segment has on top of its plain bytes.
pub const SEAL_OVERHEAD: usize = HEADER + 16;
const AD_V1: &[u8] = b"event-backbone segment v1\0";
const AD_V2: &[u8] = b"event-backbone segment v2\0";

/// What a segment is sealed for: its subject, message, stream and name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SealedFor<'a> {
    pub(crate) subject: &'a SubjectHash,
    pub(crate) message: &'a MessageId,
    /// The stream key the message was produced to.
    pub(crate) stream: StreamKey<'a>,
    pub(crate) segment: &'a str,
}

/// A stream key, `{environment}:{uri}` or `{uri}`, in its parts: written
/// into the associated data without being put together first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamKey<'a> {
    environment: Option<&'a str>,
    uri: &'a str,
}

impl<'a> StreamKey<'a> {
    /// The stream `metadata` was produced to.
    pub(crate) fn of(metadata: &'a crate::envelope::Metadata) -> Self {
        Self {
            environment: metadata.environment.as_deref(),
            uri: &metadata.uri,
        }
    }

    /// A whole stream key.
    pub(crate) fn whole(key: &'a str) -> Self {
        Self {
            environment: None,
            uri: key,
        }
    }

    fn len(&self) -> usize {
        self.environment.map_or(0, |e| e.len() + 1) + self.uri.len()
    }

    /// Writes the key into `out`, exactly [`len`](Self::len) bytes.
    fn write(&self, out: &mut [u8]) {
        let mut at = 0;
        if let Some(environment) = self.environment {
            out[..environment.len()].copy_from_slice(environment.as_bytes());
            out[environment.len()] = b':';
            at = environment.len() + 1;
        }
        out[at..].copy_from_slice(self.uri.as_bytes());
    }
}

impl SealedFor<'_> {
    /// Calls `f` with the associated data of `format`, built on the stack
    /// when the names are short (as they nearly always are).
    fn with_associated_data<T>(&self, format: u8, f: impl FnOnce(&[u8]) -> T) -> T {
        let prefix = match format {
            FORMAT_V1 => AD_V1,
            _ => AD_V2,
        };
        let stream = self.stream.len();
        let fixed = prefix.len() + 32;
        // The stream and a 0 byte (names have none), then the segment.
        let tail = if format == FORMAT_V1 { 0 } else { stream + 1 };
        let fill = |ad: &mut [u8]| {
            ad[..prefix.len()].copy_from_slice(prefix);
            ad[prefix.len()..prefix.len() + 16].copy_from_slice(self.subject.as_bytes());
            ad[prefix.len() + 16..fixed].copy_from_slice(self.message.as_uuid().as_bytes());
            if tail > 0 {
                self.stream.write(&mut ad[fixed..fixed + stream]);
                ad[fixed + stream] = 0;
            }
            ad[fixed + tail..].copy_from_slice(self.segment.as_bytes());
        };
        let len = fixed + tail + self.segment.len();
        if len <= 256 {
            let mut ad = [0u8; 256];
            fill(&mut ad[..len]);
            f(&ad[..len])
        } else {
            let mut ad = vec![0u8; len];
            fill(&mut ad);
            f(&ad)
        }
    }
}

/// Seals plain bytes with a nonce of their own (a message's segments share
/// a [`Nonces`]: [`seal_with`]).
pub(crate) fn seal(key: &DataKey, to: SealedFor<'_>, plain: &[u8]) -> Bytes {
    seal_with(key, to, plain, &mut Nonces::for_message())
}

/// Seals plain segment bytes: one allocation, encrypted in place.
pub(crate) fn seal_with(
    key: &DataKey,
    to: SealedFor<'_>,
    plain: &[u8],
    nonces: &mut Nonces,
) -> Bytes {
    let nonce = nonces.next();
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
    out.push(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&to.subject.as_bytes()[..4]);
    out.extend_from_slice(key.id().as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = to
        .with_associated_data(FORMAT, |ad| {
            key.cipher().encrypt_inout_detached(
                &Nonce::from(nonce),
                ad,
                (&mut out[HEADER..]).into(),
            )
        })
        .expect("encrypting in memory cannot fail");
    out.extend_from_slice(&tag);
    out.into()
}

/// The id of the key a sealed segment needs, or why the bytes are not a
/// sealed segment.
pub(crate) fn key_id(sealed: &[u8]) -> Result<KeyId, String> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(format!(
            "{} bytes is shorter than a sealed segment ({SEAL_OVERHEAD} bytes at least)",
            sealed.len()
        ));
    }
    if sealed[0] != MAGIC || !(sealed[1] == FORMAT || sealed[1] == FORMAT_V1) {
        return Err(format!(
            "expected a sealed segment (bytes eb 02, or eb 01), found {:02x} {:02x}",
            sealed[0], sealed[1]
        ));
    }
    Ok(KeyId::from_bytes(
        sealed[6..14].try_into().expect("8 bytes"),
    ))
}

/// [`key_id`], refusing a segment sealed for another subject.
pub(crate) fn key_id_for(sealed: &[u8], subject: &SubjectHash) -> Result<KeyId, String> {
    let id = key_id(sealed)?;
    if sealed[2..6] != subject.as_bytes()[..4] {
        return Err(
            "it was sealed for another data subject (copied from another message)".to_owned(),
        );
    }
    Ok(id)
}

/// Opens a sealed segment with its key; the error says why it does not
/// open.
pub(crate) fn open(key: &DataKey, to: SealedFor<'_>, sealed: &[u8]) -> Result<Bytes, String> {
    let id = key_id_for(sealed, to.subject)?;
    if id != key.id() {
        return Err(format!("sealed with key {id}, not with key {}", key.id()));
    }
    let nonce: [u8; 12] = sealed[14..HEADER].try_into().expect("12 bytes");
    let (body, tag) = sealed[HEADER..].split_at(sealed.len() - HEADER - 16);
    let mut plain = body.to_vec();
    to.with_associated_data(sealed[1], |ad| {
        key.cipher().decrypt_inout_detached(
            &Nonce::from(nonce),
            ad,
            (&mut plain[..]).into(),
            &Tag::<Aes256Gcm>::try_from(tag).expect("16 bytes"),
        )
    })
    .map_err(|_| {
        "it does not open with its subject's key: it was sealed for another message, \
             stream, segment or subject (copied from elsewhere), or altered"
            .to_owned()
    })?;
    Ok(plain.into())
}

/// Seals segment bytes as a producer does: for tooling (sealing data
/// written before a subject was named, a migration between vaults).
///
/// `message` is the id of the original message and `stream` the key of
/// the stream it was produced to, as in [`open_segment`].
pub fn seal_segment(
    key: &DataKey,
    subject: &SubjectHash,
    message: &MessageId,
    stream: &str,
    segment: &str,
    plain: &[u8],
) -> Bytes {
    seal(
        key,
        SealedFor {
            subject,
            message,
            stream: StreamKey::whole(stream),
            segment,
        },
        plain,
    )
}

/// Opens the bytes of a sealed segment as a reader does: for tooling (an
/// offline export, an audit that what a backup holds no longer opens).
///
/// `message` is the id of the original message (for a copy, the id it is a
/// copy of: [`Metadata::original_id`](crate::Metadata::original_id)), and
/// `stream` the key of the stream it was produced to
/// ([`Metadata::stream_key`](crate::Metadata::stream_key)).
pub fn open_segment(
    key: &DataKey,
    subject: &SubjectHash,
    message: &MessageId,
    stream: &str,
    segment: &str,
    sealed: &[u8],
) -> crate::Result<Bytes> {
    let to = SealedFor {
        subject,
        message,
        stream: StreamKey::whole(stream),
        segment,
    };
    open(key, to, sealed).map_err(|reason| crate::Error::Unsealable {
        segment: segment.to_owned(),
        message_id: message.to_string(),
        reason,
    })
}

/// The id of the data key that sealed these bytes.
pub fn sealing_key_id(sealed: &[u8]) -> crate::Result<KeyId> {
    key_id(sealed).map_err(|reason| crate::Error::KeyVault { reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::SubjectKey;

    /// A stream key in its parts binds the same bytes as the key put
    /// together (`{environment}:{uri}`), which tooling passes whole.
    #[test]
    fn a_stream_in_parts_binds_the_whole_key() {
        let key = DataKey::generate();
        let subject = SubjectKey::generate().hash("ann");
        let message = MessageId::new();
        let to = SealedFor {
            subject: &subject,
            message: &message,
            stream: StreamKey {
                environment: Some("prod"),
                uri: "accounts",
            },
            segment: "email",
        };
        let sealed = seal(&key, to, b"ann@example.com");
        let opened = open_segment(&key, &subject, &message, "prod:accounts", "email", &sealed);
        assert_eq!(opened.unwrap(), &b"ann@example.com"[..]);
        for other in [
            "accounts",
            "prodaccounts",
            "prod:accounts2",
            "test:accounts",
        ] {
            assert!(
                open_segment(&key, &subject, &message, other, "email", &sealed).is_err(),
                "opened as stream {other:?}"
            );
        }
    }

    #[test]
    fn a_sealed_segment_opens_only_where_it_was_sealed() {
        let key = DataKey::generate();
        let subjects = SubjectKey::generate();
        let (ann, bob) = (subjects.hash("ann"), subjects.hash("bob"));
        let (m1, m2) = (MessageId::new(), MessageId::new());
        let here = SealedFor {
            subject: &ann,
            message: &m1,
            stream: StreamKey::whole("accounts"),
            segment: "email",
        };
        let sealed = seal(&key, here, b"ann@example.com");
        assert_eq!(sealed.len(), 15 + SEAL_OVERHEAD);
        assert_eq!(key_id(&sealed).unwrap(), key.id());
        assert_eq!(&open(&key, here, &sealed).unwrap()[..], b"ann@example.com");
        assert!(!sealed.windows(15).any(|w| w == b"ann@example.com"));

        for elsewhere in [
            SealedFor {
                message: &m2,
                ..here
            },
            SealedFor {
                segment: "name",
                ..here
            },
            SealedFor {
                stream: StreamKey::whole("accounts.mirror"),
                ..here
            },
        ] {
            let err = open(&key, elsewhere, &sealed).unwrap_err();
            assert!(err.contains("sealed for another message"), "{err}");
        }
        let moved = SealedFor {
            subject: &bob,
            ..here
        };
        let err = open(&key, moved, &sealed).unwrap_err();
        assert!(err.contains("another data subject"), "{err}");
        assert!(key_id_for(&sealed, &bob).is_err());
        assert_eq!(key_id_for(&sealed, &ann).unwrap(), key.id());
        let other = DataKey::generate();
        assert!(open(&other, here, &sealed)
            .unwrap_err()
            .contains("not with key"));
        let mut altered = sealed.to_vec();
        *altered.last_mut().unwrap() ^= 1;
        assert!(open(&key, here, &altered).is_err());
        assert!(key_id(b"plain").unwrap_err().contains("shorter"));
        let mut not_sealed = sealed.to_vec();
        not_sealed[0] = b'{';
        assert!(key_id(&not_sealed).unwrap_err().contains("7b 02"));
    }

    #[test]
    fn nonces_are_fresh() {
        let key = DataKey::generate();
        let (s, m) = (SubjectKey::generate().hash("ann"), MessageId::new());
        let to = SealedFor {
            subject: &s,
            message: &m,
            stream: StreamKey::whole("accounts"),
            segment: "email",
        };
        assert_ne!(seal(&key, to, b"x"), seal(&key, to, b"x"));
    }

    /// Segments sealed in the first format (no stream bound) still open,
    /// whatever the stream.
    #[test]
    fn the_first_format_still_opens() {
        let key = DataKey::generate();
        let (s, m) = (SubjectKey::generate().hash("ann"), MessageId::new());
        let to = SealedFor {
            subject: &s,
            message: &m,
            stream: StreamKey::whole("accounts"),
            segment: "email",
        };
        let nonce = [3u8; 12];
        let mut body = b"ann@example.com".to_vec();
        let tag = to
            .with_associated_data(FORMAT_V1, |ad| {
                key.cipher()
                    .encrypt_inout_detached(&Nonce::from(nonce), ad, (&mut body[..]).into())
            })
            .unwrap();
        let old = [
            &[MAGIC, FORMAT_V1][..],
            &s.as_bytes()[..4],
            key.id().as_bytes(),
            &nonce,
            &body,
            &tag,
        ]
        .concat();
        assert_eq!(&open(&key, to, &old).unwrap()[..], b"ann@example.com");
        let elsewhere = SealedFor {
            stream: StreamKey::whole("other"),
            ..to
        };
        assert!(open(&key, elsewhere, &old).is_ok());
    }
}
