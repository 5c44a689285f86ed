//! Shared by the SQLite tests: a file of each test's own.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_sqlite::{Sqlite, SqliteConfig};

/// A directory of this test run's own, under the system's temporary
/// directory (removed by [`remove`]).
pub fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "event-backbone-sqlite-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Opens the file `name` in `dir`.
pub async fn open(dir: &std::path::Path, name: &str) -> Sqlite {
    Sqlite::open(SqliteConfig::file(dir.join(name)))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Removes a test's directory.
pub fn remove(dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir);
}
