//! [`Sqlite`]: a pool of connections to one SQLite file in WAL mode, with
//! the backend's tables made at open.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::SqliteConfig;
use crate::error::{Error, Result};
use crate::schema::CREATE;
use crate::wake::Wakeups;

/// An open SQLite database: sqlx's pool on the file and the configuration.
/// Cheap to clone; channels and stores are made from it.
///
/// ```no_run
/// use event_backbone_sqlite::{Sqlite, SqliteConfig, SqliteStore, SqliteStreamChannel};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sqlite = Sqlite::open(SqliteConfig::from_url("sqlite:events.db")?).await?;
/// let channel = SqliteStreamChannel::new(&sqlite);
/// let store = SqliteStore::new(&sqlite);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sqlite {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub pool: SqlitePool,
    pub config: SqliteConfig,
    pub wakeups: Arc<Wakeups>,
    /// When each member's read was last written down.
    seen: Mutex<HashMap<String, Instant>>,
}

impl Sqlite {
    /// Opens the file (made when missing) in WAL mode and makes the
    /// backend's tables where they are missing; a path that cannot be
    /// opened fails here, with [`Error::Open`].
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        let path = config.path().display().to_string();
        let open_error = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(config.path())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.synchronous_full {
                true => SqliteSynchronous::Full,
                false => SqliteSynchronous::Normal,
            })
            .busy_timeout(config.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(open_error)?;
        for statement in CREATE {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(open_error)?;
        }
        tx.commit().await.map_err(open_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                wakeups: Wakeups::of_file(config.path()),
                seen: Mutex::new(HashMap::new()),
                pool,
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// sqlx's pool, for what this crate does not do.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Whether an empty read of a member should write down that it read:
    /// at most once a second per member.
    pub(crate) fn due_seen(&self, stream: &str, group: &str, consumer: &str) -> bool {
        let key = format!("{stream}\0{group}\0{consumer}");
        let mut seen = self.inner.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if seen.len() > 4096 {
            // Members gone for a minute are forgotten: the map stays small.
            seen.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        }
        match seen.get(&key) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(1) => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }

    /// Whether two handles are on the same file (in this process): a
    /// channel and a store opened apart on one file write a producer's
    /// payloads and entries in one transaction.
    pub(crate) fn same_file(&self, other: &Sqlite) -> bool {
        Arc::ptr_eq(&self.inner.wakeups, &other.inner.wakeups)
    }

    /// Closes the pool: pending writes are done, the WAL checkpointed by
    /// the last connection.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

impl fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sqlite")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
