//! One Redis connection, shared by a channel and a store: a connection
//! manager (multiplexed, reconnecting) for ordinary commands, and a pool of
//! dedicated connections for blocking reads, so that an `XREADGROUP ...
//! BLOCK` never holds up the commands of other tasks. On a Redis Cluster
//! both are cluster connections, which route each command to its slot's
//! master.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, Value};

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::BACKEND;

/// A connection to one Redis server, or to a Redis Cluster. Cheap to clone;
/// clones share it.
///
/// A [`crate::RedisStreamChannel`] and a [`crate::RedisHashStore`] made from
/// the same `Redis` recognise each other: a producer then writes a whole
/// batch (every `HSET`, then every `XADD`) in one pipeline. On a cluster,
/// where the payload keys and the stream live on different nodes, it writes
/// the payloads (one pipeline per slot, all at once), waits for every one
/// of them, then appends (one pipeline: a stream is one key).
#[derive(Clone)]
pub struct Redis {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    clients: Clients,
    commands: Connection,
    blocking: Mutex<Vec<Connection>>,
}

/// Where new connections come from.
enum Clients {
    Node(Box<Client>),
    /// The blocking client has no response timeout of its own.
    Cluster {
        blocking: Box<ClusterClient>,
    },
}

/// A connection of either kind, for redis-rs's `query_async`.
#[derive(Clone)]
pub(crate) enum Connection {
    Manager(ConnectionManager),
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Runs a command on the node that serves `key` (on a cluster, the
    /// command itself may name no key, as `CLIENT ID` does not).
    pub(crate) async fn query_on_node_of<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            Self::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                let value = c.route_command(cmd.clone(), route).await?.extract_error()?;
                Ok(redis::from_redis_value(value)?)
            }
            other => cmd.query_async(other).await,
        }
    }

    /// Every key of a type (`SCAN 0 ... TYPE kind`, to the end): on the
    /// server, or on every master of a cluster in turn.
    pub(crate) async fn keys_of_type(&mut self, kind: &str) -> redis::RedisResult<Vec<String>> {
        let mut keys = Vec::new();
        match self {
            Self::Cluster(c) => {
                // The masters as the cluster names them to its clients
                // (`CLUSTER SLOTS`, what the connection routes by).
                let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                let slots = c
                    .route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), random)
                    .await?
                    .extract_error()?;
                for (host, port) in slot_masters(slots)? {
                    let mut cursor = 0u64;
                    loop {
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        let reply = c
                            .route_command(scan(cursor, kind), route)
                            .await?
                            .extract_error()?;
                        let (next, page): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                        keys.extend(page);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
            other => {
                let mut cursor = 0u64;
                loop {
                    let (next, page): (u64, Vec<String>) =
                        scan(cursor, kind).query_async(other).await?;
                    keys.extend(page);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        Ok(keys)
    }
}

/// `SCAN cursor COUNT 1000 TYPE kind`.
fn scan(cursor: u64, kind: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor).arg("COUNT").arg(1000).arg("TYPE").arg(kind);
    cmd
}

/// The host and port of the master of each slot range in a
/// `CLUSTER SLOTS` reply (`[start, end, [host, port, id, ...], replicas...]`),
/// each once. A master named by no endpoint (`?`, empty or null: "the node
/// that answered", which this connection cannot tell) is an error, rather
/// than a list of streams with its keys left out.
fn slot_masters(reply: Value) -> redis::RedisResult<Vec<(String, u16)>> {
    let unknown = |what: &str| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "CLUSTER SLOTS names a master by no endpoint this client can reach",
            what.to_owned(),
        ))
    };
    let Value::Array(ranges) = reply else {
        return Err(unknown("the reply is not an array"));
    };
    let mut masters: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let Some(Value::Array(master)) = parts.get(2) else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(text)) => text.clone(),
            _ => return Err(unknown("a master with a null endpoint")),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        if host.is_empty() || host == "?" {
            return Err(unknown("a master with an unknown endpoint"));
        }
        if !masters.contains(&(host.clone(), port)) {
            masters.push((host, port));
        }
    }
    if masters.is_empty() {
        return Err(unknown("no master at all"));
    }
    Ok(masters)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Redis {
    /// Connects and checks that the server answers (`PING`), so that a
    /// wrong address or password fails here, clearly; afterwards it keeps
    /// reconnecting when the connection drops.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let failed = |source| Error::Connect {
            address: config.address(),
            source,
        };
        let (clients, commands) = if config.is_cluster() {
            let client = config.cluster_client(Some(config.response_timeout))?;
            let blocking = config.cluster_client(None)?;
            let connection = client.get_async_connection().await.map_err(failed)?;
            (
                Clients::Cluster {
                    blocking: Box::new(blocking),
                },
                Connection::Cluster(connection),
            )
        } else {
            let client = config.client()?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connection_timeout))
                .set_response_timeout(Some(config.response_timeout))
                .set_number_of_retries(3)
                .set_max_delay(Duration::from_secs(2));
            let manager = client
                .get_connection_manager_with_config(manager_config)
                .await
                .map_err(failed)?;
            (
                Clients::Node(Box::new(client)),
                Connection::Manager(manager),
            )
        };
        let mut probe = commands.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut probe)
            .await
            .map_err(failed)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                clients,
                commands,
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

    /// Whether it is connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.clients, Clients::Cluster { .. })
    }

    /// A connection for ordinary commands.
    pub(crate) fn connection(&self) -> Connection {
        self.inner.commands.clone()
    }

    /// The positions of `keys` grouped so that each group can go in one
    /// pipeline: all of them on a single server, those of one slot on a
    /// cluster (a pipeline there goes to one node, and one node answers for
    /// a slot), groups in the order their first key comes.
    pub(crate) fn by_slot<'k>(
        &self,
        keys: impl ExactSizeIterator<Item = &'k str>,
    ) -> Vec<Vec<usize>> {
        if !self.is_cluster() {
            return vec![(0..keys.len()).collect()];
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut slots: std::collections::HashMap<Slot, usize> = std::collections::HashMap::new();
        for (i, key) in keys.enumerate() {
            let group = *slots.entry(Slot::for_key(key)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(i);
        }
        groups
    }

    /// Runs pipelines at once, each on its own slot's node, and gives
    /// their replies in order.
    pub(crate) async fn query_all<T: redis::FromRedisValue>(
        &self,
        pipelines: &[Pipeline],
    ) -> redis::RedisResult<Vec<T>> {
        if let [one] = pipelines {
            return Ok(vec![one.query_async(&mut self.connection()).await?]);
        }
        futures_util::future::try_join_all(pipelines.iter().map(|pipe| {
            let mut connection = self.connection();
            async move { pipe.query_async::<T>(&mut connection).await }
        }))
        .await
    }

    /// Runs a pipeline of writes ended by a `WAIT`
    /// ([`crate::replicas`]) on a dedicated connection: a client blocked in
    /// `WAIT` runs none of its later commands, which on the shared
    /// connection would be every other task's. Bounded by the wait's
    /// timeout plus the response timeout (twice); the dedicated connection
    /// has no response timeout of its own, so nothing is sent again behind
    /// the caller's back.
    pub(crate) async fn query_waiting<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> redis::RedisResult<T> {
        let mut connection = self.dedicated().await?;
        let limit = self.wait_limit();
        match tokio::time::timeout(limit, pipe.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => {
                self.give_back(connection);
                Ok(value)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out(format!("no reply within {limit:?}"))),
        }
    }

    /// On a cluster: the pipelines of writes (one per slot) at once, then,
    /// once all are acknowledged, a `WAIT` on the node of each (`keys[i]`
    /// is a key of pipeline `i`), all on one dedicated connection, so that
    /// each `WAIT` counts the writes before it (the first on a node waits;
    /// the others find them there). Returns each `WAIT`'s count.
    pub(crate) async fn write_then_wait(
        &self,
        pipelines: &[Pipeline],
        keys: &[&str],
    ) -> redis::RedisResult<Vec<i64>> {
        let Some((replicas, timeout)) = self.inner.config.replicas else {
            return Ok(Vec::new());
        };
        let connection = self.dedicated().await?;
        let limit = self.wait_limit();
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis().max(1) as u64);
        let work = async {
            futures_util::future::try_join_all(pipelines.iter().map(|pipe| {
                let mut connection = connection.clone();
                async move { pipe.query_async::<()>(&mut connection).await }
            }))
            .await?;
            futures_util::future::try_join_all(keys.iter().map(|key| {
                let mut connection = connection.clone();
                let wait = &wait;
                async move { connection.query_on_node_of::<i64>(key, wait).await }
            }))
            .await
        };
        match tokio::time::timeout(limit, work).await {
            Ok(Ok(counts)) => {
                self.give_back(connection);
                Ok(counts)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out(format!("no reply within {limit:?}"))),
        }
    }

    /// How long a pipeline that waits for replicas may take.
    fn wait_limit(&self) -> Duration {
        let wait = self
            .inner
            .config
            .replicas
            .map_or(Duration::ZERO, |(_, t)| t);
        wait + 2 * self.inner.config.response_timeout
    }

    /// Puts a dedicated connection that answered back in the pool.
    fn give_back(&self, connection: Connection) {
        self.inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection);
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
        let connection = self.dedicated().await.map_err(&failed)?;
        self.run_dedicated(connection, None, action, command, block, failed)
            .await
    }

    /// A dedicated connection for a blocking command, with its client id
    /// on the node that serves `key`, so that another task can wake it
    /// ([`Redis::wake`]).
    pub(crate) async fn wakeable(&self, key: &str) -> redis::RedisResult<(Connection, i64)> {
        let mut connection = self.dedicated().await?;
        // The connection has no response timeout of its own (it blocks):
        // bound this one, so that a node gone silent fails the read.
        let limit = self.inner.config.response_timeout;
        let id = tokio::time::timeout(
            limit,
            connection.query_on_node_of(key, redis::cmd("CLIENT").arg("ID")),
        )
        .await
        .map_err(|_| timed_out(format!("no reply to CLIENT ID within {limit:?}")))??;
        Ok((connection, id))
    }

    /// Runs a blocking command on a dedicated connection (on the node that
    /// serves `key`, if given), as [`Redis::blocking`] does.
    pub(crate) async fn run_dedicated<T: redis::FromRedisValue>(
        &self,
        mut connection: Connection,
        key: Option<&str>,
        action: &str,
        command: &redis::Cmd,
        block: Duration,
        failed: impl Fn(redis::RedisError) -> event_backbone_core::Error,
    ) -> event_backbone_core::Result<T> {
        let limit = block + self.inner.config.response_timeout;
        let reply = match key {
            Some(key) => {
                tokio::time::timeout(limit, connection.query_on_node_of::<T>(key, command)).await
            }
            None => tokio::time::timeout(limit, command.query_async::<T>(&mut connection)).await,
        };
        match reply {
            Ok(Ok(value)) => {
                self.give_back(connection);
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

    /// Wakes a blocked command as if its time had run out (`CLIENT UNBLOCK`
    /// on the node that serves `key`). One that is not blocked yet is not
    /// woken: it waits its time.
    pub(crate) async fn wake(&self, key: &str, client_id: i64) {
        let woken: redis::RedisResult<i64> = self
            .connection()
            .query_on_node_of(key, redis::cmd("CLIENT").arg("UNBLOCK").arg(client_id))
            .await;
        if let Err(e) = woken {
            tracing::debug!(key, error = %e, "waking a blocked read failed; it waits its time");
        }
    }

    /// A dedicated connection from the pool, or a new one.
    async fn dedicated(&self) -> redis::RedisResult<Connection> {
        let taken = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        match taken {
            Some(c) => Ok(c),
            None => self.blocking_connection().await,
        }
    }
}

impl Redis {
    /// A new dedicated connection for blocking commands, without a response
    /// timeout of its own.
    async fn blocking_connection(&self) -> redis::RedisResult<Connection> {
        Ok(match &self.inner.clients {
            Clients::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.config.connection_timeout))
                    .set_response_timeout(None);
                Connection::Node(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Clients::Cluster { blocking } => {
                Connection::Cluster(blocking.get_async_connection().await?)
            }
        })
    }
}

/// A timeout as the driver's error (transient, like its own).
fn timed_out(what: String) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("address", &self.inner.config.address())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn the_masters_of_the_slot_ranges_each_once() {
        let range = |start, master: Value, replica: Value| {
            Value::Array(vec![
                Value::Int(start),
                Value::Int(start + 99),
                master,
                replica,
            ])
        };
        let reply = Value::Array(vec![
            range(0, node("10.0.0.1", 7000), node("10.0.0.4", 7003)),
            range(100, node("10.0.0.2", 7001), node("10.0.0.5", 7004)),
            range(200, node("10.0.0.1", 7000), node("10.0.0.4", 7003)),
            range(400, node("::1", 7006), node("::1", 7007)),
        ]);
        assert_eq!(
            slot_masters(reply).unwrap(),
            [
                ("10.0.0.1".to_owned(), 7000),
                ("10.0.0.2".to_owned(), 7001),
                ("::1".to_owned(), 7006)
            ]
        );
        let unknown = Value::Array(vec![range(300, node("?", 7002), node("10.0.0.6", 7005))]);
        assert!(
            slot_masters(unknown).is_err(),
            "never a list with a master's keys left out"
        );
        assert!(slot_masters(Value::Nil).is_err());
    }
}
