//! How to reach Redis: a URL, or the environment variables of
//! EventSource.Backbone.

use std::fmt;
use std::time::Duration;

use event_backbone_core::config::{env_var, redact_url, Secret};

use crate::error::{Error, Result};

/// Environment variable with the Redis address: `host:port` or a URL.
pub const ENDPOINT_VAR: &str = "REDIS_EVENT_SOURCE_ENDPOINT";
/// Environment variable with the Redis password.
pub const PASSWORD_VAR: &str = "REDIS_EVENT_SOURCE_PASS";

/// Where and how to connect: a URL ([`RedisConfig::from_url`]) or the
/// environment ([`RedisConfig::from_env`]), then settings that read like
/// sentences.
///
/// The password never appears in `Debug` output, errors or logs.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_redis::RedisConfig;
/// let config = RedisConfig::from_url("redis://app:s3cret@127.0.0.1:6379/0")?
///     .response_timeout(Duration::from_secs(2))
///     .max_stream_length(1_000_000);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.address(), "redis://app:***@127.0.0.1:6379/0");
/// let local = RedisConfig::from_endpoint("localhost:6380", None)?;
/// assert_eq!(local.address(), "redis://localhost:6380");
/// # Ok::<(), event_backbone_redis::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    url: String,
    password: Option<Secret>,
    pub(crate) connection_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) max_len: Option<u64>,
}

impl RedisConfig {
    /// From a URL: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` for TLS (feature `tls`).
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: redact_url(url),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("redis://")
            .or_else(|| url.strip_prefix("rediss://"))
            .ok_or_else(|| invalid("expected redis://host:port or rediss://host:port"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("no host"));
        }
        if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            return Err(invalid(
                "rediss:// needs the `tls` feature of event-backbone-redis",
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            password: None,
            connection_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            max_len: None,
        })
    }

    /// From `host:port` (or a URL) and an optional password, as in
    /// EventSource.Backbone's environment variables.
    pub fn from_endpoint(endpoint: &str, password: Option<&str>) -> Result<Self> {
        let endpoint = endpoint.trim();
        let mut config = if endpoint.contains("://") {
            Self::from_url(endpoint)?
        } else {
            Self::from_url(&format!("redis://{endpoint}"))?
        };
        config.password = password.filter(|p| !p.is_empty()).map(Secret::from);
        Ok(config)
    }

    /// From `REDIS_EVENT_SOURCE_ENDPOINT` (`host:port` or a URL) and
    /// `REDIS_EVENT_SOURCE_PASS`, as in EventSource.Backbone. An unset
    /// endpoint is [`Error::MissingVariable`]: the library never guesses a
    /// server.
    pub fn from_env() -> Result<Self> {
        let endpoint = env_var(ENDPOINT_VAR).ok_or(Error::MissingVariable {
            name: ENDPOINT_VAR,
            expected: "host:port or redis://host:port",
        })?;
        let password = env_var(PASSWORD_VAR);
        Self::from_endpoint(&endpoint, password.as_deref())
    }

    /// Sets the password (instead of one in the URL).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret::new(password));
        self
    }

    /// How long to wait for a connection (default 5 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for a reply (default 5 s). Blocking stream reads wait
    /// their block time on top of this.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Trim streams to about this many entries on append (`MAXLEN ~`).
    pub fn max_stream_length(mut self, entries: u64) -> Self {
        self.max_len = Some(entries);
        self
    }

    /// The address, with any password masked.
    pub fn address(&self) -> String {
        redact_url(&self.url)
    }

    pub(crate) fn client(&self) -> Result<redis::Client> {
        use redis::IntoConnectionInfo;
        let mut info =
            self.url
                .as_str()
                .into_connection_info()
                .map_err(|e| Error::InvalidAddress {
                    address: self.address(),
                    reason: e.to_string().replace(&self.url, &self.address()),
                })?;
        if let Some(password) = &self.password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        redis::Client::open(info).map_err(|e| Error::InvalidAddress {
            address: self.address(),
            reason: e.to_string().replace(&self.url, &self.address()),
        })
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("address", &self.address())
            .field("password", &self.password)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_len", &self.max_len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_everywhere() {
        let c = RedisConfig::from_endpoint("redis://bob:hunter2@db:6379", Some("other-secret"))
            .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("other-secret"),
            "{debug}"
        );
        assert_eq!(c.address(), "redis://bob:***@db:6379");
        let err = RedisConfig::from_url("http://bob:hunter2@db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn from_env_reads_the_variables_and_never_guesses() {
        // The only test of this binary that touches these variables.
        std::env::remove_var(ENDPOINT_VAR);
        let err = RedisConfig::from_env().unwrap_err().to_string();
        assert!(
            err.contains(ENDPOINT_VAR) && err.contains("host:port"),
            "{err}"
        );
        std::env::set_var(ENDPOINT_VAR, " cache:6380 ");
        std::env::set_var(PASSWORD_VAR, "env-secret");
        let config = RedisConfig::from_env().unwrap();
        std::env::remove_var(ENDPOINT_VAR);
        std::env::remove_var(PASSWORD_VAR);
        assert_eq!(config.address(), "redis://cache:6380");
        assert_eq!(
            config.password.as_ref().map(|p| p.expose()),
            Some("env-secret")
        );
        assert!(!format!("{config:?}").contains("env-secret"));
    }

    #[test]
    fn endpoints_and_urls() {
        assert_eq!(
            RedisConfig::from_endpoint("h:1", None).unwrap().address(),
            "redis://h:1"
        );
        assert!(RedisConfig::from_url("redis://").is_err());
        assert!(RedisConfig::from_url("127.0.0.1:6379").is_err());
    }
}
