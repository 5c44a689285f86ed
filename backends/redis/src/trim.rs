//! Trimming a stream to about its maximum length
//! ([`RedisConfig::max_stream_length`](crate::RedisConfig::max_stream_length)),
//! but never below what one of its groups has not read or not acknowledged.
//!
//! `XADD ... MAXLEN ~ n` trims by length alone: entries a slow group has
//! not read yet, or has read and not acknowledged, would go, and a claim
//! would find them gone. Instead the channel counts what it appends to
//! each stream and, every tenth of the maximum length, runs one script
//! that finds the lowest entry any group still needs (the lowest pending
//! entry and the last delivered one of every group) and trims below it,
//! no more than the excess (`XTRIM MINID ~ floor LIMIT excess`). A stream
//! without groups is trimmed by length. A stream with a group that lags
//! far behind grows past its maximum until the group catches up: that is
//! the price of losing nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::connection::Redis;

/// Appends since the last trim, by stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trimmer {
    appended: Arc<Mutex<HashMap<String, u64>>>,
}

impl Trimmer {
    /// Counts `appended` entries of `stream`, and trims it when its turn
    /// has come. A failed trim is logged: the append stands, and the next
    /// turn trims.
    pub(crate) async fn appended(&self, redis: &Redis, stream: &str, appended: usize) {
        let Some(max) = redis.config().max_len else {
            return;
        };
        let every = (max / 10).max(1);
        {
            let mut counts = self.appended.lock().expect("trim counts");
            let count = counts.entry(stream.to_owned()).or_default();
            *count += appended as u64;
            if *count < every {
                return;
            }
            *count = 0;
        }
        let trimmed: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(TRIM_SCRIPT)
            .arg(1)
            .arg(stream)
            .arg(max)
            .query_async(&mut redis.connection())
            .await;
        match trimmed {
            Ok(n) => tracing::debug!(stream, trimmed = n, "stream trimmed"),
            Err(e) => {
                tracing::warn!(stream, error = %e, "trimming the stream failed; trying again later")
            }
        }
    }
}

/// KEYS[1] the stream, ARGV[1] its maximum length. Returns how many entries
/// it removed.
const TRIM_SCRIPT: &str = r#"
local function lower(a, b)
  if a == nil then return b end
  if b == nil then return a end
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  if am < bm or (am == bm and as < bs) then return a end
  return b
end
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
local floor = nil
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, group in ipairs(groups) do
  local name, last
  for i = 1, #group, 2 do
    if group[i] == 'name' then name = group[i + 1]
    elseif group[i] == 'last-delivered-id' then last = group[i + 1] end
  end
  floor = lower(floor, last)
  local pending = redis.call('XPENDING', KEYS[1], name)
  if pending[1] > 0 then floor = lower(floor, pending[2]) end
end
if floor == nil then
  return redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', floor, 'LIMIT', excess)
"#;
