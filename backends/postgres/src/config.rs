//! How to reach PostgreSQL: a URL, or the environment.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use event_backbone_core::config::{env_var, redact_url};
use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

/// Environment variable with the PostgreSQL URL.
pub const URL_VAR: &str = "POSTGRES_EVENT_SOURCE_URL";
/// The schema that holds the backend's tables unless another is set.
pub const DEFAULT_SCHEMA: &str = "event_backbone";

/// Where and how to connect: a URL ([`PostgresConfig::from_url`]) or the
/// environment ([`PostgresConfig::from_env`]), then settings that read like
/// sentences. Options in the URL (`?sslmode=require&application_name=…`)
/// pass through to sqlx.
///
/// The password never appears in `Debug` output, errors or logs.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_postgres::PostgresConfig;
/// let config = PostgresConfig::from_url("postgres://app:s3cret@db.internal:5432/shop")?
///     .schema("orders_events")?
///     .max_connections(20)
///     .poll_interval(Duration::from_millis(500));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.address(), "postgres://app:***@db.internal:5432/shop");
/// assert_eq!(config.schema_name(), "orders_events");
/// # Ok::<(), event_backbone_postgres::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    url: String,
    pub(crate) options: PgConnectOptions,
    schema: String,
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) sweep_interval: Option<Duration>,
}

impl PostgresConfig {
    /// From a URL: `postgres://[user[:password]@]host[:port][/database][?options]`
    /// (`postgresql://` too), as libpq and sqlx read it.
    pub fn from_url(url: &str) -> Result<Self> {
        let address = redact_url(url);
        let invalid = |reason: String| Error::InvalidAddress {
            address: address.clone(),
            reason,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "expected postgres://user@host:5432/database".to_owned(),
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| invalid(e.to_string().replace(url, &address)))?;
        Ok(Self {
            url: url.to_owned(),
            options: options.application_name("event-backbone"),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            sweep_interval: Some(Duration::from_secs(60)),
        })
    }

    /// From `POSTGRES_EVENT_SOURCE_URL`. An unset variable is
    /// [`Error::MissingVariable`]: the library never guesses a server.
    pub fn from_env() -> Result<Self> {
        let url = env_var(URL_VAR).ok_or(Error::MissingVariable {
            name: URL_VAR,
            expected: "a URL such as postgres://user@host:5432/database",
        })?;
        Self::from_url(&url)
    }

    /// The schema of the backend's tables (default [`DEFAULT_SCHEMA`]),
    /// made at connect when missing: lower-case letters, digits and `_`,
    /// not starting with a digit, at most 40 bytes.
    pub fn schema(mut self, name: &str) -> Result<Self> {
        self.schema = Self::check_name("schema", name)?;
        Ok(self)
    }

    /// Connections in the pool (default 10). A consumer blocked on a read
    /// holds none: it waits for a notification, not in a query.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long an operation waits for a connection of the pool, and
    /// `connect` for the server (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The longest a blocked read waits before looking again without a
    /// notification (default 1 s): it bounds the delay of an entry whose
    /// notification was lost (the listening connection dropped). Entries
    /// that wait behind an older transaction still open are looked at
    /// again sooner (5 ms, doubling up to this).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often the store deletes expired payload rows (default every
    /// 60 s); `None` leaves it to [`crate::PostgresStore::sweep`]. Expired
    /// rows read as missing either way.
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The address, with any password masked.
    pub fn address(&self) -> String {
        redact_url(&self.url)
    }

    /// The schema of the backend's tables.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// A schema or table name the backend uses: lower-case letters, digits
    /// and `_`, not starting with a digit, at most 40 bytes (it is written
    /// into statements, quoted, and into index and channel names).
    pub(crate) fn check_name(what: &'static str, name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && name.len() <= 40
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(name.to_owned())
        } else {
            Err(Error::InvalidName {
                what,
                name: name.to_owned(),
            })
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("address", &self.address())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("sweep_interval", &self.sweep_interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_everywhere() {
        let c =
            PostgresConfig::from_url("postgres://bob:hunter2@db:5432/app?sslmode=prefer").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(c.address(), "postgres://bob:***@db:5432/app?sslmode=prefer");
        for bad in [
            "mysql://bob:hunter2@db",
            "postgres://bob:hunter2@db:notaport/app",
            "postgres://bob:hunter2@db/app?sslmode=sometimes",
        ] {
            let err = PostgresConfig::from_url(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("invalid PostgreSQL address"), "{err}");
        }
    }

    #[test]
    fn from_env_reads_the_variable_and_never_guesses() {
        // The only test of this binary that touches the variable.
        std::env::remove_var(URL_VAR);
        let err = PostgresConfig::from_env().unwrap_err().to_string();
        assert!(
            err.contains(URL_VAR) && err.contains("postgres://"),
            "{err}"
        );
        std::env::set_var(URL_VAR, " postgresql://app@db1:5433/events ");
        let config = PostgresConfig::from_env().unwrap();
        std::env::remove_var(URL_VAR);
        assert_eq!(config.address(), "postgresql://app@db1:5433/events");
        assert_eq!(config.schema_name(), DEFAULT_SCHEMA);
    }

    #[test]
    fn schema_names_are_checked_naming_the_value() {
        let c = PostgresConfig::from_url("postgres://h/db").unwrap();
        for bad in ["", "Orders", "1st", "a-b", "a;drop", &"x".repeat(41)] {
            let err = c.clone().schema(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(c.schema("events_2").unwrap().schema_name(), "events_2");
    }
}
