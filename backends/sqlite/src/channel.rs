//! [`SqliteStreamChannel`]: streams, groups and pending lists in tables of
//! one SQLite file.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_backbone_core::clock::now_ms;
use event_backbone_core::envelope::Metadata;
use event_backbone_core::{
    ChannelCapabilities, Delivery, Entry, EntryId, Error, GroupInfo, GroupStart, KeyValueStore,
    MemberInfo, PutItem, Result, StreamChannel, StreamInfo, StreamPosition,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::connection::Sqlite;
use crate::entry::{id_of, seq_of, to_entry};
use crate::error::backend;
use crate::schema::*;
use crate::store::{write_rows, SqliteStore};
use crate::BACKEND;

/// A [`StreamChannel`] in a SQLite file: entries, consumer groups, pending
/// entries (with durable delivery counts) and members are rows; a blocked
/// read is woken by an append of this process at once, and looks again
/// every poll interval for those of another process on the same file.
///
/// ```no_run
/// use std::time::Duration;
/// use event_backbone_core::{GroupStart, StreamChannel};
/// use event_backbone_sqlite::{Sqlite, SqliteConfig, SqliteStreamChannel};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sqlite = Sqlite::open(SqliteConfig::from_url("sqlite:events.db")?).await?;
/// let channel = SqliteStreamChannel::new(&sqlite);
/// channel.ensure_group("orders", "billing", GroupStart::Beginning).await?;
/// let batch = channel.read_group("orders", "billing", "billing-1", 10, Duration::from_secs(1)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStreamChannel {
    sqlite: Sqlite,
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

fn no_such_group(stream: &str, group: &str) -> Error {
    Error::NoSuchGroup {
        stream: stream.to_owned(),
        group: group.to_owned(),
    }
}

fn count(row: &SqliteRow, i: usize) -> u64 {
    row.get::<i64, _>(i).max(0) as u64
}

/// Appends `batch` to `stream` on `conn` (inside a transaction); their
/// ids, in order.
pub(crate) async fn append_on(
    conn: &mut SqliteConnection,
    stream: &str,
    batch: &[Metadata],
) -> std::result::Result<Vec<EntryId>, sqlx::Error> {
    let appended_ms = now();
    let mut ids = Vec::with_capacity(batch.len());
    for metadata in batch {
        let seq: i64 = sqlx::query_scalar(APPEND)
            .bind(stream)
            .bind(appended_ms)
            .bind(event_backbone_core::envelope::encode_metadata(metadata))
            .fetch_one(&mut *conn)
            .await?;
        ids.push(id_of(seq));
    }
    Ok(ids)
}

impl SqliteStreamChannel {
    /// The channel in the file `sqlite` has open.
    pub fn new(sqlite: &Sqlite) -> Self {
        Self {
            sqlite: sqlite.clone(),
        }
    }

    /// The open file.
    pub fn connection(&self) -> &Sqlite {
        &self.sqlite
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        &self.sqlite.inner.pool
    }

    async fn immediate(
        &self,
        action: &(dyn Fn() -> String + Sync),
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| backend(action(), e))
    }

    async fn position(&self, stream: &str, group: &str) -> Result<i64> {
        let found: Option<i64> = sqlx::query_scalar(GROUP_POSITION)
            .bind(stream)
            .bind(group)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(format!("reading group {group:?} of stream {stream:?}"), e))?;
        found.ok_or_else(|| no_such_group(stream, group))
    }

    async fn read_group_once(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let action = || format!("reading stream {stream:?} for group {group:?}");
        let at = self.position(stream, group).await?;
        let newer: Option<i64> = sqlx::query_scalar(NEWER)
            .bind(stream)
            .bind(at)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(action(), e))?;
        if newer.is_none() {
            // Nothing to deliver: no write lock; the member's last read is
            // written down at most once a second.
            if self.sqlite.due_seen(stream, group, consumer) {
                sqlx::query(SEEN)
                    .bind(stream)
                    .bind(group)
                    .bind(consumer)
                    .bind(now())
                    .execute(self.pool())
                    .await
                    .map_err(|e| backend(action(), e))?;
            }
            return Ok(Vec::new());
        }
        let mut tx = self.immediate(&action).await?;
        let mut out = Vec::new();
        {
            // Again under the write lock: another member may have moved it.
            let at: i64 = sqlx::query_scalar(GROUP_POSITION)
                .bind(stream)
                .bind(group)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?
                .ok_or_else(|| no_such_group(stream, group))?;
            let rows = sqlx::query(FRESH)
                .bind(stream)
                .bind(at)
                .bind(count as i64)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?;
            let delivered_ms = now();
            for row in rows {
                let seq: i64 = row.get(0);
                sqlx::query(HOLD)
                    .bind(stream)
                    .bind(group)
                    .bind(seq)
                    .bind(consumer)
                    .bind(delivered_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend(action(), e))?;
                out.push(Delivery::new(to_entry(seq, row.get(1)), 1));
            }
            if let Some(last) = out.last() {
                sqlx::query(MOVE_GROUP)
                    .bind(stream)
                    .bind(group)
                    .bind(seq_of(&last.entry.id)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend(action(), e))?;
            }
        }
        sqlx::query(SEEN)
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(|e| backend(action(), e))?;
        tx.commit().await.map_err(|e| backend(action(), e))?;
        Ok(out)
    }

    /// Delivers again pending rows (seq, deliveries, metadata) to
    /// `consumer`, counting a delivery, inside `tx`; rows whose entry is
    /// gone are dropped from the pending list.
    async fn deliver_again(
        tx: &mut SqliteConnection,
        stream: &str,
        group: &str,
        consumer: &str,
        rows: Vec<SqliteRow>,
        action: &(dyn Fn() -> String + Sync),
    ) -> Result<Vec<Delivery>> {
        let delivered_ms = now();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.get(0);
            let deliveries: i64 = row.get(1);
            let metadata: Option<Vec<u8>> = row.get(2);
            let Some(metadata) = metadata else {
                sqlx::query(ACK)
                    .bind(stream)
                    .bind(group)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend(action(), e))?;
                continue;
            };
            sqlx::query(DELIVER_AGAIN)
                .bind(stream)
                .bind(group)
                .bind(seq)
                .bind(consumer)
                .bind(delivered_ms)
                .execute(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?;
            let count = u32::try_from(deliveries + 1).unwrap_or(u32::MAX);
            out.push(Delivery::new(to_entry(seq, metadata), count));
        }
        Ok(out)
    }

    async fn start_of(&self, stream: &str, from: &StreamPosition) -> Result<Option<i64>> {
        Ok(Some(match from {
            StreamPosition::Start => 0,
            StreamPosition::From(id) => seq_of(id)?,
            StreamPosition::After(id) => seq_of(id)?.saturating_add(1),
            StreamPosition::Time(ms) => {
                let found: Option<i64> = sqlx::query_scalar(FIRST_AT)
                    .bind(stream)
                    .bind(i64::try_from(*ms).unwrap_or(i64::MAX))
                    .fetch_one(self.pool())
                    .await
                    .map_err(|e| backend(format!("finding a time in stream {stream:?}"), e))?;
                match found {
                    Some(seq) => seq,
                    None => return Ok(None),
                }
            }
        }))
    }
}

#[async_trait]
impl StreamChannel for SqliteStreamChannel {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> ChannelCapabilities {
        ChannelCapabilities::all()
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        self.store_and_append(stream, &[], batch).await
    }

    async fn store_and_append(
        &self,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let action = || format!("appending {} entries to stream {stream:?}", batch.len());
        let mut here: Vec<&[PutItem]> = Vec::new();
        for (store, items) in payloads.iter().filter(|(_, items)| !items.is_empty()) {
            match store
                .as_any()
                .and_then(|s| s.downcast_ref::<SqliteStore>())
                .filter(|s| s.connection().same_file(&self.sqlite))
            {
                Some(_) => here.push(items),
                // Another store: first, on its own.
                None => store.insert_many(items).await?,
            }
        }
        if batch.is_empty() && here.is_empty() {
            return Ok(Vec::new());
        }
        for items in &here {
            crate::store::check(items)?;
        }
        // Payloads and entries in one transaction: one commit.
        let mut tx = self.immediate(&action).await?;
        for items in here {
            write_rows(&mut tx, items, true)
                .await
                .map_err(|e| backend(action(), e))?;
        }
        let ids = append_on(&mut tx, stream, batch)
            .await
            .map_err(|e| backend(action(), e))?;
        tx.commit().await.map_err(|e| backend(action(), e))?;
        self.sqlite.inner.wakeups.wake(stream);
        Ok(ids)
    }

    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        let action = || format!("making group {group:?} of stream {stream:?}");
        let at: i64 = match start {
            GroupStart::Beginning => 0,
            GroupStart::Latest => sqlx::query_scalar::<_, Option<i64>>(NEWEST)
                .bind(stream)
                .fetch_one(self.pool())
                .await
                .map_err(|e| backend(action(), e))?
                .unwrap_or(0),
        };
        sqlx::query(ENSURE_GROUP)
            .bind(stream)
            .bind(group)
            .bind(at)
            .execute(self.pool())
            .await
            .map_err(|e| backend(action(), e))?;
        Ok(())
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + block;
        let woken = self.sqlite.inner.wakeups.of(stream);
        let poll = self.sqlite.config().poll_interval;
        loop {
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.read_group_once(stream, group, consumer, count).await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !got.is_empty() || remaining.is_zero() || count == 0 {
                return Ok(got);
            }
            let _ = tokio::time::timeout(remaining.min(poll), notified).await;
        }
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let action = || {
            format!("reading the pending entries of {consumer:?} in group {group:?} of stream {stream:?}")
        };
        let mut tx = self.immediate(&action).await?;
        let rows = sqlx::query(MINE)
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(count as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| backend(action(), e))?;
        let out = Self::deliver_again(&mut tx, stream, group, consumer, rows, &action).await?;
        tx.commit().await.map_err(|e| backend(action(), e))?;
        if out.is_empty() {
            self.position(stream, group).await?;
        }
        Ok(out)
    }

    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        _delivered: u32,
    ) -> Result<Option<u32>> {
        let count: Option<i64> = sqlx::query_scalar(REDELIVER)
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(seq_of(id)?)
            .bind(now())
            .fetch_optional(self.pool())
            .await
            .map_err(|e| {
                backend(
                    format!("counting a delivery of {id} in group {group:?} of stream {stream:?}"),
                    e,
                )
            })?;
        Ok(count.map(|c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let seqs = ids.iter().map(seq_of).collect::<Result<Vec<_>>>()?;
        let action = || {
            format!(
                "acknowledging {} entries in group {group:?} of stream {stream:?}",
                ids.len()
            )
        };
        let mut tx = self.immediate(&action).await?;
        for seq in seqs {
            sqlx::query(ACK)
                .bind(stream)
                .bind(group)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?;
        }
        tx.commit().await.map_err(|e| backend(action(), e))
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let action = || format!("claiming stale entries in group {group:?} of stream {stream:?}");
        let idle = i64::try_from(min_idle.as_millis()).unwrap_or(i64::MAX / 2);
        let mut tx = self.immediate(&action).await?;
        let rows = sqlx::query(STALE)
            .bind(stream)
            .bind(group)
            .bind(now().saturating_sub(idle))
            .bind(count as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| backend(action(), e))?;
        let out = Self::deliver_again(&mut tx, stream, group, consumer, rows, &action).await?;
        sqlx::query(SEEN)
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(|e| backend(action(), e))?;
        tx.commit().await.map_err(|e| backend(action(), e))?;
        if out.is_empty() {
            self.position(stream, group).await?;
        }
        Ok(out)
    }

    async fn touch(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let seqs = ids.iter().map(seq_of).collect::<Result<Vec<_>>>()?;
        let action = || format!("touching entries in group {group:?} of stream {stream:?}");
        let at = now();
        let mut lost = Vec::new();
        let mut tx = self.immediate(&action).await?;
        for (seq, id) in seqs.into_iter().zip(ids) {
            let touched = sqlx::query(TOUCH)
                .bind(stream)
                .bind(group)
                .bind(consumer)
                .bind(seq)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| backend(action(), e))?
                .rows_affected();
            if touched == 0 {
                lost.push(id.clone());
            }
        }
        tx.commit().await.map_err(|e| backend(action(), e))?;
        Ok(lost)
    }

    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let end = to.map(seq_of).transpose()?.unwrap_or(i64::MAX);
        let Some(start) = self.start_of(stream, from).await? else {
            return Ok(Vec::new());
        };
        if start > end || count == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(RANGE)
            .bind(stream)
            .bind(start)
            .bind(end)
            .bind(count as i64)
            .fetch_all(self.pool())
            .await
            .map_err(|e| backend(format!("reading a range of stream {stream:?}"), e))?;
        Ok(rows
            .into_iter()
            .map(|row| to_entry(row.get(0), row.get(1)))
            .collect())
    }

    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        let seq = seq_of(id)?;
        let found: Option<Vec<u8>> = sqlx::query_scalar(GET)
            .bind(stream)
            .bind(seq)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(format!("reading entry {id} of stream {stream:?}"), e))?;
        Ok(found.map(|bytes| to_entry(seq, bytes)))
    }

    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        let action = || format!("describing stream {stream:?}");
        let sizes = sqlx::query(SIZES)
            .bind(stream)
            .fetch_one(self.pool())
            .await
            .map_err(|e| backend(action(), e))?;
        let (length, groups) = (count(&sizes, 0), count(&sizes, 1));
        if length == 0 && groups == 0 {
            return Ok(StreamInfo::default());
        }
        let last: Option<i64> = sizes.get(2);
        let groups = sqlx::query(GROUPS_INFO)
            .bind(stream)
            .fetch_all(self.pool())
            .await
            .map_err(|e| backend(action(), e))?
            .iter()
            .map(|row| GroupInfo {
                name: row.get(0),
                pending: count(row, 1),
                lag: Some(count(row, 2)),
                consumers: count(row, 3),
            })
            .collect();
        Ok(StreamInfo {
            length,
            last: last.map(id_of),
            partitions: 1,
            groups,
        })
    }

    async fn group_members(&self, stream: &str, group: &str) -> Result<Option<Vec<MemberInfo>>> {
        let rows = sqlx::query(MEMBERS_INFO)
            .bind(stream)
            .bind(group)
            .bind(now())
            .fetch_all(self.pool())
            .await
            .map_err(|e| {
                backend(
                    format!("listing the members of group {group:?} of stream {stream:?}"),
                    e,
                )
            })?;
        Ok(Some(
            rows.iter()
                .map(|row| {
                    let idle: i64 = row.get(2);
                    MemberInfo::new(
                        row.get::<String, _>(0),
                        count(row, 1),
                        Some(idle.max(0) as u64),
                    )
                })
                .collect(),
        ))
    }

    async fn streams(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(STREAMS)
            .fetch_all(self.pool())
            .await
            .map_err(|e| backend("listing the streams", e))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
