//! Waiting for replicas
//! ([`RedisConfig::wait_for_replicas`](crate::RedisConfig::wait_for_replicas)):
//! a `WAIT` after the writes, on the node and the connection that took
//! them (a `WAIT` counts the writes of its own connection), and only there:
//! at the end of a pipeline that goes to one node, or, for payloads spread
//! over a cluster's slots, once per slot after all of them
//! ([`crate::Redis`]'s `write_then_wait`). A client in `WAIT` runs none of
//! its later commands, so these run on dedicated connections.

use event_backbone_core::{Error, Result};
use redis::{Pipeline, Value};

use crate::config::RedisConfig;
use crate::entry::int;
use crate::BACKEND;

/// Ends a pipeline of writes with a `WAIT`, if the configuration asks for
/// one. Returns whether it did: the pipeline's last reply is then the
/// `WAIT`'s.
pub(crate) fn add_wait(pipe: &mut Pipeline, config: &RedisConfig) -> bool {
    match config.replicas {
        Some((replicas, timeout)) => {
            pipe.cmd("WAIT")
                .arg(replicas)
                .arg(timeout.as_millis().max(1) as u64);
            true
        }
        None => false,
    }
}

/// Checks the last reply of a pipeline ended by [`add_wait`] (and takes
/// it off): too few replicas in time is a transient error.
pub(crate) fn check_wait(
    config: &RedisConfig,
    replies: &mut Vec<Value>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    let Some((replicas, timeout)) = config.replicas else {
        return Ok(());
    };
    let acknowledged = replies.pop().as_ref().and_then(int).unwrap_or(0);
    if acknowledged < i64::from(replicas) {
        return Err(Error::transient(
            BACKEND,
            format!("waiting for {replicas} replicas to have {}", what()),
            format!(
                "only {acknowledged} replicas had it within {timeout:?}: it is written on the \
                 master, and is sent again"
            ),
        ));
    }
    Ok(())
}
