//! Shared by the DynamoDB tests: the server, a connection to it, tables of
//! their own.
#![allow(dead_code, unused_imports)]

pub use event_backbone_core::testkit::{eventually, unique_uri as unique};
use event_backbone_dynamodb::{Dynamo, DynamoConfig, DynamoStore, ENDPOINT_VAR};

/// Where `scripts/start-dynamodb` starts DynamoDB Local when no endpoint is
/// named.
pub const LOCAL: &str = "http://127.0.0.1:8000";

/// The test server: `DYNAMODB_EVENT_SOURCE_ENDPOINT` (or, with
/// `EB_DYNAMODB_TESTS_ON_AWS=1`, the AWS chain's DynamoDB), else DynamoDB
/// Local on 127.0.0.1:8000 with placeholder credentials (it takes any).
pub fn config(table: &str) -> DynamoConfig {
    let config = DynamoConfig::new(table).expect("a valid table name");
    if std::env::var_os("EB_DYNAMODB_TESTS_ON_AWS").is_some() {
        return config;
    }
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| LOCAL.to_owned());
    let config = config.endpoint(&endpoint).expect("a valid endpoint");
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        config.credentials("local", "local").region("us-east-1")
    } else {
        config
    }
}

/// A table name of this run's own.
pub fn table(prefix: &str) -> String {
    unique(prefix).replace("test.", "eb-test-")
}

/// A connection; a server that is not there fails the test, with how to
/// start one.
pub async fn connect(config: DynamoConfig) -> Dynamo {
    match Dynamo::connect(config).await {
        Ok(dynamo) => dynamo,
        Err(e) => panic!("{e}; run scripts/start-dynamodb"),
    }
}

/// A store on a new table of its own (created, active, TTL on).
pub async fn store(prefix: &str) -> DynamoStore {
    let dynamo = connect(config(&table(prefix))).await;
    let store = DynamoStore::new(&dynamo);
    store.ensure_table().await.expect("the table is created");
    store
}

/// Deletes test tables (from a test's end; errors are ignored: a leftover
/// table costs only space on DynamoDB Local).
pub fn drop_tables(names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let drop = async move {
        for name in names {
            if let Ok(dynamo) = Dynamo::connect(config(&name)).await {
                let _ = dynamo
                    .client()
                    .delete_table()
                    .table_name(&name)
                    .send()
                    .await;
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(_) => panic!("drop_tables is for the end of a test program, outside a runtime"),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(drop),
    }
}
