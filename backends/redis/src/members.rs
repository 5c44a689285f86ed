//! The members of a group, for tooling: `XINFO CONSUMERS` on each key of
//! the stream (each partition), merged by member name.

use event_backbone_core::{MemberInfo, Result};
use futures_util::future::try_join_all;
use redis::Value;

use crate::channel::RedisStreamChannel;
use crate::entry::{self, int, items, pairs, text};
use crate::error::{backend, protocol};

impl RedisStreamChannel {
    /// Each member of `group` on `stream` with its pending entries (summed
    /// over partitions) and idle time (the least over partitions); none
    /// for a stream or group that does not exist.
    pub(crate) async fn members(&self, stream: &str, group: &str) -> Result<Vec<MemberInfo>> {
        let keys = self.stream_keys(stream)?;
        let per_key = try_join_all(keys.iter().map(|key| self.members_of_key(key, group))).await?;
        let mut merged: Vec<MemberInfo> = Vec::new();
        for member in per_key.into_iter().flatten() {
            match merged.iter_mut().find(|m| m.name == member.name) {
                Some(known) => {
                    known.pending += member.pending;
                    known.idle_ms = match (known.idle_ms, member.idle_ms) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => merged.push(member),
            }
        }
        merged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(merged)
    }

    async fn members_of_key(&self, key: &str, group: &str) -> Result<Vec<MemberInfo>> {
        let action = format!("reading the members of group {group:?} of stream {key:?}");
        let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(key)
            .arg(group)
            .query_async(&mut self.redis.connection())
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e)
                if e.code() == Some("NOGROUP")
                    || e.detail().is_some_and(|d| d.contains("no such key")) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(backend(action, e)),
        };
        let mut members = Vec::new();
        for row in items(reply).unwrap_or_default() {
            let fields =
                pairs(row).ok_or_else(|| protocol(&action, "XINFO CONSUMERS row is not pairs"))?;
            let get = |name: &str| entry::field(&fields, name);
            let name = get("name")
                .and_then(text)
                .ok_or_else(|| protocol(&action, "a member without a name"))?;
            let pending = get("pending").and_then(int).unwrap_or(0).max(0) as u64;
            let idle = get("idle").and_then(int).map(|ms| ms.max(0) as u64);
            members.push(MemberInfo::new(name, pending, idle));
        }
        Ok(members)
    }
}
