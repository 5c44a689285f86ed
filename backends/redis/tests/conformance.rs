//! The conformance suites against a real Redis server: every case, by name.
//!
//! The server is `REDIS_EVENT_SOURCE_ENDPOINT` (with
//! `REDIS_EVENT_SOURCE_PASS`), or 127.0.0.1:6379; `scripts/test` starts one
//! if none runs. A server that cannot be reached fails every case.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_redis::{Redis, RedisHashStore, RedisStreamChannel, BACKEND};

async fn redis() -> event_backbone_core::Result<Redis> {
    Ok(Redis::connect(support::config()).await?)
}

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    Ok(Arc::new(RedisHashStore::new(&redis().await?)))
}

fn main() -> ExitCode {
    Conformance::new(BACKEND)
        .channel(|| async {
            Ok(Arc::new(RedisStreamChannel::new(&redis().await?)) as Arc<dyn StreamChannel>)
        })
        .store(store)
        .channel_payloads_in(store)
        .run()
}
