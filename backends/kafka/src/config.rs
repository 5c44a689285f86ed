//! How to reach Kafka: the brokers, any librdkafka setting, and how topics
//! are created.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use event_backbone_core::config::{env_var, redact_url, shown_setting};

use crate::error::{Error, Result};

/// Environment variable with the brokers: `host:port[,host:port...]` or a
/// `kafka://` URL.
pub const BROKERS_VAR: &str = "KAFKA_EVENT_SOURCE_BROKERS";

/// The scheme of a Kafka URL.
pub const SCHEME: &str = "kafka://";

/// Where and how to connect, and how new topics are made: from a URL
/// ([`KafkaConfig::from_url`]), a broker list
/// ([`KafkaConfig::from_brokers`]) or the environment
/// ([`KafkaConfig::from_env`]), then settings that read like sentences.
///
/// Any [librdkafka property](https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)
/// passes through with [`KafkaConfig::set`] (SASL, SSL, timeouts, ...); the
/// values of secret ones never appear in `Debug` output or logs.
///
/// ```
/// use event_backbone_kafka::KafkaConfig;
/// let config = KafkaConfig::from_brokers("broker-1:9092,broker-2:9092")?
///     .set("security.protocol", "SASL_SSL")
///     .set("sasl.mechanism", "SCRAM-SHA-512")
///     .set("sasl.username", "app")
///     .set("sasl.password", "s3cret")
///     .partitions(6)
///     .replication(3);
/// let shown = format!("{config:?}");
/// assert!(shown.contains("SCRAM-SHA-512") && !shown.contains("s3cret"));
/// # Ok::<(), event_backbone_kafka::Error>(())
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    pub(crate) brokers: String,
    pub(crate) settings: BTreeMap<String, String>,
    pub(crate) partitions: i32,
    pub(crate) replication: i32,
    pub(crate) timeout: Duration,
    pub(crate) join_timeout: Duration,
    pub(crate) rebalance_drain: Duration,
    pub(crate) commit_interval: Duration,
}

impl KafkaConfig {
    /// From a URL: `kafka://[user:password@]host:port[,host:port...][?property=value&...]`.
    /// A user and password become `sasl.username` and `sasl.password`;
    /// query parameters are librdkafka properties.
    ///
    /// ```
    /// use event_backbone_kafka::KafkaConfig;
    /// let config = KafkaConfig::from_url(
    ///     "kafka://app:s3cret@k1:9093,k2:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512",
    /// )?;
    /// assert_eq!(config.brokers(), "k1:9093,k2:9093");
    /// assert_eq!(config.setting("sasl.username"), Some("app"));
    /// assert_eq!(config.setting("security.protocol"), Some("SASL_SSL"));
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// # Ok::<(), event_backbone_kafka::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let invalid = |reason: &str| Error::InvalidAddress {
            address: redact_url(url),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("expected kafka://host:port[,host:port...]"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (credentials, brokers) = match rest.rsplit_once('@') {
            Some((credentials, brokers)) => (Some(credentials), brokers),
            None => (None, rest),
        };
        let mut config = Self::from_brokers(brokers.trim_end_matches('/'))
            .map_err(|_| invalid("each broker is host:port with a numeric port"))?;
        if let Some(credentials) = credentials {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            config = config.set("sasl.username", user);
            if !password.is_empty() {
                config = config.set("sasl.password", password);
            }
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid("query parameters are property=value"))?;
            config = config.set(name, value);
        }
        Ok(config)
    }

    /// Brokers as `host:port[,host:port...]`; topics get 1 partition and
    /// replication factor 1 unless set.
    pub fn from_brokers(brokers: &str) -> Result<Self> {
        let brokers = brokers.trim();
        let invalid = |reason: &str| Error::InvalidAddress {
            address: brokers.to_owned(),
            reason: reason.to_owned(),
        };
        if brokers.is_empty() {
            return Err(invalid("empty; expected host:port[,host:port...]"));
        }
        for broker in brokers.split(',') {
            let broker = broker.trim();
            let hostport = broker.split_once("://").map_or(broker, |(_, rest)| rest);
            let Some((host, port)) = hostport.rsplit_once(':') else {
                return Err(invalid("each broker needs a port: host:port"));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid("each broker is host:port with a numeric port"));
            }
        }
        Ok(Self {
            brokers: brokers.to_owned(),
            settings: BTreeMap::new(),
            partitions: 1,
            replication: 1,
            timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(30),
            rebalance_drain: Duration::from_secs(2),
            commit_interval: Duration::from_secs(1),
        })
    }

    /// From `KAFKA_EVENT_SOURCE_BROKERS`: a broker list or a `kafka://`
    /// URL. An unset variable is [`Error::MissingVariable`]: the library
    /// never guesses a broker.
    pub fn from_env() -> Result<Self> {
        let brokers = env_var(BROKERS_VAR).ok_or(Error::MissingVariable {
            name: BROKERS_VAR,
            expected: "host:port[,host:port...] or kafka://host:port",
        })?;
        if brokers.starts_with(SCHEME) {
            Self::from_url(&brokers)
        } else {
            Self::from_brokers(&brokers)
        }
    }

    /// Sets a librdkafka property for every client (producer, consumers,
    /// admin), e.g. `security.protocol`, `sasl.username`, `ssl.ca.location`.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.insert(name.into(), value.into());
        self
    }

    /// Partitions of the topics this backend creates (default 1: one
    /// partition orders the whole stream; more partitions let more members
    /// of a group work at once, ordered per partition key).
    pub fn partitions(mut self, partitions: u16) -> Self {
        self.partitions = i32::from(partitions.max(1));
        self
    }

    /// Replication factor of the topics this backend creates (default 1).
    pub fn replication(mut self, replication: u16) -> Self {
        self.replication = i32::from(replication.max(1));
        self
    }

    /// How long metadata, offset and admin requests may take (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a new group member may wait for its first partition
    /// assignment (default 30 s); not counted in a read's block time.
    pub fn join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// How long a member that is losing partitions in a rebalance waits for
    /// the entries in progress on them to be acknowledged (default 2 s), so
    /// that their next owner does not handle them again. Entries still in
    /// progress after that are redelivered (at-least-once).
    pub fn rebalance_drain(mut self, wait: Duration) -> Self {
        self.rebalance_drain = wait;
        self
    }

    /// How often a group member commits the offsets its acknowledgements
    /// moved (default 1 s). An acknowledgement stores the offset in the
    /// client; librdkafka commits what is stored at this interval, when
    /// partitions are taken away and when the member leaves. A process that
    /// dies gets at most this much work redelivered (at-least-once).
    /// librdkafka's `auto.commit.interval.ms`, if [set](Self::set), wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use event_backbone_kafka::KafkaConfig;
    /// let config = KafkaConfig::from_brokers("127.0.0.1:9092")?.commit_interval(Duration::from_millis(200));
    /// # Ok::<(), event_backbone_kafka::Error>(())
    /// ```
    pub fn commit_interval(mut self, every: Duration) -> Self {
        self.commit_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The broker list.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// A librdkafka property set with [`Self::set`] (or in the URL).
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// The partitions new topics get.
    pub fn topic_partitions(&self) -> i32 {
        self.partitions
    }

    /// A librdkafka client configuration with these settings, and with
    /// `defaults` for the properties the user did not set.
    pub(crate) fn client_config(&self, defaults: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (name, value) in defaults {
            c.set(*name, *value);
        }
        for (name, value) in &self.settings {
            c.set(name, value);
        }
        c
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings: BTreeMap<&str, &str> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), shown_setting(k, v)))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("settings", &settings)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("commit_interval", &self.commit_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_checked_with_a_clear_reason() {
        for bad in ["", "localhost", "a:b", ":9092"] {
            let err = KafkaConfig::from_brokers(bad).unwrap_err().to_string();
            assert!(err.contains("host:port"), "{bad:?}: {err}");
        }
        assert!(KafkaConfig::from_brokers("a:1, b:2").is_ok());
        for bad in [
            "k1:9092",
            "kafka://",
            "kafka://k1",
            "kafka://u:pw@k1:x",
            "kafka://k1:1?flag",
        ] {
            let err = KafkaConfig::from_url(bad).unwrap_err().to_string();
            assert!(
                err.contains("kafka://")
                    || err.contains("host:port")
                    || err.contains("property=value"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn urls_carry_brokers_credentials_and_properties() {
        let c = KafkaConfig::from_url("kafka://u:p4ss@a:1,b:2/?client.id=shop").unwrap();
        assert_eq!(c.brokers(), "a:1,b:2");
        assert_eq!(c.setting("sasl.username"), Some("u"));
        assert_eq!(c.setting("sasl.password"), Some("p4ss"));
        assert_eq!(c.setting("client.id"), Some("shop"));
        assert!(!format!("{c:?}").contains("p4ss"));
    }

    #[test]
    fn from_env_takes_a_list_or_a_url_and_never_guesses() {
        // The only test of this binary that touches the variable.
        std::env::remove_var(BROKERS_VAR);
        let err = KafkaConfig::from_env().unwrap_err().to_string();
        assert!(err.contains(BROKERS_VAR), "{err}");
        std::env::set_var(BROKERS_VAR, "k1:9092,k2:9092");
        assert_eq!(
            KafkaConfig::from_env().unwrap().brokers(),
            "k1:9092,k2:9092"
        );
        std::env::set_var(BROKERS_VAR, "kafka://k3:9092?acks=all");
        let c = KafkaConfig::from_env().unwrap();
        std::env::remove_var(BROKERS_VAR);
        assert_eq!((c.brokers(), c.setting("acks")), ("k3:9092", Some("all")));
    }

    #[test]
    fn secrets_are_masked() {
        let c = KafkaConfig::from_brokers("k:9092")
            .unwrap()
            .set("sasl.password", "p4ss")
            .set("ssl.key.pem", "-----BEGIN PRIVATE KEY-----")
            .set("sasl.oauthbearer.config", "principal=x secret=y")
            .set("client.id", "visible");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("p4ss") && !shown.contains("PRIVATE") && !shown.contains("secret=y")
        );
        assert!(shown.contains("visible"), "{shown}");
    }
}
