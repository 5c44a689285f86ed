//! How to reach Couchbase: a connection string and credentials, or the
//! environment.

use std::fmt;
use std::time::Duration;

use event_backbone_core::config::{env_var, Secret};

use crate::error::{Error, Result};

/// Environment variable with the connection string (`couchbase://host`).
pub const CONNSTR_VAR: &str = "COUCHBASE_EVENT_SOURCE_CONNSTR";
/// Environment variable with the user name.
pub const USER_VAR: &str = "COUCHBASE_EVENT_SOURCE_USER";
/// Environment variable with the password.
pub const PASSWORD_VAR: &str = "COUCHBASE_EVENT_SOURCE_PASS";
/// Environment variable with the bucket.
pub const BUCKET_VAR: &str = "COUCHBASE_EVENT_SOURCE_BUCKET";

/// Where and how to connect, then settings that read like sentences. The
/// password never appears in `Debug` output, errors or logs.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_couchbase::CouchbaseConfig;
/// let config = CouchbaseConfig::from_url("couchbase://127.0.0.1")?
///     .credentials("app", "s3cret")
///     .bucket("events")
///     .collection("app", "payloads")
///     .connect_timeout(Duration::from_secs(5));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.keyspace(), "events.app.payloads");
/// # Ok::<(), event_backbone_couchbase::Error>(())
/// ```
#[derive(Clone)]
pub struct CouchbaseConfig {
    pub(crate) connstr: String,
    pub(crate) user: String,
    pub(crate) password: Secret,
    pub(crate) bucket: String,
    pub(crate) scope: String,
    pub(crate) collection: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) concurrency: usize,
}

impl CouchbaseConfig {
    /// From a connection string, `couchbase://host[:port][,host...]` or
    /// `couchbases://...` (TLS). Credentials and bucket are set apart
    /// ([`CouchbaseConfig::credentials`], [`CouchbaseConfig::bucket`]); a
    /// connection string with a user name or password in it is refused.
    pub fn from_url(connstr: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: connstr
                .split('@')
                .next_back()
                .unwrap_or_default()
                .to_owned(),
            reason: reason.to_owned(),
        };
        let Some((scheme, rest)) = connstr.split_once("://") else {
            return Err(invalid("expected couchbase://host or couchbases://host"));
        };
        if scheme != "couchbase" && scheme != "couchbases" {
            return Err(invalid("expected couchbase://host or couchbases://host"));
        }
        if rest.contains('@') {
            return Err(invalid(
                "credentials go in CouchbaseConfig::credentials (or COUCHBASE_EVENT_SOURCE_USER and _PASS), not in the connection string",
            ));
        }
        if rest.split(['?', '/']).next().unwrap_or_default().is_empty() {
            return Err(invalid("no host"));
        }
        Ok(Self {
            connstr: connstr.to_owned(),
            user: String::new(),
            password: Secret::new(""),
            bucket: String::new(),
            scope: "_default".to_owned(),
            collection: "_default".to_owned(),
            connect_timeout: Duration::from_secs(10),
            concurrency: 64,
        })
    }

    /// From `COUCHBASE_EVENT_SOURCE_CONNSTR`, `_USER`, `_PASS` and
    /// `_BUCKET`, all four required: the library never guesses a server.
    pub fn from_env() -> Result<Self> {
        let connstr = required_var(CONNSTR_VAR, "a connection string such as couchbase://host")?;
        let user = required_var(USER_VAR, "the user name")?;
        let password = required_var(PASSWORD_VAR, "the user's password")?;
        let bucket = required_var(BUCKET_VAR, "the bucket of the payloads")?;
        Ok(Self::from_url(&connstr)?
            .credentials(&user, password)
            .bucket(&bucket))
    }

    /// From a store URL, as the facade's `open_store` takes it: the
    /// connection string with the keyspace as its path,
    /// `couchbase://host[:port][,host...]/BUCKET[/SCOPE/COLLECTION][?sdk-options]`
    /// (`_default._default` when no collection is named). A URL never
    /// carries credentials: the user and password come from
    /// `COUCHBASE_EVENT_SOURCE_USER` and `_PASS`, both required.
    ///
    /// ```
    /// # use event_backbone_couchbase::CouchbaseConfig;
    /// let error = CouchbaseConfig::from_store_url("couchbase://127.0.0.1").unwrap_err();
    /// assert!(error.to_string().contains("no bucket"));
    /// ```
    pub fn from_store_url(url: &str) -> Result<Self> {
        let config = Self::keyspace_from_url(url)?;
        let user = required_var(
            USER_VAR,
            "the user name (a couchbase:// URL carries no credentials)",
        )?;
        let password = required_var(
            PASSWORD_VAR,
            "the user's password (a couchbase:// URL carries no credentials)",
        )?;
        Ok(config.credentials(&user, password))
    }

    /// [`Self::from_store_url`] without the credentials.
    fn keyspace_from_url(url: &str) -> Result<Self> {
        let (address, options) = match url.split_once('?') {
            Some((address, options)) => (address, Some(options)),
            None => (url, None),
        };
        if address.contains('@') {
            // Anywhere before the options: a password may hold a `/`.
            return Err(Error::InvalidAddress {
                address: address.rsplit('@').next().unwrap_or_default().to_owned(),
                reason: "credentials go in COUCHBASE_EVENT_SOURCE_USER and _PASS, not in the URL"
                    .to_owned(),
            });
        }
        let (hosts, keyspace) = match address.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('/') {
                Some((hosts, keyspace)) => (format!("{scheme}://{hosts}"), keyspace),
                None => (address.to_owned(), ""),
            },
            None => (address.to_owned(), ""),
        };
        let connstr = match options {
            Some(options) => format!("{hosts}?{options}"),
            None => hosts,
        };
        let config = Self::from_url(&connstr)?;
        let invalid = |reason: &str| Error::InvalidAddress {
            address: address
                .split('@')
                .next_back()
                .unwrap_or_default()
                .to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = keyspace.split('/').collect();
        let (bucket, collection) =
            match parts.as_slice() {
                [""] => {
                    return Err(invalid(
                        "no bucket: expected couchbase://host/BUCKET[/SCOPE/COLLECTION]",
                    ))
                }
                [bucket] => (*bucket, None),
                [bucket, scope, collection] => (*bucket, Some((*scope, *collection))),
                _ => return Err(invalid(
                    "expected couchbase://host/BUCKET or couchbase://host/BUCKET/SCOPE/COLLECTION",
                )),
            };
        if bucket.is_empty() || collection.is_some_and(|(s, c)| s.is_empty() || c.is_empty()) {
            return Err(invalid("an empty bucket, scope or collection name"));
        }
        let name_ok = |name: &str| {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.%-".contains(&b))
        };
        let names = [
            Some(bucket),
            collection.map(|c| c.0),
            collection.map(|c| c.1),
        ];
        if !names.into_iter().flatten().all(name_ok) {
            return Err(invalid(
                "a bucket, scope or collection name holds a character Couchbase refuses \
                 (expected letters, digits, _ . % -)",
            ));
        }
        let config = config.bucket(bucket);
        Ok(match collection {
            Some((scope, collection)) => config.collection(scope, collection),
            None => config,
        })
    }

    /// The user and password (role-based access).
    pub fn credentials(mut self, user: &str, password: impl Into<Secret>) -> Self {
        self.user = user.to_owned();
        self.password = password.into();
        self
    }

    /// The bucket of the payloads (required).
    pub fn bucket(mut self, name: &str) -> Self {
        self.bucket = name.to_owned();
        self
    }

    /// The collection of the payloads (default `_default._default`).
    pub fn collection(mut self, scope: &str, collection: &str) -> Self {
        self.scope = scope.to_owned();
        self.collection = collection.to_owned();
        self
    }

    /// How long `connect` may take, a wrong password or an unreachable
    /// server included (default 10 s; the SDK itself would retry for
    /// ever).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Operations of one batch in flight at once (default 64; the SDK
    /// pipelines them on its connections).
    pub fn concurrency(mut self, operations: usize) -> Self {
        self.concurrency = operations.max(1);
        self
    }

    /// `bucket.scope.collection`.
    pub fn keyspace(&self) -> String {
        format!("{}.{}.{}", self.bucket, self.scope, self.collection)
    }

    /// The connection string (it holds no secret).
    pub fn connstr(&self) -> &str {
        &self.connstr
    }
}

/// A variable the configuration cannot do without.
fn required_var(name: &'static str, expected: &'static str) -> Result<String> {
    env_var(name).ok_or(Error::MissingVariable { name, expected })
}

impl fmt::Debug for CouchbaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CouchbaseConfig")
            .field("connstr", &self.connstr)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("keyspace", &self.keyspace())
            .field("connect_timeout", &self.connect_timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_connection_strings_say_what_is_expected_and_hide_credentials() {
        let e = CouchbaseConfig::from_url("http://h")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected couchbase://host"), "{e}");
        let e = CouchbaseConfig::from_url("couchbase://u:s3cret@h")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not in the connection string") && !e.contains("s3cret"),
            "{e}"
        );
        let e = CouchbaseConfig::from_url("couchbase://")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no host"), "{e}");
        assert!(CouchbaseConfig::from_url("couchbases://a,b:11207?network=external").is_ok());
    }

    #[test]
    fn a_store_url_names_the_keyspace_and_never_credentials() {
        let e = CouchbaseConfig::from_store_url("couchbase://h")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no bucket"), "{e}");
        let e = CouchbaseConfig::from_store_url("couchbase://h/b/s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("BUCKET/SCOPE/COLLECTION"), "{e}");
        let e = CouchbaseConfig::from_store_url("couchbase://u:s3cret@h/b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the URL") && !e.contains("s3cret"), "{e}");
        let e = CouchbaseConfig::from_store_url("couchbase://user:pa/ss@host/b/s/c")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not in the URL") && !e.contains("pa/ss") && !e.contains("user"),
            "{e}"
        );
        let e = CouchbaseConfig::from_store_url("couchbase://h/b/s c/d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("refuses"), "{e}");
        let e = CouchbaseConfig::from_store_url("couchbase://h/b//c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let c = CouchbaseConfig::keyspace_from_url(
            "couchbases://a,b:11207/events/app/payloads?network=external",
        )
        .unwrap();
        assert_eq!(c.keyspace(), "events.app.payloads");
        assert_eq!(c.connstr(), "couchbases://a,b:11207?network=external");
        let c = CouchbaseConfig::keyspace_from_url("couchbase://h:11210/events").unwrap();
        assert_eq!(
            (c.keyspace().as_str(), c.connstr()),
            ("events._default._default", "couchbase://h:11210")
        );
    }

    #[test]
    fn the_password_is_masked() {
        let c = CouchbaseConfig::from_url("couchbase://h")
            .unwrap()
            .credentials("u", "s3cret");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
    }
}
