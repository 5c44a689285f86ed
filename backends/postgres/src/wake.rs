//! Wake-ups of blocked reads: one `LISTEN` connection per [`crate::Postgres`]
//! hears the notification every append sends at its commit, and wakes the
//! reads waiting on that stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The reads waiting per stream, and the task that listens for them.
#[derive(Debug)]
pub(crate) struct Wakeups {
    channel: String,
    streams: Mutex<HashMap<String, Arc<Notify>>>,
    listener: OnceLock<JoinHandle<()>>,
}

impl Wakeups {
    pub(crate) fn new(channel: String) -> Arc<Self> {
        Arc::new(Self {
            channel,
            streams: Mutex::new(HashMap::new()),
            listener: OnceLock::new(),
        })
    }

    /// The notification channel.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// What a read of `stream` waits on; the first call starts listening,
    /// on a connection of its own (not one of the pool's).
    pub(crate) fn of(self: &Arc<Self>, options: &PgConnectOptions, stream: &str) -> Arc<Notify> {
        self.listener.get_or_init(|| {
            let own = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_lazy_with(options.clone());
            tokio::spawn(listen(Arc::downgrade(self), own, self.channel.clone()))
        });
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.entry(stream.to_owned()).or_default().clone()
    }

    /// Wakes the reads of one stream.
    fn wake(&self, stream: &str) {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = streams.get(stream) {
            notify.notify_waiters();
        }
    }

    /// Wakes every read: notifications may have been missed.
    fn wake_all(&self) {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        for notify in streams.values() {
            notify.notify_waiters();
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get() {
            task.abort();
        }
    }
}

/// Listens until the [`Wakeups`] are dropped, connecting again after a
/// failure; every (re)connection wakes all reads, since what was notified
/// meanwhile is lost. Reads also look again every poll interval, so a lost
/// notification delays an entry, never loses it.
async fn listen(wakeups: Weak<Wakeups>, pool: sqlx::PgPool, channel: String) {
    loop {
        let listening = match PgListener::connect_with(&pool).await {
            Ok(mut listener) => listener.listen(&channel).await.map(|()| listener),
            Err(e) => Err(e),
        };
        if let Ok(mut listener) = listening {
            // Each turn starts on a (re)connected listener.
            loop {
                match wakeups.upgrade() {
                    Some(w) => w.wake_all(),
                    None => return,
                }
                let lost = loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => match wakeups.upgrade() {
                            Some(w) => w.wake(notification.payload()),
                            None => return,
                        },
                        // The connection was lost; the next call connects
                        // again and listens again.
                        Ok(None) => break false,
                        Err(_) => break true,
                    }
                };
                if lost {
                    break;
                }
            }
        }
        match wakeups.upgrade() {
            Some(w) => w.wake_all(),
            None => return,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
