//! The channel and store suites on a SQLite file: every case, by name.
//! The run keeps its file in a directory of its own, removed at the end.

mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_sqlite::{Sqlite, SqliteConfig, SqliteStore, SqliteStreamChannel, BACKEND};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(support::dir)
}

async fn sqlite() -> event_backbone_core::Result<Sqlite> {
    Ok(Sqlite::open(SqliteConfig::file(dir().join("conformance.db"))).await?)
}

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    Ok(Arc::new(SqliteStore::new(&sqlite().await?)))
}

/// Writes bytes where the channel keeps an entry's encoded metadata.
async fn append_raw(
    channel: Arc<dyn StreamChannel>,
    stream: String,
    bytes: Bytes,
) -> event_backbone_core::Result<()> {
    let sqlite = channel
        .as_any()
        .and_then(|c| c.downcast_ref::<SqliteStreamChannel>())
        .expect("the SQLite channel")
        .connection()
        .clone();
    sqlx::query("INSERT INTO eb_entries (stream, appended_ms, metadata) VALUES (?1, 0, ?2)")
        .bind(&stream)
        .bind(bytes.as_ref())
        .execute(sqlite.pool())
        .await
        .map_err(|e| event_backbone_core::Error::transient(BACKEND, "writing a raw entry", e))?;
    Ok(())
}

fn main() -> ExitCode {
    let code = Conformance::new(BACKEND)
        .channel(|| async {
            Ok(Arc::new(SqliteStreamChannel::new(&sqlite().await?)) as Arc<dyn StreamChannel>)
        })
        .raw_entries(append_raw)
        .store(store)
        .channel_payloads_in(store)
        .run();
    support::remove(dir());
    code
}
