//! How to reach Redis: a URL, or the environment variables of
//! EventSource.Backbone.

use std::fmt;
use std::time::Duration;

use event_backbone_core::config::{env_var, redact_url, Secret};

use crate::error::{Error, Result};

/// Environment variable with the Redis address: `host:port` or a URL; for
/// a Redis Cluster several comma-separated seed nodes (`h1:p1,h2:p2`).
pub const ENDPOINT_VAR: &str = "REDIS_EVENT_SOURCE_ENDPOINT";
/// Environment variable with the Redis password.
pub const PASSWORD_VAR: &str = "REDIS_EVENT_SOURCE_PASS";

/// Where and how to connect: a URL ([`RedisConfig::from_url`]) or the
/// environment ([`RedisConfig::from_env`]), then settings that read like
/// sentences.
///
/// A Redis Cluster is named by several seed nodes
/// (`redis+cluster://h1:p1,h2:p2`, `redis://h1:p1,h2:p2`, `h1:p1,h2:p2`), or
/// one with `redis+cluster://` or [`RedisConfig::cluster`]: the backend then
/// learns the cluster's slots from them and sends every command to the
/// master of its key's slot, following `MOVED` and `ASK`.
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
/// assert!(!local.is_cluster());
/// let cluster = RedisConfig::from_endpoint("10.0.0.1:7000,10.0.0.2:7000", Some("pw"))?;
/// assert!(cluster.is_cluster());
/// assert_eq!(cluster.address(), "redis+cluster://10.0.0.1:7000,10.0.0.2:7000");
/// # Ok::<(), event_backbone_redis::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    url: String,
    /// One `redis://` (or `rediss://`) URL per seed node; the URL itself
    /// for a single server.
    nodes: Vec<String>,
    cluster: bool,
    password: Option<Secret>,
    pub(crate) connection_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) max_len: Option<u64>,
    pub(crate) replicas: Option<(u32, Duration)>,
}

impl RedisConfig {
    /// From a URL: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` for TLS (feature `tls`); for a Redis Cluster
    /// `redis+cluster://[user:password@]host:port[,host:port...]` (or
    /// `rediss+cluster://`), or a `redis://` URL with several hosts.
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: redact_url(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid("expected redis://host:port or redis+cluster://host:port,...")
        })?;
        let (node_scheme, cluster_scheme) = match scheme {
            "redis" => ("redis", false),
            "rediss" => ("rediss", false),
            "redis+cluster" => ("redis", true),
            "rediss+cluster" => ("rediss", true),
            _ => {
                return Err(invalid(
                    "expected redis://, rediss://, redis+cluster:// or rediss+cluster://",
                ))
            }
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("no host"));
        }
        if node_scheme == "rediss" && !cfg!(feature = "tls") {
            return Err(invalid(&format!(
                "{scheme}:// needs the `tls` feature of event-backbone-redis"
            )));
        }
        // The user info ends at the last '@'; then hosts, then /db.
        let (credentials, location) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hosts, tail) = match location.find(['/', '?']) {
            Some(i) => location.split_at(i),
            None => (location, ""),
        };
        // Options after `?` (TLS ones, say) go to every node.
        let (path, options) = match tail.split_once('?') {
            Some((path, query)) => (path, format!("?{query}")),
            None => (tail, String::new()),
        };
        let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
        if hosts.iter().any(|h| h.is_empty()) {
            return Err(invalid("an empty host in the list of nodes"));
        }
        let cluster = cluster_scheme || hosts.len() > 1;
        if cluster && !matches!(path.trim_start_matches('/'), "" | "0") {
            return Err(invalid("a Redis Cluster has database 0 only"));
        }
        let nodes = if cluster {
            hosts
                .iter()
                .map(|host| match credentials {
                    Some(c) => format!("{node_scheme}://{c}@{host}{options}"),
                    None => format!("{node_scheme}://{host}{options}"),
                })
                .collect()
        } else {
            vec![url.to_owned()]
        };
        Ok(Self {
            url: url.to_owned(),
            nodes,
            cluster,
            password: None,
            connection_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            max_len: None,
            replicas: None,
        })
    }

    /// From `host:port` (or a URL) and an optional password, as in
    /// EventSource.Backbone's environment variables. Several comma-separated
    /// `host:port` are the seed nodes of a Redis Cluster.
    pub fn from_endpoint(endpoint: &str, password: Option<&str>) -> Result<Self> {
        let endpoint = endpoint.trim();
        let mut config = if endpoint.contains("://") {
            Self::from_url(endpoint)?
        } else if endpoint.contains(',') {
            Self::from_url(&format!("redis+cluster://{endpoint}"))?
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
            expected: "host:port, redis://host:port, or h1:p1,h2:p2 for a Redis Cluster",
        })?;
        let password = env_var(PASSWORD_VAR);
        Self::from_endpoint(&endpoint, password.as_deref())
    }

    /// Treats the address as a seed node of a Redis Cluster (as
    /// `redis+cluster://` does).
    pub fn cluster(mut self) -> Self {
        if !self.cluster {
            self.cluster = true;
            // A single-node URL's database is 0 or refused at connect.
            self.url = self.url.replacen("://", "+cluster://", 1);
        }
        self
    }

    /// Whether it names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
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

    /// Waits, after each write of payloads and after each append, until
    /// `replicas` replicas of the master written to have it (a `WAIT` at
    /// the end of each pipeline that writes, on the node and connection
    /// that took the writes), at most `timeout`; fewer in that time is a
    /// transient error, and the producer sends the batch again (an entry
    /// may then be there twice). A master with fewer replicas refuses
    /// writes this way until it has them. Off by default.
    ///
    /// Redis replicates asynchronously: without this, a master that dies
    /// right after it acknowledged a write may take it along, and the
    /// replica that takes over never had it (an entry, or worse a payload
    /// whose entry made it). With it, an acknowledged send is on
    /// `replicas` replicas too. It costs each batch the time its writes take
    /// to reach the replicas (twice on a cluster: the payloads are waited
    /// for before the entries are appended), not a round trip of its own.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// The address, with any password masked.
    pub fn address(&self) -> String {
        redact_url(&self.url)
    }

    fn invalid(&self, e: redis::RedisError) -> Error {
        let mut reason = e.to_string();
        for node in &self.nodes {
            reason = reason.replace(node.as_str(), &redact_url(node));
        }
        Error::InvalidAddress {
            address: self.address(),
            reason: reason.replace(&self.url, &self.address()),
        }
    }

    /// The client of a single server.
    pub(crate) fn client(&self) -> Result<redis::Client> {
        redis::Client::open(self.connection_info(&self.url)?).map_err(|e| self.invalid(e))
    }

    /// The client of a Redis Cluster; `response_timeout` `None` for one
    /// that blocks (its callers bound the wait themselves).
    pub(crate) fn cluster_client(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<redis::cluster::ClusterClient> {
        let nodes = self
            .nodes
            .iter()
            .map(|node| self.connection_info(node))
            .collect::<Result<Vec<_>>>()?;
        let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(self.connection_timeout)
            // A failover takes the cluster's node timeout and an election:
            // retries with waits of up to 1 s ride through most of it; an
            // error after them is transient, and the caller retries.
            .retries(6)
            .min_retry_wait(50)
            .max_retry_wait(1_000);
        if let Some(timeout) = response_timeout {
            builder = builder
                .response_timeout(timeout)
                .overall_response_timeout(Some(timeout * 4));
        }
        builder.build().map_err(|e| self.invalid(e))
    }

    fn connection_info(&self, url: &str) -> Result<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info().map_err(|e| self.invalid(e))?;
        if let Some(password) = &self.password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        Ok(info)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("address", &self.address())
            .field("cluster", &self.cluster)
            .field("password", &self.password)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_len", &self.max_len)
            .field("replicas", &self.replicas)
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
    fn cluster_seeds_from_urls_endpoints_and_the_setting() {
        let c = RedisConfig::from_url("redis+cluster://app:pw@h1:7000,h2:7001").unwrap();
        assert!(c.is_cluster());
        assert_eq!(
            c.nodes,
            ["redis://app:pw@h1:7000", "redis://app:pw@h2:7001"]
        );
        assert_eq!(c.address(), "redis+cluster://app:***@h1:7000,h2:7001");
        assert!(!format!("{c:?}").contains("pw@"), "{c:?}");
        // Several hosts are a cluster whatever the scheme says.
        let c = RedisConfig::from_url("redis://h1:7000, h2:7001").unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.nodes, ["redis://h1:7000", "redis://h2:7001"]);
        // One seed, by scheme or by setting.
        assert!(RedisConfig::from_url("redis+cluster://h1:7000")
            .unwrap()
            .is_cluster());
        let c = RedisConfig::from_url("redis://h1:7000").unwrap().cluster();
        assert!(c.is_cluster());
        assert_eq!(c.address(), "redis+cluster://h1:7000");
        assert_eq!(c.nodes, ["redis://h1:7000"]);
        // The environment's comma-separated endpoints.
        let c = RedisConfig::from_endpoint("h1:7000,h2:7001,h3:7002", Some("pw")).unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.nodes.len(), 3);
        assert!(!format!("{c:?}").contains("pw"));
        // Options go to every node; database 0 may be named.
        let c = RedisConfig::from_url("redis+cluster://h1:7000,h2:7001/0?protocol=resp3").unwrap();
        assert_eq!(
            c.nodes,
            [
                "redis://h1:7000?protocol=resp3",
                "redis://h2:7001?protocol=resp3"
            ]
        );
        let c = RedisConfig::from_url("redis+cluster://h1:7000/?protocol=resp3").unwrap();
        assert_eq!(c.nodes, ["redis://h1:7000?protocol=resp3"]);
    }

    #[test]
    fn bad_cluster_addresses_say_what_is_wrong() {
        let err = RedisConfig::from_url("redis+cluster://h1:7000,,h2:7001")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty host"), "{err}");
        let err = RedisConfig::from_url("redis+cluster://u:hunter2@h1:7000/3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database 0"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = RedisConfig::from_url("valkey://h1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis+cluster://"), "{err}");
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
