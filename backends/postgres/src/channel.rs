//! [`PostgresStreamChannel`]: streams, groups and pending lists in tables.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_backbone_core::envelope::Metadata;
use event_backbone_core::{
    ChannelCapabilities, Delivery, Entry, EntryId, Error, GroupInfo, GroupStart, KeyValueStore,
    MemberInfo, PutItem, Result, StreamChannel, StreamInfo, StreamPosition,
};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::connection::Postgres;
use crate::entry::{columns, to_entry, Position};
use crate::error::backend;
use crate::produce;
use crate::BACKEND;

/// The first wait before looking again at entries held back by an older
/// transaction; it doubles up to the poll interval.
const HELD_FIRST_LOOK: Duration = Duration::from_millis(5);

/// How long `ensure_group(.., Latest)` waits for transactions still
/// appending to the stream to end, so that the group starts after them.
const LATEST_SETTLE: Duration = Duration::from_secs(2);

/// A [`StreamChannel`] on PostgreSQL. Each entry is a row of `entries`
/// stamped with the id of the transaction that appended it; readers read
/// in `(transaction id, sequence)` order, and only entries of transactions
/// older than every transaction still running, so that an entry committed
/// late by a slow transaction is never skipped (the classic outbox-relay
/// bug of reading by sequence number alone). Groups, their pending entries
/// and members are rows too; blocked reads are woken by `LISTEN/NOTIFY`.
///
/// ```no_run
/// use std::time::Duration;
/// use event_backbone_core::{GroupStart, StreamChannel};
/// use event_backbone_postgres::{Postgres, PostgresConfig, PostgresStreamChannel};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pg = Postgres::connect(PostgresConfig::from_env()?).await?;
/// let channel = PostgresStreamChannel::new(&pg);
/// channel.ensure_group("orders", "billing", GroupStart::Beginning).await?;
/// let batch = channel.read_group("orders", "billing", "billing-1", 10, Duration::from_secs(1)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStreamChannel {
    pg: Postgres,
}

impl PostgresStreamChannel {
    /// The channel on the connection's schema.
    pub fn new(pg: &Postgres) -> Self {
        Self { pg: pg.clone() }
    }

    /// The connection.
    pub fn connection(&self) -> &Postgres {
        &self.pg
    }

    /// Deletes the entries of `stream` that every group has read past and
    /// none holds pending; returns how many went. For a stream kept only as
    /// long as its readers need it, such as an outbox after its relay
    /// (`eb outbox relay` calls it): the channel trims nothing by itself. A
    /// stream with no group keeps everything.
    pub async fn delete_acknowledged(&self, stream: &str) -> Result<u64> {
        sqlx::query(self.sql().delete_acknowledged.sql())
            .bind(stream)
            .execute(self.pool())
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| backend(format!("deleting read entries of stream {stream:?}"), e))
    }

    fn sql(&self) -> &crate::schema::ChannelSql {
        &self.pg.inner.sql
    }

    fn pool(&self) -> &sqlx::PgPool {
        &self.pg.inner.pool
    }

    /// One read: the deliveries, and whether committed entries wait behind
    /// an older transaction still running (when none could be read).
    async fn read_group_once(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<(Vec<Delivery>, bool)> {
        let rows = sqlx::query(self.sql().read_group.sql())
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(count as i64)
            .fetch_all(self.pool())
            .await
            .map_err(|e| backend(format!("reading stream {stream:?} for group {group:?}"), e))?;
        if rows.is_empty() {
            return Err(no_such_group(stream, group));
        }
        let held = rows[0].get::<Option<bool>, _>(3).unwrap_or(false);
        let deliveries = rows
            .into_iter()
            .filter_map(|row| {
                let xid: Option<i64> = row.get(0);
                let at = Position {
                    xid: xid?,
                    seq: row.get(1),
                };
                Some(Delivery::new(to_entry(at, row.get(2)), 1))
            })
            .collect();
        Ok((deliveries, held))
    }

    /// Deliveries from rows of (xid, seq, deliveries, metadata); pending
    /// entries whose row is gone are acknowledged, since nothing can
    /// deliver them.
    async fn deliveries(
        &self,
        stream: &str,
        group: &str,
        rows: Vec<PgRow>,
    ) -> Result<Vec<Delivery>> {
        let mut out = Vec::with_capacity(rows.len());
        let mut gone = Vec::new();
        for row in rows {
            let at = Position {
                xid: row.get(0),
                seq: row.get(1),
            };
            let deliveries: i32 = row.get(2);
            let metadata: Option<Vec<u8>> = row.get(3);
            match metadata {
                Some(bytes) => out.push(Delivery::new(
                    to_entry(at, bytes),
                    u32::try_from(deliveries).unwrap_or(u32::MAX),
                )),
                None => gone.push(at.id()),
            }
        }
        if !gone.is_empty() {
            self.ack(stream, group, &gone).await?;
        }
        Ok(out)
    }

    async fn check_group(&self, stream: &str, group: &str) -> Result<()> {
        let found = sqlx::query(self.sql().group_exists.sql())
            .bind(stream)
            .bind(group)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(format!("finding group {group:?} of stream {stream:?}"), e))?;
        match found {
            Some(_) => Ok(()),
            None => Err(no_such_group(stream, group)),
        }
    }

    /// Where a group made with [`GroupStart::Latest`] starts: after the
    /// newest entry, once the transactions that appended the entries before
    /// it have ended (waiting up to [`LATEST_SETTLE`]; after that, after
    /// the newest entry they no longer hold back, so that none is skipped).
    async fn latest_position(&self, stream: &str) -> Result<Position> {
        let action = || format!("finding the newest entry of stream {stream:?}");
        let deadline = Instant::now() + LATEST_SETTLE;
        loop {
            let newest = sqlx::query(self.sql().newest.sql())
                .bind(stream)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| backend(action(), e))?;
            let Some(row) = newest else {
                return Ok(Position::ZERO);
            };
            let settled: bool = row.get(2);
            if settled {
                return Ok(Position {
                    xid: row.get(0),
                    seq: row.get(1),
                });
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let settled = sqlx::query(self.sql().newest_settled.sql())
            .bind(stream)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(action(), e))?;
        Ok(settled.map_or(Position::ZERO, |row| Position {
            xid: row.get(0),
            seq: row.get(1),
        }))
    }

    async fn position(&self, stream: &str, from: &StreamPosition) -> Result<Option<Position>> {
        Ok(Some(match from {
            StreamPosition::Start => Position::ZERO,
            StreamPosition::From(id) => Position::of(id)?,
            StreamPosition::After(id) => Position::of(id)?.next(),
            StreamPosition::Time(ms) => {
                let found = sqlx::query(self.sql().first_at.sql())
                    .bind(stream)
                    .bind(i64::try_from(*ms).unwrap_or(i64::MAX))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| backend(format!("finding a time in stream {stream:?}"), e))?;
                match found {
                    Some(row) => Position {
                        xid: row.get(0),
                        seq: row.get(1),
                    },
                    None => return Ok(None),
                }
            }
        }))
    }
}

fn no_such_group(stream: &str, group: &str) -> Error {
    Error::NoSuchGroup {
        stream: stream.to_owned(),
        group: group.to_owned(),
    }
}

fn count(row: &PgRow, i: usize) -> u64 {
    row.get::<i64, _>(i).max(0) as u64
}

#[async_trait]
impl StreamChannel for PostgresStreamChannel {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> ChannelCapabilities {
        ChannelCapabilities::all()
    }

    async fn append_many(&self, stream: &str, batch: &[Metadata]) -> Result<Vec<EntryId>> {
        produce::append(&self.pg, self.pool(), stream, batch).await
    }

    async fn store_and_append(
        &self,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let mut writes = payloads.iter().filter(|(_, items)| !items.is_empty());
        let (first, more) = (writes.next(), writes.next().is_some());
        let Some((store, items)) = first else {
            return self.append_many(stream, batch).await;
        };
        let same = store
            .as_any()
            .and_then(|s| s.downcast_ref::<crate::PostgresStore>())
            .filter(|s| s.connection().same(&self.pg));
        if let (Some(store), false) = (same, more) {
            // Payloads and entries in one statement: one round trip, one
            // commit.
            return produce::store_and_append(
                &self.pg,
                self.pool(),
                store.sql(),
                items,
                stream,
                batch,
            )
            .await;
        }
        let writes = payloads
            .iter()
            .filter(|(_, items)| !items.is_empty())
            .map(|(store, items)| store.insert_many(items));
        futures_util::future::try_join_all(writes).await?;
        self.append_many(stream, batch).await
    }

    async fn ensure_group(&self, stream: &str, group: &str, start: GroupStart) -> Result<()> {
        let at = match start {
            GroupStart::Beginning => Position::ZERO,
            GroupStart::Latest => self.latest_position(stream).await?,
        };
        sqlx::query(self.sql().ensure_group.sql())
            .bind(stream)
            .bind(group)
            .bind(at.xid)
            .bind(at.seq)
            .execute(self.pool())
            .await
            .map_err(|e| backend(format!("making group {group:?} of stream {stream:?}"), e))?;
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
        let (first, _) = self.read_group_once(stream, group, consumer, count).await?;
        if !first.is_empty() || block.is_zero() || count == 0 {
            return Ok(first);
        }
        let deadline = Instant::now() + block;
        let woken = self.pg.inner.wakeups.of(&self.pg.config().options, stream);
        let poll = self.pg.config().poll_interval;
        // Entries held back by an older transaction show up when it ends,
        // which nothing announces: look again soon, then less often.
        let mut soon = HELD_FIRST_LOOK;
        loop {
            // Listening before the read: a notification that comes while
            // it runs wakes the wait after it.
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, held) = self.read_group_once(stream, group, consumer, count).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let wait = match held {
                true => {
                    let wait = soon;
                    soon = (soon * 2).min(poll);
                    wait
                }
                false => {
                    soon = HELD_FIRST_LOOK;
                    poll
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout(remaining.min(wait), notified).await;
        }
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(self.sql().read_pending.sql())
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(count as i64)
            .fetch_all(self.pool())
            .await
            .map_err(|e| {
                backend(
                    format!("reading the pending entries of {consumer:?} in group {group:?} of stream {stream:?}"),
                    e,
                )
            })?;
        if rows.is_empty() {
            self.check_group(stream, group).await?;
        }
        self.deliveries(stream, group, rows).await
    }

    async fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        _delivered: u32,
    ) -> Result<Option<u32>> {
        let at = Position::of(id)?;
        let count: Option<i32> = sqlx::query_scalar(self.sql().redeliver.sql())
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(at.xid)
            .bind(at.seq)
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
        let (xids, seqs) = columns(ids)?;
        sqlx::query(self.sql().ack.sql())
            .bind(stream)
            .bind(group)
            .bind(&xids)
            .bind(&seqs)
            .execute(self.pool())
            .await
            .map_err(|e| {
                backend(
                    format!(
                        "acknowledging {} entries in group {group:?} of stream {stream:?}",
                        ids.len()
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(self.sql().claim_stale.sql())
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(i64::try_from(min_idle.as_millis()).unwrap_or(i64::MAX / 2))
            .bind(count as i64)
            .fetch_all(self.pool())
            .await
            .map_err(|e| {
                backend(
                    format!("claiming stale entries in group {group:?} of stream {stream:?}"),
                    e,
                )
            })?;
        if rows.is_empty() {
            self.check_group(stream, group).await?;
        }
        self.deliveries(stream, group, rows).await
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
        let (xids, seqs) = columns(ids)?;
        let kept = sqlx::query(self.sql().touch.sql())
            .bind(stream)
            .bind(group)
            .bind(consumer)
            .bind(&xids)
            .bind(&seqs)
            .fetch_all(self.pool())
            .await
            .map_err(|e| {
                backend(
                    format!("touching entries in group {group:?} of stream {stream:?}"),
                    e,
                )
            })?;
        let kept: std::collections::HashSet<(i64, i64)> =
            kept.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok(ids
            .iter()
            .zip(xids.iter().zip(&seqs))
            .filter(|(_, (xid, seq))| !kept.contains(&(**xid, **seq)))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn read_range(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let end = to.map(Position::of).transpose()?.unwrap_or(Position::END);
        let Some(start) = self.position(stream, from).await? else {
            return Ok(Vec::new());
        };
        if start > end || count == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(self.sql().read_range.sql())
            .bind(stream)
            .bind(start.xid)
            .bind(start.seq)
            .bind(end.xid)
            .bind(end.seq)
            .bind(count as i64)
            .fetch_all(self.pool())
            .await
            .map_err(|e| backend(format!("reading a range of stream {stream:?}"), e))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let at = Position {
                    xid: row.get(0),
                    seq: row.get(1),
                };
                to_entry(at, row.get(2))
            })
            .collect())
    }

    async fn get(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        let at = Position::of(id)?;
        let found: Option<Vec<u8>> = sqlx::query_scalar(self.sql().get.sql())
            .bind(stream)
            .bind(at.xid)
            .bind(at.seq)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(format!("reading entry {id} of stream {stream:?}"), e))?;
        Ok(found.map(|bytes| to_entry(at, bytes)))
    }

    async fn info(&self, stream: &str) -> Result<StreamInfo> {
        let action = || format!("describing stream {stream:?}");
        let sizes = sqlx::query(self.sql().length.sql())
            .bind(stream)
            .fetch_one(self.pool())
            .await
            .map_err(|e| backend(action(), e))?;
        let (length, groups) = (count(&sizes, 0), count(&sizes, 1));
        if length == 0 && groups == 0 {
            return Ok(StreamInfo::default());
        }
        let last = sqlx::query(self.sql().newest.sql())
            .bind(stream)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| backend(action(), e))?
            .map(|row| {
                Position {
                    xid: row.get(0),
                    seq: row.get(1),
                }
                .id()
            });
        let groups = sqlx::query(self.sql().groups.sql())
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
            last,
            partitions: 1,
            groups,
        })
    }

    async fn group_members(&self, stream: &str, group: &str) -> Result<Option<Vec<MemberInfo>>> {
        let rows = sqlx::query(self.sql().members.sql())
            .bind(stream)
            .bind(group)
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
        sqlx::query_scalar(self.sql().streams.sql())
            .fetch_all(self.pool())
            .await
            .map_err(|e| backend("listing the streams", e))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
