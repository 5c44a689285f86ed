//! One Redis connection, shared by a channel and a store: a connection
//! manager (multiplexed, reconnecting) for ordinary commands, and a pool of
//! dedicated connections for blocking reads, so that an `XREADGROUP ...
//! BLOCK` never holds up the commands of other tasks.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::BACKEND;

/// A connection to one Redis server. Cheap to clone; clones share it.
///
/// A [`crate::RedisStreamChannel`] and a [`crate::RedisHashStore`] made from
/// the same `Redis` recognise each other: a producer then writes a whole
/// batch (every `HSET`, then every `XADD`) in one pipeline.
#[derive(Clone)]
pub struct Redis {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    client: Client,
    pub(crate) manager: ConnectionManager,
    blocking: Mutex<Vec<MultiplexedConnection>>,
}

impl Redis {
    /// Connects and checks that the server answers (`PING`), so that a
    /// wrong address or password fails here, clearly; afterwards it keeps
    /// reconnecting when the connection drops.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let client = config.client()?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connection_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let manager = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(|source| Error::Connect {
                address: config.address(),
                source,
            })?;
        let mut probe = manager.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut probe)
            .await
            .map_err(|source| Error::Connect {
                address: config.address(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client,
                manager,
                blocking: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Connects with [`RedisConfig::from_env`]
    /// (`REDIS_EVENT_SOURCE_ENDPOINT`, `REDIS_EVENT_SOURCE_PASS`).
    pub async fn from_env() -> Result<Self> {
        Self::connect(RedisConfig::from_env()?).await
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// A connection for ordinary commands.
    pub(crate) fn manager(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    /// Whether two handles share one connection.
    pub(crate) fn same(&self, other: &Redis) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Runs a blocking command on a dedicated connection, waiting at most
    /// `block` plus the response timeout. A connection that failed or timed
    /// out is dropped rather than reused. `failed` turns a server or
    /// connection error into the caller's error.
    pub(crate) async fn blocking<T: redis::FromRedisValue>(
        &self,
        action: &str,
        command: &redis::Cmd,
        block: Duration,
        failed: impl Fn(redis::RedisError) -> event_backbone_core::Error,
    ) -> event_backbone_core::Result<T> {
        let taken = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let mut connection = match taken {
            Some(c) => c,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.config.connection_timeout))
                    .set_response_timeout(None);
                self.inner
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(&failed)?
            }
        };
        let limit = block + self.inner.config.response_timeout;
        match tokio::time::timeout(limit, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => {
                self.inner
                    .blocking
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(connection);
                Ok(value)
            }
            Ok(Err(e)) => Err(failed(e)),
            Err(_) => Err(event_backbone_core::Error::transient(
                BACKEND,
                action,
                format!("no reply within {limit:?}"),
            )),
        }
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("address", &self.inner.config.address())
            .finish_non_exhaustive()
    }
}
