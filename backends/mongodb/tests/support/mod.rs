//! Shared by the MongoDB tests: the server, a connection to it.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_mongodb::{Mongo, MongoConfig, URI_VAR};

/// Where `scripts/start-mongodb` starts SecantusDB when no server is named.
pub const LOCAL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

/// The test server: `MONGODB_EVENT_SOURCE_URI`, else the local one, on the
/// database `event_backbone_tests`.
pub fn config() -> MongoConfig {
    let config = match std::env::var_os(URI_VAR) {
        Some(_) => MongoConfig::from_env().expect("a valid MONGODB_EVENT_SOURCE_URI"),
        None => MongoConfig::from_url(LOCAL).expect("the local address"),
    };
    config
        .database("event_backbone_tests")
        .expect("a valid database name")
}

/// A connection; a server that is not there fails the test, with how to
/// start one.
pub async fn connect(config: MongoConfig) -> Mongo {
    match Mongo::connect(config).await {
        Ok(mongo) => mongo,
        Err(e) => panic!("{e}; run scripts/start-mongodb"),
    }
}

/// Drops test collections (from a test's end; errors are ignored: a
/// leftover collection costs only space).
pub fn drop_collections(names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let drop = async move {
        if let Ok(mongo) = Mongo::connect(config()).await {
            for name in names {
                let _ = mongo
                    .database()
                    .collection::<mongodb::bson::Document>(&name)
                    .drop()
                    .await;
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(_) => panic!("drop_collections is for the end of a test program, outside a runtime"),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(drop),
    }
}
