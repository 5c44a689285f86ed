//! One client connection: what it negotiated, who it is, which bucket it
//! selected, and the answer to each command.

use std::sync::Arc;

use crate::cluster_map;
use crate::data::{Data, Refusal, Write};
use crate::error_map::error_map;
use crate::frame::{Request, Response};
use crate::hello;
use crate::opcode as op;
use crate::scram::{Exchange, Mechanism, ServerChoice};
use crate::settings::Settings;
use crate::status;

/// What every connection shares.
pub struct Shared {
    pub settings: Settings,
    pub data: Data,
    pub host: String,
    pub port: u16,
}

pub struct Session {
    shared: Arc<Shared>,
    collections: bool,
    json: bool,
    user: Option<String>,
    bucket: Option<String>,
    exchange: Option<Exchange>,
}

impl Session {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            collections: false,
            json: false,
            user: None,
            bucket: None,
            exchange: None,
        }
    }

    /// The answer to one request.
    pub fn answer(&mut self, r: &Request) -> Response {
        match r.opcode {
            op::HELLO => self.hello(r),
            op::GET_ERROR_MAP => {
                let version = match r.value[..] {
                    [a, b] => u16::from_be_bytes([a, b]),
                    _ => return Response::to(r, status::INVALID_ARGUMENTS),
                };
                Response::to(r, status::SUCCESS)
                    .with_datatype(if self.json { 0x01 } else { 0 })
                    .with_value(error_map(version).to_string())
            }
            op::SASL_LIST_MECHS => {
                let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
                Response::to(r, status::SUCCESS).with_value(names.join(" "))
            }
            op::SASL_AUTH => self.sasl_auth(r),
            op::SASL_STEP => self.sasl_step(r),
            op::NOOP => Response::to(r, status::SUCCESS),
            _ if self.user.is_none() => Response::to(r, status::NO_ACCESS),
            op::SELECT_BUCKET => self.select_bucket(r),
            op::GET_CLUSTER_CONFIG => self.cluster_config(r),
            op::GET_COLLECTION_ID => self.collection_id(r),
            op::GET | op::SET | op::ADD | op::REPLACE | op::DELETE | op::TOUCH | op::GAT => {
                self.document(r)
            }
            _ => Response::to(r, status::UNKNOWN_COMMAND),
        }
    }

    fn hello(&mut self, r: &Request) -> Response {
        let on = hello::negotiate(&r.value);
        self.collections = on.contains(&hello::COLLECTIONS);
        self.json = on.contains(&hello::JSON);
        let value: Vec<u8> = on.iter().flat_map(|f| f.to_be_bytes()).collect();
        Response::to(r, status::SUCCESS).with_value(value)
    }

    fn sasl_auth(&mut self, r: &Request) -> Response {
        self.exchange = None;
        let Some(mechanism) = Mechanism::from_name(&r.key) else {
            return Response::to(r, status::AUTH_ERROR).with_value(format!(
                "unsupported mechanism {:?}",
                String::from_utf8_lossy(&r.key)
            ));
        };
        let settings = &self.shared.settings;
        match Exchange::start(
            mechanism,
            &r.value,
            |u| settings.password_of(u),
            ServerChoice::random(),
        ) {
            Ok((exchange, server_first)) => {
                self.exchange = Some(exchange);
                Response::to(r, status::AUTH_CONTINUE).with_value(server_first)
            }
            Err(e) => Response::to(r, status::AUTH_ERROR).with_value(e.to_string()),
        }
    }

    fn sasl_step(&mut self, r: &Request) -> Response {
        let Some(exchange) = self.exchange.take() else {
            return Response::to(r, status::AUTH_ERROR).with_value("SASL_STEP before SASL_AUTH");
        };
        let user = exchange.user().to_owned();
        match exchange.finish(&r.value) {
            Ok(server_final) => {
                self.user = Some(user);
                Response::to(r, status::SUCCESS).with_value(server_final)
            }
            Err(e) => Response::to(r, status::AUTH_ERROR).with_value(e.to_string()),
        }
    }

    fn select_bucket(&mut self, r: &Request) -> Response {
        let name = String::from_utf8_lossy(&r.key).into_owned();
        if !self.shared.settings.has_bucket(&name) {
            return Response::to(r, status::KEY_NOT_FOUND);
        }
        self.bucket = Some(name);
        Response::to(r, status::SUCCESS)
    }

    fn cluster_config(&self, r: &Request) -> Response {
        let (host, port) = (&self.shared.host, self.shared.port);
        let config = match &self.bucket {
            Some(b) => cluster_map::bucket(host, port, b),
            None => cluster_map::cluster(host, port),
        };
        Response::to(r, status::SUCCESS)
            .with_datatype(if self.json { 0x01 } else { 0 })
            .with_value(config.to_string())
    }

    fn collection_id(&self, r: &Request) -> Response {
        let Some(bucket) = &self.bucket else {
            return Response::to(r, status::NO_BUCKET);
        };
        // The path is in the value, or in the key for older clients.
        let path = if r.value.is_empty() { &r.key } else { &r.value };
        let path = String::from_utf8_lossy(path);
        let (scope, collection) = path.split_once('.').unwrap_or((&path, ""));
        let settings = &self.shared.settings;
        match settings.collection_id(bucket, scope, collection) {
            Ok(cid) => {
                let mut extras = settings.manifest_uid().to_be_bytes().to_vec();
                extras.extend_from_slice(&cid.to_be_bytes());
                Response::to(r, status::SUCCESS).with_extras(extras)
            }
            Err(true) => Response::to(r, status::UNKNOWN_SCOPE),
            Err(false) => Response::to(r, status::UNKNOWN_COLLECTION),
        }
    }

    fn document(&self, r: &Request) -> Response {
        let Some(bucket) = &self.bucket else {
            return Response::to(r, status::NO_BUCKET);
        };
        let (cid, key) = if self.collections {
            match leb128(&r.key) {
                Some(split) => split,
                None => return Response::to(r, status::INVALID_ARGUMENTS),
            }
        } else {
            (0, &r.key[..])
        };
        if !self.shared.settings.knows_collection(bucket, cid) {
            return Response::to(r, status::UNKNOWN_COLLECTION);
        }
        let at = (bucket.as_str(), cid, key);
        let data = &self.shared.data;
        match r.opcode {
            op::GET => match data.get(at) {
                Some(d) => Response::to(r, status::SUCCESS)
                    .with_extras(d.flags.to_be_bytes())
                    .with_datatype(d.datatype)
                    .with_cas(d.cas)
                    .with_value(d.value),
                None => Response::to(r, status::KEY_NOT_FOUND),
            },
            op::SET | op::ADD | op::REPLACE => {
                let [f0, f1, f2, f3, e0, e1, e2, e3] = r.extras[..] else {
                    return Response::to(r, status::INVALID_ARGUMENTS);
                };
                let how = match r.opcode {
                    op::SET => Write::Upsert,
                    op::ADD => Write::Insert,
                    _ => Write::Replace,
                };
                let flags = u32::from_be_bytes([f0, f1, f2, f3]);
                let expiry = u32::from_be_bytes([e0, e1, e2, e3]);
                let written =
                    data.write(at, how, r.cas, r.value.clone(), flags, r.datatype, expiry);
                mutation(r, written)
            }
            op::DELETE => mutation(r, data.delete(at, r.cas)),
            _ => {
                // TOUCH and GAT: 4 bytes of expiry.
                let Ok(expiry) = <[u8; 4]>::try_from(&r.extras[..]) else {
                    return Response::to(r, status::INVALID_ARGUMENTS);
                };
                match data.touch(at, u32::from_be_bytes(expiry)) {
                    Ok(d) if r.opcode == op::GAT => Response::to(r, status::SUCCESS)
                        .with_extras(d.flags.to_be_bytes())
                        .with_datatype(d.datatype)
                        .with_cas(d.cas)
                        .with_value(d.value),
                    Ok(d) => Response::to(r, status::SUCCESS).with_cas(d.cas),
                    Err(refusal) => Response::to(r, refused(refusal)),
                }
            }
        }
    }
}

fn mutation(r: &Request, result: Result<u64, Refusal>) -> Response {
    match result {
        Ok(cas) => Response::to(r, status::SUCCESS).with_cas(cas),
        Err(refusal) => Response::to(r, refused(refusal)),
    }
}

fn refused(refusal: Refusal) -> u16 {
    match refusal {
        Refusal::NotFound => status::KEY_NOT_FOUND,
        Refusal::Exists => status::KEY_EXISTS,
        Refusal::TooLarge => status::TOO_BIG,
    }
}

/// Splits a collection id (unsigned LEB128, at most 5 bytes) off a key.
pub fn leb128(key: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u64 = 0;
    for (i, &b) in key.iter().enumerate().take(5) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, &key[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_ids_are_leb128_prefixes() {
        assert_eq!(leb128(b"\x00key"), Some((0, &b"key"[..])));
        assert_eq!(leb128(b"\x08k"), Some((8, &b"k"[..])));
        assert_eq!(leb128(b"\x80\x01k"), Some((128, &b"k"[..])));
        assert_eq!(leb128(b"\xff\xff\xff\xff\x0f"), Some((u32::MAX, &b""[..])));
        assert_eq!(leb128(b"\x80"), None, "unterminated");
        assert_eq!(leb128(b""), None);
        assert_eq!(leb128(b"\xff\xff\xff\xff\x7f"), None, "over 32 bits");
    }
}

#[cfg(test)]
mod conversation {
    //! Whole conversations with a session, the client side of SCRAM
    //! computed here from RFC 5802.

    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use hmac::digest::{Digest, KeyInit, Mac};

    use super::*;

    fn session() -> Session {
        let settings = Settings::default()
            .user("eb", "pw")
            .bucket("events")
            .collection("app", "payloads");
        Session::new(Arc::new(Shared {
            settings,
            data: Data::default(),
            host: "127.0.0.1".into(),
            port: 11210,
        }))
    }

    fn request(opcode: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Request {
        Request {
            magic: crate::frame::REQUEST,
            opcode,
            opaque: 77,
            key: key.to_vec(),
            extras: extras.to_vec(),
            value: value.to_vec(),
            ..Request::default()
        }
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <hmac::Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// Runs SCRAM-SHA512 as `user` with `password`; the status of the step.
    fn log_in(s: &mut Session, user: &str, password: &str) -> u16 {
        let first_bare = format!("n={user},r=clientnonce");
        let r = s.answer(&request(
            op::SASL_AUTH,
            b"SCRAM-SHA512",
            b"",
            format!("n,,{first_bare}").as_bytes(),
        ));
        assert_eq!(r.status, status::AUTH_CONTINUE);
        let server_first = String::from_utf8(r.value).unwrap();
        let mut parts = server_first.split(',');
        let nonce = parts.next().unwrap().strip_prefix("r=").unwrap().to_owned();
        let salt = BASE64
            .decode(parts.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = parts
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(nonce.starts_with("clientnonce") && nonce.len() > "clientnonce".len());
        let mut salted = vec![0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = sha2::Sha512::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let r = s.answer(&request(
            op::SASL_STEP,
            b"SCRAM-SHA512",
            b"",
            format!("{without_proof},p={}", BASE64.encode(proof)).as_bytes(),
        ));
        if r.status == status::SUCCESS {
            let expected = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
            assert_eq!(
                r.value,
                format!("v={}", BASE64.encode(expected)).into_bytes()
            );
        }
        r.status
    }

    fn hello(s: &mut Session, features: &[u16]) -> Vec<u8> {
        let value: Vec<u8> = features.iter().flat_map(|f| f.to_be_bytes()).collect();
        s.answer(&request(op::HELLO, b"test", b"", &value)).value
    }

    #[test]
    fn nothing_but_the_handshake_before_authentication() {
        let mut s = session();
        assert_eq!(
            s.answer(&request(op::SELECT_BUCKET, b"events", b"", b""))
                .status,
            status::NO_ACCESS
        );
        assert_eq!(
            s.answer(&request(op::GET, b"\0k", b"", b"")).status,
            status::NO_ACCESS
        );
        let mechs = s.answer(&request(op::SASL_LIST_MECHS, b"", b"", b""));
        assert_eq!(mechs.value, b"SCRAM-SHA512 SCRAM-SHA256");
        assert_eq!(log_in(&mut s, "eb", "wrong"), status::AUTH_ERROR);
        assert_eq!(log_in(&mut s, "nobody", "pw"), status::AUTH_ERROR);
        assert_eq!(
            s.answer(&request(op::SELECT_BUCKET, b"events", b"", b""))
                .status,
            status::NO_ACCESS
        );
        let r = s.answer(&request(op::SASL_AUTH, b"PLAIN", b"", b"\0eb\0pw"));
        assert_eq!(r.status, status::AUTH_ERROR);
        assert!(String::from_utf8_lossy(&r.value).contains("unsupported mechanism \"PLAIN\""));
        let r = s.answer(&request(op::SASL_STEP, b"SCRAM-SHA512", b"", b"c=biws"));
        assert_eq!(
            r.status,
            status::AUTH_ERROR,
            "a step with no exchange started"
        );
    }

    #[test]
    fn a_client_logs_in_selects_a_bucket_and_reads_its_writes() {
        let mut s = session();
        let on = hello(
            &mut s,
            &[crate::hello::COLLECTIONS, crate::hello::JSON, 0x0a],
        );
        assert_eq!(on, [0x00, 0x12, 0x00, 0x0b]);
        assert_eq!(log_in(&mut s, "eb", "pw"), status::SUCCESS);
        assert_eq!(
            s.answer(&request(op::GET, b"\0k", b"", b"")).status,
            status::NO_BUCKET
        );
        let config = s.answer(&request(op::GET_CLUSTER_CONFIG, b"", b"", b""));
        let config: serde_json::Value = serde_json::from_slice(&config.value).unwrap();
        assert!(
            config.get("vBucketServerMap").is_none(),
            "no bucket yet: the cluster's config"
        );
        assert_eq!(
            s.answer(&request(op::SELECT_BUCKET, b"nope", b"", b""))
                .status,
            status::KEY_NOT_FOUND
        );
        assert_eq!(
            s.answer(&request(op::SELECT_BUCKET, b"events", b"", b""))
                .status,
            status::SUCCESS
        );
        let config = s.answer(&request(op::GET_CLUSTER_CONFIG, b"", b"", b""));
        assert_eq!(config.datatype, 0x01, "JSON was negotiated");
        let config: serde_json::Value = serde_json::from_slice(&config.value).unwrap();
        assert_eq!(config["name"], "events");

        let id = s.answer(&request(op::GET_COLLECTION_ID, b"", b"", b"app.payloads"));
        assert_eq!(id.status, status::SUCCESS);
        assert_eq!(&id.extras[8..], &8u32.to_be_bytes());
        let unknown = |s: &mut Session, path: &[u8]| {
            s.answer(&request(op::GET_COLLECTION_ID, b"", b"", path))
                .status
        };
        assert_eq!(unknown(&mut s, b"app.nope"), status::UNKNOWN_COLLECTION);
        assert_eq!(unknown(&mut s, b"nope.payloads"), status::UNKNOWN_SCOPE);

        let set_extras = [0, 0, 0, 5, 0, 0, 0, 0];
        let set = s.answer(&request(op::SET, b"\x08k", &set_extras, b"value"));
        assert_eq!(set.status, status::SUCCESS);
        let got = s.answer(&request(op::GET, b"\x08k", b"", b""));
        assert_eq!(
            (got.status, got.value.as_slice(), got.cas),
            (status::SUCCESS, &b"value"[..], set.cas)
        );
        assert_eq!(got.extras, 5u32.to_be_bytes(), "the flags come back");
        assert_eq!(
            s.answer(&request(op::GET, b"\0k", b"", b"")).status,
            status::KEY_NOT_FOUND,
            "another collection"
        );
        assert_eq!(
            s.answer(&request(op::GET, b"\x09k", b"", b"")).status,
            status::UNKNOWN_COLLECTION
        );
        assert_eq!(
            s.answer(&request(op::GET, b"\x80", b"", b"")).status,
            status::INVALID_ARGUMENTS
        );
        assert_eq!(
            s.answer(&request(op::SET, b"\x08k", b"\0\0", b"v")).status,
            status::INVALID_ARGUMENTS
        );
        assert_eq!(
            s.answer(&request(op::ADD, b"\x08k", &set_extras, b"v"))
                .status,
            status::KEY_EXISTS
        );
        assert_eq!(
            s.answer(&request(op::DELETE, b"\x08k", b"", b"")).status,
            status::SUCCESS
        );
        assert_eq!(
            s.answer(&request(op::DELETE, b"\x08k", b"", b"")).status,
            status::KEY_NOT_FOUND
        );
        assert_eq!(
            s.answer(&request(0x83, b"", b"", b"")).status,
            status::UNKNOWN_COMMAND
        );
    }

    #[test]
    fn without_collections_keys_have_no_prefix() {
        let mut s = session();
        hello(&mut s, &[]);
        assert_eq!(log_in(&mut s, "eb", "pw"), status::SUCCESS);
        s.answer(&request(op::SELECT_BUCKET, b"events", b"", b""));
        let set = s.answer(&request(op::SET, b"\x08k", &[0; 8], b"v"));
        assert_eq!(set.status, status::SUCCESS);
        let data = &s.shared.data;
        assert!(
            data.get(("events", 0, b"\x08k")).is_some(),
            "the whole key, default collection"
        );
        let config = s.answer(&request(op::GET_CLUSTER_CONFIG, b"", b"", b""));
        assert_eq!(config.datatype, 0, "no JSON datatype unless negotiated");
    }
}
