//! [`Postgres`]: a pool of connections to a PostgreSQL database, with the
//! backend's tables made at connect.

use std::fmt;
use std::sync::Arc;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::config::PostgresConfig;
use crate::error::{Error, Result};
use crate::schema::{
    create_channel_tables, create_payload_table, qualified, qualified_entries, ChannelSql,
    StoreSql, PAYLOADS,
};
use crate::wake::Wakeups;

/// A connection to PostgreSQL: sqlx's pool, the configuration and the
/// statements with the schema's name in them. Cheap to clone; channels and
/// stores are made from it, and those made from one connection write a
/// producer's payloads and entries in one statement.
///
/// ```no_run
/// use event_backbone_postgres::{Postgres, PostgresConfig, PostgresStore, PostgresStreamChannel};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pg = Postgres::connect(PostgresConfig::from_env()?).await?;
/// let channel = PostgresStreamChannel::new(&pg);
/// let store = PostgresStore::new(&pg);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Postgres {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub pool: PgPool,
    pub config: PostgresConfig,
    pub sql: ChannelSql,
    /// The statements of the default payload table (the outbox's store).
    pub payloads: Arc<StoreSql>,
    pub wakeups: Arc<Wakeups>,
}

impl Postgres {
    /// Connects, checks that the server answers and makes the schema and
    /// the backend's tables where they are missing (under an advisory lock,
    /// so that processes starting together do not race), so that a wrong
    /// address, password or a missing privilege fails here, with
    /// [`Error::Connect`] or [`Error::Schema`].
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let address = config.address();
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            // A broken connection fails its statement with a transient
            // error, which the caller retries: no ping before each use.
            .test_before_acquire(false)
            .connect_with(config.options.clone())
            .await
            .map_err(|source| Error::Connect {
                address: address.clone(),
                source,
            })?;
        let schema = config.schema_name().to_owned();
        let mut statements = create_channel_tables(&schema);
        statements.extend(create_payload_table(&schema, PAYLOADS));
        run_ddl(&pool, &schema, &statements)
            .await
            .map_err(|source| Error::Schema {
                schema: schema.clone(),
                address,
                source,
            })?;
        let wakeups = Wakeups::new(format!("{schema}_appended"));
        Ok(Self {
            inner: Arc::new(Inner {
                sql: ChannelSql::new(&schema),
                payloads: Arc::new(StoreSql::new(
                    &qualified(&schema, PAYLOADS),
                    &qualified_entries(&schema),
                )),
                pool,
                config,
                wakeups,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// sqlx's pool, for what this crate does not do (and for the
    /// transactions of the outbox).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The notification channel the channel's appends notify (`NOTIFY`),
    /// with the stream's name as payload.
    pub fn notification_channel(&self) -> &str {
        self.inner.wakeups.channel()
    }

    /// Whether two handles share one connection (pool).
    pub(crate) fn same(&self, other: &Postgres) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Runs DDL statements in one transaction under an advisory lock named
/// after the schema: concurrent `CREATE ... IF NOT EXISTS` may otherwise
/// fail on the catalog's unique keys.
pub(crate) async fn run_ddl(
    pool: &PgPool,
    schema: &str,
    statements: &[String],
) -> std::result::Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("event-backbone:{schema}"))
        .execute(&mut *tx)
        .await?;
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
