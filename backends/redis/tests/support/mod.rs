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

/// Where `scripts/start-redis-cluster` writes the seed nodes of the
/// cluster it starts.
fn cluster_endpoints_file() -> std::path::PathBuf {
    std::env::temp_dir()
        .join("event-backbone-redis-cluster")
        .join("endpoints")
}

/// The seed nodes of the test cluster, comma-separated:
/// `REDIS_CLUSTER_ENDPOINTS`, else those `scripts/start-redis-cluster`
/// wrote down. None is a failure, with how to start one.
pub fn cluster_endpoints() -> String {
    if let Ok(endpoints) = std::env::var("REDIS_CLUSTER_ENDPOINTS") {
        return endpoints;
    }
    match std::fs::read_to_string(cluster_endpoints_file()) {
        Ok(endpoints) if !endpoints.trim().is_empty() => endpoints.trim().to_owned(),
        _ => panic!(
            "no Redis Cluster: run scripts/start-redis-cluster (or set REDIS_CLUSTER_ENDPOINTS \
             to its seed nodes, h1:p1,h2:p2)"
        ),
    }
}

/// The test cluster's configuration.
pub fn cluster_config() -> RedisConfig {
    RedisConfig::from_endpoint(&cluster_endpoints(), None).expect("valid cluster seed nodes")
}

/// A raw redis-rs cluster connection to the test cluster.
pub async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    let nodes: Vec<String> = cluster_endpoints()
        .split(',')
        .map(|n| format!("redis://{}", n.trim()))
        .collect();
    redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}
