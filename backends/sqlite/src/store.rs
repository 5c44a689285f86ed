//! [`SqliteStore`]: payloads as rows, one per field, with the key's expiry
//! on each.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use event_backbone_core::clock::now_ms;
use event_backbone_core::store::{check_value_sizes, merge_repeated_keys};
use event_backbone_core::{Fields, KeyValueStore, PutItem, Result, StoreCapabilities};
use sqlx::{Row, SqliteConnection};
use tokio::task::JoinHandle;

use crate::connection::Sqlite;
use crate::error::backend;
use crate::schema::{
    DELETE_EXPIRED_KEY, DELETE_KEY, GET_KEY, KEY_EXPIRY, SET_EXPIRY, SWEEP, UPSERT,
};
use crate::BACKEND;

/// The largest field value the store takes: SQLite's own limit on a value
/// is about 1 GB; 256 MiB leaves room.
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

/// Rows a sweep deletes per statement.
const ROWS_PER_SWEEP: u64 = 10_000;

/// A [`KeyValueStore`] in a SQLite file: each payload field is a row
/// `(key, field, value, expires_ms)` of `eb_payloads`. A key past its TTL
/// reads as missing at once; a sweep deletes its rows later.
///
/// ```no_run
/// use event_backbone_core::{Fields, KeyValueStore};
/// use event_backbone_sqlite::{Sqlite, SqliteConfig, SqliteStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sqlite = Sqlite::open(SqliteConfig::from_url("sqlite:events.db")?).await?;
/// let store = SqliteStore::new(&sqlite);
/// store.put("order:1", &Fields::from([("total".to_owned(), "42".into())]), None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    sqlite: Sqlite,
    _sweeper: Option<Arc<Sweeper>>,
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

fn expiry(at: i64, ttl: Duration) -> i64 {
    at.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The checks a write passes before anything is written.
pub(crate) fn check(items: &[PutItem]) -> Result<()> {
    check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)
}

/// Writes `items` on `conn` (inside a transaction). `fresh`: the keys are
/// new (the producer's insert): no expired rows to clear, no expiry to
/// keep.
pub(crate) async fn write_rows(
    conn: &mut SqliteConnection,
    items: &[PutItem],
    fresh: bool,
) -> std::result::Result<(), sqlx::Error> {
    let at = now();
    for item in merge_repeated_keys(items).iter() {
        let expires = item.ttl.map(|ttl| expiry(at, ttl));
        let expires = if fresh {
            expires
        } else {
            // A key past its TTL starts anew; a TTL sets the expiry of all
            // its rows; new rows of a put without one take the key's.
            sqlx::query(DELETE_EXPIRED_KEY)
                .bind(&item.key)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            match expires {
                Some(e) => {
                    sqlx::query(SET_EXPIRY)
                        .bind(&item.key)
                        .bind(e)
                        .execute(&mut *conn)
                        .await?;
                    Some(e)
                }
                None => {
                    sqlx::query_scalar::<_, Option<i64>>(KEY_EXPIRY)
                        .bind(&item.key)
                        .fetch_one(&mut *conn)
                        .await?
                }
            }
        };
        for (field, value) in &item.fields {
            sqlx::query(UPSERT)
                .bind(&item.key)
                .bind(field)
                .bind(value.as_ref())
                .bind(expires)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// The store in the file `sqlite` has open.
    pub fn new(sqlite: &Sqlite) -> Self {
        let sweeper = sqlite
            .config()
            .sweep_interval
            .and_then(|every| Sweeper::start(sqlite.clone(), every));
        Self {
            sqlite: sqlite.clone(),
            _sweeper: sweeper,
        }
    }

    /// The open file.
    pub fn connection(&self) -> &Sqlite {
        &self.sqlite
    }

    /// Deletes the rows of expired keys now; returns how many rows went.
    pub async fn sweep(&self) -> Result<u64> {
        sweep(&self.sqlite)
            .await
            .map_err(|e| backend("sweeping expired payloads", e))
    }

    async fn write(&self, items: &[PutItem], fresh: bool) -> Result<()> {
        check(items)?;
        if items.is_empty() {
            return Ok(());
        }
        let action = || format!("writing {} key(s)", items.len());
        let mut tx = self
            .sqlite
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| backend(action(), e))?;
        write_rows(&mut tx, items, fresh)
            .await
            .map_err(|e| backend(action(), e))?;
        tx.commit().await.map_err(|e| backend(action(), e))
    }
}

async fn sweep(sqlite: &Sqlite) -> std::result::Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let gone = sqlx::query(SWEEP)
            .bind(now())
            .execute(sqlite.pool())
            .await?
            .rows_affected();
        total += gone;
        if gone < ROWS_PER_SWEEP {
            return Ok(total);
        }
    }
}

#[async_trait]
impl KeyValueStore for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(Some(MAX_VALUE_BYTES))
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        self.write(items, false).await
    }

    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        self.write(items, true).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        let at = now();
        let mut conn = self
            .sqlite
            .pool()
            .acquire()
            .await
            .map_err(|e| backend(format!("reading {} key(s)", keys.len()), e))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let rows = sqlx::query(GET_KEY)
                .bind(*key)
                .bind(at)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| backend(format!("reading key {key:?}"), e))?;
            out.push((!rows.is_empty()).then(|| {
                rows.iter()
                    .map(|row| {
                        (
                            row.get::<String, _>(0),
                            Bytes::from(row.get::<Vec<u8>, _>(1)),
                        )
                    })
                    .collect()
            }));
        }
        Ok(out)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let action = || format!("deleting {} key(s)", keys.len());
        let at = now();
        let mut tx = self
            .sqlite
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| backend(action(), e))?;
        let mut existed = 0;
        for key in keys {
            let live: Vec<bool> = sqlx::query_scalar(DELETE_KEY)
                .bind(*key)
                .bind(at)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?;
            if live.iter().any(|l| *l) {
                existed += 1;
            }
        }
        tx.commit().await.map_err(|e| backend(action(), e))?;
        Ok(existed)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A task that sweeps every interval while a store made with it lives.
#[derive(Debug)]
struct Sweeper {
    task: JoinHandle<()>,
}

impl Sweeper {
    fn start(sqlite: Sqlite, every: Duration) -> Option<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = sweep(&sqlite).await {
                    tracing::debug!(error = %e, "sweeping expired payloads failed; next time");
                }
            }
        });
        Some(Arc::new(Self { task }))
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
