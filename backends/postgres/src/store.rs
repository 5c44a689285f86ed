//! [`PostgresStore`]: payloads as rows, one per field, with the key's
//! expiry on each.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use event_backbone_core::store::{check_value_sizes, merge_repeated_keys};
use event_backbone_core::{Fields, KeyValueStore, PutItem, Result, StoreCapabilities};
use sqlx::Row;

use crate::connection::{run_ddl, Postgres};
use crate::error::{backend, Error};
use crate::schema::{create_payload_table, qualified, qualified_entries, StoreSql, PAYLOADS};
use crate::sweep::Sweeper;
use crate::BACKEND;

/// The largest field value the store takes: PostgreSQL's `bytea` holds up
/// to 1 GiB, and a batch travels in one message; 256 MiB leaves room.
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

/// A [`KeyValueStore`] on PostgreSQL: each payload field is a row
/// `(key, field, value, expires_ms)` of the table `payloads` (or one of
/// your own, [`PostgresStore::with_table`]). A key past its TTL reads as
/// missing at once; a sweep deletes its rows later.
///
/// ```no_run
/// use event_backbone_core::{Fields, KeyValueStore};
/// use event_backbone_postgres::{Postgres, PostgresConfig, PostgresStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pg = Postgres::connect(PostgresConfig::from_env()?).await?;
/// let store = PostgresStore::new(&pg);
/// store.put("order:1", &Fields::from([("total".to_owned(), "42".into())]), None).await?;
/// assert!(store.get("order:1").await?.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pg: Postgres,
    table: String,
    sql: std::sync::Arc<StoreSql>,
    _sweeper: Option<std::sync::Arc<Sweeper>>,
}

/// Rows to write, as the arrays the statements take.
#[derive(Default)]
pub(crate) struct Rows<'a> {
    pub keys: Vec<&'a str>,
    pub fields: Vec<&'a str>,
    pub values: Vec<&'a [u8]>,
    pub ttls: Vec<Option<i64>>,
}

impl<'a> Rows<'a> {
    pub(crate) fn of(items: &'a [PutItem]) -> Self {
        let mut rows = Rows::default();
        for item in items {
            let ttl = item.ttl.map(ttl_ms);
            for (field, value) in &item.fields {
                rows.keys.push(&item.key);
                rows.fields.push(field);
                rows.values.push(value);
                rows.ttls.push(ttl);
            }
        }
        rows
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Inserts new payload keys (`insert_many`'s write) on `on`: the pool,
/// or a caller's transaction.
pub(crate) async fn insert_on<'c, E: sqlx::PgExecutor<'c>>(
    on: E,
    sql: &StoreSql,
    table: &str,
    items: &[PutItem],
) -> Result<()> {
    let items = checked(items)?;
    if items.is_empty() {
        return Ok(());
    }
    let rows = Rows::of(&items);
    sqlx::query(sql.insert.sql())
        .bind(&rows.keys)
        .bind(&rows.fields)
        .bind(&rows.values)
        .bind(&rows.ttls)
        .execute(on)
        .await
        .map_err(|e| backend(format!("inserting {} key(s) in {table}", items.len()), e))?;
    Ok(())
}

/// The checks a write of `items` passes before anything is written (sizes,
/// names), and the items with each key once.
pub(crate) fn checked(items: &[PutItem]) -> Result<std::borrow::Cow<'_, [PutItem]>> {
    check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)?;
    check_names(items)?;
    Ok(merge_repeated_keys(items))
}

/// Refuses what PostgreSQL's `text` cannot hold (a NUL character) in a
/// key or field name, naming it, before anything is written.
pub(crate) fn check_names(items: &[PutItem]) -> Result<()> {
    for item in items {
        let bad = std::iter::once(&item.key)
            .chain(item.fields.keys())
            .find(|name| name.contains('\0'));
        if let Some(name) = bad {
            return Err(event_backbone_core::Error::permanent(
                BACKEND,
                format!("writing key {:?}", item.key),
                format!("{name:?} holds a NUL character, which PostgreSQL text cannot hold"),
            ));
        }
    }
    Ok(())
}

impl PostgresStore {
    /// The store on the table `payloads` of the connection's schema (made
    /// at connect).
    pub fn new(pg: &Postgres) -> Self {
        Self::on(pg, PAYLOADS)
    }

    /// The store on a table of its own (made when missing): a class of
    /// payloads kept apart, with its own retention. The name is checked as
    /// schema names are.
    pub async fn with_table(pg: &Postgres, table: &str) -> crate::Result<Self> {
        crate::config::PostgresConfig::check_name("table", table)?;
        let schema = pg.config().schema_name();
        run_ddl(pg.pool(), schema, &create_payload_table(schema, table))
            .await
            .map_err(|source| Error::Schema {
                schema: schema.to_owned(),
                address: pg.config().address(),
                source,
            })?;
        Ok(Self::on(pg, table))
    }

    fn on(pg: &Postgres, table: &str) -> Self {
        let schema = pg.config().schema_name();
        let qualified = qualified(schema, table);
        let sql = match table {
            PAYLOADS => pg.inner.payloads.clone(),
            _ => {
                let entries = qualified_entries(schema);
                std::sync::Arc::new(StoreSql::new(&qualified, &entries))
            }
        };
        let sweeper = pg
            .config()
            .sweep_interval
            .and_then(|every| Sweeper::start(pg.pool().clone(), sql.sweep.clone(), every));
        Self {
            pg: pg.clone(),
            table: qualified,
            sql,
            _sweeper: sweeper,
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Postgres {
        &self.pg
    }

    /// The table, schema-qualified and quoted.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes the rows of expired keys now; returns how many rows went.
    /// A sweep also runs every [`sweep_interval`](crate::PostgresConfig::sweep_interval).
    pub async fn sweep(&self) -> Result<u64> {
        crate::sweep::sweep(self.pg.pool(), &self.sql.sweep)
            .await
            .map_err(|e| backend(format!("sweeping {}", self.table), e))
    }

    pub(crate) fn sql(&self) -> &StoreSql {
        &self.sql
    }

    fn action(&self, what: &str, n: usize) -> String {
        format!("{what} {n} key(s) in {}", self.table)
    }
}

#[async_trait]
impl KeyValueStore for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(Some(MAX_VALUE_BYTES))
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        let items = checked(items)?;
        if items.is_empty() {
            return Ok(());
        }
        let action = || self.action("writing", items.len());
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        let (ttl_keys, ttls): (Vec<&str>, Vec<i64>) = items
            .iter()
            .filter_map(|i| Some((i.key.as_str(), ttl_ms(i.ttl?))))
            .unzip();
        let rows = Rows::of(&items);
        let mut tx = self
            .pg
            .pool()
            .begin()
            .await
            .map_err(|e| backend(action(), e))?;
        // A key past its TTL starts anew; one put with a TTL sets the
        // expiry of all its rows; new rows take their key's expiry.
        sqlx::query(self.sql.delete_expired.sql())
            .bind(&keys)
            .execute(&mut *tx)
            .await
            .map_err(|e| backend(action(), e))?;
        if !ttl_keys.is_empty() {
            sqlx::query(self.sql.set_expiry.sql())
                .bind(&ttl_keys)
                .bind(&ttls)
                .execute(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?;
        }
        sqlx::query(self.sql.upsert_keeping_expiry.sql())
            .bind(&rows.keys)
            .bind(&rows.fields)
            .bind(&rows.values)
            .bind(&rows.ttls)
            .execute(&mut *tx)
            .await
            .map_err(|e| backend(action(), e))?;
        tx.commit().await.map_err(|e| backend(action(), e))
    }

    async fn insert_many(&self, items: &[PutItem]) -> Result<()> {
        insert_on(self.pg.pool(), &self.sql, &self.table, items).await
    }

    async fn get_fields(&self, key: &str, names: &[&str]) -> Result<Option<Fields>> {
        let rows = sqlx::query(self.sql.get_fields.sql())
            .bind(key)
            .bind(names)
            .fetch_all(self.pg.pool())
            .await
            .map_err(|e| backend(format!("reading key {key:?} in {}", self.table), e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut fields = Fields::new();
        for row in rows {
            let value: Option<Vec<u8>> = row.get(1);
            if let Some(value) = value {
                fields.insert(row.get(0), Bytes::from(value));
            }
        }
        Ok(Some(fields))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(self.sql.get_many.sql())
            .bind(keys)
            .fetch_all(self.pg.pool())
            .await
            .map_err(|e| backend(self.action("reading", keys.len()), e))?;
        let mut found: HashMap<String, Fields> = HashMap::with_capacity(keys.len());
        for row in rows {
            let value: Vec<u8> = row.get(2);
            found
                .entry(row.get(0))
                .or_default()
                .insert(row.get(1), Bytes::from(value));
        }
        Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let existed: i64 = sqlx::query_scalar(self.sql.delete_many.sql())
            .bind(keys)
            .fetch_one(self.pg.pool())
            .await
            .map_err(|e| backend(self.action("deleting", keys.len()), e))?;
        Ok(existed as u64)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
