//! Shared by the Redis tests: the server, unique names, a raw connection.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_redis::{Redis, RedisConfig};

/// The test server (`REDIS_EVENT_SOURCE_ENDPOINT` or 127.0.0.1:6379). A
/// server that is not there fails the test, with how to start one.
pub async fn redis() -> Redis {
    let config = RedisConfig::from_env_or_local().expect("a valid Redis address");
    match Redis::connect(config.clone()).await {
        Ok(r) => r,
        Err(e) => panic!(
            "no Redis at {}: {e}; run scripts/start-redis",
            config.address()
        ),
    }
}

/// A raw redis-rs connection to the same server, to look at what the
/// backend wrote with plain commands.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    let url = match std::env::var(event_backbone_redis::ENDPOINT_VAR) {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => "redis://127.0.0.1:6379".to_owned(),
    };
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}
