//! [`RedisHashStore`]: one Redis hash per payload key, one field per
//! segment.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use event_backbone_core::store::check_value_sizes;
use event_backbone_core::{Fields, KeyValueStore, PutItem, Result, StoreCapabilities};
use redis::Value;

use crate::connection::Redis;
use crate::error::backend;
use crate::replicas::{add_wait, check_wait};
use crate::BACKEND;

/// The largest value Redis takes by default (`proto-max-bulk-len`, 512 MiB).
pub const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// A [`KeyValueStore`] on Redis hashes: `HSET` (+ `PEXPIRE` for a TTL),
/// `HGETALL`/`HMGET`, `DEL`, all batch forms pipelined.
#[derive(Clone, Debug)]
pub struct RedisHashStore {
    redis: Redis,
}

impl RedisHashStore {
    /// A store on this connection.
    pub fn new(redis: &Redis) -> Self {
        Self {
            redis: redis.clone(),
        }
    }

    /// The connection.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }
}

/// Refuses a batch with a value over [`MAX_VALUE_BYTES`] before anything is
/// sent.
pub(crate) fn check_sizes(items: &[PutItem]) -> Result<()> {
    check_value_sizes(BACKEND, Some(MAX_VALUE_BYTES), items)
}

/// Adds one write to a pipeline: `HSET key f v ...`, then `PEXPIRE` if a TTL
/// is set. Their replies are ignored.
pub(crate) fn add_put(pipe: &mut redis::Pipeline, item: &PutItem) {
    add_put_commands(pipe, item, true);
}

/// [`add_put`] with the replies kept, for a caller that skips them itself
/// (cheaper than the pipeline's set of ignored commands): returns how many
/// commands it added.
pub(crate) fn add_put_kept(pipe: &mut redis::Pipeline, item: &PutItem) -> usize {
    add_put_commands(pipe, item, false)
}

fn add_put_commands(pipe: &mut redis::Pipeline, item: &PutItem, ignore: bool) -> usize {
    let mut added = 0;
    if !item.fields.is_empty() {
        // Sized once: "HSET", the key, every field name and value.
        let data = 4
            + item.key.len()
            + item
                .fields
                .iter()
                .map(|(field, value)| field.len() + value.len())
                .sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(2 + 2 * item.fields.len(), data);
        cmd.arg("HSET").arg(&item.key);
        for (field, value) in &item.fields {
            cmd.arg(field).arg(value.as_ref());
        }
        pipe.add_command(cmd);
        if ignore {
            pipe.ignore();
        }
        added += 1;
    }
    if let Some(ttl) = item.ttl {
        pipe.cmd("PEXPIRE").arg(&item.key).arg(ttl_ms(ttl));
        if ignore {
            pipe.ignore();
        }
        added += 1;
    }
    added
}

/// Writes payloads: one pipeline on a single server; on a cluster one per
/// slot, all at once. Returns once every write is acknowledged (and, with
/// `wait_for_replicas`, on the replicas: a `WAIT` after the writes, on a
/// dedicated connection, see [`crate::replicas`]). `what` names the
/// payloads in errors.
pub(crate) async fn put<'a>(
    redis: &Redis,
    items: impl Iterator<Item = &'a PutItem>,
    what: impl Fn() -> String,
) -> Result<()> {
    let config = redis.config();
    let failed = |e| backend(format!("writing {}", what()), e);
    if !redis.is_cluster() {
        let mut pipe = redis::pipe();
        for item in items {
            add_put(&mut pipe, item);
        }
        if !add_wait(&mut pipe, config) {
            return pipe
                .query_async(&mut redis.connection())
                .await
                .map_err(failed);
        }
        let mut replies: Vec<Value> = redis.query_waiting(&pipe).await.map_err(failed)?;
        return check_wait(config, &mut replies, &what);
    }
    let all: Vec<&PutItem> = items.collect();
    let groups = redis.by_slot(all.iter().map(|item| item.key.as_str()));
    let pipelines: Vec<redis::Pipeline> = groups
        .iter()
        .map(|group| {
            let mut pipe = redis::Pipeline::with_capacity(2 * group.len());
            for &i in group {
                add_put(&mut pipe, all[i]);
            }
            pipe
        })
        .collect();
    if config.replicas.is_none() {
        let _: Vec<()> = redis.query_all(&pipelines).await.map_err(failed)?;
        return Ok(());
    }
    let keys: Vec<&str> = groups.iter().map(|g| all[g[0]].key.as_str()).collect();
    let counts = redis
        .write_then_wait(&pipelines, &keys)
        .await
        .map_err(failed)?;
    for count in counts {
        check_wait(config, &mut vec![Value::Int(count)], &what)?;
    }
    Ok(())
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

fn to_fields(v: Value) -> Option<Fields> {
    let pairs = crate::entry::pairs(v)?;
    let fields: Fields = pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let name = crate::entry::into_text(k)?;
            match v {
                Value::BulkString(bytes) => Some((name, Bytes::from(bytes))),
                Value::SimpleString(s) => Some((name, Bytes::from(s))),
                _ => None,
            }
        })
        .collect();
    (!fields.is_empty()).then_some(fields)
}

#[async_trait]
impl KeyValueStore for RedisHashStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::all().with_max_value_bytes(Some(MAX_VALUE_BYTES))
    }

    async fn put_many(&self, items: &[PutItem]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        check_sizes(items)?;
        put(&self.redis, items.iter(), || {
            format!("{} payload keys (first {:?})", items.len(), items[0].key)
        })
        .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Fields>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.redis.by_slot(keys.iter().copied());
        let pipelines: Vec<redis::Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::Pipeline::with_capacity(group.len());
                for &i in group {
                    pipe.cmd("HGETALL").arg(keys[i]);
                }
                pipe
            })
            .collect();
        let replies: Vec<Vec<Value>> = self.redis.query_all(&pipelines).await.map_err(|e| {
            backend(
                format!("reading {} payload keys (first {:?})", keys.len(), keys[0]),
                e,
            )
        })?;
        let mut found = vec![None; keys.len()];
        for (group, replies) in groups.iter().zip(replies) {
            for (&i, reply) in group.iter().zip(replies) {
                found[i] = to_fields(reply);
            }
        }
        Ok(found)
    }

    async fn get_fields(&self, key: &str, names: &[&str]) -> Result<Option<Fields>> {
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(key);
        pipe.cmd("HMGET").arg(key).arg(names);
        let (exists, values): (i64, Vec<Option<Vec<u8>>>) = pipe
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| backend(format!("reading fields of payload key {key:?}"), e))?;
        if exists == 0 {
            return Ok(None);
        }
        Ok(Some(
            names
                .iter()
                .zip(values)
                .filter_map(|(name, value)| value.map(|v| ((*name).to_owned(), Bytes::from(v))))
                .collect(),
        ))
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let deleted: u64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| {
                backend(
                    format!("deleting {} payload keys (first {:?})", keys.len(), keys[0]),
                    e,
                )
            })?;
        Ok(deleted)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
