//! [`InTransaction`]: a caller's PostgreSQL transaction that producers
//! write messages into (the transactional outbox).

use async_trait::async_trait;
use event_backbone_core::envelope::Metadata;
use event_backbone_core::outbox::{outbox_key, outbox_stream, Transaction};
use event_backbone_core::{EntryId, KeyValueStore, PutItem, Result, StreamChannel};
use sqlx::PgConnection;

use crate::connection::Postgres;
use crate::produce;
use crate::store::{insert_on, PostgresStore};
use crate::PostgresStreamChannel;

/// The caller's transaction (or any connection), for
/// [`Producer::send_in`](event_backbone_core::Producer::send_in): made by
/// [`Postgres::within`]. What a producer writes through it commits or rolls
/// back with the caller's own changes:
///
/// - a producer on a [`PostgresStreamChannel`]: payloads (of
///   [`PostgresStore`]s) and entries go into that channel's tables inside
///   the transaction, in one statement when there is one such store;
///   payloads of stores of other kinds are written first, outside it (on a
///   rollback they are orphans no entry points at, and expire with their
///   TTL);
/// - a producer on another channel (Redis, Kafka): the message goes to the
///   outbox, the schema of the [`Postgres`] this was made from: its entry
///   in that schema's stream `{stream}:outbox`, its payloads (every
///   store's, without TTL) in its `payloads` table under `{key}:outbox`
///   (see the core's `outbox` module); an
///   [`OutboxRelay`](event_backbone_core::outbox::OutboxRelay) on that
///   channel and store moves it on once committed.
///
/// One statement per message (more when its payloads go to several
/// PostgreSQL stores); a failed statement aborts the transaction
/// (PostgreSQL's rule): roll it back.
pub struct InTransaction<'c> {
    pg: Postgres,
    conn: &'c mut PgConnection,
}

impl Postgres {
    /// The caller's transaction `conn` as the target of producers' sends
    /// (`Producer::send_in`, typed `in_transaction`); with a channel of
    /// another kind, this connection's schema is the outbox.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use event_backbone_core::Producer;
    /// use event_backbone_postgres::{Postgres, PostgresConfig, PostgresStore, PostgresStreamChannel};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pg = Postgres::connect(PostgresConfig::from_env()?).await?;
    /// let producer = Producer::builder()
    ///     .channel(Arc::new(PostgresStreamChannel::new(&pg)))
    ///     .store(Arc::new(PostgresStore::new(&pg)))
    ///     .uri("orders")
    ///     .build()?;
    /// let mut tx = pg.pool().begin().await?;
    /// sqlx::query("UPDATE stock SET count = count - 1 WHERE item = $1")
    ///     .bind("tea")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// producer
    ///     .message("order_placed")
    ///     .segment("item", "tea")?
    ///     .send_in(&mut pg.within(&mut tx))
    ///     .await?;
    /// tx.commit().await?; // the event and the stock change, or neither
    /// # Ok(()) }
    /// ```
    pub fn within<'c>(&self, conn: &'c mut PgConnection) -> InTransaction<'c> {
        InTransaction {
            pg: self.clone(),
            conn,
        }
    }
}

#[async_trait]
impl Transaction for InTransaction<'_> {
    async fn store_and_append(
        &mut self,
        channel: &dyn StreamChannel,
        stream: &str,
        payloads: &[(&dyn KeyValueStore, Vec<PutItem>)],
        batch: &[Metadata],
    ) -> Result<Vec<EntryId>> {
        let Some(ours) = channel
            .as_any()
            .and_then(|c| c.downcast_ref::<PostgresStreamChannel>())
        else {
            // Another channel: into the outbox, for the relay.
            let items: Vec<PutItem> = payloads
                .iter()
                .flat_map(|(_, items)| items.iter())
                .map(|item| PutItem {
                    key: outbox_key(&item.key),
                    fields: item.fields.clone(),
                    ttl: None,
                })
                .collect();
            let sql = self.pg.inner.payloads.clone();
            return produce::store_and_append(
                &self.pg,
                &mut *self.conn,
                &sql,
                &items,
                &outbox_stream(stream),
                batch,
            )
            .await;
        };
        let pg = ours.connection();
        let mut in_tx: Vec<(&PostgresStore, &[PutItem])> = Vec::new();
        for (store, items) in payloads.iter().filter(|(_, items)| !items.is_empty()) {
            match store
                .as_any()
                .and_then(|s| s.downcast_ref::<PostgresStore>())
            {
                Some(pg_store) => in_tx.push((pg_store, items)),
                // Not the database's: first, outside the transaction.
                None => store.insert_many(items).await?,
            }
        }
        match in_tx.as_slice() {
            [] => produce::append(pg, &mut *self.conn, stream, batch).await,
            [(store, items)] => {
                produce::store_and_append(pg, &mut *self.conn, store.sql(), items, stream, batch)
                    .await
            }
            several => {
                for (store, items) in several {
                    insert_on(&mut *self.conn, store.sql(), store.table(), items).await?;
                }
                produce::append(pg, &mut *self.conn, stream, batch).await
            }
        }
    }
}
