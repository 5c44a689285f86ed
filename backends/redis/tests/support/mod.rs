//! Shared by the Redis tests: the server, unique names, a raw connection.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_redis::{Redis, RedisConfig, ENDPOINT_VAR};

/// Where `scripts/start-redis` starts a server when none is named.
pub const LOCAL: &str = "redis://127.0.0.1:6379";

/// The test server's configuration: `REDIS_EVENT_SOURCE_ENDPOINT` (with
/// `REDIS_EVENT_SOURCE_PASS`), else the local one.
pub fn config() -> RedisConfig {
    match std::env::var_os(ENDPOINT_VAR) {
        Some(_) => RedisConfig::from_env().expect("a valid REDIS_EVENT_SOURCE_ENDPOINT"),
        None => RedisConfig::from_url(LOCAL).expect("the local address"),
    }
}

/// The test server. A server that is not there fails the test, with how
/// to start one.
pub async fn redis() -> Redis {
    let config = config();
    match Redis::connect(config.clone()).await {
        Ok(r) => r,
        Err(e) => panic!("{e}; run scripts/start-redis"),
    }
}

/// A raw redis-rs connection to the same server, to look at what the
/// backend wrote with plain commands.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    let url = match std::env::var(ENDPOINT_VAR) {
        Ok(e) if e.contains("://") => e,
        Ok(e) => format!("redis://{e}"),
        Err(_) => LOCAL.to_owned(),
    };
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}
