//! A Couchbase KV-protocol server for event-backbone's tests.
//!
//! No Couchbase Server can be installed from the registries the project's
//! CI reaches, so the Couchbase store is tested against this: one node, in
//! memory, speaking the memcached binary protocol with the Couchbase
//! extensions the official SDKs use on a KV-only connection (HELLO,
//! SCRAM-SHA512/256 over SASL, SELECT_BUCKET, GET_CLUSTER_CONFIG,
//! collections by LEB128 key prefix and GET_COLLECTION_ID, GET, SET, ADD,
//! REPLACE, DELETE, TOUCH and GAT with flags, CAS and expiry). What it does
//! not do: replication, durability, rebalance, persistence, sub-document
//! operations, compression, HTTP management.
//!
//! ```no_run
//! use event_backbone_couchbase_test_server::{Server, Settings};
//! # async fn run() -> std::io::Result<()> {
//! let settings = Settings::default()
//!     .user("event-backbone", "secret")
//!     .bucket("events")
//!     .collection("app", "payloads");
//! let server = Server::bind("127.0.0.1:11210".parse().unwrap(), settings).await?;
//! server.run().await
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod cluster_map;
pub mod data;
pub mod error_map;
pub mod frame;
pub mod hello;
pub mod opcode;
pub mod scram;
pub mod server;
pub mod session;
pub mod settings;
pub mod status;

pub use server::Server;
pub use settings::Settings;
