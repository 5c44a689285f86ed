//! How to reach MongoDB: a connection string, or the environment.

use std::fmt;
use std::time::Duration;

use event_backbone_core::config::{env_var, redact_url};
use mongodb::options::ConnectionString;

use crate::error::{Error, Result};

/// Environment variable with the MongoDB connection string (the seeds'
/// naming style).
pub const URI_VAR: &str = "MONGODB_EVENT_SOURCE_URI";
/// The database when the connection string names none.
pub const DEFAULT_DATABASE: &str = "event_backbone";
/// The collection of payloads unless another is set.
pub const DEFAULT_COLLECTION: &str = "payloads";

/// Where and how to connect: a connection string
/// ([`MongoConfig::from_url`]) or the environment ([`MongoConfig::from_env`]),
/// then settings that read like sentences. Options in the connection string
/// (`?replicaSet=…&tls=true&maxPoolSize=…`) pass through to the driver; the
/// setters here override them.
///
/// The password never appears in `Debug` output, errors or logs.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_mongodb::MongoConfig;
/// let config = MongoConfig::from_url("mongodb://app:s3cret@127.0.0.1:27017/shop")?
///     .collection("order_payloads")?
///     .max_pool_size(20)
///     .server_selection_timeout(Duration::from_secs(5));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.address(), "mongodb://app:***@127.0.0.1:27017/shop");
/// assert_eq!(config.database_name(), "shop");
/// assert_eq!(config.collection_name(), "order_payloads");
/// # Ok::<(), event_backbone_mongodb::Error>(())
/// ```
#[derive(Clone)]
pub struct MongoConfig {
    url: String,
    database: String,
    collection: String,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) server_selection_timeout: Duration,
    pub(crate) max_pool_size: Option<u32>,
    pub(crate) app_name: String,
}

impl MongoConfig {
    /// From a connection string: `mongodb://[user:password@]host[:port][,…][/database][?options]`
    /// or `mongodb+srv://…`. The database is the one in the path, else
    /// [`DEFAULT_DATABASE`].
    pub fn from_url(url: &str) -> Result<Self> {
        let address = redact_url(url);
        let invalid = |reason: String| Error::InvalidAddress {
            address: address.clone(),
            reason,
        };
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(invalid(
                "expected mongodb://host:port or mongodb+srv://host".to_owned(),
            ));
        }
        let parsed = ConnectionString::parse(url)
            .map_err(|e| invalid(e.to_string().replace(url, &address)))?;
        let database = parsed
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Ok(Self {
            url: url.to_owned(),
            database: check_database(&database)?,
            collection: DEFAULT_COLLECTION.to_owned(),
            connect_timeout: None,
            server_selection_timeout: Duration::from_secs(10),
            max_pool_size: None,
            app_name: "event-backbone".to_owned(),
        })
    }

    /// From `MONGODB_EVENT_SOURCE_URI`. An unset variable is
    /// [`Error::MissingVariable`]: the library never guesses a server.
    pub fn from_env() -> Result<Self> {
        let url = env_var(URI_VAR).ok_or(Error::MissingVariable {
            name: URI_VAR,
            expected: "a connection string such as mongodb://host:27017/database",
        })?;
        Self::from_url(url.trim())
    }

    /// The database (default: the connection string's, else
    /// [`DEFAULT_DATABASE`]).
    pub fn database(mut self, name: &str) -> Result<Self> {
        self.database = check_database(name)?;
        Ok(self)
    }

    /// The collection of payloads (default [`DEFAULT_COLLECTION`]).
    pub fn collection(mut self, name: &str) -> Result<Self> {
        self.collection = check_collection(name)?;
        Ok(self)
    }

    /// How long to wait for a connection (default: the driver's, 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long an operation waits for a suitable server (default 10 s;
    /// the driver's is 30 s). An unreachable server fails `connect` after
    /// this long.
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// Connections per server (default: the driver's, 10).
    pub fn max_pool_size(mut self, connections: u32) -> Self {
        self.max_pool_size = Some(connections);
        self
    }

    /// The application name the server logs (default `event-backbone`).
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// The address, with any password masked.
    pub fn address(&self) -> String {
        redact_url(&self.url)
    }

    /// The database.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// The collection of payloads.
    pub fn collection_name(&self) -> &str {
        &self.collection
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

fn check_database(name: &str) -> Result<String> {
    let bad = |reason| Error::InvalidName {
        what: "database",
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 63 {
        return Err(bad("1 to 63 bytes"));
    }
    if name.chars().any(|c| "/\\. \"$\0".contains(c)) {
        return Err(bad("none of / \\ . space \" $ or NUL"));
    }
    Ok(name.to_owned())
}

fn check_collection(name: &str) -> Result<String> {
    let bad = |reason| Error::InvalidName {
        what: "collection",
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.contains('$') || name.contains('\0') {
        return Err(bad("not empty, no $ or NUL"));
    }
    if name.starts_with("system.") {
        return Err(bad("not starting with \"system.\""));
    }
    Ok(name.to_owned())
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("address", &self.address())
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("connect_timeout", &self.connect_timeout)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("max_pool_size", &self.max_pool_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_everywhere() {
        let c = MongoConfig::from_url("mongodb://bob:hunter2@db:27017/?authSource=admin").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(c.address(), "mongodb://bob:***@db:27017/?authSource=admin");
        for bad in [
            "http://bob:hunter2@db",
            "mongodb://bob:hunter2@",
            "mongodb://bob:hunter2@db:notaport",
        ] {
            let err = MongoConfig::from_url(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("invalid MongoDB address"), "{err}");
        }
    }

    #[test]
    fn from_env_reads_the_variable_and_never_guesses() {
        // The only test of this binary that touches the variable.
        std::env::remove_var(URI_VAR);
        let err = MongoConfig::from_env().unwrap_err().to_string();
        assert!(err.contains(URI_VAR) && err.contains("mongodb://"), "{err}");
        std::env::set_var(
            URI_VAR,
            " mongodb://db1:27017,db2:27017/events?replicaSet=rs0 ",
        );
        let config = MongoConfig::from_env().unwrap();
        std::env::remove_var(URI_VAR);
        assert_eq!(config.database_name(), "events");
        assert_eq!(config.collection_name(), DEFAULT_COLLECTION);
    }

    #[test]
    fn names_are_checked_naming_the_value() {
        let c = MongoConfig::from_url("mongodb://h").unwrap();
        assert_eq!(c.database_name(), DEFAULT_DATABASE);
        for bad in ["", "a.b", "a b", "a$"] {
            let err = c.clone().database(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        for bad in ["", "a$b", "system.users"] {
            let err = c.clone().collection(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
