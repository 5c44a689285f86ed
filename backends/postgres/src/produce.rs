//! Appending entries, alone or with their payloads in one statement, on
//! the pool or inside a caller's transaction (the outbox).

use event_backbone_core::envelope::{encode_metadata, Metadata};
use event_backbone_core::{EntryId, Error, PutItem, Result};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};

use crate::connection::Postgres;
use crate::entry::Position;
use crate::error::{backend, protocol};
use crate::schema::StoreSql;
use crate::store::{checked, Rows};
use crate::BACKEND;

/// Refuses a stream name PostgreSQL's `text` cannot hold.
fn check_stream(stream: &str) -> Result<()> {
    if stream.contains('\0') {
        return Err(Error::permanent(
            BACKEND,
            format!("appending to stream {stream:?}"),
            "the stream name holds a NUL character, which PostgreSQL text cannot hold",
        ));
    }
    Ok(())
}

/// Appends `batch` to `stream` (and notifies the readers at commit).
pub(crate) async fn append<'c, E: PgExecutor<'c>>(
    pg: &Postgres,
    on: E,
    stream: &str,
    batch: &[Metadata],
) -> Result<Vec<EntryId>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    check_stream(stream)?;
    let encoded: Vec<Vec<u8>> = batch.iter().map(encode_metadata).collect();
    let action = || format!("appending {} entries to stream {stream:?}", batch.len());
    let rows = sqlx::query(pg.inner.sql.append.sql())
        .bind(stream)
        .bind(&encoded)
        .bind(pg.notification_channel())
        .fetch_all(on)
        .await
        .map_err(|e| backend(action(), e))?;
    ids(rows, batch.len(), action)
}

/// Writes `items` into `store` and appends `batch` to `stream` in one
/// statement: no entry is visible without its payload, and neither is
/// without the other.
pub(crate) async fn store_and_append<'c, E: PgExecutor<'c>>(
    pg: &Postgres,
    on: E,
    store: &StoreSql,
    items: &[PutItem],
    stream: &str,
    batch: &[Metadata],
) -> Result<Vec<EntryId>> {
    let items = checked(items)?;
    if batch.is_empty() {
        return match items.is_empty() {
            true => Ok(Vec::new()),
            false => Err(protocol(
                format!("writing payloads for stream {stream:?}"),
                "payloads with no entry to append",
            )),
        };
    }
    check_stream(stream)?;
    let rows = Rows::of(&items);
    let encoded: Vec<Vec<u8>> = batch.iter().map(encode_metadata).collect();
    let action = || {
        format!(
            "writing {} payload(s) and appending {} entries to stream {stream:?}",
            items.len(),
            batch.len()
        )
    };
    let replies = sqlx::query(store.store_and_append.sql())
        .bind(stream)
        .bind(&encoded)
        .bind(pg.notification_channel())
        .bind(&rows.keys)
        .bind(&rows.fields)
        .bind(&rows.values)
        .bind(&rows.ttls)
        .fetch_all(on)
        .await
        .map_err(|e| backend(action(), e))?;
    ids(replies, batch.len(), action)
}

fn ids(rows: Vec<PgRow>, expected: usize, action: impl Fn() -> String) -> Result<Vec<EntryId>> {
    if rows.len() != expected {
        return Err(protocol(
            action(),
            format!("{} ids returned for {expected} entries", rows.len()),
        ));
    }
    Ok(rows
        .iter()
        .map(|row| {
            Position {
                xid: row.get(0),
                seq: row.get(1),
            }
            .id()
        })
        .collect())
}
