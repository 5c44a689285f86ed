//! Where the SQLite file is: a URL, or the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use event_backbone_core::config::env_var;

use crate::error::{Error, Result};

/// Environment variable with the SQLite URL (`sqlite:events.db`).
pub const URL_VAR: &str = "SQLITE_EVENT_SOURCE_URL";

/// Which file and how: a URL ([`SqliteConfig::from_url`]), a path
/// ([`SqliteConfig::file`]) or the environment ([`SqliteConfig::from_env`]),
/// then settings that read like sentences.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_sqlite::SqliteConfig;
/// let config = SqliteConfig::from_url("sqlite:data/events.db")?
///     .busy_timeout(Duration::from_secs(10))
///     .poll_interval(Duration::from_millis(200));
/// assert_eq!(config.path(), std::path::Path::new("data/events.db"));
/// # Ok::<(), event_backbone_sqlite::Error>(())
/// ```
#[derive(Clone)]
pub struct SqliteConfig {
    path: PathBuf,
    pub(crate) max_connections: u32,
    pub(crate) busy_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) sweep_interval: Option<Duration>,
    pub(crate) synchronous_full: bool,
}

impl SqliteConfig {
    /// From a URL: `sqlite:PATH` or `sqlite://PATH` (a relative path is
    /// relative to the working directory). The file is made when missing.
    pub fn from_url(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| Error::InvalidAddress {
                address: url.to_owned(),
                reason: "expected sqlite:PATH, such as sqlite:events.db".to_owned(),
            })?;
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path.starts_with(':') {
            return Err(Error::InvalidAddress {
                address: url.to_owned(),
                reason: "expected a file path (an in-memory database would not survive a \
                         restart: use the memory backend for that)"
                    .to_owned(),
            });
        }
        Ok(Self::file(path))
    }

    /// The database in the file at `path`.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(500),
            sweep_interval: Some(Duration::from_secs(60)),
            synchronous_full: true,
        }
    }

    /// From `SQLITE_EVENT_SOURCE_URL`. An unset variable is
    /// [`Error::MissingVariable`].
    pub fn from_env() -> Result<Self> {
        let url = env_var(URL_VAR).ok_or(Error::MissingVariable {
            name: URL_VAR,
            expected: "a URL such as sqlite:events.db",
        })?;
        Self::from_url(&url)
    }

    /// Connections in the pool (default 4): readers work side by side
    /// (WAL), writers one at a time.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long a write waits for another writer (another process on the
    /// same file) before it fails, transiently (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The longest a blocked read waits before looking again without a
    /// wake-up (default 500 ms): appends in this process wake reads at
    /// once; those of another process on the same file are seen this late.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often each store deletes expired payload rows (default every
    /// 60 s; `None`: only [`crate::SqliteStore::sweep`]).
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// `synchronous = FULL` (the default: a commit survives a power loss)
    /// or, with `false`, `NORMAL` (in WAL mode a commit survives a crash of
    /// the process, and may be lost with the machine's power; faster).
    pub fn synchronous_full(mut self, full: bool) -> Self {
        self.synchronous_full = full;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("path", &self.path)
            .field("max_connections", &self.max_connections)
            .field("busy_timeout", &self.busy_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("sweep_interval", &self.sweep_interval)
            .field("synchronous_full", &self.synchronous_full)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        for (url, path) in [
            ("sqlite:events.db", "events.db"),
            ("sqlite://data/events.db", "data/events.db"),
            (
                "sqlite:/var/lib/app/events.db?mode=rwc",
                "/var/lib/app/events.db",
            ),
        ] {
            assert_eq!(SqliteConfig::from_url(url).unwrap().path(), Path::new(path));
        }
        for bad in ["events.db", "postgres://h/db", "sqlite:", "sqlite::memory:"] {
            let err = SqliteConfig::from_url(bad).unwrap_err().to_string();
            assert!(
                err.contains("invalid SQLite address") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn from_env_reads_the_variable_and_never_guesses() {
        // The only test of this binary that touches the variable.
        std::env::remove_var(URL_VAR);
        let err = SqliteConfig::from_env().unwrap_err().to_string();
        assert!(err.contains(URL_VAR) && err.contains("sqlite:"), "{err}");
        std::env::set_var(URL_VAR, " sqlite:app.db ");
        let config = SqliteConfig::from_env().unwrap();
        std::env::remove_var(URL_VAR);
        assert_eq!(config.path(), Path::new("app.db"));
    }
}
