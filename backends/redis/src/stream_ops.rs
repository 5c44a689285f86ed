//! What the channel does on one Redis stream key: the whole stream when it
//! has one partition, one partition of it otherwise
//! ([`crate::partitioned`]).

use std::time::Duration;

use event_backbone_core::{
    Delivery, Entry, EntryId, Error, GroupInfo, GroupStart, Metadata, PutItem, Result, StreamInfo,
    StreamPosition,
};
use redis::Value;

use crate::channel::RedisStreamChannel;
use crate::entry::{self, add_fields, check_id, fields_capacity, int, items, pairs, text};
use crate::error::{backend, protocol};
use crate::replicas::{add_wait, check_wait};
use crate::store::{add_put_kept, check_sizes};

impl RedisStreamChannel {
    pub(crate) fn xadd(&self, stream: &str, metadata: &Metadata) -> redis::Cmd {
        let mut cmd = redis::Cmd::with_capacity(12, stream.len() + fields_capacity(metadata));
        cmd.arg("XADD").arg(stream).arg("*");
        add_fields(&mut cmd, metadata);
        cmd
    }

    async fn claim_counts(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<Vec<u32>> {
        let action = || format!("reading delivery counts of {stream:?}");
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .arg(id.as_str())
                .arg(id.as_str())
                .arg(1);
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| backend(action(), e))?;
        Ok(replies
            .into_iter()
            .map(|reply| {
                items(reply)
                    .and_then(|rows| rows.into_iter().next())
                    .and_then(items)
                    .and_then(|row| row.get(3).and_then(int))
                    .map_or(1, |n| n.max(1) as u32)
            })
            .collect())
    }

    async fn deliveries(
        &self,
        stream: &str,
        group: &str,
        entries: Vec<Entry>,
        counts: Option<Vec<u32>>,
    ) -> Result<Vec<Delivery>> {
        let counts = match counts {
            Some(c) => c,
            None => {
                let ids: Vec<EntryId> = entries.iter().map(|e| e.id.clone()).collect();
                self.claim_counts(stream, group, &ids).await?
            }
        };
        Ok(entries
            .into_iter()
            .zip(counts)
            .map(|(entry, delivery_count)| Delivery::new(entry, delivery_count))
            .collect())
    }
}

/// Resets the idle time of the entries still pending for a consumer
/// (`XCLAIM` to itself with `JUSTID`, which counts no delivery), and
/// returns those that are not: one script, so that an entry another member
/// claimed in between is never taken back.
const TOUCH_SCRIPT: &str = r#"
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #row == 0 then
    lost[#lost + 1] = id
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  end
end
return lost
"#;

/// The entries pending for a consumer (up to a count), claimed to itself
/// (which counts a delivery): `[entries, ids, delivery counts before]`.
const OWN_PENDING_SCRIPT: &str = r#"
local rows = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
if #rows == 0 then return {{}, {}, {}} end
local ids, counts = {}, {}
for i, row in ipairs(rows) do
  ids[i] = row[1]
  counts[i] = row[4]
end
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
return {claimed, ids, counts}
"#;

/// One more delivery of an entry still pending for a consumer: its new
/// count, or nil when it is not pending for it.
const REDELIVER_SCRIPT: &str = r#"
local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #row == 0 then return false end
local count = row[1][4] + 1
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID', 'RETRYCOUNT', count)
return count
"#;

/// `XREADGROUP` of new entries of one stream key, blocking or not.
pub(crate) fn xreadgroup(
    stream: &str,
    group: &str,
    consumer: &str,
    count: usize,
    block: Option<Duration>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count.max(1));
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
    }
    cmd.arg("STREAMS").arg(stream).arg(">");
    cmd
}

pub(crate) fn no_group_or(
    stream: &str,
    group: &str,
    action: String,
    e: redis::RedisError,
) -> Error {
    if e.code() == Some("NOGROUP") {
        Error::NoSuchGroup {
            stream: stream.to_owned(),
            group: group.to_owned(),
        }
    } else {
        backend(action, e)
    }
}

fn start_id(from: &StreamPosition) -> Result<String> {
    Ok(match from {
        StreamPosition::Start => "-".to_owned(),
        StreamPosition::From(id) => check_id(id)?.to_owned(),
        StreamPosition::After(id) => format!("({}", check_id(id)?),
        StreamPosition::Time(ms) => format!("{ms}-0"),
    })
}

impl RedisStreamChannel {
    pub(crate) async fn append_many_key<'m>(
        &self,
        stream: &str,
        batch: impl IntoIterator<Item = &'m Metadata>,
    ) -> Result<Vec<EntryId>> {
        let mut pipe = redis::pipe();
        for metadata in batch {
            pipe.add_command(self.xadd(stream, metadata));
        }
        let ids = self
            .query_ids(pipe, 0, || format!("appending to stream {stream:?}"))
            .await?;
        self.trimmer.appended(&self.redis, stream, ids.len()).await;
        Ok(ids.into_iter().map(EntryId::new).collect())
    }

    /// Runs a pipeline whose replies are `skip` replies to ignore, then the
    /// ids of `XADD`s (ended by a `WAIT` with `wait_for_replicas`, checked
    /// here).
    async fn query_ids(
        &self,
        mut pipe: redis::Pipeline,
        skip: usize,
        action: impl Fn() -> String,
    ) -> Result<Vec<String>> {
        let mut replies: Vec<Value> = if add_wait(&mut pipe, self.redis.config()) {
            let mut replies = self
                .redis
                .query_waiting(&pipe)
                .await
                .map_err(|e| backend(action(), e))?;
            check_wait(self.redis.config(), &mut replies, &action)?;
            replies
        } else {
            pipe.query_async(&mut self.redis.connection())
                .await
                .map_err(|e| backend(action(), e))?
        };
        if replies.len() < skip {
            return Err(protocol(
                action(),
                format!("{} replies to a pipeline of more commands", replies.len()),
            ));
        }
        replies
            .drain(skip..)
            .map(|v| {
                entry::into_text(v)
                    .filter(|id| entry::is_stream_id(id))
                    .ok_or_else(|| protocol(action(), "an XADD reply is not a stream id"))
            })
            .collect()
    }

    /// On a single server, with the stores on this connection: one
    /// pipeline, every `HSET` (and `PEXPIRE`), then every `XADD` (entry `i`
    /// to `keys[i]`). Redis runs a connection's commands in order, so no
    /// entry is visible before its payload. Returns the Redis ids.
    pub(crate) async fn store_and_append_pipelined(
        &self,
        stream: &str,
        shared: &[&[PutItem]],
        batch: &[Metadata],
        keys: &[&str],
    ) -> Result<Vec<String>> {
        for items in shared {
            check_sizes(items)?;
        }
        let commands = batch.len() + shared.iter().map(|items| items.len()).sum::<usize>();
        let mut pipe = redis::Pipeline::with_capacity(commands);
        // The payloads' replies are skipped here rather than ignored by
        // the pipeline (a set of their indexes, hashed on both sides).
        let mut payload_commands = 0;
        for items in shared {
            for item in *items {
                payload_commands += add_put_kept(&mut pipe, item);
            }
        }
        for (metadata, key) in batch.iter().zip(keys) {
            pipe.add_command(self.xadd(key, metadata));
        }
        // With `wait_for_replicas`, one `WAIT` at the end: a server
        // replicates in the order it ran the commands, so a replica that
        // has an entry has its payloads.
        self.query_ids(pipe, payload_commands, || {
            format!("storing payloads and appending to {stream:?}")
        })
        .await
    }

    pub(crate) async fn ensure_group_key(
        &self,
        stream: &str,
        group: &str,
        start: GroupStart,
    ) -> Result<()> {
        let from = match start {
            GroupStart::Beginning => "0",
            GroupStart::Latest => "$",
        };
        let result: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg(from)
            .arg("MKSTREAM")
            .query_async(&mut self.redis.connection())
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(backend(
                format!("creating group {group:?} on stream {stream:?}"),
                e,
            )),
        }
    }

    pub(crate) async fn read_group_key(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let action = format!("reading stream {stream:?} as {group:?}/{consumer:?}");
        let reply: Value = if block.is_zero() {
            xreadgroup(stream, group, consumer, count, None)
                .query_async(&mut self.redis.connection())
                .await
                .map_err(|e| no_group_or(stream, group, action.clone(), e))?
        } else {
            let cmd = xreadgroup(stream, group, consumer, count, Some(block));
            self.redis
                .blocking(&action, &cmd, block, |e| {
                    no_group_or(stream, group, action.clone(), e)
                })
                .await?
        };
        let entries = entry::read_reply(reply, &action)?;
        let n = entries.len();
        self.deliveries(stream, group, entries, Some(vec![1; n]))
            .await
    }

    pub(crate) async fn read_pending_key(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let action = format!("reading the pending entries of {consumer:?} on {stream:?}");
        // One script: an entry another member claims between the look and
        // the claim is not taken back.
        let reply: Value = redis::cmd("EVAL")
            .arg(OWN_PENDING_SCRIPT)
            .arg(1)
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(count.max(1))
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| no_group_or(stream, group, action.clone(), e))?;
        let mut parts = items(reply)
            .filter(|p| p.len() == 3)
            .ok_or_else(|| protocol(&action, "the pending-entries script replied oddly"))?;
        let counts_reply = parts.pop().and_then(items).unwrap_or_default();
        let ids_reply = parts.pop().and_then(items).unwrap_or_default();
        let claimed = parts.pop().unwrap_or(Value::Nil);
        let counts: std::collections::HashMap<String, u32> = ids_reply
            .iter()
            .filter_map(text)
            .zip(
                counts_reply
                    .iter()
                    .map(|n| int(n).unwrap_or(1).max(1) as u32),
            )
            .collect();
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let entries = entry::entries(claimed, &action)?;
        // Claiming to itself counted one more delivery.
        let counts = entries
            .iter()
            .map(|e| counts.get(e.id.as_str()).map_or(1, |n| n + 1))
            .collect();
        self.deliveries(stream, group, entries, Some(counts)).await
    }

    pub(crate) async fn redeliver_key(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        id: &EntryId,
        _delivered: u32,
    ) -> Result<Option<u32>> {
        let id = check_id(id)?;
        let action = format!("counting a redelivery of {id} on {stream:?} for {consumer:?}");
        // Still pending for this consumer (not claimed by another member)?
        // Then claiming it to itself counts the delivery in the group's
        // pending list, where it outlives this consumer. One script, so
        // that an entry another member claims in between is not taken back.
        let count: Option<i64> = redis::cmd("EVAL")
            .arg(REDELIVER_SCRIPT)
            .arg(1)
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(id)
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| no_group_or(stream, group, action.clone(), e))?;
        Ok(count.map(|n| n.clamp(1, i64::from(u32::MAX)) as u32))
    }

    pub(crate) async fn ack_key(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.iter().map(check_id).collect::<Result<Vec<_>>>()?;
        let _: i64 = redis::cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(&ids)
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| no_group_or(stream, group, format!("acknowledging on {stream:?}"), e))?;
        Ok(())
    }

    pub(crate) async fn claim_stale_key(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let action = format!("claiming stale entries of {stream:?} for {group:?}/{consumer:?}");
        let mut cursor = "0-0".to_owned();
        let mut claimed = Vec::new();
        // XAUTOCLAIM scans a bounded part of the pending list per call.
        for _ in 0..16 {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(group)
                .arg(consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(count.saturating_sub(claimed.len()).max(1))
                .query_async(&mut self.redis.connection())
                .await
                .map_err(|e| no_group_or(stream, group, action.clone(), e))?;
            let mut parts = items(reply)
                .ok_or_else(|| protocol(&action, "XAUTOCLAIM reply is not an array"))?;
            if parts.len() < 2 {
                return Err(protocol(&action, "XAUTOCLAIM reply is too short"));
            }
            if let Some(deleted) = parts.get(2).cloned().and_then(items) {
                if !deleted.is_empty() {
                    let ids: Vec<String> = deleted.iter().filter_map(text).collect();
                    tracing::warn!(
                        stream,
                        group,
                        count = ids.len(),
                        ?ids,
                        "entries pending in the group were deleted from the stream before they \
                         were handled (trimmed or XDEL'd): they are lost"
                    );
                }
            }
            let found = parts.swap_remove(1);
            cursor = text(&parts[0])
                .ok_or_else(|| protocol(&action, "XAUTOCLAIM cursor is not text"))?;
            claimed.extend(entry::entries(found, &action)?);
            if cursor == "0-0" || claimed.len() >= count {
                break;
            }
        }
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        self.deliveries(stream, group, claimed, None).await
    }

    pub(crate) async fn touch_key(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<Vec<EntryId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let action = format!(
            "touching {} entries of {consumer:?} on {stream:?}",
            ids.len()
        );
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(TOUCH_SCRIPT)
            .arg(1)
            .arg(stream)
            .arg(group)
            .arg(consumer);
        for id in ids {
            cmd.arg(check_id(id)?);
        }
        let lost: Vec<String> = cmd
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| no_group_or(stream, group, action.clone(), e))?;
        Ok(lost.into_iter().map(EntryId::new).collect())
    }

    pub(crate) async fn read_range_key(
        &self,
        stream: &str,
        from: &StreamPosition,
        to: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let start = start_id(from)?;
        let end = match to {
            Some(id) => check_id(id)?.to_owned(),
            None => "+".to_owned(),
        };
        let action = format!("reading stream {stream:?} from {start} to {end}");
        let reply: Value = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg(&end)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| backend(action.clone(), e))?;
        entry::entries(reply, &action)
    }

    pub(crate) async fn get_key(&self, stream: &str, id: &EntryId) -> Result<Option<Entry>> {
        let id = check_id(id)?;
        let action = format!("reading entry {id} of stream {stream:?}");
        let reply: Value = redis::cmd("XRANGE")
            .arg(stream)
            .arg(id)
            .arg(id)
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis.connection())
            .await
            .map_err(|e| backend(action.clone(), e))?;
        Ok(entry::entries(reply, &action)?.into_iter().next())
    }

    pub(crate) async fn info_key(&self, stream: &str) -> Result<StreamInfo> {
        let action = format!("reading the info of stream {stream:?}");
        let mut manager = self.redis.connection();
        let (length, newest): (u64, Value) = redis::pipe()
            .cmd("XLEN")
            .arg(stream)
            .cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut manager)
            .await
            .map_err(|e| backend(action.clone(), e))?;
        let last = entry::entries(newest, &action)?.pop().map(|e| e.id);
        let groups: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut manager)
            .await;
        let groups = match groups {
            Ok(v) => v,
            Err(e) if e.detail().is_some_and(|d| d.contains("no such key")) => {
                return Ok(StreamInfo::default())
            }
            Err(e) => return Err(backend(action, e)),
        };
        let mut out = Vec::new();
        for group in items(groups).unwrap_or_default() {
            let fields =
                pairs(group).ok_or_else(|| protocol(&action, "XINFO GROUPS row is not pairs"))?;
            let get = |name: &str| entry::field(&fields, name);
            out.push(GroupInfo {
                name: get("name")
                    .and_then(text)
                    .ok_or_else(|| protocol(&action, "group without a name"))?,
                pending: get("pending").and_then(int).unwrap_or(0).max(0) as u64,
                lag: get("lag").and_then(int).map(|l| l.max(0) as u64),
                consumers: get("consumers").and_then(int).unwrap_or(0).max(0) as u64,
            });
        }
        Ok(StreamInfo {
            length,
            last,
            partitions: 1,
            groups: out,
        })
    }

    /// Every stream key on the server, or on every master of a cluster
    /// (`SCAN ... TYPE stream`), sorted. A channel in `n` partitions lists
    /// the streams in `n` partitions, each once by its name, and no other;
    /// a channel in one lists every key, each a stream it can read by
    /// itself.
    pub(crate) async fn stream_names(&self) -> Result<Vec<String>> {
        let keys = self
            .redis
            .connection()
            .keys_of_type("stream")
            .await
            .map_err(|e| backend("listing the streams (SCAN TYPE stream)", e))?;
        let names: std::collections::BTreeSet<String> = if self.partitioned() {
            // Only streams in as many partitions: the others, in one or in
            // another number, are not this channel's to read.
            keys.iter()
                .filter_map(|key| crate::partitions::stream_of_partition_key(key, self.partitions))
                .map(str::to_owned)
                .collect()
        } else {
            keys.into_iter().collect()
        };
        Ok(names.into_iter().collect())
    }
}
