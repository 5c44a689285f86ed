//! The channel and store suites against a real PostgreSQL: every case, by
//! name.
//!
//! The server is `POSTGRES_EVENT_SOURCE_URL`, or 127.0.0.1:5432 (user
//! postgres, database test), which `scripts/start-postgres` makes answer.
//! A server that cannot be reached fails every case. The run keeps its
//! tables in a schema of its own, dropped at the end.

mod support;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_postgres::{Postgres, PostgresStore, PostgresStreamChannel, BACKEND};

fn schema() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| support::unique_schema("conformance"))
}

async fn postgres() -> event_backbone_core::Result<Postgres> {
    Ok(Postgres::connect(support::config(schema())).await?)
}

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    Ok(Arc::new(PostgresStore::new(&postgres().await?)))
}

/// Writes bytes where the channel keeps an entry's encoded metadata.
async fn append_raw(
    channel: Arc<dyn StreamChannel>,
    stream: String,
    bytes: Bytes,
) -> event_backbone_core::Result<()> {
    let pg = channel
        .as_any()
        .and_then(|c| c.downcast_ref::<PostgresStreamChannel>())
        .expect("the PostgreSQL channel")
        .connection()
        .clone();
    let table = format!("\"{}\".entries", schema());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (stream, metadata) VALUES ($1, $2)"
    )))
    .bind(&stream)
    .bind(bytes.as_ref())
    .execute(pg.pool())
    .await
    .map_err(|e| event_backbone_core::Error::transient(BACKEND, "writing a raw entry", e))?;
    Ok(())
}

fn main() -> ExitCode {
    let code = Conformance::new(BACKEND)
        .channel(|| async {
            Ok(Arc::new(PostgresStreamChannel::new(&postgres().await?)) as Arc<dyn StreamChannel>)
        })
        .raw_entries(append_raw)
        .store(store)
        .channel_payloads_in(store)
        .run();
    support::drop_schemas(&[schema()]);
    code
}
