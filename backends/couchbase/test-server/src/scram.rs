//! SCRAM (RFC 5802, with SHA-256 or SHA-512 as in RFC 7677) from the
//! server's side: the SASL exchange the Couchbase SDKs run over plain TCP.
//!
//! The client sends its first message with SASL_AUTH; the server answers
//! with its salt, iteration count and nonce (status "continue"); the client
//! proves it knows the password with SASL_STEP, and the server answers
//! with its own signature. An unknown user fails at the proof, like a
//! wrong password, so that the exchange does not tell which users exist.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::digest::{Digest, KeyInit, Mac};
use hmac::{EagerHash, Hmac};

/// The SCRAM variants the server offers, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Sha512,
    Sha256,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha512, Mechanism::Sha256];

    /// The name on the wire (Couchbase spells it without the dash RFC 7677
    /// has).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha512 => "SCRAM-SHA512",
            Mechanism::Sha256 => "SCRAM-SHA256",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().as_bytes() == name)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha512 => hmac_with::<sha2::Sha512>(key, data),
            Mechanism::Sha256 => hmac_with::<sha2::Sha256>(key, data),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha512 => sha2::Sha512::digest(data).to_vec(),
            Mechanism::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha512 => pbkdf2_with::<sha2::Sha512>(password, salt, iterations, 64),
            Mechanism::Sha256 => pbkdf2_with::<sha2::Sha256>(password, salt, iterations, 32),
        }
    }
}

fn hmac_with<D: EagerHash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn pbkdf2_with<D: EagerHash>(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
    out
}

/// Why an exchange failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported (gs2 header {0:?}; expected \"n,,\")")]
    ChannelBinding(String),
    #[error("the final message's nonce is not the one the server sent")]
    Nonce,
    #[error("authentication failed for user {0:?}")]
    Failed(String),
}

/// What the server chooses for one exchange: its nonce part, the salt and
/// the iteration count.
#[derive(Clone, Debug)]
pub struct ServerChoice {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

impl ServerChoice {
    /// A random nonce and salt, 4,096 iterations (RFC 7677's minimum).
    pub fn random() -> Self {
        let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect();
        let salt: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
            .take(16)
            .collect();
        Self {
            nonce,
            salt,
            iterations: 4096,
        }
    }
}

/// An exchange after the server's first message, waiting for the proof.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    user: String,
    salted: Vec<u8>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Exchange {
    /// Reads the client's first message; returns the exchange and the
    /// server's first message. `password` is the user's, `None` for a user
    /// the server does not know.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        password: impl FnOnce(&str) -> Option<String>,
        choice: ServerChoice,
    ) -> Result<(Self, String), ScramError> {
        let text =
            std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let bare = text
            .strip_prefix("n,,")
            .ok_or_else(|| ScramError::ChannelBinding(text.chars().take(3).collect()))?;
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            if let Some(v) = attribute.strip_prefix("n=") {
                user = Some(unescape_name(v)?);
            } else if let Some(v) = attribute.strip_prefix("r=") {
                client_nonce = Some(v);
            }
        }
        let user = user.ok_or(ScramError::Malformed("no user name (n=)"))?;
        let client_nonce = client_nonce.ok_or(ScramError::Malformed("no client nonce (r=)"))?;
        // An unknown user gets a password nobody knows: the proof fails.
        let secret = password(&user).unwrap_or_else(|| ServerChoice::random().nonce);
        let nonce = format!("{client_nonce}{}", choice.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&choice.salt),
            choice.iterations
        );
        let exchange = Self {
            mechanism,
            salted: mechanism.salted_password(secret.as_bytes(), &choice.salt, choice.iterations),
            user,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// The user the exchange is for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client's proof; returns the server's final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof (p=)"))?;
        let nonce = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce (r=) in the final message"))?;
        if nonce != self.nonce {
            return Err(ScramError::Nonce);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let m = self.mechanism;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_key = m.hmac(&self.salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::Failed(self.user));
        }
        let claimed_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if m.hash(&claimed_key) != stored_key {
            return Err(ScramError::Failed(self.user));
        }
        let server_key = m.hmac(&self.salted, b"Server Key");
        Ok(format!(
            "v={}",
            BASE64.encode(m.hmac(&server_key, auth_message.as_bytes()))
        ))
    }
}

/// A SCRAM name: `=2C` is a comma and `=3D` an equals sign.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: the SCRAM-SHA-256 example, byte for byte.
    #[test]
    fn rfc_7677_example_exchange() {
        let choice = ServerChoice {
            nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            salt: BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            iterations: 4096,
        };
        let (exchange, server_first) = Exchange::start(
            Mechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| (u == "user").then(|| "pencil".to_owned()),
            choice,
        )
        .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let server_final = exchange
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_wrong_password_or_unknown_user_fails_at_the_proof() {
        let run = |known: bool| {
            let choice = ServerChoice {
                nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
                salt: BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
                iterations: 4096,
            };
            let (exchange, _) = Exchange::start(
                Mechanism::Sha256,
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |_| known.then(|| "not pencil".to_owned()),
                choice,
            )
            .unwrap();
            exchange.finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        };
        assert_eq!(run(true), Err(ScramError::Failed("user".into())));
        assert_eq!(run(false), Err(ScramError::Failed("user".into())));
    }

    #[test]
    fn malformed_messages_say_what_is_wrong() {
        let start = |m: &[u8]| {
            Exchange::start(Mechanism::Sha512, m, |_| None, ServerChoice::random()).map(|_| ())
        };
        assert_eq!(
            start(b"p=tls,,n=u,r=x"),
            Err(ScramError::ChannelBinding("p=t".into()))
        );
        assert_eq!(
            start(b"n,,r=x"),
            Err(ScramError::Malformed("no user name (n=)"))
        );
        assert_eq!(
            start(b"n,,n=u"),
            Err(ScramError::Malformed("no client nonce (r=)"))
        );
        assert_eq!(
            start(b"n,,n=a=2Cb=3Dc=,r=x"),
            Err(ScramError::Malformed("bad escape in the user name"))
        );
        let (exchange, _) = Exchange::start(
            Mechanism::Sha512,
            b"n,,n=a=2Cb=3Dc,r=x",
            |_| None,
            ServerChoice::random(),
        )
        .unwrap();
        assert_eq!(exchange.user(), "a,b=c");
        assert_eq!(
            exchange.finish(b"c=biws,r=other,p=AAAA"),
            Err(ScramError::Nonce)
        );
    }
}
