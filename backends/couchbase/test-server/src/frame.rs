//! The memcached binary protocol's packets: a 24-byte header, then framing
//! extras (alternative requests only), extras, key and value.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A classic request.
pub const REQUEST: u8 = 0x80;
/// A request with framing extras (durability, preserve-expiry, ...).
pub const ALT_REQUEST: u8 = 0x08;
/// A response.
pub const RESPONSE: u8 = 0x81;

/// Longest body the server reads: a 20 MiB document and its key and extras.
pub const MAX_BODY: u32 = 21 * 1024 * 1024;

/// A request as it came in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub magic: u8,
    pub opcode: u8,
    pub datatype: u8,
    pub vbucket: u16,
    pub opaque: u32,
    pub cas: u64,
    pub framing: Vec<u8>,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A response to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub opcode: u8,
    pub datatype: u8,
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Response {
    /// An answer to `request` with `status` and nothing else.
    pub fn to(request: &Request, status: u16) -> Self {
        Self {
            opcode: request.opcode,
            status,
            opaque: request.opaque,
            ..Self::default()
        }
    }

    pub fn with_value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = value.into();
        self
    }

    pub fn with_extras(mut self, extras: impl Into<Vec<u8>>) -> Self {
        self.extras = extras.into();
        self
    }

    pub fn with_cas(mut self, cas: u64) -> Self {
        self.cas = cas;
        self
    }

    pub fn with_datatype(mut self, datatype: u8) -> Self {
        self.datatype = datatype;
        self
    }

    /// The packet on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.extras.len() + self.key.len() + self.value.len();
        let mut out = Vec::with_capacity(24 + body);
        out.push(RESPONSE);
        out.push(self.opcode);
        out.extend_from_slice(&(self.key.len() as u16).to_be_bytes());
        out.push(self.extras.len() as u8);
        out.push(self.datatype);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&(body as u32).to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.cas.to_be_bytes());
        out.extend_from_slice(&self.extras);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out
    }
}

/// Why a packet could not be read: the connection is closed after it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("magic 0x{0:02x} is not a request (0x80, or 0x08 with framing extras)")]
    Magic(u8),
    #[error("body of {body} bytes is shorter than its extras and key ({parts} bytes)")]
    Lengths { body: u32, parts: u32 },
    #[error("body of {0} bytes is over the {MAX_BODY}-byte limit")]
    TooLarge(u32),
}

/// Reads one request; `None` at a clean end of the connection.
pub async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Request>, FrameError> {
    let mut header = [0u8; 24];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let magic = header[0];
    let (framing_len, key_len) = match magic {
        REQUEST => (0u32, u32::from(u16::from_be_bytes([header[2], header[3]]))),
        ALT_REQUEST => (u32::from(header[2]), u32::from(header[3])),
        other => return Err(FrameError::Magic(other)),
    };
    let extras_len = u32::from(header[4]);
    let body = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if body > MAX_BODY {
        return Err(FrameError::TooLarge(body));
    }
    let parts = framing_len + extras_len + key_len;
    if parts > body {
        return Err(FrameError::Lengths { body, parts });
    }
    let mut data = vec![0u8; body as usize];
    reader.read_exact(&mut data).await?;
    let value = data.split_off(parts as usize);
    let key = data.split_off((framing_len + extras_len) as usize);
    let extras = data.split_off(framing_len as usize);
    Ok(Some(Request {
        magic,
        opcode: header[1],
        datatype: header[5],
        vbucket: u16::from_be_bytes([header[6], header[7]]),
        opaque: u32::from_be_bytes([header[12], header[13], header[14], header[15]]),
        cas: u64::from_be_bytes(header[16..24].try_into().expect("8 bytes")),
        framing: data,
        extras,
        key,
        value,
    }))
}

/// Writes one response.
pub async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    response: &Response,
) -> std::io::Result<()> {
    writer.write_all(&response.encode()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_bytes(
        magic: u8,
        framing: &[u8],
        extras: &[u8],
        key: &[u8],
        value: &[u8],
    ) -> Vec<u8> {
        let body = framing.len() + extras.len() + key.len() + value.len();
        let mut out = vec![magic, 0x01];
        if magic == ALT_REQUEST {
            out.push(framing.len() as u8);
            out.push(key.len() as u8);
        } else {
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        }
        out.push(extras.len() as u8);
        out.push(0x01);
        out.extend_from_slice(&7u16.to_be_bytes());
        out.extend_from_slice(&(body as u32).to_be_bytes());
        out.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        out.extend_from_slice(&42u64.to_be_bytes());
        for part in [framing, extras, key, value] {
            out.extend_from_slice(part);
        }
        out
    }

    #[tokio::test]
    async fn classic_and_framed_requests_split_into_their_parts() {
        for (magic, framing) in [(REQUEST, &b""[..]), (ALT_REQUEST, &b"\x13\x01"[..])] {
            let bytes = request_bytes(magic, framing, b"\0\0\0\x02\0\0\0\0", b"\0key", b"value");
            let got = read_request(&mut &bytes[..]).await.unwrap().unwrap();
            assert_eq!(got.opcode, 0x01);
            assert_eq!(got.datatype, 0x01);
            assert_eq!(got.vbucket, 7);
            assert_eq!(got.opaque, 0xdead_beef);
            assert_eq!(got.cas, 42);
            assert_eq!(got.framing, framing);
            assert_eq!(got.extras, b"\0\0\0\x02\0\0\0\0");
            assert_eq!(got.key, b"\0key");
            assert_eq!(got.value, b"value");
        }
    }

    #[tokio::test]
    async fn bad_packets_are_refused_with_the_reason() {
        let mut bytes = request_bytes(REQUEST, b"", b"", b"key", b"");
        bytes[0] = 0x81;
        let e = read_request(&mut &bytes[..]).await.unwrap_err();
        assert!(e.to_string().contains("magic 0x81"), "{e}");

        let mut bytes = request_bytes(REQUEST, b"", b"", b"key", b"");
        bytes[8..12].copy_from_slice(&2u32.to_be_bytes());
        let e = read_request(&mut &bytes[..]).await.unwrap_err();
        assert!(
            e.to_string().contains("shorter than its extras and key"),
            "{e}"
        );

        let mut bytes = request_bytes(REQUEST, b"", b"", b"key", b"");
        bytes[8..12].copy_from_slice(&(MAX_BODY + 1).to_be_bytes());
        let e = read_request(&mut &bytes[..]).await.unwrap_err();
        assert!(matches!(e, FrameError::TooLarge(_)), "{e}");

        assert!(read_request(&mut &b""[..]).await.unwrap().is_none());
    }

    #[test]
    fn responses_carry_their_lengths() {
        let r = Response {
            opcode: 0x00,
            status: 0,
            opaque: 9,
            cas: 5,
            extras: vec![0, 0, 0, 1],
            value: b"abc".to_vec(),
            ..Response::default()
        }
        .encode();
        assert_eq!(r[0], RESPONSE);
        assert_eq!(r[4], 4, "extras length");
        assert_eq!(
            u32::from_be_bytes(r[8..12].try_into().unwrap()),
            7,
            "body length"
        );
        assert_eq!(
            u32::from_be_bytes(r[12..16].try_into().unwrap()),
            9,
            "opaque"
        );
        assert_eq!(&r[24..], b"\0\0\0\x01abc");
    }
}
