//! Shared by the PostgreSQL tests: the server, unique names, a raw pool.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use std::collections::BTreeMap;

use event_backbone_core::envelope::{MessageId, Metadata, Origin};
use event_backbone_postgres::{Postgres, PostgresConfig, URL_VAR};

/// The metadata of a message numbered `n` (its correlation id).
pub fn sample(stream: &str, n: u32) -> Metadata {
    Metadata {
        message_id: MessageId::new(),
        operation: "sample".to_owned(),
        version: 1,
        uri: stream.to_owned(),
        environment: None,
        produced_at_ms: 1_700_000_000_000,
        origin: Origin::Original,
        content_type: "application/postcard".to_owned(),
        correlation_id: Some(n.to_string()),
        causation_id: None,
        traceparent: None,
        headers: BTreeMap::new(),
        segments: Vec::new(),
        subject: None,
    }
}

/// Where `scripts/start-postgres` makes a server answer when none is named.
pub const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL: `POSTGRES_EVENT_SOURCE_URL`, else the local one.
pub fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| LOCAL.to_owned())
}

/// A schema no other test run uses (`eb_<prefix>_<time><pid>`), so that
/// runs do not see each other's rows; drop it with [`drop_schema`].
pub fn unique_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "eb_{prefix}_{}_{}",
        nanos % 1_000_000_000_000,
        std::process::id()
    )
}

/// The test server's configuration on `schema`.
pub fn config(schema: &str) -> PostgresConfig {
    PostgresConfig::from_url(&url())
        .expect("a valid POSTGRES_EVENT_SOURCE_URL")
        .schema(schema)
        .expect("a valid schema name")
}

/// The test server. A server that is not there fails the test, with how
/// to start one.
pub async fn postgres(schema: &str) -> Postgres {
    match Postgres::connect(config(schema)).await {
        Ok(pg) => pg,
        Err(e) => panic!("{e}; run scripts/start-postgres"),
    }
}

/// A plain sqlx pool on the same server, to look at what the backend
/// wrote with plain SQL.
pub async fn raw() -> sqlx::PgPool {
    sqlx::PgPool::connect(&url())
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/start-postgres"))
}

/// Drops the schemas (with their tables), on a runtime of its own.
pub fn drop_schemas(schemas: &[&str]) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let pool = raw().await;
            for schema in schemas {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&pool)
                .await
                .unwrap();
            }
        });
}
