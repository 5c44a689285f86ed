//! The sweep of expired payload rows: they already read as missing; the
//! sweep gives their space back.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::schema::Statement;

/// Rows a sweep deletes per statement, so that no statement holds many
/// locks for long.
const ROWS_PER_STATEMENT: u64 = 10_000;

/// Deletes expired rows with `statement` (which deletes at most
/// [`ROWS_PER_STATEMENT`]) until none are left; returns how many went.
pub(crate) async fn sweep(pool: &PgPool, statement: &Statement) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let gone = sqlx::query(statement.sql())
            .execute(pool)
            .await?
            .rows_affected();
        total += gone;
        if gone < ROWS_PER_STATEMENT {
            return Ok(total);
        }
    }
}

/// A task that sweeps every interval while a store made with it lives.
#[derive(Debug)]
pub(crate) struct Sweeper {
    task: JoinHandle<()>,
}

impl Sweeper {
    /// Starts sweeping, when called inside a Tokio runtime (else `None`:
    /// expired rows wait for [`crate::PostgresStore::sweep`]).
    pub(crate) fn start(pool: PgPool, statement: Statement, every: Duration) -> Option<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = sweep(&pool, &statement).await {
                    tracing::debug!(error = %e, "sweeping expired payloads failed; next time");
                }
            }
        });
        Some(Arc::new(Self { task }))
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
